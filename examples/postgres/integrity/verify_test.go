package integrity

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
	"github.com/raystack/salt/examples/postgres/internal/pgtest"
)

// trail is a sealed trail in a schema of its own, for the tests to
// tamper with.
type trail struct {
	schema    string
	key       Key
	verifiers note.Verifiers
	vkey      string
	sealer    *Sealer
	logs      []*audit.Log // as written, in ID order
	kept      Checkpoint   // the newest checkpoint, as a client kept it
}

// newTrail writes n logs, created up to now, through CreateBatch and
// Create, and seals them in several seals.
func newTrail(tb testing.TB, n int) *trail {
	tb.Helper()
	return newTrailAt(tb, n, time.Now().Add(-time.Duration(n)*time.Second))
}

// newTrailAt is newTrail with logs created one second apart from start.
// Written before the first seal, old logs are not backdated: nothing
// tells when they were stored.
func newTrailAt(tb testing.TB, n int, start time.Time) *trail {
	tb.Helper()
	ctx := context.Background()
	tr := &trail{schema: newSchema(tb)}
	tr.key, tr.verifiers, tr.vkey = newKey(tb, testOrigin, 1)
	repo := newRepo(tb, tr.schema)
	tr.logs = makeLogs("log", n, start)
	split := max(n-3, 0)
	for i := 0; i < split; i += 1000 {
		if err := repo.CreateBatch(ctx, tr.logs[i:min(i+1000, split)]); err != nil {
			tb.Fatal(err)
		}
	}
	for _, l := range tr.logs[split:] {
		if err := repo.Create(ctx, l); err != nil {
			tb.Fatal(err)
		}
	}
	tr.sealer = newSealer(tb, tr.schema, tr.key, WithMaxLeaves(max(n/4, 1)))
	tr.kept = sealAll(tb, tr.sealer, tr.schema)
	return tr
}

// verify runs Verify in a read-only repeatable-read transaction.
func (tr *trail) verify(tb testing.TB, opts Options) *Report {
	tb.Helper()
	ctx := context.Background()
	tx, err := mustPool(tb).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if opts.Verifiers == nil {
		opts.Verifiers = tr.verifiers
	}
	rep, err := Verify(ctx, tx, tr.schema, opts)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return rep
}

// tamper runs sql as the tables' owner with the append-only triggers
// disabled, as someone who owns the table, or a superuser, can.
func (tr *trail) tamper(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	pgtest.Tamper(tb, mustPool(tb), tr.schema, sql, args...)
}

// leafOf returns the leaf index of the log with ID id.
func (tr *trail) leafOf(tb testing.TB, id string) int64 {
	tb.Helper()
	i, _, err := NewTree(mustPool(tb), tr.schema).LeafIndex(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return i
}

// want is a finding a test expects: its kind, leaf and log, and words its
// detail must hold.
type want struct {
	kind   Kind
	leaf   int64
	id     string
	fields []string
	words  string
}

// checkFindings checks that the report holds exactly the findings wanted,
// in any order, and that OK says whether any is a failure.
func checkFindings(tb testing.TB, rep *Report, wants ...want) {
	tb.Helper()
	got := slices.Clone(rep.Findings)
	var missing []want
	for _, w := range wants {
		j := slices.IndexFunc(got, func(f Finding) bool {
			return f.Kind == w.kind && f.Leaf == w.leaf && f.LogID == w.id &&
				(w.fields == nil || slices.Equal(f.Fields, w.fields)) && strings.Contains(f.Detail, w.words)
		})
		if j < 0 {
			missing = append(missing, w)
			continue
		}
		got = slices.Delete(got, j, j+1)
	}
	if len(missing) > 0 || len(got) > 0 {
		var b strings.Builder
		for _, f := range rep.Findings {
			fmt.Fprintf(&b, "\n  %s", f)
		}
		tb.Fatalf("findings:%s\nmissing %+v\nunexpected %v", b.String(), missing, got)
	}
	failure := slices.ContainsFunc(wants, func(w want) bool { return w.kind != Purged })
	if rep.OK() == failure {
		tb.Fatalf("OK() = %v with findings %v", rep.OK(), rep.Findings)
	}
}

// TestVerifyUntampered verifies an untouched trail as a role that may
// only read the two tables.
func TestVerifyUntampered(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	ctx := context.Background()
	reader := tr.schema + "_reader"
	p := mustPool(t)
	if _, err := p.Exec(ctx, "CREATE ROLE "+reader+" NOLOGIN"); err != nil {
		t.Fatalf("creating a role: %v; the test needs DATABASE_URL's role to have CREATEROLE (scripts/with-postgres.sh connects as a superuser)", err)
	}
	t.Cleanup(func() { _, _ = p.Exec(ctx, "DROP OWNED BY "+reader+"; DROP ROLE "+reader) })
	if _, err := p.Exec(ctx, "GRANT USAGE ON SCHEMA "+tr.schema+" TO "+reader+"; GRANT SELECT ON "+tr.schema+".audit_logs, "+tr.schema+".audit_seals TO "+reader); err != nil {
		t.Fatal(err)
	}
	tx, err := p.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+reader); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, tx, tr.schema, Options{Origin: testOrigin, Verifiers: tr.verifiers, Kept: [][]byte{tr.kept.Note}, MaxAge: time.Hour})
	if err != nil {
		t.Fatalf("Verify as a reader: %v", err)
	}
	checkFindings(t, rep)
	if rep.Logs != 300 || rep.Leaves != 300 || rep.Pending != 0 || rep.Latest.Size != 300 {
		t.Fatalf("report: %+v; want 300 logs, all sealed", rep)
	}
	if _, err := NewTree(tx, tr.schema).InclusionProof(ctx, tr.logs[42].ID, 0); err != nil {
		t.Fatalf("InclusionProof as a reader: %v", err)
	}
	var user string
	var write bool
	if err := tx.QueryRow(ctx, "SELECT current_user::text, has_table_privilege($1, 'INSERT, UPDATE, DELETE') OR has_table_privilege($2, 'INSERT, UPDATE, DELETE')",
		tr.schema+".audit_logs", tr.schema+".audit_seals").Scan(&user, &write); err != nil || user != reader || write {
		t.Fatalf("ran as %q (%v), may write: %v; want the reader, read-only", user, err, write)
	}
}

func TestVerifyModifiedActor(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	id := tr.logs[123].ID
	tr.tamper(t, "UPDATE audit_logs SET actor_id = 'mallory' WHERE id = $1", id)
	checkFindings(t, tr.verify(t, Options{}), want{kind: Modified, leaf: tr.leafOf(t, id), id: id, fields: []string{"actor.id"}})

	// Sealing goes on, and the change stays found.
	sealAll(t, tr.sealer, tr.schema)
	tr.tamper(t, "UPDATE audit_logs SET metadata = metadata || '{\"outcome\": \"success\"}', created_at = created_at + interval '1 second' WHERE id = $1", tr.logs[3].ID)
	checkFindings(t, tr.verify(t, Options{}),
		want{kind: Modified, leaf: tr.leafOf(t, id), id: id, fields: []string{"actor.id"}},
		want{kind: Modified, leaf: tr.leafOf(t, tr.logs[3].ID), id: tr.logs[3].ID, fields: []string{"metadata", "created_at"}})
}

func TestVerifyDeletedDenial(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	id := tr.logs[10].ID // makeLogs: every seventh from the fourth is a denial
	if tr.logs[10].Metadata[audit.MetadataOutcome] != audit.OutcomeDenied {
		t.Fatal("log 10 is not a denial")
	}
	leaf := tr.leafOf(t, id)
	tr.tamper(t, "DELETE FROM audit_logs WHERE metadata @> '{\"outcome\": \"denied\"}' AND id = $1", id)
	checkFindings(t, tr.verify(t, Options{}), want{kind: Deleted, leaf: leaf, id: id, words: "its row is gone"})
}

func TestVerifyInsertedForgery(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	insert := "INSERT INTO audit_logs (id, source, action, actor_type, actor_id, created_at) VALUES ($1, 'frontier', 'app.role.granted', 'user', 'u-1', $2)"
	// A forged log dated before the trail's seals, written now: its
	// transaction began after them.
	forged := "forged-0001"
	tr.tamper(t, insert, forged, time.Now().Add(-2*time.Hour))
	checkFindings(t, tr.verify(t, Options{}), want{kind: Backdated, leaf: -1, id: forged, words: "not sealed yet"},
		want{kind: Stale, leaf: -1, words: "1 logs are not sealed"})
	sealAll(t, tr.sealer, tr.schema)
	checkFindings(t, tr.verify(t, Options{}), want{kind: Backdated, leaf: tr.leafOf(t, forged), id: forged, words: "(sealed)"})

	// One that claims an old transaction, to hide among the sealed logs.
	old := "forged-0002"
	tr.tamper(t, strings.Replace(insert, "actor_id, created_at) VALUES ($1, 'frontier', 'app.role.granted', 'user', 'u-1', $2)",
		"actor_id, created_at, xact_id) VALUES ($1, 'frontier', 'app.role.granted', 'user', 'u-1', $2, 3)", 1), old, time.Now())
	checkFindings(t, tr.verify(t, Options{MaxLateness: -1}), want{kind: Inserted, leaf: -1, id: old, words: "not in the tree"})
}

func TestVerifyTruncatedTail(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	ctx := context.Background()
	repo := newRepo(t, tr.schema)
	for _, l := range makeLogs("tail", 20, time.Now()) {
		if err := repo.Create(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	kept := sealAll(t, tr.sealer, tr.schema) // a client kept this one
	if kept.Size != 320 {
		t.Fatalf("kept a tree of %d, want 320", kept.Size)
	}
	// Whoever owns the tables deletes the newest logs, the seals that
	// sealed them, and so their checkpoints.
	tr.tamper(t, "DELETE FROM audit_logs WHERE id LIKE 'tail-%'; DELETE FROM audit_seals WHERE tree_size > 300")
	checkFindings(t, tr.verify(t, Options{Kept: [][]byte{kept.Note}}),
		want{kind: Truncated, leaf: 300, words: "leaves 300 to 319 are gone"})
	// The sealer that signed the tree of 320 signs no shorter one, so the
	// checkpoints stop, and their age shows it.
	if _, err := tr.sealer.Seal(ctx); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a seal after the tail was deleted: got %v, want ErrInconsistent", err)
	}
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	checkFindings(t, tr.verify(t, Options{Now: later}),
		want{kind: Stale, leaf: -1, words: "the sealer has stopped, or the seals after it were deleted"})
	// Every seal deleted: the logs wait to be sealed for too long, and the
	// sealer, or one started with the kept checkpoint, still refuses.
	tr.tamper(t, "DELETE FROM audit_seals")
	checkFindings(t, tr.verify(t, Options{Now: later}),
		want{kind: Stale, leaf: -1, words: "300 logs are not sealed"},
		want{kind: Stale, leaf: -1, words: "there is no valid checkpoint"})
	for _, s := range []*Sealer{tr.sealer, newSealer(t, tr.schema, tr.key, WithTrusted(kept.Note))} {
		if _, err := s.Seal(ctx); !errors.Is(err, ErrInconsistent) {
			t.Fatalf("a seal after every seal was deleted: got %v, want ErrInconsistent", err)
		}
	}
}

func TestVerifyOtherKey(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	ctx := context.Background()
	other, _, _ := newKey(t, testOrigin, 2)
	// Every checkpoint replaced by one signed with another key.
	rows, err := mustPool(t).Query(ctx, "SELECT seq, checkpoint FROM "+newTables(tr.schema).seals)
	if err != nil {
		t.Fatal(err)
	}
	type cp struct {
		Seq  int64
		Note string
	}
	cps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[cp])
	if err != nil {
		t.Fatal(err)
	}
	var wants []want
	for _, c := range cps {
		text, _, _ := cutNote(c.Note)
		msg, err := note.Sign(&note.Note{Text: text}, other.Signer)
		if err != nil {
			t.Fatal(err)
		}
		tr.tamper(t, "UPDATE audit_seals SET checkpoint = $1 WHERE seq = $2", string(msg), c.Seq)
		wants = append(wants, want{kind: UnknownKey, leaf: -1, words: fmt.Sprintf("checkpoint of seal %d ", c.Seq)})
	}
	wants = append(wants, want{kind: Unverified, leaf: -1, words: "nothing in the tree is authenticated"},
		want{kind: Stale, leaf: -1, words: "there is no valid checkpoint"})
	checkFindings(t, tr.verify(t, Options{}), wants...)
	// A kept checkpoint of another key is reported too.
	msg, _ := note.Sign(&note.Note{Text: tr.kept.text()}, other.Signer)
	rep := tr.verify(t, Options{Kept: [][]byte{msg}})
	if !slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.Kind == UnknownKey && strings.Contains(f.Detail, "kept checkpoint 1") }) {
		t.Fatalf("a kept checkpoint of another key: findings %v, want unknown-key", rep.Findings)
	}
}

func TestVerifyReordered(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	a, b := tr.logs[0].ID, tr.logs[299].ID // in different transactions
	leafA, leafB := tr.leafOf(t, a), tr.leafOf(t, b)
	tr.tamper(t, `UPDATE audit_logs SET xact_id = CASE id WHEN $1 THEN (SELECT xact_id FROM audit_logs WHERE id = $2)
		ELSE (SELECT xact_id FROM audit_logs WHERE id = $1) END WHERE id IN ($1, $2)`, a, b)
	checkFindings(t, tr.verify(t, Options{}), want{kind: Reordered, leaf: leafA, id: a, words: "out of order"},
		want{kind: Reordered, leaf: leafB, id: b, words: "out of order"})
}

func TestVerifyAlteredTree(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	// A leaf hash in the tree table changed to match a changed log: the
	// signed root no longer follows.
	var seq int64
	if err := mustPool(t).QueryRow(context.Background(), "SELECT min(seq) FROM "+newTables(tr.schema).seals+" WHERE count > 0 AND seq > 1").Scan(&seq); err != nil {
		t.Fatal(err)
	}
	tr.tamper(t, "UPDATE audit_seals SET hashes = overlay(hashes PLACING '\\x00000000'::bytea FROM 1) WHERE seq = $1", seq)
	rep := tr.verify(t, Options{})
	if rep.OK() || !slices.ContainsFunc(rep.Findings, func(f Finding) bool {
		return f.Kind == TreeAltered && strings.Contains(f.Detail, fmt.Sprintf("signed root of seal %d ", seq))
	}) {
		t.Fatalf("findings %v, want tree-altered at seal %d", rep.Findings, seq)
	}
}

// TestVerifyMissingSeal deletes one seal from the middle of the tree
// table: the verifier reports the seals missing, the tree that no longer
// leads to the signed roots, and the logs that no seal holds.
func TestVerifyMissingSeal(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	var seq, count int64
	if err := mustPool(t).QueryRow(context.Background(), "SELECT seq, count FROM "+newTables(tr.schema).seals+
		" WHERE count > 0 AND seq > 1 ORDER BY seq LIMIT 1").Scan(&seq, &count); err != nil {
		t.Fatal(err)
	}
	tr.tamper(t, "DELETE FROM audit_seals WHERE seq = $1", seq)
	rep := tr.verify(t, Options{})
	var missing, altered, inserted int64
	for _, f := range rep.Findings {
		switch {
		case f.Kind == TreeAltered && strings.Contains(f.Detail, fmt.Sprintf("follows seal %d: seals are missing", seq-1)):
			missing++
		case f.Kind == TreeAltered && strings.Contains(f.Detail, "do not lead to the signed root"):
			altered++
		case f.Kind == Inserted:
			inserted++
		}
	}
	if rep.OK() || missing != 1 || altered != 1 || inserted != count {
		t.Fatalf("findings %v; want the missing seal, the altered tree, and %d logs in no seal", rep.Findings, count)
	}
}

// purge deletes the logs created before cutoff with postgres.Purge, as
// retention does, after lowering the schema's minimum purge age to none
// (the tables' owner may): each call of the purge function writes its own
// purge log, in the same transaction as its DELETE. It returns how many
// logs it deleted.
func (tr *trail) purge(tb testing.TB, cutoff time.Time) int64 {
	tb.Helper()
	ctx := context.Background()
	if _, err := mustPool(tb).Exec(ctx, "UPDATE "+pgx.Identifier{tr.schema, "audit_retention"}.Sanitize()+" SET min_age = interval '0'"); err != nil {
		tb.Fatal(err)
	}
	n, err := postgres.Purge(ctx, mustPool(tb), tr.schema, cutoff)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// forgePurge deletes the logs created before cutoff as the tables' owner,
// with the triggers disabled, and writes a purge log of time at that
// counts count logs: what retention would have done, but with a count of
// its own. It returns how many logs it deleted.
func (tr *trail) forgePurge(tb testing.TB, cutoff time.Time, count int64, at time.Time) int64 {
	tb.Helper()
	ctx := context.Background()
	var n int64
	if err := mustPool(tb).QueryRow(ctx, "SELECT count(*) FROM "+newTables(tr.schema).logs+" WHERE created_at < $1", cutoff).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	tr.tamper(tb, "DELETE FROM audit_logs WHERE created_at < $1", cutoff)
	if _, err := mustPool(tb).Exec(ctx, "INSERT INTO "+newTables(tr.schema).logs+" (id, source, action, actor_type, metadata, created_at) VALUES ($1, 'retention', $2, 'system', $3, $4)",
		fmt.Sprintf("purge-%d", at.UnixNano()), ActionPurged, purgeMetadata(cutoff, count), at); err != nil {
		tb.Fatal(err)
	}
	return n
}

// purgeMetadata is the metadata of a purge log, as JSON.
func purgeMetadata(cutoff time.Time, count int64) string {
	return fmt.Sprintf(`{"cutoff": %q, "count": "%d"}`, cutoff.UTC().Format(purgeCutoffLayout), count)
}

// TestVerifyRetention purges old logs the way retention does, writing a
// purge log in the same transaction: before and after it is sealed, the
// verifier reports the purged logs as removed by retention; a log deleted
// after the cutoff is deleted.
func TestVerifyRetention(t *testing.T) {
	t.Parallel()
	tr := newTrailAt(t, 300, time.Now().Add(-postgres.DefaultPurgeMinAge-72*time.Hour))
	cutoff := tr.logs[100].CreatedAt.Truncate(time.Microsecond) // logs 0 to 99 are older
	if n := tr.purge(t, cutoff); n != 100 {
		t.Fatalf("purged %d logs, want 100", n)
	}
	checkFindings(t, tr.verify(t, Options{}), want{kind: Purged, leaf: 0, words: "100 logs, leaves 0 to 99, removed by retention"})
	sealAll(t, tr.sealer, tr.schema)
	checkFindings(t, tr.verify(t, Options{}), want{kind: Purged, leaf: 0, words: "100 logs, leaves 0 to 99, removed by retention"})

	// One more deleted, after the cutoff: retention does not cover it.
	id := tr.logs[200].ID
	leaf := tr.leafOf(t, id)
	tr.tamper(t, "DELETE FROM audit_logs WHERE id = $1", id)
	checkFindings(t, tr.verify(t, Options{}),
		want{kind: Purged, leaf: 0, words: "100 logs"},
		want{kind: Deleted, leaf: leaf, id: id})
}

// TestVerifyRetentionPurgesPurgeLogs purges twice, the second time past
// the first purge log, as retention does every day once its purge logs
// are old enough: the first purge log is gone, but its sealed leaf record
// still counts what it purged.
func TestVerifyRetentionPurgesPurgeLogs(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Microsecond)
	tr := newTrailAt(t, 300, now.Add(-10*time.Minute))
	opts := Options{MinRetention: -1} // the schema's minimum age is none
	if n := tr.purge(t, tr.logs[100].CreatedAt); n != 100 {
		t.Fatalf("purged %d logs, want 100", n)
	}
	sealAll(t, tr.sealer, tr.schema)
	var first time.Time
	if err := mustPool(t).QueryRow(context.Background(), "SELECT max(created_at) FROM "+newTables(tr.schema).logs+" WHERE action = $1", ActionPurged).Scan(&first); err != nil {
		t.Fatal(err)
	}
	// A checkpoint dates its seal to the second, and a purge log counts
	// from the earlier of its time and its checkpoint's: the next purge,
	// whose cutoff is just after the first purge log, must be sealed in a
	// later second than that cutoff.
	time.Sleep(time.Until(first.Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	if n := tr.purge(t, first.Add(time.Microsecond)); n != 201 {
		t.Fatalf("purged %d logs, want the other 200 and the first purge log", n)
	}
	sealAll(t, tr.sealer, tr.schema)
	checkFindings(t, tr.verify(t, opts), want{kind: Purged, leaf: 0, words: "301 logs, leaves 0 to 300, removed by retention"})
}

// TestVerifyRetentionMiscounted: purge logs must count exactly the sealed
// logs missing under their cutoffs: fewer leave logs deleted, more are a
// purge log that retention did not write.
func TestVerifyRetentionMiscounted(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		count int64
		extra []want
	}{
		{2, nil},
		{5, []want{{kind: BadPurge, leaf: -1, words: "count 5 logs removed, but 3 sealed logs are missing"}}},
	} {
		t.Run(fmt.Sprint(tt.count), func(t *testing.T) {
			t.Parallel()
			tr := newTrailAt(t, 50, time.Now().Add(-postgres.DefaultPurgeMinAge-72*time.Hour))
			if n := tr.forgePurge(t, tr.logs[3].CreatedAt, tt.count, time.Now()); n != 3 {
				t.Fatalf("purged %d logs, want 3", n)
			}
			sealAll(t, tr.sealer, tr.schema)
			wants := tt.extra
			for i := range 3 { // one CreateBatch wrote them: leaf i is log i
				wants = append(wants, want{kind: Deleted, leaf: int64(i), id: tr.logs[i].ID,
					words: fmt.Sprintf("the purge logs count %d logs removed, and 3 such logs are missing", tt.count)})
			}
			checkFindings(t, tr.verify(t, Options{}), wants...)
		})
	}
}

// TestVerifyRetentionOldestFirst deletes one old log, not the oldest, and
// writes a purge log that counts it, through the Repository as any
// service can: retention deletes the oldest first, so a log missing while
// older ones are still there is deleted, and the purge log counts a log
// that is not missing.
func TestVerifyRetentionOldestFirst(t *testing.T) {
	t.Parallel()
	tr := newTrailAt(t, 50, time.Now().Add(-postgres.DefaultPurgeMinAge-72*time.Hour))
	ctx := context.Background()
	purge := &audit.Log{ID: "purge", Source: "retention", Action: ActionPurged, Actor: audit.Actor{Type: audit.ActorTypeSystem},
		Metadata: map[string]string{"cutoff": tr.logs[10].CreatedAt.UTC().Format(purgeCutoffLayout), "count": "1"}, CreatedAt: time.Now()}
	if err := newRepo(t, tr.schema).Create(ctx, purge); err != nil {
		t.Fatal(err)
	}
	sealAll(t, tr.sealer, tr.schema)
	tr.tamper(t, "DELETE FROM audit_logs WHERE id = $1", tr.logs[5].ID)
	checkFindings(t, tr.verify(t, Options{}),
		want{kind: Deleted, leaf: 5, id: tr.logs[5].ID, words: "leaf 0, an older sealed log, is still there"},
		want{kind: BadPurge, leaf: -1, words: "count 1 logs removed, but 0 sealed logs are missing"})
}

// TestVerifyForgedPurge writes, through the Repository as any service
// can, purge logs that claim to have removed everything, and then deletes
// a denial and another log: neither purge log is one retention could
// have written (a cutoff within the minimum retention of its time, and a
// time in the future, taken as the time it was sealed), so both are named,
// and the two logs are deleted.
func TestVerifyForgedPurge(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 40)
	ctx := context.Background()
	repo := newRepo(t, tr.schema)
	for _, l := range []*audit.Log{
		{ID: "forged-purge", Source: "anything", Action: ActionPurged, Actor: audit.Actor{Type: audit.ActorTypeSystem},
			Metadata: map[string]string{"cutoff": "2999-01-01T00:00:00.000000Z", "count": "1000000"}, CreatedAt: time.Now()},
		{ID: "forged-future", Source: "anything", Action: ActionPurged, Actor: audit.Actor{Type: audit.ActorTypeSystem},
			Metadata: map[string]string{"cutoff": "2999-01-01T00:00:00.000000Z", "count": "2"}, CreatedAt: time.Date(2999, 1, 3, 0, 0, 0, 0, time.UTC)},
		{ID: "forged-format", Source: "anything", Action: ActionPurged, Actor: audit.Actor{Type: audit.ActorTypeUser},
			Metadata: map[string]string{"cutoff": "2000-01-01T00:00:00Z", "count": "2"}, CreatedAt: time.Now()},
	} {
		if err := repo.Create(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	sealAll(t, tr.sealer, tr.schema)
	denial := tr.logs[3]
	if denial.Metadata[audit.MetadataOutcome] != audit.OutcomeDenied {
		t.Fatal("log 3 is not a denial")
	}
	tr.tamper(t, "DELETE FROM audit_logs WHERE id = $1 OR id = $2", denial.ID, tr.logs[10].ID)
	checkFindings(t, tr.verify(t, Options{}),
		want{kind: BadPurge, leaf: tr.leafOf(t, "forged-purge"), id: "forged-purge", words: "retention could not have written it"},
		want{kind: BadPurge, leaf: tr.leafOf(t, "forged-future"), id: "forged-future", words: "retention could not have written it"},
		want{kind: BadPurge, leaf: tr.leafOf(t, "forged-format"), id: "forged-format", words: "not in its format"},
		want{kind: Deleted, leaf: 3, id: denial.ID},
		want{kind: Deleted, leaf: 10, id: tr.logs[10].ID})
}

// TestVerifySealsSigned inserts a log backdated by 30 days after the
// seals, as the table's owner: the verifier names it. With the seals'
// bookkeeping changed to hide it (next_xact, which dates when a
// transaction committed), the seals no longer match what their
// checkpoints signed, and the sealer refuses to go on from them.
func TestVerifySealsSigned(t *testing.T) {
	t.Parallel()
	for _, tamperSeals := range []bool{false, true} {
		t.Run(fmt.Sprint("tamper seals ", tamperSeals), func(t *testing.T) {
			t.Parallel()
			tr := newTrail(t, 40)
			if tamperSeals {
				tr.tamper(t, "UPDATE audit_seals SET next_xact = 4611686018427387904")
			}
			tr.tamper(t, "INSERT INTO audit_logs (id, source, action, actor_type, actor_id, created_at) VALUES ('backdated', 'frontier', 'app.approval.granted', 'user', 'u-1', now() - interval '30 days')")
			if !tamperSeals {
				sealAll(t, tr.sealer, tr.schema)
				checkFindings(t, tr.verify(t, Options{}), want{kind: Backdated, leaf: tr.leafOf(t, "backdated"), id: "backdated", words: "stored more than"})
				return
			}
			if _, err := newSealer(t, tr.schema, tr.key).Seal(context.Background()); !errors.Is(err, ErrInconsistent) {
				t.Fatalf("a seal after its seals' bookkeeping changed: got %v, want ErrInconsistent", err)
			}
			rep := tr.verify(t, Options{})
			var altered int
			for _, f := range rep.Findings {
				if f.Kind == TreeAltered && strings.Contains(f.Detail, "not what its checkpoint signed") {
					altered++
				}
			}
			if rep.OK() || altered == 0 {
				t.Fatalf("findings %v, want the seals named as altered", rep.Findings)
			}
		})
	}
}

// TestVerifyUndecodableRows changes sealed logs so that they no longer
// decode as logs (metadata that is not all strings, a created_at of
// infinity), and writes one such row unsealed: the verifier reports each,
// by ID, leaf and field, and goes on.
func TestVerifyUndecodableRows(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 20)
	tr.tamper(t, `UPDATE audit_logs SET metadata = '{"outcome": 1}' WHERE id = $1`, tr.logs[5].ID)
	tr.tamper(t, `UPDATE audit_logs SET created_at = 'infinity' WHERE id = $1`, tr.logs[6].ID)
	tr.tamper(t, `INSERT INTO audit_logs (id, source, action, actor_type, metadata, created_at) VALUES ('raw', 's', 'a', 'user', '{"n": true}', now())`)
	checkFindings(t, tr.verify(t, Options{}),
		want{kind: Modified, leaf: 5, id: tr.logs[5].ID, fields: []string{"metadata"}, words: "not a valid log: metadata"},
		want{kind: Modified, leaf: 6, id: tr.logs[6].ID, fields: []string{"created_at"}, words: "not a valid log: created_at: infinity"},
		want{kind: Invalid, leaf: -1, id: "raw", words: "not sealed yet, and not a valid log: metadata"})
}

// TestVerifyLarge seals 100,000 logs and verifies them untouched; with
// AUDIT_PG_LARGE=1, a million. With AUDIT_PG_KEEP=dir, the trail stays
// (see keepSchema).
func TestVerifyLarge(t *testing.T) {
	t.Parallel()
	n := 100_000
	if os.Getenv("AUDIT_PG_LARGE") != "" {
		n = 1_000_000
	}
	tr := newTrail(t, n)
	keepSchema(t, tr.schema, tr.vkey)
	start := time.Now()
	rep := tr.verify(t, Options{Kept: [][]byte{tr.kept.Note}})
	t.Logf("verified %d logs in %v (%.0f logs/s)", rep.Logs, time.Since(start), float64(rep.Logs)/time.Since(start).Seconds())
	checkFindings(t, rep)
	if rep.Logs != int64(n) || rep.Leaves != int64(n) {
		t.Fatalf("report: %+v; want %d logs, all sealed", rep, n)
	}
}

// TestVerifyForgedSizes gives seals sizes beyond reason: the verifier
// reports them, and neither allocates a tree that size nor panics.
func TestVerifyForgedSizes(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 50)
	tr.tamper(t, "ALTER TABLE audit_seals DROP CONSTRAINT audit_seals_count; UPDATE audit_seals SET tree_size = tree_size + 1000000000000 WHERE seq = 2; UPDATE audit_seals SET count = 1000000 WHERE seq = 3")
	rep := tr.verify(t, Options{})
	if rep.OK() || !slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.Kind == TreeAltered && strings.Contains(f.Detail, "seal 2") }) {
		t.Fatalf("findings %v, want tree-altered at seal 2", rep.Findings)
	}
}

// TestVerifyBoundsMissingSeals deletes two seals of the tree table: the
// verifier holds places for the missing seals' leaves up to a bound over
// all of them, not per seal, and reports the seals beyond it rather than
// allocate for them.
func TestVerifyBoundsMissingSeals(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 50)
	ctx := context.Background()
	rows, err := mustPool(t).Query(ctx, "SELECT seq, count FROM "+newTables(tr.schema).seals+" WHERE count > 0 ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	type sealCount struct{ Seq, Count int64 }
	seals, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sealCount])
	if err != nil {
		t.Fatal(err)
	}
	if len(seals) < 4 {
		t.Fatalf("%d seals of logs, want at least 4", len(seals))
	}
	tr.tamper(t, "DELETE FROM audit_seals WHERE seq IN ($1, $2)", seals[1].Seq, seals[3].Seq)
	// Room for the first gap, not for both.
	gapCap := seals[1].Count + seals[3].Count - 1
	tx, err := mustPool(t).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	rep, err := verify(ctx, tx, tr.schema, Options{Verifiers: tr.verifiers}, gapCap)
	if err != nil {
		t.Fatal(err)
	}
	placed := seals[0].Count + seals[1].Count + seals[2].Count
	if rep.OK() || rep.Leaves != placed || !slices.ContainsFunc(rep.Findings, func(f Finding) bool {
		return f.Kind == TreeAltered && strings.Contains(f.Detail, "beyond what missing seals can hold")
	}) {
		t.Fatalf("a tree of %d leaves, findings %v; want %d, up to the second gap, and the seals after it named", rep.Leaves, rep.Findings, placed)
	}
}

// TestVerifyProgress runs Verify with a Progress writer that gets a line
// at every step: one line per seal read, telling the seals and leaves read
// before it, and one per log checked, each line well formed and its counts
// in order; the report is the one Verify returns without Progress.
func TestVerifyProgress(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 40)
	id := tr.logs[7].ID
	tr.tamper(t, "UPDATE audit_logs SET action = 'app.user.deleted' WHERE id = $1", id)
	at := time.Now()
	now := func() time.Time { return at }
	quiet := tr.verify(t, Options{Now: now})
	checkFindings(t, quiet, want{kind: Modified, leaf: tr.leafOf(t, id), id: id, fields: []string{"action"}})

	var out strings.Builder
	rep := tr.verify(t, Options{Now: now, Progress: &out, progressEvery: -1})
	if !reflect.DeepEqual(rep, quiet) {
		t.Errorf("with Progress, the report is\n%+v\nwant, as without,\n%+v", rep, quiet)
	}
	rows, err := mustPool(t).Query(context.Background(), "SELECT tree_size FROM "+newTables(tr.schema).seals+" ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range sizes {
		before := int64(0)
		if i > 0 {
			before = sizes[i-1]
		}
		want = append(want, fmt.Sprintf("auditverify: read %d seals, %d leaves", i, before))
	}
	for n := range rep.Logs {
		want = append(want, fmt.Sprintf("auditverify: checked %d logs of a tree of %d", n+1, rep.Leaves))
	}
	if len(sizes) < 2 || rep.Logs != 40 || rep.Leaves != 40 {
		t.Fatalf("%d seals, %d logs, %d leaves: want several seals of the 40 logs", len(sizes), rep.Logs, rep.Leaves)
	}
	if got := out.String(); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("progress:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
