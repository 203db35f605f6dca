package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/goleak"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/webhook"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// server, publisher and retry must be finished when its test is.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Secrets shared by the tests; each decodes to 32 bytes.
var (
	secretA = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
	secretB = "whsec_" + "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
	secretC = "whsec_" + "Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M="
)

func testLog(i int) audit.Log {
	return audit.Log{
		ID:        fmt.Sprintf("01956a2e-4c00-7000-8000-%012d", i),
		OrgID:     "acme",
		Source:    "frontier",
		Action:    "app.user.created",
		Actor:     audit.Actor{ID: "u-42", Type: audit.ActorTypeUser, Name: "ada@example.com"},
		Target:    audit.Target{ID: fmt.Sprint("u-", i), Type: "user"},
		Metadata:  map[string]string{audit.MetadataRequestID: fmt.Sprint("req-", i)},
		CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC),
	}
}

// fastRetry keeps tests quick: attempts follow each other within
// milliseconds.
var fastRetry = webhook.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

// mustPublisher returns a Publisher whose idle connections are closed when
// the test ends.
func mustPublisher(t *testing.T, endpoints []webhook.Endpoint, opts ...webhook.Option) *webhook.Publisher {
	t.Helper()
	p, err := webhook.NewPublisher(endpoints, opts...)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// withServer starts a real HTTP server on loopback, closed when the test
// ends.
func withServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// mustReceiver returns a Receiver that passes events to handle.
func mustReceiver(t *testing.T, secrets []string, handle func(webhook.Event) error, opts ...webhook.ReceiverOption) *webhook.Receiver {
	t.Helper()
	rc, err := webhook.NewReceiver(secrets, func(_ context.Context, e webhook.Event) error { return handle(e) }, opts...)
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	return rc
}

// checkReference verifies a request with the reference implementation of
// Standard Webhooks, which shares no code with this package.
func checkReference(t *testing.T, secret string, header http.Header, body []byte) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("reference NewWebhook: %v", err)
	}
	if err := wh.Verify(body, header); err != nil {
		t.Errorf("the reference implementation rejects the request signed with %s: %v", secret[:10], err)
	}
}
