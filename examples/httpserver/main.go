// Command httpserver runs the projects API of package server with its
// audit trail kept in memory, and prints the demo tokens and how to call
// it:
//
//	go run ./examples/httpserver [-addr host:port] [-trusted-proxies cidrs] [-forwarded-header name]
//
// Each flag defaults to an environment variable: ADDR (127.0.0.1:8080),
// TRUSTED_PROXIES (none) and FORWARDED_HEADER (X-Forwarded-For).
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

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/httpserver/server"
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

// run is main with its surroundings passed in, for tests: it serves until
// ctx ends. ready, if not nil, learns the server's URL once it is
// listening and its start-up message is written to out.
func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer, ready func(string)) error {
	fs := flag.NewFlagSet("httpserver", flag.ContinueOnError)
	fs.SetOutput(out)
	var flags server.Flags
	flags.Define(fs, getenv)
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

	srv, err := server.New(server.Config{
		Repository:      audit.NewMemoryRepository(),
		Tokens:          server.DemoTokens(),
		TrustedProxies:  meta.TrustedProxies,
		ForwardedHeader: meta.ForwardedHeader,
	})
	if err != nil {
		return err
	}
	if getenv("DATABASE_URL") != "" {
		fmt.Fprintln(out, "Note: DATABASE_URL is set, but this server keeps its audit trail in memory;")
		fmt.Fprintln(out, "for the PostgreSQL-backed server: cd examples/postgres && go run ./cmd/httpserver")
	}
	return server.Run(ctx, flags.Addr, srv, func(baseURL string) {
		fmt.Fprintf(out, "projects-api listening on %s (audit trail in memory; Ctrl-C stops)\n\n", baseURL)
		server.PrintDemoUsage(out, baseURL)
		if ready != nil {
			ready(baseURL)
		}
	})
}
