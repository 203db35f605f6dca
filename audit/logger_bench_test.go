package audit_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/raystack/salt/audit"
)

var (
	benchActor  = audit.Actor{ID: "u-42", Type: audit.ActorTypeUser, Name: "ada@example.com"}
	benchTarget = audit.Target{ID: "p-7", Type: "project", Name: "apollo"}
	benchMD1    = map[string]string{audit.MetadataIP: "203.0.113.9", audit.MetadataUserAgent: "curl/8.5.0", audit.MetadataRequestID: "0b8e6c1f-2a4d-4c1e-9d5b-5f3f9f1a7e21"}
	benchMD2    = map[string]string{audit.MetadataTraceID: "4bf92f3577b34da6a3ce929d0e0e4736", "route": "/v1/projects"}
)

// BenchmarkLoggerLog measures Logger.Log with an actor and five metadata
// keys in a context prepared once, storing in the memory repository,
// against the straightforward design.
func BenchmarkLoggerLog(b *testing.B) {
	b.Run("design=salt", func(b *testing.B) {
		lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("bench"))
		ctx := audit.SetMetadata(audit.SetMetadata(audit.SetActor(context.Background(), benchActor), benchMD1), benchMD2)
		b.ReportAllocs()
		for range b.N {
			if err := lg.Log(ctx, "app.project.updated", benchTarget); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("design=straightforward", func(b *testing.B) {
		lg := &naiveLogger{source: "bench"}
		ctx := naiveSetMetadata(naiveSetMetadata(naiveSetActor(context.Background(), benchActor), copyMap(benchMD1)), benchMD2)
		b.ReportAllocs()
		for range b.N {
			if err := lg.Log(ctx, "app.project.updated", benchTarget); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// requestIDs vary the request_id of BenchmarkRequest as real requests do.
var requestIDs = func() []string {
	ids := make([]string, 256)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	return ids
}()

// BenchmarkRequest measures the whole audit path of one request, as
// middleware and a handler run it: SetActor, two SetMetadata calls of 3 and
// 2 keys built for the request, one Logger.Log.
func BenchmarkRequest(b *testing.B) {
	b.Run("design=salt", func(b *testing.B) {
		lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("bench"))
		base := context.Background()
		b.ReportAllocs()
		for i := range b.N {
			ctx := audit.SetActor(base, benchActor)
			ctx = audit.SetMetadata(ctx, map[string]string{
				audit.MetadataIP: "203.0.113.9", audit.MetadataUserAgent: "curl/8.5.0", audit.MetadataRequestID: requestIDs[i%len(requestIDs)],
			})
			ctx = audit.SetMetadata(ctx, map[string]string{
				audit.MetadataTraceID: "4bf92f3577b34da6a3ce929d0e0e4736", "route": "/v1/projects",
			})
			if err := lg.Log(ctx, "app.project.updated", benchTarget); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("design=straightforward", func(b *testing.B) {
		lg := &naiveLogger{source: "bench"}
		base := context.Background()
		b.ReportAllocs()
		for i := range b.N {
			ctx := naiveSetActor(base, benchActor)
			ctx = naiveSetMetadata(ctx, map[string]string{
				audit.MetadataIP: "203.0.113.9", audit.MetadataUserAgent: "curl/8.5.0", audit.MetadataRequestID: requestIDs[i%len(requestIDs)],
			})
			ctx = naiveSetMetadata(ctx, map[string]string{
				audit.MetadataTraceID: "4bf92f3577b34da6a3ce929d0e0e4736", "route": "/v1/projects",
			})
			if err := lg.Log(ctx, "app.project.updated", benchTarget); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// BenchmarkActorFromContext must not allocate.
func BenchmarkActorFromContext(b *testing.B) {
	ctx := audit.SetMetadata(audit.SetActor(context.Background(), benchActor), benchMD1)
	b.ReportAllocs()
	for range b.N {
		if _, ok := audit.ActorFromContext(ctx); !ok {
			b.Fatal("no actor")
		}
	}
}
