package auditconnect_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
)

// export calls ExportProjects and returns how many messages arrived and
// the stream's error.
func export(t *testing.T, e *env) (int, error) {
	t.Helper()
	s, err := e.client.ExportProjects(testContext(t), authed(&projectsv1.ExportProjectsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for s.Receive() {
		n++
	}
	return n, s.Err()
}

// TestLogBeforeSend checks a streaming read whose log must be stored
// before any of its data leaves: under FailCall, a log that cannot be
// stored lets no message out, and the call fails with Unavailable, where
// without LogBeforeSend the messages have left before the call's end says
// so; under KeepResult every message leaves; and the log of a stream that
// sent records that the data began to leave, while one that ends before
// its first Send is recorded as it ends.
func TestLogBeforeSend(t *testing.T) {
	t.Parallel()
	errDown := errors.New("down")
	early := func() auditconnect.Procedures {
		table := testTable()
		p := table[procExport]
		p.LogBeforeSend = true
		table[procExport] = p
		return table
	}
	for _, tt := range []struct {
		name      string
		table     auditconnect.Procedures
		opts      []auditconnect.AuditOption
		storeErr  error
		handler   error // the stub's error, after it sent
		sent      int
		wantMsgs  int
		wantCode  connect.Code // 0: success
		wantLog   map[string]string
		wantNoKey string // a metadata key the log must not have
	}{
		{name: "FailCall, store down: nothing leaves", table: early(), storeErr: errDown, sent: 3, wantCode: connect.CodeUnavailable},
		{name: "without LogBeforeSend, FailCall, store down: the data has left", storeErr: errDown, sent: 3, wantMsgs: 3, wantCode: connect.CodeUnavailable},
		{name: "KeepResult, store down: everything leaves", table: early(), opts: []auditconnect.AuditOption{auditconnect.WithStoreFailure(auditconnect.KeepResult)}, storeErr: errDown, sent: 3, wantMsgs: 3},
		{
			name: "stored before the first message", table: early(), sent: 3, wantMsgs: 3,
			wantLog: map[string]string{audit.MetadataOutcome: audit.OutcomeSuccess, auditconnect.MetadataCode: auditconnect.CodeOK}, wantNoKey: auditconnect.MetadataMessagesSent,
		},
		{
			name: "a failure after the first message: the log said the data began to leave", table: early(),
			sent: 2, handler: connect.NewError(connect.CodeNotFound, errors.New("gone")), wantMsgs: 2, wantCode: connect.CodeNotFound,
			wantLog: map[string]string{audit.MetadataOutcome: audit.OutcomeSuccess, auditconnect.MetadataCode: auditconnect.CodeOK},
		},
		{
			name: "ended before the first message: recorded as it ended", table: early(),
			handler: connect.NewError(connect.CodePermissionDenied, errors.New("no")), wantCode: connect.CodePermissionDenied,
			wantLog: map[string]string{audit.MetadataOutcome: audit.OutcomeDenied, auditconnect.MetadataCode: "permission_denied", auditconnect.MetadataMessagesSent: "0"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvConfig(t, envConfig{table: tt.table, opts: tt.opts})
			e.repo.setErr(tt.storeErr)
			e.stub.sent, e.stub.err = tt.sent, tt.handler
			n, err := export(t, e)
			if n != tt.wantMsgs {
				t.Errorf("got %d messages, want %d", n, tt.wantMsgs)
			}
			checkCode(t, "export", err, tt.wantCode)
			if tt.storeErr != nil {
				if logs, _, _ := e.errors.get(); len(logs) != 1 {
					t.Errorf("got %d logs reported, want 1", len(logs))
				}
				return
			}
			l := e.only(t)
			for k, v := range tt.wantLog {
				if l.Metadata[k] != v {
					t.Errorf("got %s=%q, want %q (log %v)", k, l.Metadata[k], v, l)
				}
			}
			if _, ok := l.Metadata[tt.wantNoKey]; tt.wantNoKey != "" && ok {
				t.Errorf("got %s in %v, want none", tt.wantNoKey, l)
			}
		})
	}
}

// TestAddMetadata checks that what a handler adds reaches the
// interceptor's log, cleaned, without overriding the interceptor's own
// keys; and that outside an audited call it does nothing.
func TestAddMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var added bool
	e.stub.hook = func(ctx context.Context) {
		added = auditconnect.AddMetadata(ctx, map[string]string{"count": "3", "note": "a\x00b\xff"})
		auditconnect.AddMetadata(ctx, map[string]string{"count": "4", audit.MetadataOutcome: audit.OutcomeDenied})
	}
	if _, err := e.client.CreateProject(testContext(t), authed(&projectsv1.CreateProjectRequest{Name: "x"})); err != nil {
		t.Fatal(err)
	}
	if !added {
		t.Error("AddMetadata reported false in an audited call")
	}
	l := e.only(t)
	for k, want := range map[string]string{"count": "4", "note": "ab\uFFFD", audit.MetadataOutcome: audit.OutcomeSuccess} {
		if got := l.Metadata[k]; got != want {
			t.Errorf("got %s=%q, want %q (log %v)", k, got, want, l)
		}
	}
	if auditconnect.AddMetadata(context.Background(), map[string]string{"k": "v"}) {
		t.Error("AddMetadata reported true outside any call")
	}
}

// TestClientStream checks a client-streaming call: the target is named
// from the first message received, whatever follows, and the response is
// counted as a message sent.
func TestClientStream(t *testing.T) {
	t.Parallel()
	const proc = "/test.v1.Uploads/Upload"
	repo := audit.NewMemoryRepository()
	interceptors := connect.WithInterceptors(
		auditconnect.NewIdentityInterceptor(authenticate),
		auditconnect.NewAuditInterceptor(audit.NewLogger(repo, audit.WithSource("test")), auditconnect.Procedures{
			proc: auditconnect.Rule("app.project.uploaded", func(req *projectsv1.CreateProjectRequest, _ *projectsv1.CreateProjectResponse) audit.Target {
				return audit.Target{Type: "project", Name: req.GetName()}
			}),
		}),
	)
	mux := http.NewServeMux()
	mux.Handle(proc, connect.NewClientStreamHandler(proc,
		func(_ context.Context, s *connect.ClientStream[projectsv1.CreateProjectRequest]) (*connect.Response[projectsv1.CreateProjectResponse], error) {
			n := 0
			for s.Receive() {
				n++
			}
			if err := s.Err(); err != nil {
				return nil, err
			}
			return connect.NewResponse(&projectsv1.CreateProjectResponse{Project: &projectsv1.Project{Id: strconv.Itoa(n)}}), nil
		}, interceptors))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	s := connect.NewClient[projectsv1.CreateProjectRequest, projectsv1.CreateProjectResponse](ts.Client(), ts.URL+proc).CallClientStream(testContext(t))
	s.RequestHeader().Set("Authorization", "Bearer "+testToken)
	for _, name := range []string{"first", "second", "third"} {
		if err := s.Send(&projectsv1.CreateProjectRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.CloseAndReceive()
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetProject().GetId(); got != "3" {
		t.Fatalf("got %s messages received by the handler, want 3", got)
	}
	logs, err := repo.List(testContext(t), audit.Filter{})
	if err != nil || len(logs) != 1 {
		t.Fatalf("got %v, %v; want one log", logs, err)
	}
	l := logs[0]
	if l.Target.Name != "first" || l.Metadata[auditconnect.MetadataMessagesSent] != "1" || l.Metadata[audit.MetadataOutcome] != audit.OutcomeSuccess {
		t.Errorf("got %v, want target named from the first message, 1 message sent, success", l)
	}
}
