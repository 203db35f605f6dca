package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// recorder is a Publisher that remembers what it was given.
type recorder struct {
	mu   sync.Mutex
	logs []audit.Log
}

func (r *recorder) Publish(_ context.Context, l audit.Log) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, l)
	return nil
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var a []string
	for _, l := range r.logs {
		a = append(a, l.Action)
	}
	return a
}

// errorsSeen collects what a Logger reports to its error handler.
type errorsSeen struct {
	mu   sync.Mutex
	errs []*audit.PublishError
}

func (e *errorsSeen) handle(err error) {
	var pe *audit.PublishError
	if !errors.As(err, &pe) {
		panic(fmt.Sprintf("error handler got %T, want *PublishError", err))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, pe)
}

func (e *errorsSeen) all() []*audit.PublishError {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.errs)
}

var userCtx = audit.SetActor(context.Background(), audit.Actor{ID: "u", Type: audit.ActorTypeUser})

// mustClose closes lg and checks that none of its goroutines outlive it.
func mustClose(t *testing.T, lg *audit.Logger) {
	t.Helper()
	if err := lg.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkNoPublishGoroutines(t)
}

// checkNoPublishGoroutines fails t if a Logger's publishing goroutine is
// still running. Tests that use it do not run in parallel.
func checkNoPublishGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "audit.(*Logger).work") && !strings.Contains(stacks, "audit.(*Logger).Close") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("publishing goroutines outlived Close:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishDeliversStoredLogs(t *testing.T) {
	repo := audit.NewMemoryRepository()
	all, users := &recorder{}, &recorder{}
	seen := &errorsSeen{}
	lg := audit.NewLogger(repo, audit.WithSource("s"),
		audit.WithPublisher(all),
		audit.WithPublisher(users, audit.OnlyActions("app.user.*", "app.login"), audit.ExceptActions("app.user.viewed")),
		audit.WithErrorHandler(seen.handle),
	)
	type key struct{}
	var gotValue atomic.Value
	lg2 := audit.NewLogger(repo, audit.WithSource("s"), audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
		gotValue.Store(fmt.Sprint(ctx.Value(key{})))
		return ctx.Err()
	})))
	actions := []string{"app.user.created", "app.user.viewed", "app.login", "app.login.failed", "app.userx.created", "app.project.created"}
	for _, a := range actions {
		if err := lg.Log(userCtx, a, audit.Target{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.WithValue(userCtx, key{}, "request value"))
	cancel()
	if err := lg2.Log(ctx, "app.x", audit.Target{}); err != nil {
		t.Fatal(err)
	}
	if err := lg2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustClose(t, lg)

	if got := all.actions(); !slices.Equal(got, actions) {
		t.Errorf("unfiltered publisher got %v, want %v in order", got, actions)
	}
	if got, want := users.actions(), []string{"app.user.created", "app.login"}; !slices.Equal(got, want) {
		t.Errorf("filtered publisher got %v, want %v", got, want)
	}
	if got := gotValue.Load(); got != "request value" {
		t.Errorf("Publish saw value %v, want the request's values", got)
	}
	if got, want := lg2.Stats(), (audit.PublishStats{Enqueued: 1, Delivered: 1}); got != want {
		t.Errorf("got stats %+v, want %+v: Publish must not see the request's cancellation", got, want)
	}
	stored, _ := repo.List(context.Background(), audit.Filter{Action: "app.user.created"})
	if len(stored) != 1 || all.logs[0].ID != stored[0].ID {
		t.Errorf("published log %+v is not the stored one %+v", all.logs[0], stored)
	}
	if errs := seen.all(); len(errs) != 0 {
		t.Errorf("got errors %v", errs)
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 8, Delivered: 8}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
}

func TestPublishFailuresAreIsolated(t *testing.T) {
	repo := audit.NewMemoryRepository()
	good := &recorder{}
	seen := &errorsSeen{}
	boom := errors.New("bus unavailable")
	lg := audit.NewLogger(repo, audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error { return boom }), audit.PublishName("bus")),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error { panic("publisher bug") }), audit.PublishName("buggy")),
		audit.WithPublisher(good),
		audit.WithErrorHandler(seen.handle),
	)
	const n = 20
	for i := range n {
		if err := lg.Log(userCtx, "app.x", audit.Target{ID: fmt.Sprint(i)}); err != nil {
			t.Fatalf("a failing publisher failed Log: %v", err)
		}
	}
	mustClose(t, lg)
	if repo.Len() != n || len(good.actions()) != n {
		t.Fatalf("stored %d, good publisher got %d, want %d each", repo.Len(), len(good.actions()), n)
	}
	byPublisher := map[string]int{}
	for _, e := range seen.all() {
		byPublisher[e.Publisher]++
		if e.Publisher == "bus" && !errors.Is(e, boom) {
			t.Errorf("got %v, want it to wrap the publisher's error", e)
		}
		if e.Publisher == "buggy" && !strings.Contains(e.Error(), "publisher bug") {
			t.Errorf("got %v, want the panic value", e)
		}
	}
	if byPublisher["bus"] != n || byPublisher["buggy"] != n {
		t.Errorf("got reports %v, want %d for each failing publisher", byPublisher, n)
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 3 * n, Delivered: n, Failed: 2 * n}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
	byName := lg.PublisherStats()
	if got, want := byName["bus"], (audit.PublishStats{Enqueued: n, Failed: n}); got != want {
		t.Errorf("got bus stats %+v, want %+v", got, want)
	}
	if got, want := byName["publisher-3"], (audit.PublishStats{Enqueued: n, Delivered: n}); got != want {
		t.Errorf("got stats %+v for the unnamed publisher, want %+v", got, want)
	}
}

func TestPublishSlowPublisherDoesNotBlock(t *testing.T) {
	repo := audit.NewMemoryRepository()
	release := make(chan struct{})
	seen := &errorsSeen{}
	lg := audit.NewLogger(repo, audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}), audit.PublishQueueSize(4)),
		audit.WithErrorHandler(seen.handle),
	)
	const n = 50
	for i := range n {
		if err := lg.Log(userCtx, "app.x", audit.Target{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if repo.Len() != n {
		t.Fatalf("stored %d, want %d", repo.Len(), n)
	}
	close(release)
	mustClose(t, lg)
	st := lg.Stats()
	// One log is with the publisher, four wait in the queue, the rest are
	// dropped and reported; every one was handed to the publisher.
	if st.Dropped == 0 || st.Delivered+st.Dropped != n || st.Enqueued != n || st.Failed != 0 || st.Queued != 0 {
		t.Errorf("got stats %+v, want all %d logs Enqueued, and each Delivered or Dropped", st, n)
	}
	errs := seen.all()
	if uint64(len(errs)) != st.Dropped {
		t.Errorf("got %d reports for %d drops", len(errs), st.Dropped)
	}
	for _, e := range errs {
		if !errors.Is(e, audit.ErrQueueFull) {
			t.Errorf("got %v, want ErrQueueFull", e)
		}
	}
}

func TestPublishBlockWhenFull(t *testing.T) {
	release := make(chan struct{})
	seen := &errorsSeen{}
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error {
			<-release
			return nil
		}), audit.PublishQueueSize(1), audit.BlockWhenFull()),
		audit.WithErrorHandler(seen.handle),
	)
	// The first log is taken by the worker, the second fills the queue.
	for range 2 {
		if err := lg.Log(userCtx, "app.x", audit.Target{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(userCtx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	for { // wait until the worker holds the first log and the queue is full
		if err := lg.Log(ctx, "app.x", audit.Target{}); err != nil {
			t.Fatal(err)
		}
		if len(seen.all()) > 0 || time.Since(start) > 10*time.Second {
			break
		}
	}
	errs := seen.all()
	if len(errs) != 1 || !errors.Is(errs[0], audit.ErrQueueFull) || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Fatalf("got %v, want one log dropped when the caller's context ended", errs)
	}
	close(release)
	mustClose(t, lg)
}

func TestPublishCloseFreesBlockedLogs(t *testing.T) {
	// A publisher that never takes a log, a full queue, and a Log waiting
	// for room with a context that never ends: Close must still finish,
	// and the waiting Log return.
	seen := &errorsSeen{}
	taken := make(chan struct{})
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
			close(taken)
			<-ctx.Done()
			return ctx.Err()
		}), audit.PublishQueueSize(1), audit.BlockWhenFull(), audit.PublishName("stuck")),
		audit.WithErrorHandler(seen.handle),
	)
	for range 2 { // one taken by the publisher, one in the queue
		if err := lg.Log(userCtx, "app.x", audit.Target{}); err != nil {
			t.Fatal(err)
		}
		if len(seen.all()) > 0 {
			t.Fatal("a log was dropped before the queue was full")
		}
	}
	<-taken
	blocked := make(chan error)
	go func() { blocked <- lg.Log(userCtx, "app.blocked", audit.Target{}) }()
	time.Sleep(20 * time.Millisecond) // let it reach the full queue; Close frees it either way

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	closeErr := make(chan error, 1)
	go func() { closeErr <- lg.Close(ctx) }()
	select {
	case err := <-closeErr:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want DeadlineExceeded from a publisher that never delivers", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs while a Log waits for room in the queue")
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Errorf("the blocked Log failed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a Log blocked")
	}
	checkNoPublishGoroutines(t)
	st := lg.PublisherStats()["stuck"]
	if want := (audit.PublishStats{Enqueued: 3, Failed: 1, Dropped: 2}); st != want {
		t.Errorf("got %+v, want %+v: the log being published failed when Close gave up, the queued one and the blocked one dropped", st, want)
	}
	var closed int
	for _, e := range seen.all() {
		if errors.Is(e, audit.ErrClosed) && e.Log.Action == "app.blocked" {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("got reports %v, want the blocked log reported with ErrClosed", seen.all())
	}
}

func TestPublishFilterPatterns(t *testing.T) {
	for _, tt := range []struct {
		name         string
		only, except []string
		want         []string
	}{
		{"everything", nil, nil, []string{"a", "a.b", "a.b.c", "b.c", "a*"}},
		{"star", []string{"*"}, nil, []string{"a", "a.b", "a.b.c", "b.c", "a*"}},
		{"no patterns restrict nothing", []string{}, nil, []string{"a", "a.b", "a.b.c", "b.c", "a*"}},
		{"prefix needs the dot", []string{"a.*"}, nil, []string{"a.b", "a.b.c"}},
		{"a star elsewhere is literal", []string{"a*"}, nil, []string{"a*"}},
		{"except after only", []string{"a.*"}, []string{"a.b.*"}, []string{"a.b"}},
		{"except alone", nil, []string{"a.b", "b.*"}, []string{"a", "a.b.c", "a*"}},
		{"except everything", nil, []string{"*"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
				audit.WithPublisher(rec, audit.OnlyActions(tt.only...), audit.ExceptActions(tt.except...)))
			for _, a := range []string{"a", "a.b", "a.b.c", "b.c", "a*"} {
				if err := lg.Log(userCtx, a, audit.Target{}); err != nil {
					t.Fatal(err)
				}
			}
			mustClose(t, lg)
			if got := rec.actions(); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPublishSharedNamesAddUp(t *testing.T) {
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(&recorder{}, audit.PublishName("hook")),
		audit.WithPublisher(&recorder{}, audit.PublishName("hook")))
	if err := lg.Log(userCtx, "a", audit.Target{}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, lg)
	if got, want := lg.PublisherStats(), map[string]audit.PublishStats{"hook": {Enqueued: 2, Delivered: 2}}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestPublishErrorHandlerMayClose(t *testing.T) {
	// The handler runs outside the Logger's locks: closing from it, on the
	// first dropped log, must not deadlock.
	var lg *audit.Logger
	release := make(chan struct{})
	var closeErr atomic.Value
	var once sync.Once
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error {
			<-release
			return nil
		}), audit.PublishQueueSize(1)),
		audit.WithErrorHandler(func(error) {
			once.Do(func() {
				close(release)
				closeErr.Store(fmt.Sprint(lg.Close(context.Background())))
			})
		}),
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			if err := lg.Log(userCtx, "a", audit.Target{}); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("an error handler that closes the Logger deadlocked Log")
	}
	if got := closeErr.Load(); got != "<nil>" {
		t.Errorf("Close from the handler: %v", got)
	}
	checkNoPublishGoroutines(t)
}

func TestPublishBlockWhenFullIsBounded(t *testing.T) {
	// With a context that never ends, the wait for room is bounded by the
	// Logger's timeout.
	release := make(chan struct{})
	seen := &errorsSeen{}
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"), audit.WithTimeout(30*time.Millisecond),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error {
			<-release
			return nil
		}), audit.PublishQueueSize(1), audit.BlockWhenFull()),
		audit.WithErrorHandler(seen.handle),
	)
	for len(seen.all()) == 0 {
		if err := lg.Log(userCtx, "a", audit.Target{}); err != nil {
			t.Fatal(err)
		}
	}
	if errs := seen.all(); len(errs) != 1 || !errors.Is(errs[0], audit.ErrQueueFull) {
		t.Errorf("got %v, want one log dropped after waiting", errs)
	}
	close(release)
	mustClose(t, lg)
	if st := lg.Stats(); st.Enqueued != st.Delivered+1 || st.Dropped != 1 || st.Queued != 0 {
		t.Errorf("got %+v, want every log but one delivered, and that one dropped", st)
	}
}

func TestPublishCloseLateButComplete(t *testing.T) {
	// A Close whose context is already done, on a Logger with nothing left
	// to publish, lost nothing and says so.
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"), audit.WithPublisher(&recorder{}))
	if err := lg.Log(userCtx, "a", audit.Target{}); err != nil {
		t.Fatal(err)
	}
	for lg.Stats().Delivered != 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lg.Close(ctx); err != nil {
		t.Errorf("got %v, want nil: nothing was lost", err)
	}
	checkNoPublishGoroutines(t)
}

func TestPublishCloseDrainsAndReports(t *testing.T) {
	repo := audit.NewMemoryRepository()
	rec := &recorder{}
	seen := &errorsSeen{}
	lg := audit.NewLogger(repo, audit.WithSource("s"), audit.WithPublisher(rec, audit.PublishWorkers(3)), audit.WithErrorHandler(seen.handle))
	for range 100 {
		if err := lg.Log(userCtx, "app.x", audit.Target{}); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, lg)
	if len(rec.actions()) != 100 {
		t.Fatalf("Close delivered %d of 100 queued logs", len(rec.actions()))
	}
	// Logs written after Close are stored and reported, not published.
	if err := lg.Log(userCtx, "app.late", audit.Target{}); err != nil {
		t.Fatal(err)
	}
	if repo.Len() != 101 {
		t.Errorf("a log written after Close was not stored")
	}
	if errs := seen.all(); len(errs) != 1 || !errors.Is(errs[0], audit.ErrClosed) || errs[0].Log.Action != "app.late" {
		t.Errorf("got %v, want the late log reported with ErrClosed", errs)
	}
	if err := lg.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestPublishCloseGivesUp(t *testing.T) {
	seen := &errorsSeen{}
	started := make(chan struct{}, 1)
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done() // a publisher that cannot deliver until it is canceled
			return ctx.Err()
		})),
		audit.WithErrorHandler(seen.handle),
	)
	for range 10 {
		if err := lg.Log(userCtx, "app.x", audit.Target{}); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := lg.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "10 logs not published (9 dropped from the queues, 1 cut short while being published)") {
		t.Fatalf("got %v, want a deadline error counting the 10 logs not published", err)
	}
	// Close reported what it gave up, the log being published included,
	// before it returned.
	if errs := seen.all(); len(errs) != 10 {
		t.Errorf("got %d reports, want 10", len(errs))
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 10, Failed: 1, Dropped: 9}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
	checkNoPublishGoroutines(t)
	if errs := seen.all(); len(errs) != 10 {
		t.Errorf("after the canceled Publish returned: got %d reports, want 10: its result is ignored", len(errs))
	}
}

func TestPublishDefaultErrorHandlerLogs(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)

	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error { return errors.New("nope") }), audit.PublishName("hook")))
	if err := lg.Log(userCtx, "app.x", audit.Target{}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, lg)
	for _, want := range []string{"level=ERROR", "publisher=hook", "action=app.x", "err=nope"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("slog output %q lacks %q", buf.String(), want)
		}
	}
}

func TestPublishMetadataIsASnapshot(t *testing.T) {
	// Record without a context returns before publishers read the log; the
	// caller changing its map then must not change what they read.
	got := make(chan audit.Log, 1)
	release := make(chan struct{})
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(_ context.Context, l audit.Log) error {
			<-release
			got <- l
			return nil
		})))
	md := map[string]string{"k": "before"}
	if err := lg.Record(context.Background(), &audit.Log{Action: "a", Actor: audit.Actor{Type: "user"}, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	md["k"] = "after"
	close(release)
	if l := <-got; l.Metadata["k"] != "before" {
		t.Errorf("publisher saw %q, want the stored value", l.Metadata["k"])
	}
	mustClose(t, lg)
}

func TestCloseWithoutPublishers(t *testing.T) {
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"))
	if err := lg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := lg.Log(userCtx, "a", audit.Target{}); err != nil {
		t.Fatalf("Log after Close: %v", err)
	}
}

// BenchmarkLoggerLogPublishing compares Logger.Log with no publisher to
// Logger.Log with a publisher that takes 10ms per log: publishing must
// not slow Log down. The slow publisher's queue is full for most of the
// run, so this measures dropping too; drops go to a counting handler.
func BenchmarkLoggerLogPublishing(b *testing.B) {
	ctx := audit.SetMetadata(audit.SetActor(context.Background(), benchActor), benchMD1)
	for _, bc := range []struct {
		name string
		opts []audit.Option
	}{
		{"publisher=none", nil},
		{"publisher=slow", []audit.Option{
			audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			})),
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var dropped atomic.Int64
			opts := append([]audit.Option{audit.WithSource("bench"), audit.WithErrorHandler(func(error) { dropped.Add(1) })}, bc.opts...)
			lg := audit.NewLogger(audit.NewMemoryRepository(), opts...)
			b.ReportAllocs()
			for range b.N {
				if err := lg.Log(ctx, "app.project.updated", benchTarget); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			_ = lg.Close(closeCtx) // what the slow publisher has not taken is expected to be dropped
		})
	}
}

// mustLog logs each action with lg, in order.
func mustLog(t *testing.T, lg *audit.Logger, actions ...string) {
	t.Helper()
	for _, a := range actions {
		if err := lg.Log(userCtx, a, audit.Target{}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForCloses waits until n calls of Logger.Close wait for the drain:
// until n goroutines are parked in the select of Close. Tests that use it
// do not run in parallel.
func waitForCloses(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := closesWaiting()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d calls of Close waiting for the drain after 10s, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// closesWaiting counts the goroutines parked in the select of
// Logger.Close, in which Close waits for the drain or its ctx.
func closesWaiting() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		header, frames, _ := strings.Cut(g, "\n")
		if !strings.Contains(header, "[select") {
			continue
		}
		// The first frame that is not the runtime's (GOTRACEBACK=system
		// shows those) is the function that selects.
		for _, line := range strings.Split(frames, "\n") {
			if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "runtime.") {
				continue
			}
			if strings.HasPrefix(line, "github.com/raystack/salt/audit.(*Logger).Close(") {
				n++
			}
			break
		}
	}
	return n
}

// receive returns what ch gives, and fails t unless it gives it within a
// generous bound: a guard against a deadlock, not a measure of speed.
func receive(t *testing.T, what string, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10s, a deadlock", what)
		return nil
	}
}

// within fails t unless done is closed within a generous bound: a guard
// against a deadlock, not a measure of speed.
func within(t *testing.T, what string, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10s, a deadlock", what)
	}
}

func TestPublishCloseFromErrorHandlerOfAWorker(t *testing.T) {
	// The handler closes the Logger when the first Publish fails. It runs
	// on the one worker that would drain the queue: Close must neither
	// wait for itself nor leave the rest of the queue unpublished.
	release := make(chan struct{})
	seen := &errorsSeen{}
	closed := make(chan struct{})
	var closeErr error
	var once sync.Once
	var lg *audit.Logger
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(_ context.Context, l audit.Log) error {
			if l.Action == "app.fail" {
				<-release
				return errors.New("refused")
			}
			return nil
		}), audit.PublishQueueSize(16)),
		audit.WithErrorHandler(func(err error) {
			seen.handle(err)
			once.Do(func() {
				closeErr = lg.Close(context.Background())
				close(closed)
			})
		}),
	)
	mustLog(t, lg, "app.fail", "app.a", "app.b", "app.c", "app.d")
	close(release)
	within(t, "Close called from the error handler on a worker", closed)
	if closeErr != nil {
		t.Errorf("Close from the error handler: got %v, want nil: every log was delivered or failed", closeErr)
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 5, Delivered: 4, Failed: 1}); got != want {
		t.Errorf("got stats %+v, want %+v: the rest of the queue is published", got, want)
	}
	if err := lg.Close(context.Background()); err != nil {
		t.Errorf("a later Close: got %v, want nil, the outcome of the drain", err)
	}
	checkNoPublishGoroutines(t)
	if errs := seen.all(); len(errs) != 1 {
		t.Errorf("got %d reports, want the one failure", len(errs))
	}
}

func TestPublishLaterCloseWaitsForTheDrain(t *testing.T) {
	// While a Close called from the error handler drains the queue, a
	// Close from elsewhere waits for the same drain: it does not return
	// nil with logs still queued.
	queued, release := make(chan struct{}), make(chan struct{})
	inClose := make(chan struct{})
	var once sync.Once
	var lg *audit.Logger
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(_ context.Context, l audit.Log) error {
			<-queued
			if l.Action == "app.fail" {
				return errors.New("refused")
			}
			<-release
			return nil
		}), audit.PublishWorkers(2)),
		audit.WithErrorHandler(func(err error) {
			if errors.Is(err, audit.ErrClosed) {
				return
			}
			once.Do(func() {
				close(inClose)
				_ = lg.Close(context.Background())
			})
		}),
	)
	mustLog(t, lg, "app.a", "app.fail", "app.b", "app.c")
	close(queued)
	within(t, "the error handler calling Close", inClose)
	done := make(chan struct{})
	var err error
	go func() {
		err = lg.Close(context.Background())
		close(done)
	}()
	// Both Close calls wait for the drain, which cannot end before the
	// publisher is released.
	waitForCloses(t, 2)
	close(release)
	within(t, "Close while another Close drains", done)
	if err != nil {
		t.Errorf("got %v, want nil", err)
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 4, Delivered: 3, Failed: 1}); got != want {
		t.Errorf("when Close returned: got stats %+v, want %+v: Close returns once the drain is over", got, want)
	}
	checkNoPublishGoroutines(t)
}

func TestPublishConcurrentCloseSameOutcome(t *testing.T) {
	// A publisher that delivers nothing until canceled, and Close called
	// three times: without a deadline, with one, and after both. The
	// deadline gives up for all, and all report the same loss.
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
			<-ctx.Done()
			return ctx.Err()
		})),
		audit.WithErrorHandler(func(error) {}),
	)
	for range 3 {
		if err := lg.Log(userCtx, "app.x", audit.Target{}); err != nil {
			t.Fatal(err)
		}
	}
	patient := make(chan struct{})
	var patientErr error
	go func() {
		patientErr = lg.Close(context.Background())
		close(patient)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := lg.Close(ctx)
	within(t, "Close without a deadline, after another gave up", patient)
	later := lg.Close(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a deadline: got %v, want an error wrapping context.DeadlineExceeded", err)
	}
	for name, got := range map[string]error{"Close without a deadline": patientErr, "a later Close": later} {
		if got == nil || got.Error() != err.Error() || !errors.Is(got, context.DeadlineExceeded) {
			t.Errorf("%s: got %v, want %v: every Close reports the same outcome", name, got, err)
		}
	}
	checkNoPublishGoroutines(t)
}

func TestPublishCloseDoesNotWaitForTheReportsOfAnotherGiveUp(t *testing.T) {
	// Two Close calls wait for a publisher that delivers nothing; a third
	// gives up, and its report of the first log lost is held in the error
	// handler, which calls Close too. The patient Close calls return the
	// outcome while the reports are still held: waiting for them would
	// deadlock the handler's Close, which is one of them.
	hold := make(chan struct{})
	first := make(chan struct{})
	var once sync.Once
	var reports atomic.Int32
	handlerClose := make(chan error, 1)
	var lg *audit.Logger
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
			<-ctx.Done()
			return ctx.Err()
		}), audit.PublishQueueSize(16)),
		audit.WithErrorHandler(func(error) {
			once.Do(func() {
				close(first)
				handlerClose <- lg.Close(context.Background())
				<-hold
			})
			reports.Add(1)
		}),
	)
	mustLog(t, lg, "a", "b", "c", "d", "e")
	patient := make(chan error, 2)
	for range 2 {
		go func() { patient <- lg.Close(context.Background()) }()
	}
	waitForCloses(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- lg.Close(ctx) }()

	within(t, "the first report of the give-up", first)
	var errs []error
	for range 2 {
		errs = append(errs, receive(t, "a Close waiting for the drain, while the reports of the give-up are held", patient))
	}
	fromHandler := receive(t, "the Close of the error handler, called while reporting the give-up", handlerClose)
	if n := reports.Load(); n != 0 {
		t.Errorf("got %d reports done while the first one is held, want 0", n)
	}
	close(hold)
	err := receive(t, "the Close that gave up", gaveUp)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "5 logs not published") {
		t.Fatalf("the Close that gave up: got %v, want an error wrapping context.Canceled that counts 5 logs", err)
	}
	for _, got := range append(errs, fromHandler) {
		if got == nil || got.Error() != err.Error() {
			t.Errorf("got %v, want %v: every Close returns the outcome of the drain", got, err)
		}
	}
	// The Close that gave up returned once it had reported every log.
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 5, Failed: 1, Dropped: 4}); got != want || reports.Load() != 5 {
		t.Errorf("got stats %+v and %d reports, want %+v and 5", got, reports.Load(), want)
	}
	checkNoPublishGoroutines(t)
}

func TestPublishGoexit(t *testing.T) {
	// A publisher that calls runtime.Goexit, as t.Fatal does, fails its
	// log; the worker is replaced and the queue goes on.
	rec := &recorder{}
	seen := &errorsSeen{}
	release := make(chan struct{})
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, l audit.Log) error {
			<-release
			if l.Action == "app.exit" {
				runtime.Goexit()
			}
			return rec.Publish(ctx, l)
		})),
		audit.WithErrorHandler(seen.handle),
	)
	mustLog(t, lg, "app.a", "app.exit", "app.b", "app.exit", "app.c")
	close(release)
	mustClose(t, lg)
	if got, want := rec.actions(), []string{"app.a", "app.b", "app.c"}; !slices.Equal(got, want) {
		t.Errorf("got %v delivered, want %v", got, want)
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 5, Delivered: 3, Failed: 2}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
	errs := seen.all()
	if len(errs) != 2 {
		t.Fatalf("got %d reports, want 2", len(errs))
	}
	for _, e := range errs {
		if e.Log.Action != "app.exit" || !strings.Contains(e.Error(), "runtime.Goexit") {
			t.Errorf("got report %v, want the log whose Publish called runtime.Goexit", e)
		}
	}
}

func TestPublishErrorHandlerGoexit(t *testing.T) {
	// An error handler that calls runtime.Goexit, as t.FailNow does, ends
	// the worker it runs on: another takes its place.
	rec := &recorder{}
	var reports atomic.Int32
	release := make(chan struct{})
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, l audit.Log) error {
			<-release
			if l.Action == "app.fail" {
				return errors.New("refused")
			}
			return rec.Publish(ctx, l)
		})),
		audit.WithErrorHandler(func(error) {
			reports.Add(1)
			runtime.Goexit()
		}),
	)
	mustLog(t, lg, "app.fail", "app.a", "app.fail", "app.b")
	close(release)
	mustClose(t, lg)
	if got, want := rec.actions(), []string{"app.a", "app.b"}; !slices.Equal(got, want) {
		t.Errorf("got %v delivered, want %v", got, want)
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 4, Delivered: 2, Failed: 2}); got != want || reports.Load() != 2 {
		t.Errorf("got stats %+v and %d reports, want %+v and 2", got, reports.Load(), want)
	}
}

func TestPublishCloseFromPublishIsBoundedByItsContext(t *testing.T) {
	// Publish cannot be waited for by a Close it calls; the ctx of that
	// Close still bounds it, and the log counts as failed.
	closed := make(chan error, 1)
	var lg *audit.Logger
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			closed <- lg.Close(ctx)
			return nil
		})),
		audit.WithErrorHandler(func(error) {}),
	)
	mustLog(t, lg, "app.x")
	err := receive(t, "Close from Publish", closed)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close from Publish: got %v, want an error wrapping context.DeadlineExceeded", err)
	}
	checkNoPublishGoroutines(t)
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 1, Failed: 1}); got != want {
		t.Errorf("got stats %+v, want %+v: the log Close gave up on failed, whatever Publish returned after", got, want)
	}
}

func TestPublishCloseWithTheContextOfPublish(t *testing.T) {
	// Publish calls Close with its own ctx, which lives as long as the
	// drain, which waits for this Publish: Close stops publishing and
	// returns at once, and the drain goes on for the rest of the queue.
	release := make(chan struct{})
	closed := make(chan error, 1)
	var once sync.Once
	rec := &recorder{}
	var lg *audit.Logger
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, l audit.Log) error {
			<-release
			once.Do(func() { closed <- lg.Close(ctx) })
			return rec.Publish(ctx, l)
		})),
		audit.WithErrorHandler(func(error) {}),
	)
	mustLog(t, lg, "app.a", "app.b")
	close(release)
	err := receive(t, "Close called from Publish with the ctx of Publish", closed)
	if !errors.Is(err, audit.ErrClosed) || !strings.Contains(err.Error(), "context of a Publish call") {
		t.Errorf("Close with the ctx of Publish: got %v, want an error wrapping ErrClosed that says why it did not wait", err)
	}
	mustLog(t, lg, "app.late") // queueing stopped with that Close
	if err := lg.Close(context.Background()); err != nil {
		t.Errorf("a Close from elsewhere: got %v, want nil: the drain went on and delivered the queue", err)
	}
	checkNoPublishGoroutines(t)
	if got, want := rec.actions(), []string{"app.a", "app.b"}; !slices.Equal(got, want) {
		t.Errorf("got %v delivered, want %v", got, want)
	}
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 3, Delivered: 2, Dropped: 1}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
}

func TestPublishCloseFromTheErrorHandlerOfALogInPublish(t *testing.T) {
	// Publish audits its delivery with Log, given its own ctx; the queue
	// is full, so Log reports the drop to the error handler on the
	// goroutine of Publish, and the handler closes the Logger with a
	// context derived from that ctx: Close must not wait for the drain,
	// which waits for this Publish.
	taken, release := make(chan struct{}), make(chan struct{})
	var pubCtx context.Context // set by Publish, read by the handler that Log calls on its goroutine
	closed := make(chan error, 1)
	var lg *audit.Logger
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, l audit.Log) error {
			if l.Action != "app.a" {
				return nil
			}
			close(taken)
			<-release
			pubCtx = ctx
			return lg.Log(ctx, "app.delivered", audit.Target{ID: l.ID})
		}), audit.PublishQueueSize(1)),
		audit.WithErrorHandler(func(err error) {
			if !errors.Is(err, audit.ErrQueueFull) {
				return
			}
			ctx, cancel := context.WithCancel(pubCtx)
			defer cancel()
			closed <- lg.Close(ctx)
		}),
	)
	mustLog(t, lg, "app.a")
	<-taken
	mustLog(t, lg, "app.b") // fills the queue
	close(release)
	err := receive(t, "Close from the error handler of a Log called by Publish", closed)
	if !errors.Is(err, audit.ErrClosed) {
		t.Errorf("got %v, want an error wrapping ErrClosed", err)
	}
	if err := lg.Close(context.Background()); err != nil {
		t.Errorf("a Close from elsewhere: got %v, want nil", err)
	}
	checkNoPublishGoroutines(t)
	if got, want := lg.Stats(), (audit.PublishStats{Enqueued: 3, Delivered: 2, Dropped: 1}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
}

func TestPublishCloseOfAnotherLoggerFromPublish(t *testing.T) {
	// The mark on the ctx of Publish names its Logger: a Publish of one
	// Logger that closes another with that ctx waits for the other's
	// drain as any Close does.
	rec := &recorder{}
	other := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"), audit.WithPublisher(rec))
	mustLog(t, other, "other.a", "other.b")
	closed := make(chan error, 1)
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
			closed <- other.Close(ctx)
			return nil
		})))
	mustLog(t, lg, "app.a")
	err := receive(t, "Close of another Logger from Publish", closed)
	if err != nil {
		t.Errorf("got %v, want nil: the other Logger drained", err)
	}
	if got := rec.actions(); len(got) != 2 {
		t.Errorf("the other Logger delivered %v when its Close returned, want both logs", got)
	}
	mustClose(t, lg)
}

// checkStats checks the equation PublishStats states, for st read as
// what, and that no more logs are held than holding can hold (0: no
// bound).
func checkStats(what string, st audit.PublishStats, holding int) error {
	switch {
	case st.Enqueued != st.Delivered+st.Failed+st.Dropped+st.Queued:
		return fmt.Errorf("%s: %+v: Enqueued is not Delivered + Failed + Dropped + Queued", what, st)
	case holding > 0 && st.Queued > uint64(holding):
		return fmt.Errorf("%s: %+v: more Queued than the queue and the workers hold (%d)", what, st, holding)
	}
	return nil
}

// TestPublishCountsAddUp writes logs through publishers that fail,
// panic, call runtime.Goexit, are slow, drop, or make Log wait, while
// Close gives up — called from the error handler on a worker, and from a
// writer — and while other goroutines read Stats and PublisherStats: every
// reading must keep the equation of PublishStats, and in the end every
// log handed to a publisher is counted and reported exactly once.
func TestPublishCountsAddUp(t *testing.T) {
	var reports sync.Map // publisher name → *atomic.Int64
	var goexits, closedReports atomic.Int64
	report := func(err error) {
		var pe *audit.PublishError
		if !errors.As(err, &pe) {
			t.Errorf("error handler got %v, want a *PublishError", err)
			return
		}
		n, _ := reports.LoadOrStore(pe.Publisher, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if strings.Contains(err.Error(), "runtime.Goexit") {
			goexits.Add(1)
		}
		if errors.Is(err, audit.ErrClosed) {
			closedReports.Add(1)
		}
	}
	var seq atomic.Uint64
	flaky := audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
		// A fixed sequence of behaviors, so that each shows up however
		// the goroutines interleave.
		switch seq.Add(1) % 10 {
		case 0, 1, 2:
			return errors.New("refused")
		case 3:
			panic("publisher bug")
		case 4:
			runtime.Goexit()
		case 5:
			select {
			case <-time.After(200 * time.Microsecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	slow := audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
		select {
		case <-time.After(time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	// A publisher that delivers nothing until its ctx ends, so that Close
	// gives up.
	stuck := audit.PublisherFunc(func(ctx context.Context, _ audit.Log) error {
		<-ctx.Done()
		return ctx.Err()
	})
	// What each publisher can hold: its queue and its workers.
	holding := map[string]int{"flaky": 8 + 3, "slow": 4 + 1, "blocking": 2 + 2, "only-a": 16 + 1, "stuck": 4 + 1}

	var closesMu sync.Mutex
	var closes []string // what each Close returned
	closed := func(err error) {
		closesMu.Lock()
		defer closesMu.Unlock()
		closes = append(closes, fmt.Sprint(err))
	}
	handlerClosed := make(chan struct{}) // the Close of the error handler returned
	var handlerCloses atomic.Int64
	var lg *audit.Logger
	lg = audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(flaky, audit.PublishName("flaky"), audit.PublishQueueSize(8), audit.PublishWorkers(3)),
		audit.WithPublisher(slow, audit.PublishName("slow"), audit.PublishQueueSize(4)),
		audit.WithPublisher(slow, audit.PublishName("blocking"), audit.PublishQueueSize(2), audit.PublishWorkers(2), audit.BlockWhenFull()),
		audit.WithPublisher(audit.PublisherFunc(func(context.Context, audit.Log) error { return nil }), audit.PublishName("only-a"), audit.PublishQueueSize(16), audit.OnlyActions("app.a.*")),
		audit.WithPublisher(stuck, audit.PublishName("stuck"), audit.PublishQueueSize(4)),
		audit.WithErrorHandler(func(err error) {
			report(err)
			var pe *audit.PublishError
			// The 150th failure of a Publish call, reported on a worker.
			if errors.As(err, &pe) && pe.Publisher == "flaky" && !errors.Is(err, audit.ErrQueueFull) && !errors.Is(err, audit.ErrClosed) &&
				handlerCloses.Add(1) == 150 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				defer cancel()
				closed(lg.Close(ctx))
				close(handlerClosed)
			}
		}),
	)

	// Readers check the counts while everything happens.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var readings atomic.Int64
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				for name, st := range lg.PublisherStats() {
					if err := checkStats("publisher "+name+", while logs are written", st, holding[name]); err != nil {
						t.Error(err)
						return
					}
				}
				if err := checkStats("Stats, while logs are written", lg.Stats(), 0); err != nil {
					t.Error(err)
					return
				}
				readings.Add(1)
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}

	const writers, each = 4, 400
	var handedA atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			base := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeUser})
			for i := range each {
				// One writer's requests end soon: its Logs give up waiting
				// for room in the blocking publisher's queue.
				ctx, cancel := base, context.CancelFunc(func() {})
				if w == 1 {
					ctx, cancel = context.WithTimeout(base, 500*time.Microsecond)
				}
				action := "app.b.x"
				if rng.IntN(3) == 0 {
					action = "app.a.x"
					handedA.Add(1)
				}
				err := lg.Log(ctx, action, audit.Target{})
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				if w == 0 && i == each*3/4 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
					closed(lg.Close(ctx))
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	within(t, "the Close of the error handler", handlerClosed)

	// What Publish calls still run when Close gives up end later.
	deadline := time.Now().Add(10 * time.Second)
	for name, st := range lg.PublisherStats() {
		for st.Queued > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("publisher %s: still holds logs 10s after Close: %+v", name, st)
			}
			time.Sleep(time.Millisecond)
			st = lg.PublisherStats()[name]
		}
	}
	close(stop)
	readers.Wait()

	final := lg.PublisherStats()
	for name, st := range final {
		if err := checkStats("publisher "+name+", in the end", st, 0); err != nil {
			t.Error(err)
		}
		handed := uint64(writers * each)
		if name == "only-a" {
			handed = uint64(handedA.Load())
		}
		if st.Enqueued != handed {
			t.Errorf("publisher %s: %+v: got %d logs Enqueued, want the %d it was handed", name, st, st.Enqueued, handed)
		}
		var got int64
		if n, ok := reports.Load(name); ok {
			got = n.(*atomic.Int64).Load()
		}
		if uint64(got) != st.Failed+st.Dropped {
			t.Errorf("publisher %s: %+v: got %d reports, want Failed + Dropped", name, st, got)
		}
	}
	if st := final["flaky"]; st.Failed == 0 || st.Delivered == 0 || goexits.Load() == 0 {
		t.Errorf("flaky publisher: %+v, %d calls of runtime.Goexit: want some of each, or the faults were not exercised", st, goexits.Load())
	}
	if st := final["slow"]; st.Dropped == 0 || closedReports.Load() == 0 {
		t.Errorf("slow publisher: %+v, %d logs reported closed: want drops and logs stored after Close", st, closedReports.Load())
	}
	if st := final["stuck"]; st.Failed != 1 || st.Delivered != 0 {
		t.Errorf("stuck publisher: %+v: want the one log being published Failed when Close gave up", st)
	}
	if readings.Load() < 100 {
		t.Errorf("got %d readings of the counts, want many while logs were written", readings.Load())
	}
	closesMu.Lock()
	defer closesMu.Unlock()
	if len(closes) != 2 || closes[0] != closes[1] || !strings.Contains(closes[0], "not published") {
		t.Errorf("Close from a writer and from the error handler: got %q, want two calls with the same outcome, a give-up", closes)
	}
	t.Logf("%d readings; %+v; close: %v", readings.Load(), final, closes)
}

func TestPublishEachRequestsOwnMetadata(t *testing.T) {
	// Publishers read a log after Log returned and after later requests
	// were logged: the log must still hold its own request's metadata.
	rec := &recorder{}
	release := make(chan struct{})
	lg := audit.NewLogger(audit.NewMemoryRepository(), audit.WithSource("s"),
		audit.WithPublisher(audit.PublisherFunc(func(ctx context.Context, l audit.Log) error {
			<-release
			return rec.Publish(ctx, l)
		})))
	const requests = 60
	for n := range requests {
		first, second, _ := requestMetadata(n)
		ctx := audit.SetMetadata(audit.SetMetadata(userCtx, first), second)
		if err := lg.Log(ctx, "app.x", audit.Target{ID: fmt.Sprint(n)}); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	mustClose(t, lg)
	if len(rec.logs) != requests {
		t.Fatalf("published %d logs, want %d", len(rec.logs), requests)
	}
	for _, l := range rec.logs {
		checkRequestMetadata(t, "published", l)
	}
}
