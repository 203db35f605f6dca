package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
	"github.com/raystack/salt/examples/postgres/integrity"
	"github.com/raystack/salt/examples/postgres/internal/pgtest"
)

const origin = "example.com/audit/cmd-test"

// TestVerifyCommand seals a trail in a schema of its own, and runs the
// command on it: untampered, with one log changed, with its tail deleted
// against a kept checkpoint, offline on an inclusion proof, and without a
// key.
func TestVerifyCommand(t *testing.T) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		t.Fatal("DATABASE_URL is not set: run the tests through scripts/with-postgres.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	schema := fmt.Sprintf("auditverify_test_%d", time.Now().UnixNano())
	if err := postgres.Migrate(ctx, pool, schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping %s: %v", schema, err)
		}
	})
	skey, vkey, err := note.GenerateKey(nil, origin)
	if err != nil {
		t.Fatal(err)
	}
	key, err := integrity.NewKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	repo := postgres.NewRepository(pool, postgres.WithSchema(schema))
	defer repo.Close()
	logger := audit.NewLogger(repo, audit.WithSource("frontier"))
	defer logger.Close(ctx)
	actx := audit.SetActor(ctx, audit.Actor{ID: "u-1", Type: audit.ActorTypeUser})
	for i := range 40 {
		if err := logger.Log(actx, "app.doc.read", audit.Target{ID: fmt.Sprint(i), Type: "doc"}); err != nil {
			t.Fatal(err)
		}
	}
	sealer, err := integrity.NewSealer(pool, origin, []integrity.Key{key}, integrity.WithSchema(schema), integrity.WithMaxLeaves(15))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keptFile := filepath.Join(dir, "kept.ckpt")
	var kept integrity.Checkpoint
	for kept.Size < 40 {
		if kept, err = sealer.Seal(ctx); err != nil {
			t.Fatal(err)
		}
		if err := (integrity.FileSink{Path: keptFile}).Publish(ctx, kept, integrity.NewTree(pool, schema)); err != nil {
			t.Fatal(err)
		}
	}
	env := func(k string) string { return map[string]string{"DATABASE_URL": url}[k] }
	verify := func(args ...string) (int, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(ctx, args, env, &out, &errOut)
		t.Logf("auditverify %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		return code, out.String() + errOut.String()
	}
	base := []string{"-schema", schema, "-key", vkey, "-origin", origin}

	if code, out := verify(append(base, "-kept", keptFile)...); code != exitOK || !strings.HasPrefix(out, fmt.Sprintf("ok: %q: 40 logs, 40 leaves", origin)) {
		t.Fatalf("untampered: exit %d, output %q; want 0 and ok", code, out)
	}
	// Without -origin, the keys' name is the origin, and the output says so.
	if code, out := verify("-schema", schema, "-key", vkey); code != exitOK || !strings.HasPrefix(out, fmt.Sprintf("ok: %q:", origin)) {
		t.Fatalf("without -origin: exit %d, output %q; want 0 and the origin", code, out)
	}
	_, otherKey, _ := note.GenerateKey(nil, "example.com/audit/other")
	if code, out := verify("-schema", schema, "-key", vkey, "-key", otherKey); code != exitError || !strings.Contains(out, "-origin") {
		t.Fatalf("keys of two names and no -origin: exit %d, output %q; want 2, asking for -origin", code, out)
	}

	// Offline: an inclusion proof as JSON, and the same with the log changed.
	tree := integrity.NewTree(pool, schema)
	var id string
	if err := pool.QueryRow(ctx, "SELECT id FROM "+schema+".audit_logs ORDER BY id OFFSET 17 LIMIT 1").Scan(&id); err != nil {
		t.Fatal(err)
	}
	p, err := tree.InclusionProof(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	proofFile := filepath.Join(dir, "proof.json")
	writeJSON(t, proofFile, p)
	if code, out := verify("-key", vkey, "-proof", proofFile); code != exitOK || !strings.Contains(out, "is leaf 17 of") {
		t.Fatalf("offline proof: exit %d, output %q; want 0, leaf 17", code, out)
	}
	p.Log.Target.ID = "another"
	writeJSON(t, proofFile, p)
	if code, out := verify("-key", vkey, "-proof", proofFile); code != exitFindings || !strings.Contains(out, "FAIL") {
		t.Fatalf("offline proof of a changed log: exit %d, output %q; want 1", code, out)
	}

	// One log's actor changed by the table's owner.
	tamper(t, pool, schema, "UPDATE audit_logs SET actor_id = 'mallory' WHERE id = $1", id)
	code, out := verify(base...)
	if want := fmt.Sprintf("modified leaf 17 log %q: actor.id", id); code != exitFindings || !strings.Contains(out, want) {
		t.Fatalf("changed actor: exit %d, output %q; want 1 and %q", code, out, want)
	}
	// The newest logs deleted, with their seals and checkpoints: the tree
	// is cut back to its last seal of at most 30 logs.
	var cut int
	if err := pool.QueryRow(ctx, "SELECT max(tree_size) FROM "+schema+".audit_seals WHERE tree_size <= 30").Scan(&cut); err != nil {
		t.Fatal(err)
	}
	tamper(t, pool, schema, fmt.Sprintf("DELETE FROM audit_seals WHERE tree_size > %d; DELETE FROM audit_logs WHERE id IN (SELECT id FROM audit_logs ORDER BY id OFFSET %d)", cut, cut))
	want := fmt.Sprintf("truncated leaf %d: the tree has %d leaves", cut, cut)
	if code, out := verify(append(base, "-kept", keptFile)...); code != exitFindings || !strings.Contains(out, want) {
		t.Fatalf("truncated tail: exit %d, output %q; want 1 and %q", code, out, want)
	}
	if code, out := verify("-schema", schema); code != exitError || !strings.Contains(out, "no verifier key") {
		t.Fatalf("no key: exit %d, output %q; want 2", code, out)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tamper runs sql with the append-only triggers disabled, as the tables'
// owner can.
func tamper(t *testing.T, pool *pgxpool.Pool, schema, sql string, args ...any) {
	t.Helper()
	pgtest.Tamper(t, pool, schema, sql, args...)
}
