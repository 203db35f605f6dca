package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunServesAndStops runs the command on a free port, calls it the way
// its start-up message says, and stops it.
func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	env := map[string]string{"ADDR": "127.0.0.1:0", "DATABASE_URL": "postgres://example"}
	baseURL := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, &out, func(u string) { baseURL <- u })
	}()
	var base string
	select {
	case base = <-baseURL:
	case err := <-done:
		t.Fatalf("run stopped before serving: %v\n%s", err, out.String())
	}
	// ready runs after the start-up message is written: it is all there.
	for _, want := range []string{"listening on " + base, "demo-alice", "demo-carol", "curl", "DATABASE_URL is set"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got output without %q:\n%s", want, out.String())
		}
	}

	req, _ := http.NewRequest(http.MethodPost, base+"/projects", strings.NewReader(`{"name":"apollo"}`))
	req.Header.Set("Authorization", "Bearer demo-alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("got status %d, want 201", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want nil after a graceful stop", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestRunRejectsBadSettings(t *testing.T) {
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
	} {
		t.Run(tt.name, func(t *testing.T) {
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
