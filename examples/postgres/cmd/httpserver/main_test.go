package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestServesWithPostgres runs the command against DATABASE_URL, in a schema
// of its own, and checks that an audited change comes back from
// PostgreSQL through GET /audit-logs.
func TestServesWithPostgres(t *testing.T) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		t.Fatal("DATABASE_URL is not set: run the tests through scripts/with-postgres.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close) // after the schema is dropped: clean-ups run last first
	schema := fmt.Sprintf("httpserver_test_%d", time.Now().UnixNano())
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping %s: %v", schema, err)
		}
	})

	serveCtx, stop := context.WithCancel(ctx)
	baseURL := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(serveCtx, []string{"-addr", "127.0.0.1:0", "-schema", schema},
			func(k string) string { return map[string]string{"DATABASE_URL": url}[k] },
			io.Discard, func(u string) { baseURL <- u })
	}()
	var base string
	select {
	case base = <-baseURL:
	case err := <-done:
		t.Fatalf("the server stopped before serving: %v", err)
	}

	call := func(method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer demo-alice")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, body := call(http.MethodPost, "/projects", `{"name":"apollo"}`); code != http.StatusCreated {
		t.Fatalf("creating a project: %d %s", code, body)
	}
	code, body := call(http.MethodGet, "/audit-logs?action=app.project.created", "")
	if code != http.StatusOK {
		t.Fatalf("listing: %d %s", code, body)
	}
	var page struct {
		Logs []struct {
			Action string `json:"action"`
			OrgID  string `json:"org_id"`
			Target struct {
				Name string `json:"name"`
			} `json:"target"`
		} `json:"logs"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Logs) != 1 || page.Logs[0].Target.Name != "apollo" || page.Logs[0].OrgID != "acme" {
		t.Fatalf("got %s, want the one project created, in acme", body)
	}
	var stored int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".audit_logs").Scan(&stored); err != nil || stored < 1 {
		t.Fatalf("audit_logs in %s holds %d rows (%v), want the server's logs", schema, stored, err)
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("server stopped with %v", err)
	}
}
