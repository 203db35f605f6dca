package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
	httpserver "github.com/raystack/salt/examples/httpserver/server"
)

// benchChains are the interceptor chains the benchmarks compare: the
// server's whole chain (request metadata, identity, audit into the memory
// repository), and the same server without the audit interceptors: with
// identity alone, which the handler needs to know the caller, and with
// identity and request metadata.
var benchChains = []struct {
	name  string
	chain func(s *Server) []connect.Interceptor
}{
	{"chain=full", func(s *Server) []connect.Interceptor {
		return []connect.Interceptor{
			auditconnect.NewMetadataInterceptor(auditmeta.Config{}),
			auditconnect.NewIdentityInterceptor(s.authenticate),
			auditconnect.NewAuditInterceptor(s.logger, Procedures()),
		}
	}},
	{"chain=identity", func(s *Server) []connect.Interceptor {
		return []connect.Interceptor{auditconnect.NewIdentityInterceptor(s.authenticate)}
	}},
	{"chain=identity+metadata", func(s *Server) []connect.Interceptor {
		return []connect.Interceptor{
			auditconnect.NewMetadataInterceptor(auditmeta.Config{}),
			auditconnect.NewIdentityInterceptor(s.authenticate),
		}
	}},
}

// benchTarget is a server with one of benchChains, on loopback, and the
// call the benchmarks make of it: UpdateProject, an audited procedure,
// from a Connect client over HTTP/1.1.
type benchTarget struct {
	repo   *audit.MemoryRepository
	client projectsv1connect.ProjectServiceClient
	update *projectsv1.UpdateProjectRequest
}

func newBenchTarget(b *testing.B, chain func(*Server) []connect.Interceptor) *benchTarget {
	b.Helper()
	repo := audit.NewMemoryRepository()
	s, err := New(Config{Repository: repo, Tokens: httpserver.DemoTokens()})
	if err != nil {
		b.Fatal(err)
	}
	client := serveForBench(b, s.newHandler(chain(s)...))
	create := connect.NewRequest(&projectsv1.CreateProjectRequest{Name: "apollo"})
	create.Header().Set("Authorization", "Bearer demo-alice")
	res, err := client.CreateProject(context.Background(), create)
	if err != nil {
		b.Fatal(err)
	}
	return &benchTarget{repo: repo, client: client, update: &projectsv1.UpdateProjectRequest{Id: res.Msg.GetProject().GetId(), Name: "apollo"}}
}

func (t *benchTarget) call(b *testing.B) {
	b.Helper()
	req := connect.NewRequest(t.update)
	req.Header().Set("Authorization", "Bearer demo-alice")
	if _, err := t.client.UpdateProject(context.Background(), req); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkUnary measures one call through each of benchChains, one
// sub-benchmark each, for their allocations:
//
//	go test -run '^$' -bench BenchmarkUnary -benchmem -count 6 ./server
func BenchmarkUnary(b *testing.B) {
	for _, bb := range benchChains {
		b.Run(bb.name, func(b *testing.B) {
			t := newBenchTarget(b, bb.chain)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				t.call(b)
			}
			b.StopTimer()
			if logs, _ := t.repo.List(context.Background(), audit.Filter{Limit: 1}); bb.name == "chain=full" && len(logs) == 0 {
				b.Fatal("the full chain wrote no log")
			}
		})
	}
}

// BenchmarkUnaryInterleaved makes, in each iteration, one call through
// each of benchChains in turn, and reports the mean time of a call
// through each (full-ns/call, identity-ns/call, identity+metadata-ns/call)
// and the ratios of the full chain to the others: interleaved, the chains
// share whatever load the machine has, which sub-benchmarks run one after
// the other do not.
//
//	go test -run '^$' -bench BenchmarkUnaryInterleaved -count 6 ./server
func BenchmarkUnaryInterleaved(b *testing.B) {
	targets := make([]*benchTarget, len(benchChains))
	for i, bb := range benchChains {
		targets[i] = newBenchTarget(b, bb.chain)
	}
	spent := make([]time.Duration, len(targets))
	b.ResetTimer()
	for b.Loop() {
		for i, t := range targets {
			start := time.Now()
			t.call(b)
			spent[i] += time.Since(start)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	for i, bb := range benchChains {
		b.ReportMetric(float64(spent[i].Nanoseconds())/n, strings.TrimPrefix(bb.name, "chain=")+"-ns/call")
	}
	b.ReportMetric(float64(spent[0])/float64(spent[1]), "full/identity")
	b.ReportMetric(float64(spent[0])/float64(spent[2]), "full/identity+metadata")
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
