package jetstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// The tests run against the JetStream cluster of NATS_URL and the
// PostgreSQL server of DATABASE_URL: run them through both scripts, e.g.
//
//	../../scripts/with-postgres.sh ../../scripts/with-nats.sh go test ./...
//
// Without them the tests that need a server fail. Each repository gets
// streams and a schema of its own, deleted when its test ends. The fault
// tests start clusters of their own from NATS_SERVER_BIN, which
// with-nats.sh builds.

var (
	poolOnce sync.Once
	testPool *pgxpool.Pool
	poolErr  error
	natsOnce sync.Once
	testNC   *nats.Conn
	natsErr  error
	trailN   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testNC != nil {
		testNC.Close()
	}
	if testPool != nil {
		testPool.Close()
	}
	if benchReport != nil {
		benchReport()
	}
	os.Exit(code)
}

// benchReport, when set by a benchmark, prints a summary after the run.
var benchReport func()

// mustPool returns the pool shared by the tests, connected to DATABASE_URL.
func mustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		tb.Fatal("DATABASE_URL is not set: these tests need a PostgreSQL server; run them through " +
			"scripts/with-postgres.sh, e.g. `../../scripts/with-postgres.sh ../../scripts/with-nats.sh go test ./...`")
	}
	poolOnce.Do(func() { testPool, poolErr = newPool(url, 32) })
	if poolErr != nil {
		tb.Fatalf("connecting to DATABASE_URL: %v", poolErr)
	}
	return testPool
}

func newPool(url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := p.Ping(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// mustNATS returns the connection shared by the tests, to NATS_URL.
func mustNATS(tb testing.TB) *nats.Conn {
	tb.Helper()
	url := os.Getenv("NATS_URL")
	if url == "" {
		tb.Fatal("NATS_URL is not set: these tests need a JetStream cluster; run them through " +
			"scripts/with-nats.sh, e.g. `../../scripts/with-postgres.sh ../../scripts/with-nats.sh go test ./...`")
	}
	natsOnce.Do(func() { testNC, natsErr = connect(url) })
	if natsErr != nil {
		tb.Fatalf("connecting to NATS_URL: %v", natsErr)
	}
	return testNC
}

// connect connects to the servers of url, a comma-separated list, and
// keeps reconnecting for as long as the connection lives.
func connect(url string) (*nats.Conn, error) {
	// Errors of the connection itself (a server killed under it) are the
	// point of the fault tests, not news: their effect is what is checked.
	// A stopped server keeps its sockets open: pings every second, two of
	// them unanswered, tell it from a slow one.
	return nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Timeout(5*time.Second),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
}

func mustJetStream(tb testing.TB, nc *nats.Conn) natsjs.JetStream {
	tb.Helper()
	js, err := natsjs.New(nc)
	if err != nil {
		tb.Fatalf("natsjs.New: %v", err)
	}
	return js
}

// newTrail returns a trail of its own with the given number of partitions:
// a schema migrated on pool and streams made on js, all deleted at the end
// of the test.
func newTrail(tb testing.TB, js natsjs.JetStream, pool *pgxpool.Pool, partitions int) Trail {
	tb.Helper()
	n := trailN.Add(1)
	t := Trail{
		Name:       fmt.Sprintf("T%d_%d", os.Getpid(), n),
		Prefix:     fmt.Sprintf("t%d.%d", os.Getpid(), n),
		Partitions: partitions,
	}
	t.Schema = newSchema(tb, pool)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CreateStreams(ctx, js, t); err != nil {
		tb.Fatalf("CreateStreams(%+v): %v", t, err)
	}
	tb.Cleanup(func() { deleteStreams(tb, js, t) })
	return t
}

// newSchema returns the name of a new schema migrated on pool, dropped at
// the end of the test.
func newSchema(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	schema := fmt.Sprintf("audit_js_%d_%d", os.Getpid(), trailN.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Migrate(ctx, pool, schema); err != nil {
		tb.Fatalf("Migrate(%q): %v", schema, err)
	}
	tb.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

func deleteStreams(tb testing.TB, js natsjs.JetStream, t Trail) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := []string{t.DeadLetterStream()}
	for p := range t.Partitions {
		names = append(names, t.Stream(p))
	}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
				tb.Errorf("deleting stream %s: %v", name, err)
			}
		})
	}
	wg.Wait()
}

// startProjector runs a Projector of trail until the end of the test, and
// fails the test if Run returns an error. Dead letters are counted in
// dead, if not nil.
func startProjector(tb testing.TB, js natsjs.JetStream, pool *pgxpool.Pool, trail Trail, opts ...ProjectorOption) *Projector {
	tb.Helper()
	opts = append([]ProjectorOption{
		WithRebalanceInterval(200 * time.Millisecond),
		WithErrorHandler(func(err error) { tb.Logf("projector: %v", err) }),
	}, opts...)
	p, err := NewProjector(js, pool, trail, opts...)
	if err != nil {
		tb.Fatalf("NewProjector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Projector.Run: %v", err)
		}
	})
	return p
}

// newRepo returns a Repository on a trail of its own, with a Projector
// running, both closed at the end of the test.
func newRepo(tb testing.TB, partitions int, opts ...Option) (*Repository, Trail) {
	tb.Helper()
	nc := mustNATS(tb)
	pool := mustPool(tb)
	js := mustJetStream(tb, nc)
	trail := newTrail(tb, js, pool, partitions)
	startProjector(tb, js, pool, trail, WithDeadLetterHandler(func(d DeadLetter) {
		tb.Errorf("unexpected dead letter: %+v", d)
	}))
	return openRepo(tb, js, pool, trail, opts...), trail
}

// openRepo opens a Repository of trail, closed at the end of the test.
func openRepo(tb testing.TB, js natsjs.JetStream, pool *pgxpool.Pool, trail Trail, opts ...Option) *Repository {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := Open(ctx, js, pool, trail, opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}
