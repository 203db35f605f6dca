package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
	"github.com/raystack/salt/examples/connect/server"
	httpserver "github.com/raystack/salt/examples/httpserver/server"
)

// Demo tokens, as httpserver.DemoTokens defines them.
const (
	alice = "demo-alice" // user, acme admin
	bob   = "demo-bob"   // user, acme member
	ci    = "demo-ci"    // service account, acme member
	carol = "demo-carol" // user, globex admin
)

// Procedures of the service, shorter.
const (
	procCreate    = projectsv1connect.ProjectServiceCreateProjectProcedure
	procUpdate    = projectsv1connect.ProjectServiceUpdateProjectProcedure
	procDelete    = projectsv1connect.ProjectServiceDeleteProjectProcedure
	procGet       = projectsv1connect.ProjectServiceGetProjectProcedure
	procList      = projectsv1connect.ProjectServiceListProjectsProcedure
	procExport    = projectsv1connect.ProjectServiceExportProjectsProcedure
	procAuditLogs = projectsv1connect.ProjectServiceListAuditLogsProcedure
)

// callTimeout bounds every call of a test.
const callTimeout = 20 * time.Second

// testEnv is a Server on a real loopback listener, served the way Run
// serves it (HTTP/1.1 and unencrypted HTTP/2), with its repository at hand
// to check what was recorded.
type testEnv struct {
	repo   audit.Repository
	srv    *server.Server
	addr   string // host:port
	base   string // http://host:port
	errLog *syncBuffer
}

// newEnv starts a Server over a fresh memory repository with the demo
// tokens; each with may change the Config first.
func newEnv(t *testing.T, with ...func(*server.Config)) *testEnv {
	t.Helper()
	return newEnvHTTP(t, nil, with...)
}

// newEnvHTTP is newEnv with httpWith, when not nil, changing the
// http.Server of NewHTTPServer before it serves.
func newEnvHTTP(t *testing.T, httpWith func(*http.Server), with ...func(*server.Config)) *testEnv {
	t.Helper()
	e := &testEnv{errLog: &syncBuffer{}}
	cfg := server.Config{
		Repository: audit.NewMemoryRepository(),
		Tokens:     httpserver.DemoTokens(),
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := server.NewHTTPServer(srv.Handler(), cfg.ErrorLog)
	if httpWith != nil {
		httpWith(hs)
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	e.addr = ln.Addr().String()
	e.base = "http://" + e.addr
	return e
}

// logs returns every log stored, newest first.
func (e *testEnv) logs(t *testing.T) []audit.Log {
	t.Helper()
	logs, err := e.repo.List(context.Background(), audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

// newest returns the newest log stored.
func (e *testEnv) newest(t *testing.T) audit.Log {
	t.Helper()
	logs := e.logs(t)
	if len(logs) == 0 {
		t.Fatal("got no audit log, want one")
	}
	return logs[0]
}

// httpClient returns a client that speaks only HTTP/1.1, or only
// unencrypted HTTP/2 with prior knowledge (h2c).
func httpClient(t *testing.T, h2c bool) *http.Client {
	t.Helper()
	var p http.Protocols
	if h2c {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: &p, ResponseHeaderTimeout: callTimeout}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: callTimeout}
}

// client is one way of calling the service: a connect-go client speaking
// one protocol over one HTTP version, or a google.golang.org/grpc client.
type client struct {
	name string
	hc   *http.Client
	opts []connect.ClientOption
	grpc *grpc.ClientConn
	base string
	// userAgent is how the client's User-Agent begins.
	userAgent string
}

// clients returns every client of e's server the tests call it with.
func (e *testEnv) clients(t *testing.T) []client {
	t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent("grpc-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h1, h2 := httpClient(t, false), httpClient(t, true)
	return []client{
		{name: "connect/http1", hc: h1, base: e.base, userAgent: "connect-go/"},
		{name: "connect/h2c", hc: h2, base: e.base, userAgent: "connect-go/"},
		{name: "grpc/h2c", hc: h2, opts: []connect.ClientOption{connect.WithGRPC()}, base: e.base, userAgent: "grpc-go-connect/"},
		{name: "grpcweb/http1", hc: h1, opts: []connect.ClientOption{connect.WithGRPCWeb()}, base: e.base, userAgent: "grpc-go-connect/"},
		{name: "grpcweb/h2c", hc: h2, opts: []connect.ClientOption{connect.WithGRPCWeb()}, base: e.base, userAgent: "grpc-go-connect/"},
		{name: "grpc-go", grpc: conn, userAgent: "grpc-test grpc-go/"},
	}
}

// clientNames are the names of the clients that clients returns.
var clientNames = []string{"connect/http1", "connect/h2c", "grpc/h2c", "grpcweb/http1", "grpcweb/h2c", "grpc-go"}

// client returns the client of e's server that clients names name.
func (e *testEnv) client(t *testing.T, name string) client {
	t.Helper()
	for _, c := range e.clients(t) {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no client %q", name)
	return client{}
}

// connectClient is the client that speaks the Connect protocol over
// HTTP/1.1.
func (e *testEnv) connectClient(t *testing.T) client {
	t.Helper()
	return e.client(t, "connect/http1")
}

// call makes a unary call of proc with req, as the caller with token (none
// when ""), and returns the response, the response headers and the error,
// a *connect.Error whatever the client.
func call[Req, Res any](t *testing.T, c client, proc, token string, req *Req, hdr ...string) (*Res, http.Header, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if c.grpc != nil {
		md := metadata.MD{}
		if token != "" {
			md.Set("authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			md.Append(strings.ToLower(hdr[i]), hdr[i+1])
		}
		res := new(Res)
		var rh metadata.MD
		err := c.grpc.Invoke(metadata.NewOutgoingContext(ctx, md), proc, req, res, grpc.Header(&rh))
		if err != nil {
			return nil, grpcHeader(rh), grpcError(err)
		}
		return res, grpcHeader(rh), nil
	}
	r := connect.NewRequest(req)
	setHeaders(r.Header(), token, hdr)
	res, err := connect.NewClient[Req, Res](c.hc, c.base+proc, c.opts...).CallUnary(ctx, r)
	if err != nil {
		var ce *connect.Error
		if errors.As(err, &ce) {
			return nil, ce.Meta(), err
		}
		return nil, nil, err
	}
	return res.Msg, res.Header(), nil
}

// export calls ExportProjects as the caller with token and returns the
// projects streamed.
func export(t *testing.T, c client, token string) ([]*projectsv1.Project, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var out []*projectsv1.Project
	if c.grpc != nil {
		md := metadata.MD{}
		if token != "" {
			md.Set("authorization", "Bearer "+token)
		}
		s, err := c.grpc.NewStream(metadata.NewOutgoingContext(ctx, md), &grpc.StreamDesc{ServerStreams: true}, procExport)
		if err != nil {
			return nil, grpcError(err)
		}
		if err := s.SendMsg(&projectsv1.ExportProjectsRequest{}); err != nil {
			return nil, grpcError(err)
		}
		if err := s.CloseSend(); err != nil {
			return nil, grpcError(err)
		}
		for {
			m := new(projectsv1.ExportProjectsResponse)
			err := s.RecvMsg(m)
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return out, grpcError(err)
			}
			out = append(out, m.GetProject())
		}
	}
	r := connect.NewRequest(&projectsv1.ExportProjectsRequest{})
	setHeaders(r.Header(), token, nil)
	s, err := connect.NewClient[projectsv1.ExportProjectsRequest, projectsv1.ExportProjectsResponse](c.hc, c.base+procExport, c.opts...).CallServerStream(ctx, r)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	for s.Receive() {
		out = append(out, s.Msg().GetProject())
	}
	return out, s.Err()
}

func setHeaders(h http.Header, token string, kv []string) {
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
}

// grpcError returns the *connect.Error of the same code and message as
// err, an error of a google.golang.org/grpc client.
func grpcError(err error) error {
	s := status.Convert(err)
	return connect.NewError(connect.Code(s.Code()), errors.New(s.Message()))
}

func grpcHeader(md metadata.MD) http.Header {
	h := http.Header{}
	for k, vs := range md {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	return h
}

// mustCall is call that fails the test on an error.
func mustCall[Req, Res any](t *testing.T, c client, proc, token string, req *Req, hdr ...string) (*Res, http.Header) {
	t.Helper()
	res, h, err := call[Req, Res](t, c, proc, token, req, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", c.name, proc, err)
	}
	return res, h
}

// checkCode checks that err is a Connect error with code want.
func checkCode(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if got := connect.CodeOf(err); err == nil || got != want {
		t.Fatalf("got error %v (code %v), want code %v", err, got, want)
	}
}

// wantLog is what a test expects of an audit log; empty fields are not
// checked.
type wantLog struct {
	action, org, actorID, actorType, outcome, code, procedure string
	targetType, targetID, targetName                          string
	metadata                                                  map[string]string
}

// checkLog checks l against want, and that it is valid and carries the
// request metadata every call of the tests has: a request id, a user
// agent and the loopback address.
func checkLog(t *testing.T, l audit.Log, want wantLog) {
	t.Helper()
	if err := l.Validate(); err != nil {
		t.Errorf("got an invalid log %v: %v", l, err)
	}
	check := func(field, got, want string) {
		t.Helper()
		if want != "" && got != want {
			t.Errorf("%s: got %q, want %q (log %v)", field, got, want, l)
		}
	}
	check("action", l.Action, want.action)
	check("source", l.Source, server.DefaultSource)
	check("org_id", l.OrgID, want.org)
	check("actor.id", l.Actor.ID, want.actorID)
	check("actor.type", l.Actor.Type, want.actorType)
	check("target.type", l.Target.Type, want.targetType)
	check("target.id", l.Target.ID, want.targetID)
	check("target.name", l.Target.Name, want.targetName)
	check("outcome", l.Metadata[audit.MetadataOutcome], want.outcome)
	check("code", l.Metadata[auditconnect.MetadataCode], want.code)
	check("procedure", l.Metadata[auditconnect.MetadataProcedure], want.procedure)
	for k, v := range want.metadata {
		check("metadata "+k, l.Metadata[k], v)
	}
	if l.Metadata[audit.MetadataRequestID] == "" || l.Metadata[audit.MetadataUserAgent] == "" {
		t.Errorf("got no request_id or user_agent in %v", l)
	}
	check("ip", l.Metadata[audit.MetadataIP], "127.0.0.1")
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for error logs.
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
