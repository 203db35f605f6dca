package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
)

// The safe retry of a log whose store may or may not have happened: the
// same log, with the ID the first Record gave it. An error wrapping
// audit.ErrAlreadyExists then means that an earlier attempt stored it.
func Example_safeRetry() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // run through scripts/with-postgres.sh
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	schema := fmt.Sprintf("audit_example_retry_%d", os.Getpid())
	defer func() { _, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE") }()
	if err := postgres.Migrate(ctx, pool, schema); err != nil {
		fmt.Println(err)
		return
	}
	repo := postgres.NewRepository(pool, postgres.WithSchema(schema))
	defer func() { _ = repo.Close() }()
	logger := audit.NewLogger(repo, audit.WithSource("frontier"))
	defer func() { _ = logger.Close(ctx) }()

	l := audit.Log{
		Action: "app.project.deleted",
		Actor:  audit.Actor{ID: "u-1", Type: audit.ActorTypeUser},
		Target: audit.Target{ID: "p-1", Type: "project"},
	}
	// A first attempt whose answer was lost: the server stored the log, and
	// the connection broke before it could say so.
	_ = logger.Record(ctx, &l) // fills l.ID, which the retries keep
	err = fmt.Errorf("postgres audit: create %q: %w: connection reset by peer", l.ID, audit.ErrMaybeStored)

	for try := 0; try < 3 && errors.Is(err, audit.ErrMaybeStored); try++ {
		time.Sleep(10 * time.Millisecond)
		if err = logger.Record(ctx, &l); errors.Is(err, audit.ErrAlreadyExists) {
			fmt.Println("stored by an earlier attempt")
			err = nil
		}
	}
	fmt.Println("error:", err)
	// Output:
	// stored by an earlier attempt
	// error: <nil>
}
