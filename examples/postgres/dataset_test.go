package postgres

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/raystack/salt/audit"
)

// Datasets for the List benchmarks and plan tests: n logs spread over 30
// days; 40% of them in one big org, the rest spread over 100 small orgs
// (0.6% each); a few actors and targets per org, four metadata keys per
// log. Every three logs share a CreatedAt, so that order often falls to
// IDs.

// largeEnv opts in to the dataset of a million logs, which takes minutes
// to load.
const largeEnv = "AUDIT_PG_LARGE"

const (
	bigOrg   = "org-big" // 40% of the logs
	smallOrg = "org-042" // 0.6% of the logs
)

// datasetOrgShare is the part of a dataset's logs in bigOrg and in
// smallOrg.
var datasetOrgShare = map[string]float64{bigOrg: 0.4, smallOrg: 0.006}

var datasetStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// datasetLog returns log i of a dataset of n logs.
func datasetLog(i, n int) audit.Log {
	span := 30 * 24 * time.Hour
	at := datasetStart.Add(time.Duration(int64(span) / int64(n) * int64(i/3*3))) // threes share a time
	org := bigOrg
	if i%5 >= 2 {
		org = fmt.Sprintf("org-%03d", i/5%100)
	}
	return audit.Log{
		ID:     fmt.Sprintf("%016x-%08x", at.UnixMicro(), i),
		OrgID:  org,
		Source: "frontier",
		Action: [...]string{"app.user.created", "app.user.updated", "app.project.deleted", "app.token.created"}[i%4],
		Actor:  audit.Actor{ID: fmt.Sprintf("user-%s-%d", org, i%97), Type: audit.ActorTypeUser, Name: "Someone"},
		Target: audit.Target{ID: fmt.Sprintf("project-%s-%d", org, i%1009), Type: "project", Name: "A project"},
		Metadata: map[string]string{
			audit.MetadataRequestID: fmt.Sprintf("req-%08d", i),
			audit.MetadataIP:        fmt.Sprintf("192.0.2.%d", i%256),
			audit.MetadataUserAgent: "Mozilla/5.0 (X11; Linux x86_64)",
			audit.MetadataOutcome:   [...]string{audit.OutcomeSuccess, audit.OutcomeSuccess, audit.OutcomeSuccess, audit.OutcomeFailure}[i%4],
		},
		CreatedAt: at,
	}
}

// copyDataset writes logs [from, to) of a dataset of n logs into the table
// with one COPY.
func copyDataset(ctx context.Context, tb testing.TB, table pgx.Identifier, from, to, n int) {
	tb.Helper()
	i := from
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == to {
			return nil, nil
		}
		l := datasetLog(i, n)
		i++
		rw, err := newRow(&l)
		if err != nil {
			return nil, err
		}
		return rw.values(), nil
	})
	if _, err := mustPool(tb).CopyFrom(ctx, table, columns, src); err != nil {
		tb.Fatalf("copying the dataset: %v", err)
	}
}

var (
	datasetsMu sync.Mutex
	datasets   = map[int]string{} // n -> schema
)

// dataset returns a Repository over a schema holding the dataset of n
// logs, loaded with COPY and analyzed once per process and kept until it
// ends, for the tests and benchmarks that use the same n.
func dataset(tb testing.TB, n int) *Repository {
	tb.Helper()
	p := mustPool(tb)
	datasetsMu.Lock()
	defer datasetsMu.Unlock()
	schema, ok := datasets[n]
	if !ok {
		ctx := context.Background()
		schema = fmt.Sprintf("audit_dataset_%d_%d", os.Getpid(), n)
		if err := Migrate(ctx, p, schema); err != nil {
			tb.Fatal(err)
		}
		start := time.Now()
		table := pgx.Identifier{schema, "audit_logs"}
		const chunk = 100_000
		for from := 0; from < n; from += chunk {
			copyDataset(ctx, tb, table, from, min(from+chunk, n), n)
		}
		loaded := time.Since(start)
		if _, err := p.Exec(ctx, "VACUUM ANALYZE "+table.Sanitize()); err != nil {
			tb.Fatal(err)
		}
		tb.Logf("loaded %d logs with COPY in %v (%.0f rows/s), vacuumed and analyzed in %v",
			n, loaded.Round(time.Millisecond), float64(n)/loaded.Seconds(), (time.Since(start) - loaded).Round(time.Millisecond))
		datasets[n] = schema
		atExit(func() { _, _ = p.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE") })
	}
	r := NewRepository(p, WithSchema(schema))
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

var (
	exitMu    sync.Mutex
	exitFuncs []func()
)

// atExit registers f to run after every test and benchmark, before the
// shared pool closes.
func atExit(f func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitFuncs = append(exitFuncs, f)
}

func runAtExit() {
	exitMu.Lock()
	defer exitMu.Unlock()
	for _, f := range exitFuncs {
		f()
	}
}
