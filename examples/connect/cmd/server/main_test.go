package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
)

// serve runs the command with args and env until the test ends, and
// returns its base URL and what it printed.
func serve(t *testing.T, args []string, env map[string]string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	baseURL := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return env[k] }, out, func(u string) { baseURL <- u })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("got %v, want nil after a graceful stop", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("run did not stop")
		}
	})
	select {
	case u := <-baseURL:
		return u, out
	case err := <-done:
		t.Fatalf("run stopped before serving: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatal("run did not start serving")
	}
	return "", nil
}

// createAndList creates a project with a request id of its own and lists
// the audit trail back, as the admin of acme; it returns the logs of that
// request.
func createAndList(t *testing.T, baseURL string) []*projectsv1.AuditLog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := projectsv1connect.NewProjectServiceClient(http.DefaultClient, baseURL, connect.WithGRPCWeb())
	rid := "req-" + rand.Text()
	req := connect.NewRequest(&projectsv1.CreateProjectRequest{Name: "apollo-" + rid})
	req.Header().Set("Authorization", "Bearer demo-alice")
	req.Header().Set("X-Request-Id", rid)
	if _, err := c.CreateProject(ctx, req); err != nil {
		t.Fatal(err)
	}
	lreq := connect.NewRequest(&projectsv1.ListAuditLogsRequest{RequestId: rid})
	lreq.Header().Set("Authorization", "Bearer demo-alice")
	res, err := c.ListAuditLogs(ctx, lreq)
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetAuditLogs()
}

// TestRunServesAndStops runs the command with its memory repository on a
// free port, calls it, and stops it.
func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	base, out := serve(t, []string{"-addr", "127.0.0.1:0"}, nil)
	for _, want := range []string{"listening on " + base, "audit trail in memory", "demo-alice", "demo-carol", "curl"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got output without %q:\n%s", want, out.String())
		}
	}
	logs := createAndList(t, base)
	if len(logs) != 1 || logs[0].GetAction() != "app.project.created" {
		t.Fatalf("got %v, want the one log of the create", logs)
	}
}

// TestRunPostgres runs the command with its trail in PostgreSQL, in a
// schema of its own, and checks that a call's log is stored there. It
// needs DATABASE_URL: run it through scripts/with-postgres.sh, as
// `make test` does.
func TestRunPostgres(t *testing.T) {
	t.Parallel()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		t.Fatal("DATABASE_URL is not set: this test needs a PostgreSQL server; " +
			"run it through scripts/with-postgres.sh (make test-connect does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // after the schema is dropped, and the command stopped
	schema := "connect_cmd_" + strings.ToLower(rand.Text())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})

	base, out := serve(t, []string{"-addr", "127.0.0.1:0", "-schema", schema}, map[string]string{"DATABASE_URL": url})
	if !strings.Contains(out.String(), "audit trail in PostgreSQL") {
		t.Errorf("got output without the repository it uses:\n%s", out.String())
	}
	logs := createAndList(t, base)
	if len(logs) != 1 {
		t.Fatalf("got %v, want the one log of the create", logs)
	}
	var n int
	q := fmt.Sprintf("SELECT count(*) FROM %s.audit_logs WHERE id = $1", pgx.Identifier{schema}.Sanitize())
	if err := pool.QueryRow(ctx, q, logs[0].GetId()).Scan(&n); err != nil || n != 1 {
		t.Fatalf("got %d rows, %v for log %s in schema %s; want it stored there", n, err, logs[0].GetId(), schema)
	}
}

func TestRunRejectsBadSettings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"bad trusted proxies flag", []string{"-addr", "127.0.0.1:0", "-trusted-proxies", "nope"}, nil},
		{"bad trusted proxies env", []string{"-addr", "127.0.0.1:0"}, map[string]string{"TRUSTED_PROXIES": "10.0.0.0/99"}},
		{"bad forwarded header", []string{"-addr", "127.0.0.1:0", "-forwarded-header", "X-Real-Ip"}, nil},
		{"unknown flag", []string{"-port", "80"}, nil},
		{"stray argument", []string{"serve"}, nil},
		{"bad address", []string{"-addr", "127.0.0.1:99999"}, nil},
		{"bad database url", []string{"-addr", "127.0.0.1:0"}, map[string]string{"DATABASE_URL": "postgres://%zz"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &out,
				func(string) { t.Error("got ready, want run to fail before serving") })
			if err == nil {
				t.Fatal("got no error, want one")
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
