package integrity

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
	"github.com/raystack/salt/examples/postgres/internal/pgtest"
)

// The sealer's benchmarks, in one run against one server: group commit
// from 64 callers without a sealer, with one sealing, and without the
// xact_id index, each into a fresh schema; how fast a sealer seals logs
// already written; and the verifier. The ratios of the bars are printed at
// the end.
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

var barMu sync.Mutex
var bars = map[string]float64{}

func record(b *testing.B, name string, v float64, unit string) {
	b.Helper()
	b.ReportMetric(v, unit)
	barMu.Lock()
	bars[name] = v
	barMu.Unlock()
}

// Turns of BenchmarkGroupCommit: each mode writes turnLogs logs in its
// turn; the sealer, in its mode's turns, seals every turnInterval, so that
// a turn (about a second here) spans several of its intervals.
const (
	turnLogs     = 20000
	turnInterval = 100 * time.Millisecond
)

// BenchmarkGroupCommit writes b.N logs from 64 callers through group
// commit in each of three schemas: one with a sealer at work, one
// without, and one without the xact_id index. The three take turns,
// turnLogs logs at a time, so that a machine whose speed drifts weighs on
// all three alike, and the sealer works only in its own schema's turns:
// from the turn's start, sealing every turnInterval as Run does, until
// every log of the turn is sealed. Its seals are timed, and the logs it
// sealed per second of sealing are reported next to the write rate of the
// same turns, with how many logs were left to seal when the writers
// stopped.
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
	key, _, _ := newKey(b, testOrigin, 1)
	s, err := NewSealer(pool, testOrigin, []Key{key}, WithSchema(schemas[1]))
	if err != nil {
		b.Fatal(err)
	}

	elapsed := make([]time.Duration, len(modes))
	var sealing time.Duration // spent in seals
	var sealedInTurns, lag int64
	turns := 0
	b.ResetTimer()
	for start := 0; start < b.N; start += turnLogs {
		n := min(turnLogs, b.N-start)
		turns++
		for i := range modes {
			var st *sealTurn
			if modes[i] == "sealer" {
				st = startSealing(ctx, s, int64(start))
			}
			elapsed[i] += writeTurn(b, repos[i], n)
			if st != nil {
				left, busy, sealed, err := st.finish(int64(start + n))
				if err != nil {
					b.Fatal(err)
				}
				lag += left
				sealing += busy
				sealedInTurns += sealed
			}
		}
	}
	b.StopTimer()
	for i, mode := range modes {
		record(b, "write/"+mode, float64(b.N)/elapsed[i].Seconds(), "rows/s-"+mode)
	}
	b.ReportMetric(bars["write/sealer"]/bars["write/no-sealer"], "sealer-ratio")
	record(b, "seal/busy", float64(sealedInTurns)/sealing.Seconds(), "sealed/s-of-sealing")
	b.ReportMetric(sealing.Seconds()/elapsed[1].Seconds(), "sealing/writing")
	b.ReportMetric(float64(lag)/float64(turns), "unsealed-at-turn-end")
}

// writeTurn writes n logs from benchCallers callers through repo, and
// returns how long it took.
func writeTurn(b *testing.B, repo *postgres.Repository, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	logs := pgtest.BenchLogs(n)
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
				if err := repo.Create(ctx, &logs[j]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(t0)
}

// sealTurn is a sealer at work during one turn of BenchmarkGroupCommit,
// sealing as Run does, every turnInterval, and again at once while logs
// are waiting, timing its seals.
type sealTurn struct {
	s      *Sealer
	cancel context.CancelFunc
	done   chan struct{}

	start int64 // the tree's size before the turn

	mu   sync.Mutex
	size int64 // the tree's size after the last seal
	busy time.Duration
	err  error
}

// startSealing starts s on a tree of size logs.
func startSealing(ctx context.Context, s *Sealer, size int64) *sealTurn {
	ctx, cancel := context.WithCancel(ctx)
	st := &sealTurn{s: s, cancel: cancel, done: make(chan struct{}), start: size, size: size}
	go st.run(ctx)
	return st
}

func (st *sealTurn) run(ctx context.Context) {
	defer close(st.done)
	t := time.NewTicker(turnInterval)
	defer t.Stop()
	for {
		for more := true; more; {
			t0 := time.Now()
			cp, m, err := st.s.seal(ctx)
			d := time.Since(t0)
			if ctx.Err() != nil {
				return
			}
			st.mu.Lock()
			if err != nil {
				st.err = err
				st.mu.Unlock()
				return
			}
			st.size, st.busy, more = cp.Size, st.busy+d, m
			st.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// finish waits until the tree holds total logs, stops the sealer, and
// returns the logs left to seal when it was called, the time spent in
// seals and the logs sealed during the turn.
func (st *sealTurn) finish(total int64) (left int64, busy time.Duration, sealed int64, err error) {
	defer func() { st.cancel(); <-st.done }()
	deadline := time.Now().Add(time.Minute)
	first := true
	for {
		st.mu.Lock()
		size, b, e := st.size, st.busy, st.err
		st.mu.Unlock()
		if first {
			left, first = total-size, false
		}
		switch {
		case e != nil:
			return left, b, 0, e
		case size >= total:
			return left, b, size - st.start, nil
		case time.Now().After(deadline):
			return left, b, size - st.start, fmt.Errorf("the sealer sealed %d of %d logs in a minute after the writers stopped", size, total)
		}
		time.Sleep(turnInterval / 10)
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
	all := pgtest.BenchLogs(b.N)
	logs := make([]*audit.Log, len(all))
	for i := range all {
		logs[i] = &all[i]
	}
	for i := 0; i < len(logs); i += 5000 {
		if err := repo.CreateBatch(ctx, logs[i:min(i+5000, len(logs))]); err != nil {
			b.Fatal(err)
		}
	}
	key, _, _ := newKey(b, testOrigin, 1)
	s := newSealer(b, schema, key)
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
	// A seal when no log arrived: what a quiet trail pays every interval.
	for range 50 {
		if _, err := s.Seal(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var idle float64
	if err := pool.QueryRow(ctx, "SELECT avg(pg_column_size(s.*)) FROM "+newTables(schema).seals+" s WHERE count = 0").Scan(&idle); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(idle, "idle-seal-B")
}

// reportProofs reports the hashes of an inclusion proof of id and of a
// consistency proof from a third of the tree to all of it.
func reportProofs(b *testing.B, pool *pgxpool.Pool, schema, id string) {
	b.Helper()
	ctx := context.Background()
	tree := NewTree(pool, schema)
	cp, err := tree.Latest(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if cp.Size < 3 {
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
	fmt.Printf("bars: group commit with a sealer / without: %.2f (bar >= 0.9); logs sealed/s / group commit rows/s: %.2f of a backlog, "+
		"%.2f while the writers wrote (bar >= 1); group commit with the xact_id index / without it: %.2f\n",
		bars["write/sealer"]/bars["write/no-sealer"], bars["seal"]/bars["write/no-sealer"], bars["seal/busy"]/bars["write/sealer"],
		bars["write/no-sealer"]/bars["write/no-xact-index"])
}
