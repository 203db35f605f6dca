package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/audit"
)

// load writes logs through a Repository from many callers, as services
// do, and records what became of each log. A caller whose Create returns
// an error wrapping audit.ErrMaybeStored tries again with the same log, as
// the audit package says to, up to maxTries times.
type load struct {
	repo    *Repository
	callers int
	total   int           // logs to write; 0 for as many as fit before stop
	stop    chan struct{} // closed to end a load of no total
	// pinned makes caller i write only logs of partition i % partitions,
	// so that a partition without a leader holds up only its own callers.
	pinned bool

	next, done atomic.Int64
	maybes     atomic.Int64 // answers wrapping ErrMaybeStored, each retried

	mu        sync.Mutex
	confirmed map[string]bool  // stored: nil, or ErrAlreadyExists after an unknown outcome
	failed    map[string]error // not stored, says the error
	unknown   map[string]error // still unknown after maxTries
	okAt      []okAt           // when each confirming Create returned
	latencies []time.Duration  // of every Create call
	start     time.Time
	elapsed   time.Duration
}

const maxTries = 5

// okAt is when a Create was confirmed, and its log's partition.
type okAt struct {
	t    time.Time
	part int
}

func newLoad(repo *Repository, callers, total int) *load {
	return &load{
		repo: repo, callers: callers, total: total, stop: make(chan struct{}),
		confirmed: map[string]bool{}, failed: map[string]error{}, unknown: map[string]error{},
	}
}

// loadLog returns the i-th log of a load: a UUIDv7, eight orgs, two
// sources.
func loadLog(i int64) audit.Log {
	return audit.Log{
		ID:        uuid.Must(uuid.NewV7()).String(),
		OrgID:     fmt.Sprintf("org-%d", i%8),
		Source:    []string{"frontier", "guardian"}[i%2],
		Action:    "app.resource.updated",
		Actor:     audit.Actor{ID: fmt.Sprintf("user-%d", i%100), Type: audit.ActorTypeUser},
		Target:    audit.Target{ID: fmt.Sprintf("res-%d", i), Type: "resource"},
		Metadata:  map[string]string{audit.MetadataRequestID: fmt.Sprintf("req-%d", i)},
		CreatedAt: time.Now(),
	}
}

// run writes the logs and returns when every caller is done. at, if not
// nil, is called from a goroutine of its own once atN logs are done.
func (ld *load) run(tb testing.TB, atN int64, at func()) {
	tb.Helper()
	ld.start = time.Now()
	var wg sync.WaitGroup
	if at != nil {
		wg.Go(func() {
			for ld.done.Load() < atN {
				time.Sleep(5 * time.Millisecond)
			}
			at()
		})
	}
	for i := range ld.callers {
		part := -1
		if ld.pinned {
			part = i % ld.repo.trail.Partitions
		}
		wg.Go(func() { ld.caller(tb, part) })
	}
	wg.Wait()
	ld.elapsed = time.Since(ld.start)
}

// caller writes logs until the load is done; with part >= 0, logs of
// that partition only.
func (ld *load) caller(tb testing.TB, part int) {
	tb.Helper()
	for {
		i := ld.next.Add(1) - 1
		if ld.total > 0 && i >= int64(ld.total) {
			return
		}
		if ld.total == 0 {
			select {
			case <-ld.stop:
				return
			default:
			}
		}
		l := loadLog(i)
		for part >= 0 && ld.repo.trail.partition(l.ID) != part {
			l.ID = uuid.Must(uuid.NewV7()).String()
		}
		var err error
		var lats []time.Duration
		tries := 0
		for tries < maxTries {
			tries++
			t0 := time.Now()
			err = ld.repo.Create(context.Background(), &l)
			lats = append(lats, time.Since(t0))
			if !errors.Is(err, audit.ErrMaybeStored) {
				break
			}
			ld.maybes.Add(1)
		}
		ld.mu.Lock()
		ld.latencies = append(ld.latencies, lats...)
		switch {
		case err == nil:
			ld.confirmed[l.ID] = true
			ld.okAt = append(ld.okAt, okAt{time.Now(), ld.repo.trail.partition(l.ID)})
		case errors.Is(err, audit.ErrAlreadyExists) && tries > 1:
			ld.confirmed[l.ID] = true // the first try stored it
			ld.okAt = append(ld.okAt, okAt{time.Now(), ld.repo.trail.partition(l.ID)})
		case errors.Is(err, audit.ErrAlreadyExists):
			tb.Errorf("Create of a new ID %q: got %v, want nil: a fresh ID is never taken", l.ID, err)
		case errors.Is(err, audit.ErrMaybeStored):
			ld.unknown[l.ID] = err
		default:
			ld.failed[l.ID] = err
		}
		ld.mu.Unlock()
		ld.done.Add(1)
	}
}

// maxLatency returns the longest Create call of the load.
func (ld *load) maxLatency() time.Duration {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return slices.Max(ld.latencies)
}

// quantile returns the q-quantile of the Create calls' latencies.
func (ld *load) quantile(q float64) time.Duration {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	s := slices.Clone(ld.latencies)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// okBetween counts the Creates confirmed between from and to, of logs of
// partition part, or of all if part < 0.
func (ld *load) okBetween(from, to time.Time, part int) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	n := 0
	for _, ok := range ld.okAt {
		if !ok.t.Before(from) && ok.t.Before(to) && (part < 0 || ok.part == part) {
			n++
		}
	}
	return n
}

// firstOK returns when the first Create of partition part was confirmed
// after from, or the zero time if none was.
func (ld *load) firstOK(from time.Time, part int) time.Time {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	var first time.Time
	for _, ok := range ld.okAt {
		if ok.part == part && ok.t.After(from) && (first.IsZero() || ok.t.Before(first)) {
			first = ok.t
		}
	}
	return first
}

func (ld *load) summary() string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return fmt.Sprintf("%d logs from %d callers in %s (%.0f/s): %d stored, %d failed, %d unknown; %d unknown outcomes retried",
		len(ld.confirmed)+len(ld.failed)+len(ld.unknown), ld.callers, ld.elapsed.Round(time.Millisecond),
		float64(len(ld.confirmed))/ld.elapsed.Seconds(), len(ld.confirmed), len(ld.failed), len(ld.unknown), ld.maybes.Load())
}

// checkProjected waits until the projection has applied every stream,
// then checks it against the load: every confirmed log is in the table
// once, no failed one is, nothing else is, the streams hold exactly the
// table's logs (no ID twice), and no message went to the dead letters.
func checkProjected(tb testing.TB, js natsjs.JetStream, pool *pgxpool.Pool, trail Trail, repo *Repository, ld *load) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := repo.List(ctx, audit.Filter{Limit: 1}); err != nil {
		tb.Fatalf("List after the load, waiting for the projection: %v", err)
	}
	rows, err := pool.Query(ctx, "SELECT id FROM "+qualified(trail.Schema, "audit_logs"))
	if err != nil {
		tb.Fatal(err)
	}
	stored := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			tb.Fatal(err)
		}
		stored[id]++
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	ld.mu.Lock()
	defer ld.mu.Unlock()
	var missing, strays, failedButStored int
	for id := range ld.confirmed {
		if stored[id] != 1 {
			missing++
			if missing <= 5 {
				tb.Errorf("log %s: Create confirmed it, but the projection holds it %d times, want once", id, stored[id])
			}
		}
	}
	for id, err := range ld.failed {
		if stored[id] != 0 {
			failedButStored++
			if failedButStored <= 5 {
				tb.Errorf("log %s: Create failed with %v, not wrapping audit.ErrMaybeStored, but the projection holds it", id, err)
			}
		}
	}
	for id := range stored {
		if !ld.confirmed[id] && ld.unknown[id] == nil && ld.failed[id] == nil {
			strays++
		}
	}
	if missing+strays+failedButStored > 0 {
		tb.Errorf("projection: %d confirmed logs missing or doubled, %d failed logs stored, %d logs nobody wrote", missing, failedButStored, strays)
	}
	var inStreams uint64
	for p := range trail.Partitions {
		s, err := js.Stream(ctx, trail.Stream(p))
		if err != nil {
			tb.Fatal(err)
		}
		inStreams += s.CachedInfo().State.Msgs
	}
	if inStreams != uint64(len(stored)) {
		tb.Errorf("the streams hold %d messages, the projection %d logs: want one log per message, so no ID twice in the streams", inStreams, len(stored))
	}
	dead, err := js.Stream(ctx, trail.DeadLetterStream())
	if err != nil {
		tb.Fatal(err)
	}
	if n := dead.CachedInfo().State.Msgs; n != 0 {
		tb.Errorf("the dead letters hold %d messages, want none: every message of the load is a valid log stored once", n)
	}
}
