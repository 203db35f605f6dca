package integrity

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
)

// The sealer's benchmarks, in one run against one server: group commit
// from 64 callers without a sealer, with one sealing every second, and
// without the xact_id index, each into a fresh schema; how fast a sealer
// seals logs already written; and the verifier. The ratios of the bars are
// printed at the end.
//
//	../../../scripts/with-postgres.sh go test -run '^$' -bench . -benchmem

const benchCallers = 64

func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	mustPool(b)
	cfg, err := pgxpool.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchCallers + 8
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

// benchLogs returns n logs as a service's Logger makes them.
func benchLogs(n int) []*audit.Log {
	logs := make([]*audit.Log, n)
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range logs {
		logs[i] = &audit.Log{
			ID:     uuid.Must(uuid.NewV7()).String(),
			OrgID:  "org-" + strconv.Itoa(i%20),
			Source: "frontier", Action: "app.project.updated",
			Actor:  audit.Actor{ID: "user-" + strconv.Itoa(i%500), Type: audit.ActorTypeUser, Name: "Ada Lovelace"},
			Target: audit.Target{ID: "project-" + strconv.Itoa(i%2000), Type: "project", Name: "Analytical Engine"},
			Metadata: map[string]string{
				audit.MetadataRequestID: uuid.NewString(),
				audit.MetadataIP:        "192.0.2." + strconv.Itoa(i%256),
				audit.MetadataUserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
				audit.MetadataOutcome:   audit.OutcomeSuccess,
			},
			CreatedAt: now.Add(time.Duration(i) * time.Microsecond),
		}
	}
	return logs
}

var barMu sync.Mutex
var bars = map[string]float64{}

func record(b *testing.B, name string, v float64, unit string) {
	b.Helper()
	b.ReportMetric(v, unit)
	barMu.Lock()
	bars[name] = v
	barMu.Unlock()
}

// BenchmarkGroupCommit writes b.N logs from 64 callers through group
// commit in each of three schemas: one with a sealer at work (sealing
// every second), one without, and one without the xact_id index. The
// three take turns, 5,000 logs at a time, so that a machine whose speed
// drifts weighs on all three alike.
func BenchmarkGroupCommit(b *testing.B) {
	ctx := context.Background()
	pool := benchPool(b)
	modes := []string{"no-sealer", "sealer", "no-xact-index"}
	repos := make([]*postgres.Repository, len(modes))
	schemas := make([]string, len(modes))
	for i, mode := range modes {
		schemas[i] = newSchema(b)
		if mode == "no-xact-index" {
			if _, err := pool.Exec(ctx, "DROP INDEX "+schemas[i]+".audit_logs_xact_idx"); err != nil {
				b.Fatal(err)
			}
		}
		repos[i] = postgres.NewRepository(pool, postgres.WithSchema(schemas[i]))
		defer repos[i].Close()
	}
	signer, _, _ := newKey(b, testOrigin, 1)
	s, err := NewSealer(pool, testOrigin, []note.Signer{signer}, WithSchema(schemas[1]), WithInterval(time.Second))
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = s.Run(sctx); close(done) }()
	defer func() { cancel(); <-done }()

	elapsed := make([]time.Duration, len(modes))
	b.ResetTimer()
	for start := 0; start < b.N; start += 5000 {
		n := min(5000, b.N-start)
		for i := range modes {
			logs := benchLogs(n)
			var next atomic.Int64
			var wg sync.WaitGroup
			t0 := time.Now()
			for range benchCallers {
				wg.Go(func() {
					for {
						j := next.Add(1) - 1
						if j >= int64(len(logs)) {
							return
						}
						if err := repos[i].Create(ctx, logs[j]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed[i] += time.Since(t0)
		}
	}
	b.StopTimer()
	for i, mode := range modes {
		record(b, "write/"+mode, float64(b.N)/elapsed[i].Seconds(), "rows/s-"+mode)
	}
	b.ReportMetric(bars["write/sealer"]/bars["write/no-sealer"], "sealer-ratio")
	cancel()
	<-done
	done = make(chan struct{})
	close(done)
	if cp, err := NewTree(pool, schemas[1]).Latest(ctx); err == nil {
		b.ReportMetric(float64(cp.Size)/float64(b.N), "sealed-during")
	}
}

// BenchmarkSeal seals b.N logs already written, in seals of the default
// size: logs sealed per second, and what the tree costs in storage.
func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	pool := benchPool(b)
	schema := newSchema(b)
	repo := postgres.NewRepository(pool, postgres.WithSchema(schema))
	defer repo.Close()
	logs := benchLogs(b.N)
	for i := 0; i < len(logs); i += 5000 {
		if err := repo.CreateBatch(ctx, logs[i:min(i+5000, len(logs))]); err != nil {
			b.Fatal(err)
		}
	}
	signer, _, _ := newKey(b, testOrigin, 1)
	s := newSealer(b, schema, signer)
	b.ResetTimer()
	var cp Checkpoint
	for cp.Size < int64(b.N) {
		var err error
		if cp, err = s.Seal(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	record(b, "seal", float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	var seals, logsSize int64
	if err := pool.QueryRow(ctx, "SELECT pg_total_relation_size($1::regclass), pg_total_relation_size($2::regclass)",
		schema+".audit_seals", schema+".audit_logs").Scan(&seals, &logsSize); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(seals)/float64(b.N), "tree-B/log")
	b.ReportMetric(float64(logsSize)/float64(b.N), "table-B/log")
	reportProofs(b, pool, schema, logs[b.N/3].ID)
}

// reportProofs reports the hashes of an inclusion proof of id and of a
// consistency proof from a third of the tree to all of it.
func reportProofs(b *testing.B, pool *pgxpool.Pool, schema, id string) {
	b.Helper()
	ctx := context.Background()
	tree := NewTree(pool, schema)
	cp, err := tree.Latest(ctx)
	if err != nil || cp.Size < 3 {
		return
	}
	p, err := tree.InclusionProof(ctx, id, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(p.Proof)), "proof-hashes")
	tp, err := tree.ConsistencyProof(ctx, cp.Size/3, cp.Size)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(tp)), "consistency-hashes")
}

// BenchmarkVerify verifies a sealed trail of b.N logs.
func BenchmarkVerify(b *testing.B) {
	tr := newTrail(b, b.N)
	b.ResetTimer()
	rep := tr.verify(b, Options{})
	b.StopTimer()
	if !rep.OK() {
		b.Fatalf("findings: %v", rep.Findings)
	}
	record(b, "verify", float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	reportProofs(b, mustPool(b), tr.schema, tr.logs[b.N/2].ID)
}

// printBars prints the ratios of the bars from the benchmarks of the run,
// the last run of each when -count repeats them. TestMain calls it.
func printBars() {
	barMu.Lock()
	defer barMu.Unlock()
	if bars["write/no-sealer"] == 0 || bars["seal"] == 0 {
		return
	}
	fmt.Printf("bars: group commit with a sealer / without: %.2f (bar >= 0.9); logs sealed/s / group commit rows/s: %.2f (bar >= 1); "+
		"group commit with the xact_id index / without it: %.2f\n",
		bars["write/sealer"]/bars["write/no-sealer"], bars["seal"]/bars["write/no-sealer"], bars["write/no-sealer"]/bars["write/no-xact-index"])
}
