// Command httpserver runs the projects API of examples/httpserver with its
// audit trail in PostgreSQL: the same service, with the Repository a
// production deployment uses.
//
//	DATABASE_URL=postgres://... go run ./cmd/httpserver [-addr host:port]
//
// It applies the migration at start-up, as a service does, and writes
// through the group-commit Repository. ../../scripts/with-postgres.sh
// starts a throwaway server for trying it:
//
//	../../scripts/with-postgres.sh go run ./cmd/httpserver
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/raystack/salt/examples/httpserver/server"
	"github.com/raystack/salt/examples/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpserver:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, if not nil, learns the server's URL.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(string)) error {
	fs := flag.NewFlagSet("httpserver", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "127.0.0.1:8080", "`address` to listen on")
	schema := fs.String("schema", "", "PostgreSQL `schema` of the audit_logs table (default: the search_path's first)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is not set; run it through scripts/with-postgres.sh or point it at a server")
	}

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, *schema); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	repo := postgres.NewRepository(pool, postgres.WithSchema(*schema))
	defer repo.Close() // writes what is queued before the pool closes

	srv, err := server.New(server.Config{Repository: repo, Tokens: server.DemoTokens()})
	if err != nil {
		return err
	}
	return server.Run(ctx, *addr, srv, func(baseURL string) {
		fmt.Fprintf(out, "projects-api listening on %s (audit trail in PostgreSQL; Ctrl-C stops)\n\n", baseURL)
		server.PrintDemoUsage(out, baseURL)
		if ready != nil {
			ready(baseURL)
		}
	})
}
