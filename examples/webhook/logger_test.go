package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/webhook"
)

// reports collects what a Logger's error handler is given.
type reports struct {
	mu  sync.Mutex
	ids map[string]int
	bad []error // not a *PublishError
}

func (r *reports) handle(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var pe *audit.PublishError
	if !errors.As(err, &pe) {
		r.bad = append(r.bad, err)
		return
	}
	if r.ids == nil {
		r.ids = make(map[string]int)
	}
	r.ids[pe.Log.ID]++
}

// TestLoggerOutage writes 10,000 logs through a Logger while the webhook
// receiver is down for most of them (the middle 60%), answering 503 or dropping the
// connection. Every log must be stored, and every one of them either
// delivered exactly once or reported to the error handler exactly once,
// with the Logger's stats agreeing; whether a full queue drops logs (the
// default) or makes Log wait.
func TestLoggerOutage(t *testing.T) {
	for _, tt := range []struct {
		name  string
		block bool
		total int
	}{
		{"drop when full", false, 10_000},
		// Every log reaches Publish, so each costs a request or two: fewer
		// logs keep the test quick.
		{"block when full", true, 2_000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			block, total := tt.block, tt.total
			const writers, workers, queueSize = 8, 8, 256
			outageFrom, outageTo := total/5, total*4/5

			var (
				mu        sync.Mutex
				delivered = make(map[string]int)
				down      atomic.Bool
				requests  atomic.Int64
			)
			rc := mustReceiver(t, []string{secretA}, func(e webhook.Event) error {
				mu.Lock()
				defer mu.Unlock()
				delivered[e.ID]++
				return nil
			})
			srv := withServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := requests.Add(1)
				if down.Load() {
					if n%2 == 0 {
						if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
							conn.Close() // no response at all
							return
						}
					}
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				rc.ServeHTTP(w, r)
			}))
			pub := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}},
				webhook.WithRetry(webhook.RetryPolicy{Attempts: 2, Base: time.Millisecond, Max: 2 * time.Millisecond}),
				webhook.WithAttemptTimeout(5*time.Second))

			repo := audit.NewMemoryRepository()
			var rep reports
			opts := []audit.PublishOption{audit.PublishName("webhook"), audit.PublishWorkers(workers), audit.PublishQueueSize(queueSize)}
			if block {
				opts = append(opts, audit.BlockWhenFull())
			}
			lg := audit.NewLogger(repo,
				audit.WithSource("frontier"),
				audit.WithPublisher(pub, opts...),
				audit.WithErrorHandler(rep.handle),
			)

			ctx := audit.SetActor(context.Background(), audit.Actor{ID: "u-42", Type: audit.ActorTypeUser})
			var written atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range total / writers {
						switch int(written.Add(1)) {
						case outageFrom:
							down.Store(true)
						case outageTo:
							down.Store(false)
						}
						if err := lg.Log(ctx, "app.user.created", audit.Target{ID: fmt.Sprint(w, "-", i), Type: "user"}); err != nil {
							t.Errorf("Log: %v", err)
						}
					}
				}()
			}
			wg.Wait()
			writing := time.Since(start)
			down.Store(false)

			closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := lg.Close(closeCtx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mu.Lock() // the receiver is done; the lock only makes that plain
			defer mu.Unlock()
			rep.mu.Lock()
			defer rep.mu.Unlock()

			if n := repo.Len(); n != total {
				t.Fatalf("got %d logs stored, want %d: an outage of a publisher must not cost a log", n, total)
			}
			if len(rep.bad) > 0 {
				t.Errorf("got %d errors that are not *audit.PublishError; first: %v", len(rep.bad), rep.bad[0])
			}
			stored, err := allLogs(repo)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range stored {
				d, r := delivered[l.ID], rep.ids[l.ID]
				if d+r != 1 {
					t.Fatalf("log %s: delivered %d times and reported %d times, want exactly one of them once", l.ID, d, r)
				}
			}
			st := lg.Stats()
			if got, want := st.Delivered, uint64(len(delivered)); got != want {
				t.Errorf("Stats().Delivered is %d, want %d: what the receiver got", got, want)
			}
			if got, want := st.Failed+st.Dropped, uint64(len(rep.ids)); got != want {
				t.Errorf("Stats() Failed+Dropped is %d, want %d: what was reported", got, want)
			}
			if got, want := st.Enqueued, uint64(total); got != want {
				t.Errorf("Stats().Enqueued is %d, want %d: every log was handed to the publisher", got, want)
			}
			if got, want := st.Delivered+st.Failed+st.Dropped, st.Enqueued; st.Queued != 0 || got != want {
				t.Errorf("Stats() is %+v: want Delivered+Failed+Dropped = Enqueued and nothing Queued, Close drained the queue", st)
			}
			if len(delivered) == 0 || len(rep.ids) == 0 {
				t.Errorf("delivered %d, reported %d: want some of each, or the outage was not exercised", len(delivered), len(rep.ids))
			}
			if block {
				// Nothing is dropped, so what the outage did not touch is
				// delivered: a log written just before it may still be
				// queued when it starts, and one written during it may be
				// queued until after.
				const slack = queueSize + workers
				if st.Dropped != 0 {
					t.Errorf("Stats().Dropped is %d, want 0 when Log waits for room", st.Dropped)
				}
				if want := total - (outageTo - outageFrom) - slack; len(delivered) < want {
					t.Errorf("delivered %d, want at least %d: the logs written while the receiver was up", len(delivered), want)
				}
				if want := outageTo - outageFrom - slack; len(rep.ids) < want {
					t.Errorf("reported %d, want at least %d: the logs written while the receiver was down", len(rep.ids), want)
				}
			}
			t.Logf("%d logs written in %s: %d delivered, %d reported (%d failed, %d dropped), %d requests",
				total, writing.Round(time.Millisecond), len(delivered), len(rep.ids), st.Failed, st.Dropped, requests.Load())
		})
	}
}

// allLogs lists every log in repo, page by page.
func allLogs(repo audit.Repository) ([]audit.Log, error) {
	var all []audit.Log
	f := audit.Filter{Limit: audit.MaxLimit}
	for {
		page, err := repo.List(context.Background(), f)
		if err != nil || len(page) == 0 {
			return all, err
		}
		all = append(all, page...)
		f.Cursor = audit.NextCursor(page)
	}
}

// TestLoggerCloseCutsRetriesShort shows that a Publisher waiting to retry
// gives up when the Logger's Close deadline passes, and that every log it
// did not deliver is reported.
func TestLoggerCloseCutsRetriesShort(t *testing.T) {
	const logs = 20
	srv := withServer(t, &recorder{respond: statuses(http.StatusServiceUnavailable)})
	pub := mustPublisher(t, []webhook.Endpoint{{URL: srv.URL, Secrets: []string{secretA}}},
		webhook.WithRetry(webhook.RetryPolicy{Attempts: 10, Base: time.Hour, Max: time.Hour}))
	var rep reports
	lg := audit.NewLogger(audit.NewMemoryRepository(),
		audit.WithSource("frontier"),
		audit.WithPublisher(pub, audit.PublishWorkers(2)),
		audit.WithErrorHandler(rep.handle),
	)
	ctx := audit.SetActor(context.Background(), audit.Actor{Type: audit.ActorTypeSystem})
	for i := range logs {
		if err := lg.Log(ctx, "app.job.ran", audit.Target{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}

	closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := lg.Close(closeCtx)
	if err == nil {
		t.Error("Close: got nil, want an error saying what was not published")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s, want about its 100ms deadline: retries must stop when ctx ends", d)
	}
	if len(rep.ids) != logs {
		t.Errorf("got %d logs reported, want all %d", len(rep.ids), logs)
	}
	for id, n := range rep.ids {
		if n != 1 {
			t.Errorf("log %s reported %d times, want once", id, n)
		}
	}
}
