package integrity

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
	"github.com/raystack/salt/examples/postgres/internal/pgtest"
)

// The tests run against the PostgreSQL server of DATABASE_URL, each in a
// schema of its own. Without DATABASE_URL they fail: run them through
// scripts/with-postgres.sh, which starts a throwaway server.

var (
	schemaN atomic.Int64
	keptMu  sync.Mutex
	kept    = map[string]bool{} // schemas that keepSchema keeps
)

func TestMain(m *testing.M) {
	if os.Getenv(sealerProcessEnv) != "" {
		os.Exit(runSealerProcess())
	}
	if os.Getenv(restoreEnv) != "" {
		os.Exit(runRestoreProcess())
	}
	code := m.Run()
	printBars()
	pgtest.Close()
	os.Exit(code)
}

// mustPool returns the pool shared by the tests, connected to DATABASE_URL.
func mustPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return pgtest.Pool(tb)
}

// newSchema returns a new migrated schema, dropped at the end of the test.
func newSchema(tb testing.TB) string {
	tb.Helper()
	p := mustPool(tb)
	schema := fmt.Sprintf("audit_seal_%d_%d", os.Getpid(), schemaN.Add(1))
	ctx := context.Background()
	if err := postgres.Migrate(ctx, p, schema); err != nil {
		tb.Fatalf("Migrate(%q): %v", schema, err)
	}
	tb.Cleanup(func() {
		keptMu.Lock()
		keep := kept[schema]
		keptMu.Unlock()
		if keep {
			return
		}
		if _, err := p.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return schema
}

// keepSchema keeps schema after the test, if AUDIT_PG_KEEP names a
// directory, and writes there its name and the verifier key vkey (files
// schema and vkey), for auditverify to be measured on it.
func keepSchema(tb testing.TB, schema, vkey string) {
	tb.Helper()
	dir := os.Getenv("AUDIT_PG_KEEP")
	if dir == "" {
		return
	}
	for name, v := range map[string]string{"schema": schema, "vkey": vkey} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	keptMu.Lock()
	kept[schema] = true
	keptMu.Unlock()
}

// newRepo returns a Repository on schema, closed at the end of the test.
func newRepo(tb testing.TB, schema string) *postgres.Repository {
	tb.Helper()
	r := postgres.NewRepository(mustPool(tb), postgres.WithSchema(schema))
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

const testOrigin = "example.com/audit/test"

// newKey returns a key made from seed, named name, its verifiers and its
// verifier key.
func newKey(tb testing.TB, name string, seed uint64) (Key, note.Verifiers, string) {
	tb.Helper()
	k, vkey, err := seededKey(name, seed)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := Verifiers(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	return k, v, vkey
}

// seededKey returns the key made from seed, named name, and its verifier
// key: the same in every process.
func seededKey(name string, seed uint64) (Key, string, error) {
	skey, vkey, err := note.GenerateKey(seededReader{rand.NewChaCha8(sha256.Sum256(fmt.Appendf(nil, "%d", seed)))}, name)
	if err != nil {
		return Key{}, "", err
	}
	k, err := NewKey(skey)
	return k, vkey, err
}

type seededReader struct{ r *rand.ChaCha8 }

func (s seededReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// newSealer returns a Sealer of schema signing with k.
func newSealer(tb testing.TB, schema string, k Key, opts ...SealerOption) *Sealer {
	tb.Helper()
	sl, err := NewSealer(mustPool(tb), testOrigin, []Key{k}, append([]SealerOption{WithSchema(schema)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return sl
}

var testTime = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// makeLogs returns n valid logs with IDs prefix-0000, prefix-0001, ...,
// one second apart from start.
func makeLogs(prefix string, n int, start time.Time) []*audit.Log {
	out := make([]*audit.Log, n)
	for i := range out {
		outcome := audit.OutcomeSuccess
		if i%7 == 3 {
			outcome = audit.OutcomeDenied
		}
		out[i] = &audit.Log{
			ID:     fmt.Sprintf("%s-%06d", prefix, i),
			OrgID:  fmt.Sprintf("org-%d", i%5),
			Source: "frontier", Action: "app.user.updated",
			Actor:  audit.Actor{ID: fmt.Sprintf("u-%d", i%11), Type: audit.ActorTypeUser, Name: "Ada"},
			Target: audit.Target{ID: fmt.Sprintf("t-%d", i), Type: "user", Name: "Grace — 日本"},
			Metadata: map[string]string{
				audit.MetadataRequestID: fmt.Sprintf("req-%d", i),
				audit.MetadataOutcome:   outcome,
			},
			CreatedAt: start.Add(time.Duration(i) * time.Second),
		}
	}
	return out
}

// sealAll seals until every committed log is sealed, and returns the last
// checkpoint. Transactions of other tests on the same server can hold the
// horizon back for a moment; it gives up after a minute.
func sealAll(tb testing.TB, s *Sealer, schema string) Checkpoint {
	tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	t := newTables(schema)
	for {
		cp, err := s.Seal(ctx)
		if err != nil {
			tb.Fatalf("Seal: %v", err)
		}
		var done bool
		if err := mustPool(tb).QueryRow(ctx, "SELECT complete AND NOT EXISTS (SELECT 1 FROM "+t.logs+
			" WHERE xact_id >= horizon OR xact_id IS NULL AND last_xact > 0) FROM "+t.seals+" ORDER BY seq DESC LIMIT 1").Scan(&done); err != nil {
			tb.Fatal(err)
		}
		if done {
			return cp
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after a minute of sealing, %d logs are sealed and some are not", cp.Size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
