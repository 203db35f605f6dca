// Command server runs the projects API of package server, a Connect-RPC
// service that serves Connect, gRPC and gRPC-Web over HTTP/1.1 and
// unencrypted HTTP/2, and prints the demo tokens and how to call it:
//
//	go run ./cmd/server [-addr host:port] [-trusted-proxies cidrs] [-forwarded-header name] [-schema name]
//
// The audit trail is kept in memory, or in PostgreSQL when DATABASE_URL is
// set: the repository of examples/postgres, in the audit_logs table of
// -schema (default: the search_path's first), migrated at start-up. Each
// flag but -schema defaults to an environment variable: ADDR
// (127.0.0.1:8080), TRUSTED_PROXIES (none) and FORWARDED_HEADER
// (X-Forwarded-For); they are those of examples/httpserver
// (httpserver.Flags).
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

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/server"
	httpserver "github.com/raystack/salt/examples/httpserver/server"
	"github.com/raystack/salt/examples/postgres"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// run is main with its surroundings passed in, for tests: it serves until
// ctx ends. ready, if not nil, learns the server's URL once it is
// listening and its start-up message is written to out.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(string)) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(out)
	var flags httpserver.Flags
	flags.Define(fs, getenv)
	schema := fs.String("schema", "", "PostgreSQL `schema` of the audit_logs table, with DATABASE_URL (default: the search_path's first)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	meta, err := flags.Metadata()
	if err != nil {
		return err
	}

	var repo audit.Repository = audit.NewMemoryRepository()
	where := "in memory"
	if url := getenv("DATABASE_URL"); url != "" {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return fmt.Errorf("connecting to DATABASE_URL: %w", err)
		}
		defer pool.Close()
		if err := postgres.Migrate(ctx, pool, *schema); err != nil {
			return fmt.Errorf("migrating: %w", err)
		}
		pg := postgres.NewRepository(pool, postgres.WithSchema(*schema))
		defer pg.Close() // writes what is queued before the pool closes
		repo, where = pg, "in PostgreSQL"
	}

	srv, err := server.New(server.Config{
		Repository: repo,
		Tokens:     httpserver.DemoTokens(),
		Metadata:   meta,
	})
	if err != nil {
		return err
	}
	return server.Run(ctx, flags.Addr, srv, func(baseURL string) {
		fmt.Fprintf(out, "projects-api (Connect, gRPC, gRPC-Web) listening on %s (audit trail %s; Ctrl-C stops)\n\n", baseURL, where)
		server.PrintDemoUsage(out, baseURL)
		if ready != nil {
			ready(baseURL)
		}
	})
}
