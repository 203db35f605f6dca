package postgres

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres/internal/pgtest"
)

// Write benchmarks: every way to store logs, in one run against one
// server, each into a fresh table with every index of the migration. One
// op is one log; rows/s is the throughput. At the end of a run that has
// them, the ratios to the quality bars are printed, and for group commit
// the bound that Little's law sets from the measured batch cycle.
//
//	../../scripts/with-postgres.sh go test -run '^$' -bench Write -benchmem

// benchCallers are the numbers of concurrent callers of the concurrent
// benchmarks: request handlers of a busy service, and of busier ones.
var benchCallers = []int{64, 256, 1024}

// benchConns is the size of the pool of the benchmarks: the one INSERT per
// caller of the baseline runs on up to 64 connections, whatever the
// number of callers. No service opens a connection per request handler:
// with PostgreSQL's default max_connections of 100, shared by every
// replica, 64 is the most one service could hold, and more than most
// would (pgxpool's own default is the number of CPUs, at least 4).
const benchConns = 64

var (
	benchPoolOnce sync.Once
	benchPool     *pgxpool.Pool
	benchPoolErr  error
)

// mustBenchPool returns the pool of the benchmarks: benchConns
// connections for the callers' INSERTs, and a few for group commit's
// writers.
func mustBenchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	mustPool(b)
	benchPoolOnce.Do(func() {
		benchPool, benchPoolErr = newPool(os.Getenv("DATABASE_URL"), benchConns+4)
		if benchPoolErr == nil {
			atExit(benchPool.Close)
		}
	})
	if benchPoolErr != nil {
		b.Fatal(benchPoolErr)
	}
	return benchPool
}

// runCallers stores logs from callers goroutines, each taking the next log
// until none is left, timing only that.
func runCallers(b *testing.B, callers int, logs []audit.Log, store func(*audit.Log) error) {
	b.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for range callers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(logs)) {
					return
				}
				if err := store(&logs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	reportRows(b)
}

// The figures of each benchmark's final run, for benchReport. A benchmark
// runs with b.N = 1 first, then with growing b.N until it has run long
// enough; the run Go reports is the last, which has the largest b.N, and
// is the one kept: a run with a smaller b.N (the first, when a later one
// failed, say) or that failed never is.
var (
	benchMu      sync.Mutex
	benchRowsPer = map[string]float64{}   // benchmark name -> rows/s
	benchCycles  = map[string]cycleInfo{} // group commit's benchmark name -> its batches
	benchN       = map[string]int{}       // benchmark name -> the b.N of the run kept
)

// keepRun reports whether the run b ends is the one to keep for its
// benchmark: it did not fail, and no run with a larger b.N was kept. It
// keeps it. benchMu must be held.
func keepRun(b *testing.B) bool {
	b.Helper()
	if b.Failed() || b.N < benchN[b.Name()] {
		return false
	}
	if b.N > benchN[b.Name()] {
		delete(benchCycles, b.Name()) // of a smaller run
	}
	benchN[b.Name()] = b.N
	return true
}

// cycleInfo is what group commit's writers measured in a benchmark's run.
type cycleInfo struct {
	callers int
	cycle   time.Duration // mean batch cycle
	logs    float64       // mean logs per batch
}

// bound is the most callers can write by Little's law, in rows/s: each
// caller has one log in flight, and waits at least one batch cycle for
// it.
func (c cycleInfo) bound() float64 { return float64(c.callers) / c.cycle.Seconds() }

// reportRows reports the rows/s of a write benchmark whose op is one log.
func reportRows(b *testing.B) {
	b.Helper()
	rps := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rps, "rows/s")
	benchMu.Lock()
	if keepRun(b) {
		benchRowsPer[b.Name()] = rps
	}
	benchMu.Unlock()
}

// reportCycles reports the batch cycle that r's writers measured, and the
// bound it sets on callers.
func reportCycles(b *testing.B, r *Repository, callers int) {
	b.Helper()
	batches := r.stats.batches.Load()
	if batches == 0 {
		return
	}
	c := cycleInfo{
		callers: callers,
		cycle:   time.Duration(r.stats.nanos.Load() / batches),
		logs:    float64(r.stats.logs.Load()) / float64(batches),
	}
	b.ReportMetric(float64(c.cycle.Microseconds())/1000, "ms/batch")
	b.ReportMetric(c.logs, "logs/batch")
	benchMu.Lock()
	if !b.Failed() && b.N == benchN[b.Name()] { // the run reportRows kept
		benchCycles[b.Name()] = c
	}
	benchMu.Unlock()
}

func init() {
	benchReport = func() {
		benchMu.Lock()
		defer benchMu.Unlock()
		if len(benchRowsPer) == 0 {
			return
		}
		names := make([]string, 0, len(benchRowsPer))
		for name := range benchRowsPer {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Println("\nrows/s:")
		for _, name := range names {
			fmt.Printf("  %-55s %8.0f\n", name, benchRowsPer[name])
		}
		fmt.Println("\ngroup commit's batch cycle, and the bound it sets by Little's law (callers / cycle):")
		for _, name := range names {
			if c, ok := benchCycles[name]; ok {
				fmt.Printf("  %-48s %5.2f ms/batch %6.1f logs/batch  bound %7.0f rows/s, measured %.2f of it\n",
					name, float64(c.cycle.Microseconds())/1000, c.logs, c.bound(), benchRowsPer[name]/c.bound())
			}
		}
		fmt.Println()
		copyFrom, okC := benchRowsPer["BenchmarkWrite/copy-from"]
		for _, tt := range []struct {
			callers            int
			insertBar, copyBar float64
		}{{64, 0, 0.55}, {256, 3, 0.75}, {1024, 0, 0}} {
			g, ok := benchRowsPer[fmt.Sprintf("BenchmarkWrite/group-commit/callers=%d", tt.callers)]
			if !ok {
				continue
			}
			if i, ok := benchRowsPer[fmt.Sprintf("BenchmarkWrite/insert/callers=%d", tt.callers)]; ok {
				fmt.Printf("group commit / one INSERT each, %4d callers: %5.2fx%s\n", tt.callers, g/i, bar(tt.insertBar))
			}
			if okC {
				fmt.Printf("group commit, %4d callers / raw CopyFrom:    %5.2fx%s\n", tt.callers, g/copyFrom, bar(tt.copyBar))
			}
		}
	}
}

// bar describes a quality bar, if x is one.
func bar(x float64) string {
	if x == 0 {
		return ""
	}
	return fmt.Sprintf(" (bar: >= %gx)", x)
}

func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	insertOne := func(b *testing.B, p *pgxpool.Pool, schema string) func(*audit.Log) error {
		b.Helper()
		table := pgx.Identifier{schema, "audit_logs"}.Sanitize()
		sql := "INSERT INTO " + table + " (id, org_id, source, action, actor_id, actor_type, actor_name," +
			" target_id, target_type, target_name, metadata, created_at)" +
			" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
		return func(l *audit.Log) error {
			rw, err := newRow(l)
			if err != nil {
				return err
			}
			_, err = p.Exec(ctx, sql, rw.values()...)
			return err
		}
	}
	b.Run("insert/sequential", func(b *testing.B) {
		store := insertOne(b, mustBenchPool(b), newSchema(b))
		runCallers(b, 1, pgtest.BenchLogs(b.N), store)
	})
	for _, callers := range benchCallers {
		b.Run(fmt.Sprintf("insert/callers=%d", callers), func(b *testing.B) {
			store := insertOne(b, mustBenchPool(b), newSchema(b))
			runCallers(b, callers, pgtest.BenchLogs(b.N), store)
		})
	}
	type groupCase struct {
		name             string
		callers, writers int
	}
	cases := []groupCase{{"group-commit/sequential", 1, 1}, {"group-commit/callers=8", 8, 1}}
	for _, callers := range benchCallers {
		cases = append(cases, groupCase{fmt.Sprintf("group-commit/callers=%d", callers), callers, 1})
	}
	cases = append(cases, groupCase{"group-commit/callers=64/writers=2", 64, 2})
	for _, tt := range cases {
		b.Run(tt.name, func(b *testing.B) {
			r := NewRepository(mustBenchPool(b), WithSchema(newSchema(b)), WithWriters(tt.writers))
			defer r.Close()
			runCallers(b, tt.callers, pgtest.BenchLogs(b.N), func(l *audit.Log) error { return r.Create(ctx, l) })
			reportCycles(b, r, tt.callers)
		})
	}
	b.Run("create-batch", func(b *testing.B) {
		r := NewRepository(mustBenchPool(b), WithSchema(newSchema(b)))
		defer r.Close()
		batch := ptrs(pgtest.BenchLogs(b.N))
		b.ResetTimer()
		if err := r.CreateBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reportRows(b)
	})
	b.Run("copy-from", func(b *testing.B) {
		p := mustBenchPool(b)
		table := pgx.Identifier{newSchema(b), "audit_logs"}
		logs := pgtest.BenchLogs(b.N)
		values := make([][]any, len(logs))
		for i := range logs {
			rw, err := newRow(&logs[i])
			if err != nil {
				b.Fatal(err)
			}
			values[i] = rw.values()
		}
		b.ResetTimer()
		if _, err := p.CopyFrom(ctx, table, columns, pgx.CopyFromRows(values)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reportRows(b)
	})
}

// BenchmarkList times one page of 100 logs at 10k logs, and at a million
// with AUDIT_PG_LARGE=1: the first page and a keyset page deep in an org,
// for a big and a small org and without an org, and for comparison the
// same deep page read with OFFSET, which List never does.
//
//	AUDIT_PG_LARGE=1 ../../scripts/with-postgres.sh go test -run '^$' -bench List -timeout 30m
func BenchmarkList(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv(largeEnv) != "" {
		sizes = append(sizes, 1_000_000)
	}
	ctx := context.Background()
	for _, n := range sizes {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			r := dataset(b, n)
			for _, org := range []string{bigOrg, smallOrg, ""} {
				name := org
				depth := orgDepth(org, n)
				if org == "" {
					name, depth = "all", min(10_000, n/2)
				}
				f := audit.Filter{OrgID: org}
				deep := f
				deep.Cursor = deepCursor(b, r, f, depth)
				b.Run(name+"/first", func(b *testing.B) { benchPage(b, func() (int, error) { return list(ctx, r, f) }) })
				b.Run(fmt.Sprintf("%s/keyset-%d", name, depth), func(b *testing.B) {
					benchPage(b, func() (int, error) { return list(ctx, r, deep) })
				})
				b.Run(fmt.Sprintf("%s/offset-%d", name, depth), func(b *testing.B) {
					benchPage(b, func() (int, error) { return listOffset(ctx, r, f, depth) })
				})
			}
		})
	}
}

func benchPage(b *testing.B, page func() (int, error)) {
	b.Helper()
	for b.Loop() {
		n, err := page()
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			b.Fatal("got an empty page")
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/page")
}

func list(ctx context.Context, r *Repository, f audit.Filter) (int, error) {
	page, err := r.List(ctx, f)
	return len(page), err
}

// listOffset reads the page that starts offset logs into f's logs with
// OFFSET, the way List does not, to compare.
func listOffset(ctx context.Context, r *Repository, f audit.Filter, offset int) (int, error) {
	sql, args, _, err := r.listQuery(f)
	if err != nil {
		return 0, err
	}
	rows, err := r.pool.Query(ctx, sql+" OFFSET "+strconv.Itoa(offset), append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if _, err := scanLog(rows); err != nil {
			return 0, err
		}
		n++
	}
	return n, rows.Err()
}
