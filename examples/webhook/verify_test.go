package webhook_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/raystack/salt/examples/webhook"
)

// referenceSign signs like a sender built on the reference implementation.
func referenceSign(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, fmt.Sprint(ts.Unix()))
	h.Set(webhook.HeaderSignature, sig)
	return h
}

func TestSignMatchesReference(t *testing.T) {
	body := []byte(`{"type":"app.user.created","timestamp":"2025-03-01T12:00:00.123456Z","data":{"id":"x"}}`)
	ts := time.Unix(1740830400, 0)
	const id = "01956a2e-4c00-7000-8000-000000000001"

	sig, err := webhook.Sign([]string{secretA, secretB}, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(sig, " ")
	if len(parts) != 2 {
		t.Fatalf("got signature header %q, want two space-separated signatures: one per secret", sig)
	}
	for i, secret := range []string{secretA, secretB} {
		want := referenceSign(t, secret, id, ts, body).Get(webhook.HeaderSignature)
		if parts[i] != want {
			t.Errorf("signature %d: got %q, want the reference implementation's %q", i, parts[i], want)
		}
		h := referenceSign(t, secret, id, ts, body)
		h.Set(webhook.HeaderSignature, sig)
		wh, _ := standardwebhooks.NewWebhook(secret)
		if err := wh.VerifyIgnoringTimestamp(body, h); err != nil {
			t.Errorf("the reference implementation rejects our header with secret %d: %v", i, err)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"app.user.created"}`)
	const id = "01956a2e-4c00-7000-8000-000000000001"
	signed := func(secret string, ts time.Time) http.Header {
		return referenceSign(t, secret, id, ts, body)
	}
	with := func(h http.Header, key, value string) http.Header {
		h = h.Clone()
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	good := signed(secretA, now)
	goodSig := good.Get(webhook.HeaderSignature)

	for _, tt := range []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		want   error // nil: accepted
	}{
		{"signed by the reference implementation", secretA, good, body, nil},
		{"secret without its prefix", strings.TrimPrefix(secretA, "whsec_"), good, body, nil},
		{"one of several signatures matches", secretA, with(good, webhook.HeaderSignature, "v1a,AAAA v1,bm90IGl0 junk "+goodSig), body, nil},
		{"timestamp at the edge of the tolerance", secretA, signed(secretA, now.Add(-webhook.Tolerance)), body, nil},
		{"future timestamp at the edge", secretA, signed(secretA, now.Add(webhook.Tolerance)), body, nil},
		{"wrong secret", secretB, good, body, webhook.ErrInvalidSignature},
		{"tampered body", secretA, good, []byte(`{"type":"app.user.deleted"}`), webhook.ErrInvalidSignature},
		{"other webhook-id", secretA, with(good, webhook.HeaderID, "01956a2e-4c00-7000-8000-000000000002"), body, webhook.ErrInvalidSignature},
		{"timestamp changed after signing", secretA, with(good, webhook.HeaderTimestamp, fmt.Sprint(now.Unix()+1)), body, webhook.ErrInvalidSignature},
		{"signature of another version only", secretA, with(good, webhook.HeaderSignature, "v1a,"+strings.TrimPrefix(goodSig, "v1,")), body, webhook.ErrInvalidSignature},
		{"replayed old request", secretA, signed(secretA, now.Add(-webhook.Tolerance-time.Second)), body, webhook.ErrTimestampOutOfTolerance},
		{"timestamp too far ahead", secretA, signed(secretA, now.Add(webhook.Tolerance+time.Second)), body, webhook.ErrTimestampOutOfTolerance},
		{"malformed timestamp", secretA, with(good, webhook.HeaderTimestamp, "2025-03-01T12:00:00Z"), body, webhook.ErrInvalidTimestamp},
		{"negative timestamp", secretA, with(good, webhook.HeaderTimestamp, "-1"), body, webhook.ErrInvalidTimestamp},
		{"no webhook-id", secretA, with(good, webhook.HeaderID, ""), body, webhook.ErrMissingHeaders},
		{"no webhook-timestamp", secretA, with(good, webhook.HeaderTimestamp, ""), body, webhook.ErrMissingHeaders},
		{"no webhook-signature", secretA, with(good, webhook.HeaderSignature, ""), body, webhook.ErrMissingHeaders},
		{"secret that is not base64", "whsec_not base64!", good, body, webhook.ErrInvalidSecret},
		{"secret too short", "whsec_c2hvcnQ=", good, body, webhook.ErrInvalidSecret},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.VerifyAt(tt.secret, tt.header, tt.body, now)
			if tt.want == nil && err != nil {
				t.Errorf("got %v, want the request accepted", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
}

func TestVerifyUsesTheCurrentTime(t *testing.T) {
	body := []byte(`{}`)
	if err := webhook.Verify(secretA, referenceSign(t, secretA, "id-1", time.Now(), body), body); err != nil {
		t.Errorf("got %v for a fresh request, want it accepted", err)
	}
	old := referenceSign(t, secretA, "id-1", time.Now().Add(-time.Hour), body)
	if err := webhook.Verify(secretA, old, body); !errors.Is(err, webhook.ErrTimestampOutOfTolerance) {
		t.Errorf("got %v for an hour-old request, want ErrTimestampOutOfTolerance", err)
	}
}

func TestNewSecret(t *testing.T) {
	a, b := webhook.NewSecret(), webhook.NewSecret()
	if a == b || !strings.HasPrefix(a, webhook.SecretPrefix) {
		t.Fatalf("got %q and %q, want two different %q-prefixed secrets", a, b, webhook.SecretPrefix)
	}
	if _, err := standardwebhooks.NewWebhook(a); err != nil {
		t.Errorf("the reference implementation rejects the secret: %v", err)
	}
	body := []byte(`{}`)
	h := referenceSign(t, a, "id-1", time.Now(), body)
	if err := webhook.Verify(a, h, body); err != nil {
		t.Errorf("got %v, want a request signed with a new secret accepted", err)
	}
}
