package integrity

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/raystack/salt/audit"
)

// trail is a sealed trail in a schema of its own, for the tests to
// tamper with.
type trail struct {
	schema    string
	signer    note.Signer
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
	ctx := context.Background()
	tr := &trail{schema: newSchema(tb)}
	tr.signer, tr.verifiers, tr.vkey = newKey(tb, testOrigin, 1)
	repo := newRepo(tb, tr.schema)
	tr.logs = makeLogs("log", n, time.Now().Add(-time.Duration(n)*time.Second))
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
	tr.sealer = newSealer(tb, tr.schema, tr.signer, WithMaxLeaves(max(n/4, 1)))
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
	ctx := context.Background()
	tx, err := mustPool(tb).Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, q := range []string{
		"SET LOCAL search_path TO " + pgx.Identifier{tr.schema}.Sanitize(),
		"ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only",
		"ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_append_only",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	for _, q := range []string{
		"ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only",
		"ALTER TABLE audit_seals ENABLE TRIGGER audit_seals_append_only",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
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
	checkFindings(t, tr.verify(t, Options{}), want{kind: Backdated, leaf: -1, id: forged, words: "not sealed yet"})
	sealAll(t, tr.sealer, tr.schema)
	checkFindings(t, tr.verify(t, Options{}), want{kind: Backdated, leaf: tr.leafOf(t, forged), id: forged, words: "sealed"})

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
	// Without a kept checkpoint, the age of the newest one shows it.
	checkFindings(t, tr.verify(t, Options{MaxAge: time.Minute, Now: func() time.Time { return time.Now().Add(time.Hour) }}),
		want{kind: Stale, leaf: -1, words: "may have been deleted"})
	// Every seal deleted: the logs wait to be sealed for too long.
	tr.tamper(t, "DELETE FROM audit_seals")
	checkFindings(t, tr.verify(t, Options{MaxAge: time.Minute, Now: func() time.Time { return time.Now().Add(time.Hour) }}),
		want{kind: Stale, leaf: -1, words: "300 logs are not sealed"},
		want{kind: Stale, leaf: -1, words: "there is no valid checkpoint"})
	// A client that kept an older checkpoint sees the tree grow past it,
	// consistently, once sealing goes on.
	sealAll(t, tr.sealer, tr.schema)
	checkFindings(t, tr.verify(t, Options{Kept: [][]byte{tr.kept.Note}}))
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
		msg, err := note.Sign(&note.Note{Text: text}, other)
		if err != nil {
			t.Fatal(err)
		}
		tr.tamper(t, "UPDATE audit_seals SET checkpoint = $1 WHERE seq = $2", string(msg), c.Seq)
		wants = append(wants, want{kind: UnknownKey, leaf: -1, words: fmt.Sprintf("checkpoint of seal %d ", c.Seq)})
	}
	wants = append(wants, want{kind: Unverified, leaf: -1, words: "nothing in the tree is authenticated"})
	checkFindings(t, tr.verify(t, Options{}), wants...)
	// A kept checkpoint of another key is reported too.
	msg, _ := note.Sign(&note.Note{Text: tr.kept.text()}, other)
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

// TestVerifyRetention purges old logs the way retention does, writing a
// purge log in the same transaction, and deletes one more: the verifier
// reports the purged logs as removed by retention, and the other as
// deleted.
func TestVerifyRetention(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 300)
	ctx := context.Background()
	cutoff := tr.logs[100].CreatedAt.UTC().Truncate(time.Microsecond) // logs 0 to 99 are older
	purge := func(count int64) {
		tx, err := mustPool(t).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		var n int64
		if err := tx.QueryRow(ctx, "SELECT "+pgx.Identifier{tr.schema, "audit_logs_purge"}.Sanitize()+"($1, NULL)", cutoff).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if count < 0 {
			count = n
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+newTables(tr.schema).logs+" (id, source, action, actor_type, metadata, created_at) VALUES ($1, 'retention', 'audit.logs.purged', 'system', $2, now())",
			fmt.Sprintf("purge-%d", n), fmt.Sprintf(`{"cutoff": %q, "count": "%d"}`, cutoff.Format("2006-01-02T15:04:05.000000Z"), count)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	purge(-1)
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

// TestVerifyRetentionMiscounted: a purge log that counts fewer logs than
// are missing before its cutoff does not cover them.
func TestVerifyRetentionMiscounted(t *testing.T) {
	t.Parallel()
	tr := newTrail(t, 50)
	ctx := context.Background()
	cutoff := tr.logs[3].CreatedAt.UTC().Truncate(time.Microsecond)
	tx, err := mustPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT "+pgx.Identifier{tr.schema, "audit_logs_purge"}.Sanitize()+"($1, NULL)", cutoff); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+newTables(tr.schema).logs+" (id, source, action, actor_type, metadata, created_at) VALUES ('purge', 'retention', 'audit.logs.purged', 'system', $1, now())",
		fmt.Sprintf(`{"cutoff": %q, "count": "2"}`, cutoff.Format("2006-01-02T15:04:05.000000Z"))); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	sealAll(t, tr.sealer, tr.schema)
	var wants []want
	// One CreateBatch wrote them: leaf i is log i.
	for i := range 3 {
		wants = append(wants, want{kind: Deleted, leaf: int64(i), id: tr.logs[i].ID, words: "the purge logs count 2 of the 3"})
	}
	checkFindings(t, tr.verify(t, Options{}), wants...)
}

// TestVerifyLarge seals 100,000 logs and verifies them untouched; with
// AUDIT_PG_LARGE=1, a million.
func TestVerifyLarge(t *testing.T) {
	t.Parallel()
	n := 100_000
	if os.Getenv("AUDIT_PG_LARGE") != "" {
		n = 1_000_000
	}
	tr := newTrail(t, n)
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
