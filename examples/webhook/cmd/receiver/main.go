// Command receiver is a webhook receiver for audit logs: it verifies each
// webhook, drops duplicates, and writes each new log to standard output as
// one line of JSON.
//
// Usage:
//
//	WEBHOOK_SECRETS=whsec_... go run ./cmd/receiver -addr 127.0.0.1:8080
//
// WEBHOOK_SECRETS holds the secrets to accept, separated by spaces (two
// while a secret is being rotated). Without it, the receiver makes a new
// secret and prints it, to be given to the sender.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/webhook"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	secrets := strings.Fields(os.Getenv("WEBHOOK_SECRETS"))
	if len(secrets) == 0 {
		s := webhook.NewSecret()
		secrets = []string{s}
		fmt.Fprintf(os.Stderr, "WEBHOOK_SECRETS is not set; accepting webhooks signed with the new secret\n%s\n", s)
	}

	h, err := newHandler(secrets, os.Stdout)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	slog.Info("receiving webhooks", "url", "http://"+addr+"/webhooks/audit")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// newHandler returns the receiver's routes: POST /webhooks/audit verifies
// each webhook and writes each new log to out as a line of JSON.
func newHandler(secrets []string, out io.Writer) (http.Handler, error) {
	// The logs are stored by ID, so a duplicate that gets past the
	// Receiver's memory is still recognized.
	repo := audit.NewMemoryRepository()
	lines := audit.NewJSONLinesPublisher(out)
	rc, err := webhook.NewReceiver(secrets, func(ctx context.Context, e webhook.Event) error {
		err := repo.Create(ctx, &e.Data)
		if errors.Is(err, audit.ErrAlreadyExists) {
			return nil
		}
		if err != nil {
			return err
		}
		return lines.Publish(ctx, e.Data)
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/audit", rc)
	return mux, nil
}
