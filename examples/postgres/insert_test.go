package postgres

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/raystack/salt/audit"
)

// TestInsertCheckedDuplicateKeepsConnection checks that a lone log whose
// ID is stored, written with a plain INSERT (the path of tables under
// row-level security or with INSERT rules), fails with ErrAlreadyExists
// and leaves its connection usable: the failed transaction is rolled back
// before the connection goes back to the pool, which would otherwise close
// it.
func TestInsertCheckedDuplicateKeepsConnection(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	pool, err := newPool(os.Getenv("DATABASE_URL"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	r := NewRepository(pool, WithSchema(schema))
	defer func() { _ = r.Close() }()
	ctx := context.Background()
	l := makeLog("stored")
	if err := r.Create(ctx, &l); err != nil {
		t.Fatal(err)
	}
	pid := func() (n int32) {
		t.Helper()
		if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := pid()
	reqs := takenRequests(t, []audit.Log{l})
	if err := r.insertChecked(ctx, reqs); err != nil {
		t.Fatalf("insertChecked: %v", err)
	}
	if err := <-reqs[0].done; !errors.Is(err, audit.ErrAlreadyExists) {
		t.Errorf("got %v, want ErrAlreadyExists", err)
	}
	if after := pid(); after != before {
		t.Errorf("the pool's one connection was backend %d, then %d: the connection was closed", before, after)
	}
}
