package jetstream

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/audit"
)

// TestReadsWaitForProjection: with no Projector running, List and GetByID
// of a log just created wait until ctx ends, and say the projection lags;
// once a Projector runs, they return the log. A GetByID of an ID no
// stream holds does not wait.
func TestReadsWaitForProjection(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, DefaultPartitions)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repo := openRepo(t, js, pool, trail)
	l := testLog("ryw-1")
	mustCreate(t, repo, l)

	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if got, err := repo.List(short, audit.Filter{}); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(errString(err), "waiting for the projection") {
		t.Errorf("List before the log is projected: got %d logs, error %s; want an error wrapping context.DeadlineExceeded that says it waited for the projection", len(got), errString(err))
	}
	if _, err := repo.GetByID(short, l.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetByID before the log is projected: got %v, want an error wrapping context.DeadlineExceeded", err)
	}
	start := time.Now()
	if _, err := repo.GetByID(ctx, "ryw-unknown"); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("GetByID of an unknown ID: got %v, want audit.ErrNotFound", err)
	}
	t.Logf("GetByID of an unknown ID, the projection behind: %s", time.Since(start))

	startProjector(t, js, pool, trail)
	got, err := repo.List(ctx, audit.Filter{})
	if err != nil || len(got) != 1 || got[0].ID != l.ID {
		t.Fatalf("List once a Projector runs: got %v, %v; want the log", logIDs(got), err)
	}
	if _, err := repo.GetByID(ctx, l.ID); err != nil {
		t.Fatalf("GetByID once a Projector runs: %v", err)
	}
	// The log just written is read back at once.
	for i := range 20 {
		l := testLog("ryw-again-" + string(rune('a'+i)))
		mustCreate(t, repo, l)
		if _, err := repo.GetByID(ctx, l.ID); err != nil {
			t.Fatalf("GetByID right after Create: %v", err)
		}
		page, err := repo.List(ctx, audit.Filter{Limit: 1})
		if err != nil || len(page) != 1 || page[0].ID != l.ID {
			t.Fatalf("List right after Create of %s: got %v, %v; want it first", l.ID, logIDs(page), err)
		}
	}
}

// TestReadsWaitWhilePositionsLocked: when ctx ends while a read polls
// the projection's positions (the table is locked here, as a long
// migration or vacuum full would), List and GetByID still return the
// error that says they waited for the projection, wrapping ctx's error,
// not the bare error of the interrupted query.
func TestReadsWaitWhilePositionsLocked(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 1)
	repo := openRepo(t, js, pool, trail)
	l := testLog("locked-positions")
	mustCreate(t, repo, l)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE "+qualified(trail.Schema, positionsTable)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		read func(ctx context.Context) error
	}{
		{"List", func(ctx context.Context) error { _, err := repo.List(ctx, audit.Filter{}); return err }},
		{"GetByID", func(ctx context.Context) error { _, err := repo.GetByID(ctx, l.ID); return err }},
	} {
		short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
		err := tt.read(short)
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(errString(err), "waiting for the projection") {
			t.Errorf("%s while the positions are locked: got %s; want an error wrapping context.DeadlineExceeded that says it waited for the projection", tt.name, errString(err))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestTrailMismatch: a trail whose streams were made for three
// partitions cannot be opened, projected or made again with two, nor
// with another prefix: an ID would be looked for in the wrong partition.
func TestTrailMismatch(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range []struct {
		name   string
		change func(t *Trail)
	}{
		{"fewer partitions", func(t *Trail) { t.Partitions = 2 }},
		{"another prefix", func(t *Trail) { t.Prefix += "x" }},
	} {
		other := trail
		tt.change(&other)
		if r, err := Open(ctx, js, pool, other); !errors.Is(err, ErrTrailMismatch) {
			if r != nil {
				r.Close()
			}
			t.Errorf("%s: Open: got %v, want ErrTrailMismatch", tt.name, err)
		}
		if err := CreateStreams(ctx, js, other); !errors.Is(err, ErrTrailMismatch) {
			t.Errorf("%s: CreateStreams: got %v, want ErrTrailMismatch", tt.name, err)
		}
		p, err := NewProjector(js, pool, other)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(ctx); !errors.Is(err, ErrTrailMismatch) {
			t.Errorf("%s: Projector.Run: got %v, want ErrTrailMismatch", tt.name, err)
		}
	}
	if err := CreateStreams(ctx, js, trail); err != nil {
		t.Errorf("CreateStreams again with the same trail: %v, want nil", err)
	}
}

// TestBadOptions: Open and NewProjector return an error for an option
// out of range, rather than panic or ignore it.
func TestBadOptions(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range []struct {
		name string
		opt  Option
	}{
		{"WithAttemptTimeout(0)", WithAttemptTimeout(0)},
		{"WithAttemptTimeout(-1s)", WithAttemptTimeout(-time.Second)},
		{"WithRetryWait(0)", WithRetryWait(0)},
	} {
		if r, err := Open(ctx, js, pool, trail, tt.opt); err == nil {
			r.Close()
			t.Errorf("Open with %s: got nil error, want one", tt.name)
		}
	}
	for _, tt := range []struct {
		name string
		opt  ProjectorOption
	}{
		{"WithBatchSize(0)", WithBatchSize(0)},
		{"WithRebalanceInterval(0)", WithRebalanceInterval(0)},
	} {
		if _, err := NewProjector(js, pool, trail, tt.opt); err == nil {
			t.Errorf("NewProjector with %s: got nil error, want one", tt.name)
		}
	}
}

func TestTrailResolve(t *testing.T) {
	if got, err := (Trail{}).resolve(); err != nil || got != (Trail{Name: "AUDIT", Prefix: "audit", Partitions: 3, Replicas: 3}) {
		t.Errorf("Trail{}.resolve(): got %+v, %v; want the defaults", got, err)
	}
	for _, bad := range []Trail{
		{Name: "A.B"}, {Name: "A B"}, {Name: "A*"}, {Prefix: "a..b"}, {Prefix: ".a"}, {Prefix: "a.>"}, {Prefix: "a b"},
		{Partitions: -1}, {Partitions: 1025}, {Replicas: 6}, {Replicas: -1},
		{Name: strings.Repeat("N", 201)}, {Prefix: strings.Repeat("p", 129)},
	} {
		if _, err := bad.resolve(); err == nil {
			t.Errorf("Trail%+v.resolve(): got nil error, want one", bad)
		}
	}
}

// TestSubjectFilters selects logs by org and by source with consumers of
// the partition streams, for orgs and sources that need escaping.
func TestSubjectFilters(t *testing.T) {
	repo, trail := newRepo(t, 2)
	js := mustJetStream(t, mustNATS(t))
	orgs := []string{"org-1", "a.b", "", "x y*>", "é"}
	sources := []string{"frontier", "s.1 >"}
	want := map[string]map[string]bool{}
	n := 0
	for _, org := range orgs {
		for _, src := range sources {
			for range 3 {
				l := loadLog(int64(n))
				n++
				l.OrgID, l.Source = org, src
				mustCreate(t, repo, l)
				for _, f := range []string{trail.OrgFilter(org), trail.SourceFilter(src)} {
					if want[f] == nil {
						want[f] = map[string]bool{}
					}
					want[f][l.ID] = true
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for f, ids := range want {
		got := map[string]bool{}
		for p := range trail.Partitions {
			c, err := js.CreateConsumer(ctx, trail.Stream(p), natsjs.ConsumerConfig{
				FilterSubjects: []string{f}, AckPolicy: natsjs.AckNonePolicy, InactiveThreshold: time.Minute,
			})
			if err != nil {
				t.Fatal(err)
			}
			// The consumer counts what its filter selects; then read that.
			info, err := c.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumPending == 0 {
				continue
			}
			batch, err := c.Fetch(int(info.NumPending), natsjs.FetchMaxWait(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range batch.Messages() {
				l, reason := (&Projector{trail: trail}).decode(p, m)
				if reason != "" {
					t.Fatalf("message on %s: %s", m.Subject(), reason)
				}
				got[l.ID] = true
			}
		}
		if !maps.Equal(got, ids) {
			t.Errorf("filter %q: got %d logs %v, want %d %v", f, len(got), slices.Sorted(maps.Keys(got)), len(ids), slices.Sorted(maps.Keys(ids)))
		}
	}
}

// TestDuplicateForever: a second log with a stored ID is rejected after
// the stream's dedup window has passed, and after every server of the
// cluster was killed and started again.
func TestDuplicateForever(t *testing.T) {
	t.Parallel()
	fs := newFaultSetup(t, clusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := testLog("forever")
	mustCreate(t, fs.repo, l)
	// The window of Nats-Msg-Id, which Create does not use, made as short
	// as the server allows.
	p := fs.trail.Partition(l.ID)
	s, err := fs.js.Stream(ctx, fs.trail.Stream(p))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.Duplicates = 100 * time.Millisecond
	if _, err := fs.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	checkDuplicates := func(when string) {
		t.Helper()
		for _, dup := range []audit.Log{l, withOrg(l, "org-2"), withSource(l, "other")} {
			if err := fs.repo.Create(ctx, &dup); !errors.Is(err, audit.ErrAlreadyExists) {
				t.Errorf("%s: Create of a log with the stored ID %q (org %q, source %q): got %v, want audit.ErrAlreadyExists",
					when, dup.ID, dup.OrgID, dup.Source, err)
			}
		}
	}
	checkDuplicates("past the dedup window")
	for i := range fs.c.nodes {
		fs.c.kill(i)
	}
	for i := range fs.c.nodes {
		fs.c.start(i)
	}
	if err := fs.c.waitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	checkDuplicates("after every server was killed and started again")
	got, err := fs.repo.GetByID(ctx, l.ID)
	if err != nil || got.OrgID != l.OrgID {
		t.Errorf("GetByID(%q): got %+v, %v; want the first log", l.ID, got, err)
	}
}

func withOrg(l audit.Log, org string) audit.Log { l.OrgID = org; return l }

func withSource(l audit.Log, src string) audit.Log { l.Source = src; return l }

// TestCreateClosedConnection: a Create on a closed connection sends
// nothing, so its error says the log is not stored, not that it may be.
func TestCreateClosedConnection(t *testing.T) {
	mustNATS(t)
	nc, err := connect(os.Getenv("NATS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	js := mustJetStream(t, nc)
	trail := newTrail(t, mustJetStream(t, mustNATS(t)), mustPool(t), 1)
	repo := openRepo(t, js, mustPool(t), trail)
	nc.Close()
	l := testLog("closed")
	err = repo.Create(context.Background(), &l)
	if !errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, audit.ErrMaybeStored) {
		t.Errorf("Create on a closed connection: got %v, want an error wrapping nats.ErrConnectionClosed and not audit.ErrMaybeStored", err)
	}
}
