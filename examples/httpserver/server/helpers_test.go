package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/httpserver/server"
)

// Demo tokens, as DemoTokens defines them.
const (
	alice = "demo-alice" // user, acme admin
	bob   = "demo-bob"   // user, acme member
	ci    = "demo-ci"    // service account, acme member
	carol = "demo-carol" // user, globex admin
)

const testUserAgent = "httpserver-test/1.0"

// testEnv is a Server on a real loopback listener, with its repository at
// hand to check what was recorded.
type testEnv struct {
	repo   audit.Repository
	srv    *server.Server
	ts     *httptest.Server
	errLog *syncBuffer
}

// newEnv starts a Server over a fresh memory repository with the demo
// tokens; each with may change the Config first.
func newEnv(t *testing.T, with ...func(*server.Config)) *testEnv {
	t.Helper()
	e := &testEnv{repo: audit.NewMemoryRepository(), errLog: &syncBuffer{}}
	cfg := server.Config{
		Repository: e.repo,
		Tokens:     server.DemoTokens(),
		ErrorLog:   slog.New(slog.NewTextHandler(e.errLog, nil)),
	}
	for _, w := range with {
		w(&cfg)
	}
	e.repo = cfg.Repository
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv)
	t.Cleanup(e.ts.Close)
	return e
}

// call is one HTTP request of a test.
type call struct {
	method, path, token, body string
	header                    map[string]string
}

// reply is what the server answered.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends c to the test server over TCP.
func (e *testEnv) do(t *testing.T, c call) reply {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, e.ts.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", testUserAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// mustDo is do that fails the test unless the status is want.
func (e *testEnv) mustDo(t *testing.T, c call, want int) reply {
	t.Helper()
	r := e.do(t, c)
	if r.status != want {
		t.Fatalf("%s %s: got status %d (%s), want %d", c.method, c.path, r.status, r.body, want)
	}
	return r
}

// createProject creates a project as token and returns its id.
func (e *testEnv) createProject(t *testing.T, token, name string) string {
	t.Helper()
	r := e.mustDo(t, call{method: "POST", path: "/projects", token: token, body: `{"name":"` + name + `"}`}, http.StatusCreated)
	var p struct{ ID string }
	mustDecode(t, r.body, &p)
	return p.ID
}

// listResponse is the body of GET /audit-logs.
type listResponse struct {
	Logs       []audit.Log `json:"logs"`
	NextCursor *string     `json:"next_cursor"` // a pointer, to tell it is there
}

// list reads the audit trail through the API as token.
func (e *testEnv) list(t *testing.T, token, query string) listResponse {
	t.Helper()
	r := e.mustDo(t, call{method: "GET", path: "/audit-logs?" + query, token: token}, http.StatusOK)
	var lr listResponse
	mustDecode(t, r.body, &lr)
	if lr.Logs == nil || lr.NextCursor == nil {
		t.Fatalf("got %s, want both logs and next_cursor", r.body)
	}
	return lr
}

// newest returns the newest log in the repository, of any org.
func (e *testEnv) newest(t *testing.T) audit.Log {
	t.Helper()
	logs, err := e.repo.List(context.Background(), audit.Filter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) == 0 {
		t.Fatal("got no audit log, want one")
	}
	return logs[0]
}

// count returns the number of logs in the repository that match f.
func (e *testEnv) count(t *testing.T, f audit.Filter) int {
	t.Helper()
	f.Limit = audit.MaxLimit
	logs, err := e.repo.List(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return len(logs)
}

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

// syncBuffer is a bytes.Buffer for concurrent writers.
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
