package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
)

// BenchmarkUnary measures one UpdateProject call, an audited procedure,
// from a Connect client over HTTP/1.1 on loopback, through the server with
// its whole chain (request metadata, identity, audit into the memory
// repository) and through the same server without the audit
// interceptors: with identity alone, which the handler needs to know
// the caller, and with identity and request metadata. Compare them within
// one run:
//
//	go test -run '^$' -bench BenchmarkUnary -benchmem -count 6 ./server
func BenchmarkUnary(b *testing.B) {
	for _, bb := range []struct {
		name  string
		chain func(s *Server) []connect.Interceptor
	}{
		{"chain=full", func(s *Server) []connect.Interceptor {
			return []connect.Interceptor{
				auditconnect.NewMetadataInterceptor(auditmeta.Config{}),
				auditconnect.NewIdentityInterceptor(s.tokens.authenticate),
				auditconnect.NewAuditInterceptor(s.logger, Procedures()),
			}
		}},
		{"chain=identity", func(s *Server) []connect.Interceptor {
			return []connect.Interceptor{auditconnect.NewIdentityInterceptor(s.tokens.authenticate)}
		}},
		{"chain=identity+metadata", func(s *Server) []connect.Interceptor {
			return []connect.Interceptor{
				auditconnect.NewMetadataInterceptor(auditmeta.Config{}),
				auditconnect.NewIdentityInterceptor(s.tokens.authenticate),
			}
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			repo := audit.NewMemoryRepository()
			s, err := New(Config{Repository: repo, Tokens: DemoTokens()})
			if err != nil {
				b.Fatal(err)
			}
			client := serveForBench(b, s.newHandler(bb.chain(s)...))
			ctx := context.Background()
			create := connect.NewRequest(&projectsv1.CreateProjectRequest{Name: "apollo"})
			create.Header().Set("Authorization", "Bearer demo-alice")
			res, err := client.CreateProject(ctx, create)
			if err != nil {
				b.Fatal(err)
			}
			update := &projectsv1.UpdateProjectRequest{Id: res.Msg.GetProject().GetId(), Name: "apollo"}

			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req := connect.NewRequest(update)
				req.Header().Set("Authorization", "Bearer demo-alice")
				if _, err := client.UpdateProject(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if logs, _ := repo.List(ctx, audit.Filter{Limit: 1}); bb.name == "chain=full" && len(logs) == 0 {
				b.Fatal("the full chain wrote no log")
			}
		})
	}
}

// serveForBench serves h on loopback as Run does, for the benchmark's
// duration, and returns a client of it.
func serveForBench(b *testing.B, h http.Handler) projectsv1connect.ProjectServiceClient {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := NewHTTPServer(h, discardLogger())
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			b.Error(err)
		}
	}()
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	})
	return projectsv1connect.NewProjectServiceClient(&http.Client{Transport: tr}, "http://"+ln.Addr().String())
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
