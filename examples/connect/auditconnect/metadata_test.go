package auditconnect_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
)

// TestMetadataConfigCopied checks that the metadata interceptor keeps its
// own copy of the trusted proxies: a caller that reuses its slice once the
// interceptor is made changes nothing of what it believes.
func TestMetadataConfigCopied(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	repo := audit.NewMemoryRepository()
	mux := http.NewServeMux()
	mux.Handle(projectsv1connect.NewProjectServiceHandler(&stub{}, connect.WithInterceptors(
		auditconnect.NewMetadataInterceptor(auditmeta.Config{TrustedProxies: proxies}),
		auditconnect.NewIdentityInterceptor(authenticate),
		auditconnect.NewAuditInterceptor(audit.NewLogger(repo, audit.WithSource("test")), testTable()),
	)))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	proxies[0] = netip.MustParsePrefix("192.0.2.0/24") // the caller's slice, reused

	req := authed(&projectsv1.CreateProjectRequest{Name: "x"})
	req.Header().Set(auditmeta.HeaderXForwardedFor, "203.0.113.9")
	if _, err := projectsv1connect.NewProjectServiceClient(ts.Client(), ts.URL).CreateProject(testContext(t), req); err != nil {
		t.Fatal(err)
	}
	logs, err := repo.List(testContext(t), audit.Filter{})
	if err != nil || len(logs) != 1 {
		t.Fatalf("got %v, %v; want one log", logs, err)
	}
	if got := logs[0].Metadata[audit.MetadataIP]; got != "203.0.113.9" {
		t.Errorf("got ip %q, want 203.0.113.9: the loopback proxy trusted when the interceptor was made", got)
	}
}
