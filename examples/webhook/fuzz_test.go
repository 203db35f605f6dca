package webhook_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/examples/webhook"
)

// FuzzVerify feeds Verify hostile headers and bodies. It must never panic,
// must accept a request only if one of its signatures is the one the
// secret makes, and must accept every request signed with the secret.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1740830400, 0)
	f.Add("01956a2e-4c00-7000-8000-000000000001", "1740830400", "v1,abc", []byte(`{"type":"x"}`))
	f.Add("id", "-1", "v1a,xyz v1,", []byte{})
	f.Add("a.b", "99999999999999999999", " v1,, ,v1 ", []byte("\x00"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, ts)
		h.Set(webhook.HeaderSignature, sig)
		if err := webhook.VerifyAt(secretA, h, body, now); err == nil {
			unix, perr := strconv.ParseInt(h.Get(webhook.HeaderTimestamp), 10, 64)
			if perr != nil {
				t.Fatalf("accepted a malformed timestamp %q", ts)
			}
			want, _ := webhook.Sign([]string{secretA}, h.Get(webhook.HeaderID), time.Unix(unix, 0), body)
			if !slices.Contains(strings.Fields(h.Get(webhook.HeaderSignature)), want) {
				t.Fatalf("accepted signature %q, want it to contain %q", sig, want)
			}
		}

		// Whatever the id and body, a request signed with the secret now is
		// accepted.
		if h.Get(webhook.HeaderID) == "" {
			return
		}
		good, err := webhook.Sign([]string{secretB, secretA}, h.Get(webhook.HeaderID), now, body)
		if err != nil {
			t.Fatal(err)
		}
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(webhook.HeaderSignature, good)
		if err := webhook.VerifyAt(secretA, h, body, now); err != nil {
			t.Fatalf("rejected a request signed with the secret: %v", err)
		}
	})
}
