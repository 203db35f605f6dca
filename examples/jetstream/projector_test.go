package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/raystack/salt/audit"
)

// countRows returns how many logs the projection of trail holds.
func countRows(t *testing.T, trail Trail) int {
	t.Helper()
	var n int
	if err := mustPool(t).QueryRow(context.Background(), "SELECT count(*) FROM "+qualified(trail.Schema, "audit_logs")).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond every 10 ms until it holds, for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("waited %s for %s", d, what)
	}
}

func mustCreate(t *testing.T, repo audit.Repository, logs ...audit.Log) {
	t.Helper()
	for _, l := range logs {
		if err := repo.Create(context.Background(), &l); err != nil {
			t.Fatalf("Create(%s): %v", l.ID, err)
		}
	}
}

func testLog(id string) audit.Log {
	return audit.Log{
		ID: id, OrgID: "org-1", Source: "frontier", Action: "app.user.created",
		Actor:     audit.Actor{ID: "u-1", Type: audit.ActorTypeUser},
		Target:    audit.Target{ID: "u-2", Type: "user"},
		Metadata:  map[string]string{audit.MetadataRequestID: "req-1"},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
	}
}

// TestProjectorDeadLetters publishes, beside valid logs, messages the
// projection must reject: not JSON, a log on another log's subject, an
// invalid log, a second log with a stored ID (published without the
// header that would have stopped it), and a log whose row PostgreSQL
// refuses. Each goes to the dead letters with its reason, is reported,
// and the logs after it are applied.
func TestProjectorDeadLetters(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pool.Exec(ctx, "ALTER TABLE "+qualified(trail.Schema, "audit_logs")+
		" ADD CONSTRAINT refuse_one CHECK (action <> 'refused.by.postgres')"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reported []DeadLetter
	proj := startProjector(t, js, pool, trail, WithDeadLetterHandler(func(d DeadLetter) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, d)
	}))
	repo := openRepo(t, js, pool, trail)

	first := testLog("dl-first")
	mustCreate(t, repo, first)
	if _, err := repo.GetByID(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	raw := func(subject string, data []byte) uint64 {
		t.Helper()
		ack, err := js.Publish(ctx, subject, data)
		if err != nil {
			t.Fatalf("publishing to %s: %v", subject, err)
		}
		return ack.Sequence
	}
	valid := testLog("dl-valid")
	validJSON, _ := json.Marshal(valid)
	invalid := testLog("dl-invalid")
	invalid.Action = ""
	invalidJSON, _ := json.Marshal(invalid)
	firstJSON, _ := json.Marshal(first)
	want := map[uint64]string{ // sequence: a part of the reason
		raw(trail.Subject("dl-garbage", "org-1", "frontier"), []byte("not json")): "not a JSON log",
		raw(trail.Subject(valid.ID, "org-2", "frontier"), validJSON):              "want " + trail.Subject(valid.ID, "org-1", "frontier"),
		raw(trail.Subject(invalid.ID, "org-1", "frontier"), invalidJSON):          "action is required",
		raw(trail.Subject(first.ID, "org-1", "frontier"), firstJSON):              `a log with ID "dl-first" is already in the projection`,
	}
	refused := testLog("dl-refused")
	refused.Action = "refused.by.postgres"
	mustCreate(t, repo, refused)
	last := testLog("dl-last")
	mustCreate(t, repo, last)

	got, err := repo.List(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if ids := logIDs(got); !slices.Equal(ids, []string{"dl-last", "dl-first"}) {
		t.Errorf("List: got %v, want [dl-last dl-first]: the rejected messages are not projected, and do not block the logs after them", ids)
	}
	stream, err := js.Stream(ctx, trail.Stream(0))
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, trail.Subject(refused.ID, refused.OrgID, refused.Source))
	if err != nil {
		t.Fatal(err)
	}
	want[m.Sequence] = "refuse_one"

	// The dead letters are stored before the position passes them, so
	// List has waited for them too.
	dead, err := js.CreateConsumer(ctx, trail.DeadLetterStream(), natsjs.ConsumerConfig{
		AckPolicy: natsjs.AckNonePolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := dead.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int(info.NumPending) != len(want) {
		t.Errorf("the dead letters hold %d messages, want %d", info.NumPending, len(want))
	}
	batch, err := dead.Fetch(int(info.NumPending), natsjs.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		seq, _ := strconv.ParseUint(m.Headers().Get(HeaderDeadSequence), 10, 64)
		reason := m.Headers().Get(HeaderDeadReason)
		part, ok := want[seq]
		switch {
		case !ok:
			t.Errorf("dead letter of sequence %d (%s): want none", seq, reason)
		case !strings.Contains(reason, part):
			t.Errorf("dead letter of sequence %d: reason %q, want one containing %q", seq, reason, part)
		case m.Headers().Get(HeaderDeadStream) != trail.Stream(0):
			t.Errorf("dead letter of sequence %d: stream %q, want %q", seq, m.Headers().Get(HeaderDeadStream), trail.Stream(0))
		}
		if om, err := stream.GetMsg(ctx, seq); err != nil || string(om.Data) != string(m.Data()) || om.Subject != m.Headers().Get(HeaderDeadSubject) {
			t.Errorf("dead letter of sequence %d: data %q, subject %q; the stream holds %q on %q (err %v): want the message as it is",
				seq, m.Data(), m.Headers().Get(HeaderDeadSubject), om.Data, om.Subject, err)
		}
		delete(want, seq)
	}
	if len(want) > 0 {
		t.Errorf("no dead letters of sequences %v", want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 5 || proj.Stats().DeadLettered != 5 {
		t.Errorf("reported %d dead letters (%+v), counted %d, want 5", len(reported), reported, proj.Stats().DeadLettered)
	}
}

func logIDs(logs []audit.Log) []string {
	ids := make([]string, len(logs))
	for i, l := range logs {
		ids[i] = l.ID
	}
	return ids
}

// TestProjectorSkipsRedelivered sets the consumer back to the start of
// the stream under a running Projector, as a redelivery of everything
// would: it skips what the projection holds, and applies what follows.
func TestProjectorSkipsRedelivered(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 1)
	proj := startProjector(t, js, pool, trail, WithDeadLetterHandler(func(d DeadLetter) {
		t.Errorf("dead letter %+v: a redelivered message is skipped, not rejected", d)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repo := openRepo(t, js, pool, trail)
	for i := range 50 {
		mustCreate(t, repo, testLog(fmt.Sprintf("redo-%02d", i)))
	}
	if _, err := repo.List(ctx, audit.Filter{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, trail.Stream(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResetConsumerToSequence(ctx, ProjectorConsumer, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the 50 messages to be redelivered", func() bool { return proj.Stats().Redelivered >= 50 })
	for i := range 10 {
		mustCreate(t, repo, testLog(fmt.Sprintf("redo-after-%02d", i)))
	}
	if _, err := repo.List(ctx, audit.Filter{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, trail); n != 60 {
		t.Errorf("projection holds %d logs, want 60", n)
	}
	t.Logf("projector: %+v", proj.Stats())
}

// TestProjectorPositionIsCompareAndSet applies a batch from a position
// that another owner has moved on: nothing is stored.
func TestProjectorPositionIsCompareAndSet(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 1)
	p, err := NewProjector(js, pool, trail)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := p.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := trail.Stream(0)
	if _, err := conn.Exec(ctx, p.ensureSQL, name); err != nil {
		t.Fatal(err)
	}
	// Another owner applied messages 1 to 5 since this one read 0.
	if _, err := pool.Exec(ctx, "UPDATE "+qualified(trail.Schema, positionsTable)+" SET seq = 5 WHERE stream = $1", name); err != nil {
		t.Fatal(err)
	}
	pos := int64(0)
	items := []item{{seq: 1, log: testLog("cas-1")}}
	if _, err := p.exec(ctx, conn, name, &pos, 1, items); !errors.Is(err, errLostPosition) {
		t.Errorf("applying from a stale position: got %v, want errLostPosition", err)
	}
	if n := countRows(t, trail); n != 0 || pos != 0 {
		t.Errorf("after applying from a stale position: %d logs stored, position %d; want none and 0", n, pos)
	}
	pos = 5
	items[0].seq = 6
	if _, err := p.exec(ctx, conn, name, &pos, 6, items); err != nil || pos != 6 || countRows(t, trail) != 1 {
		t.Errorf("applying from the current position: error %v, position %d, %d logs; want nil, 6, 1", err, pos, countRows(t, trail))
	}
}

// TestProjectorsShare runs two Projectors of one trail: they share its
// four partitions two and two, and when one stops the other takes all.
func TestProjectorsShare(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 4)
	first := startProjector(t, js, pool, trail)
	second, err := NewProjector(js, pool, trail, WithRebalanceInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stopSecond := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	var stopped bool
	stop := func() {
		if !stopped {
			stopped = true
			stopSecond()
			if err := <-done; err != nil {
				t.Errorf("second Run: %v", err)
			}
		}
	}
	defer stop()
	waitFor(t, 30*time.Second, "two partitions each", func() bool {
		return len(first.Stats().Owned) == 2 && len(second.Stats().Owned) == 2
	})
	t.Logf("first holds %v, second %v", first.Stats().Owned, second.Stats().Owned)
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repo := openRepo(t, js, pool, trail)
	for i := range 200 {
		mustCreate(t, repo, testLog(fmt.Sprintf("share-%03d", i)))
	}
	if _, err := repo.List(rctx, audit.Filter{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if a, b := first.Stats().Applied, second.Stats().Applied; a == 0 || b == 0 || a+b != 200 {
		t.Errorf("applied %d and %d, want both some, 200 in all", a, b)
	}
	stop()
	waitFor(t, 30*time.Second, "the first to take all four partitions", func() bool { return len(first.Stats().Owned) == 4 })
	before := first.Stats().Applied
	for i := range 100 {
		mustCreate(t, repo, testLog(fmt.Sprintf("alone-%03d", i)))
	}
	if _, err := repo.List(rctx, audit.Filter{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if got := first.Stats().Applied - before; got != 100 || countRows(t, trail) != 300 {
		t.Errorf("alone, the first applied %d, the projection holds %d; want 100 and 300", got, countRows(t, trail))
	}
}

// TestProjectorConsumerDeleted deletes a partition's durable consumer
// under a running Projector: the Projector is told that its
// subscription ended, reports it, makes the consumer again from its
// position, and applies the logs written after, none twice.
func TestProjectorConsumerDeleted(t *testing.T) {
	nc := mustNATS(t)
	js := mustJetStream(t, nc)
	pool := mustPool(t)
	trail := newTrail(t, js, pool, 1)
	var mu sync.Mutex
	var reported []error
	proj := startProjector(t, js, pool, trail, WithErrorHandler(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}))
	repo := openRepo(t, js, pool, trail)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mustCreate(t, repo, testLog("deleted-before"))
	if _, err := repo.List(ctx, audit.Filter{}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, trail.Stream(0), ProjectorConsumer); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustCreate(t, repo, testLog(fmt.Sprintf("deleted-after-%d", i)))
	}
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	if _, err := repo.List(lctx, audit.Filter{}); err != nil {
		t.Fatalf("List after the consumer was deleted: %v; want the Projector to make it again and apply the logs", err)
	}
	if n := countRows(t, trail); n != 11 {
		t.Errorf("projection holds %d logs, want 11", n)
	}
	mu.Lock()
	defer mu.Unlock()
	var told bool
	for _, err := range reported {
		told = told || errors.Is(err, natsjs.ErrConsumerDeleted)
	}
	if !told {
		t.Errorf("errors reported: %v; want one wrapping jetstream.ErrConsumerDeleted", reported)
	}
	t.Logf("projector: %+v; errors reported: %v", proj.Stats(), reported)
}
