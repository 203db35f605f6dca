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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres/internal/pgtest"
)

// Write benchmarks: every way to store logs, in one run against one
// server, each into a fresh table with every index of the migration. One
// op is one log; rows/s is the throughput. At the end of a run that has
// them, the ratios to the quality bars are printed.
//
//	../../scripts/with-postgres.sh go test -run '^$' -bench Write -benchmem

// benchCallers is the number of concurrent callers of the concurrent
// benchmarks: request handlers of a busy service.
const benchCallers = 64

var (
	benchPoolOnce sync.Once
	benchPool     *pgxpool.Pool
	benchPoolErr  error
)

// mustBenchPool returns a pool with a connection for every concurrent
// caller, as one INSERT per caller needs.
func mustBenchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	mustPool(b)
	benchPoolOnce.Do(func() {
		benchPool, benchPoolErr = newPool(os.Getenv("DATABASE_URL"), benchCallers+4)
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

var (
	benchMu      sync.Mutex
	benchRowsPer = map[string]float64{} // benchmark name -> rows/s of its last run
)

// reportRows reports the rows/s of a write benchmark whose op is one log.
func reportRows(b *testing.B) {
	b.Helper()
	rps := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rps, "rows/s")
	benchMu.Lock()
	benchRowsPer[b.Name()] = rps // the last run of a benchmark is the one reported
	benchMu.Unlock()
}

func init() {
	benchReport = func() {
		benchMu.Lock()
		defer benchMu.Unlock()
		const (
			insert64 = "BenchmarkWrite/insert/callers=64"
			group64  = "BenchmarkWrite/group-commit/callers=64"
			copyFrom = "BenchmarkWrite/copy-from"
		)
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
			fmt.Printf("  %-60s %8.0f\n", name, benchRowsPer[name])
		}
		g, okG := benchRowsPer[group64]
		if i, ok := benchRowsPer[insert64]; okG && ok {
			fmt.Printf("group commit / one INSERT each, 64 callers: %.2fx (bar: >= 3x)\n", g/i)
		}
		if c, ok := benchRowsPer[copyFrom]; okG && ok {
			fmt.Printf("group commit, 64 callers / raw CopyFrom:    %.2fx (bar: >= 0.6x)\n", g/c)
		}
	}
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
	b.Run("insert/callers=64", func(b *testing.B) {
		store := insertOne(b, mustBenchPool(b), newSchema(b))
		runCallers(b, benchCallers, pgtest.BenchLogs(b.N), store)
	})
	for _, tt := range []struct {
		name    string
		callers int
		writers int
	}{
		{"group-commit/sequential", 1, 1},
		{"group-commit/callers=8", 8, 1},
		{"group-commit/callers=64", benchCallers, 1},
		{"group-commit/callers=64/writers=2", benchCallers, 2},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r := NewRepository(mustBenchPool(b), WithSchema(newSchema(b)), WithWriters(tt.writers))
			defer r.Close()
			runCallers(b, tt.callers, pgtest.BenchLogs(b.N), func(l *audit.Log) error { return r.Create(ctx, l) })
		})
	}
	b.Run("create-batch", func(b *testing.B) {
		r := NewRepository(mustBenchPool(b), WithSchema(newSchema(b)))
		defer r.Close()
		logs := pgtest.BenchLogs(b.N)
		ptrs := make([]*audit.Log, len(logs))
		for i := range logs {
			ptrs[i] = &logs[i]
		}
		b.ResetTimer()
		if err := r.CreateBatch(ctx, ptrs); err != nil {
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
