package auditconnect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
)

// TestPanic checks that a handler that panics still leaves its call's
// log, unary and streaming: without connect.WithRecover, where net/http
// ends the call; with WithRecover's interceptor before the audit
// interceptor, which sees the panic; and with it after, where the audit
// interceptor sees only the error WithRecover's function returns.
func TestPanic(t *testing.T) {
	t.Parallel()
	recoverWith := connect.WithRecover(func(_ context.Context, _ connect.Spec, _ http.Header, r any) error {
		return connect.NewError(connect.CodeAborted, fmt.Errorf("recovered: %v", r))
	})
	for _, tt := range []struct {
		name         string
		outer, inner []connect.HandlerOption
		wantClient   connect.Code // 0: any error
		wantCode     string
		wantPanicked bool
	}{
		{name: "no recover", wantCode: "internal", wantPanicked: true},
		{name: "WithRecover before the interceptors", outer: []connect.HandlerOption{recoverWith}, wantClient: connect.CodeAborted, wantCode: "internal", wantPanicked: true},
		{name: "WithRecover after the interceptors", inner: []connect.HandlerOption{recoverWith}, wantClient: connect.CodeAborted, wantCode: "aborted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvConfig(t, envConfig{outer: tt.outer, inner: tt.inner})
			e.stub.sent = 1
			e.stub.hook = func(context.Context) { panic("boom") }
			ctx := testContext(t)
			_, err := e.client.CreateProject(ctx, authed(&projectsv1.CreateProjectRequest{Name: "x"}))
			if err == nil || tt.wantClient != 0 && connect.CodeOf(err) != tt.wantClient {
				t.Errorf("unary: got %v, want an error with code %v", err, tt.wantClient)
			}
			s, err := e.client.ExportProjects(ctx, authed(&projectsv1.ExportProjectsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for s.Receive() {
			}
			if err := s.Err(); err == nil || tt.wantClient != 0 && connect.CodeOf(err) != tt.wantClient {
				t.Errorf("stream: got %v, want an error with code %v", err, tt.wantClient)
			}
			_ = s.Close()

			logs := e.logs(t)
			if len(logs) != 2 {
				t.Fatalf("got %d logs, want one per call: %v", len(logs), logs)
			}
			for _, l := range logs {
				md := l.Metadata
				if md[audit.MetadataOutcome] != audit.OutcomeFailure || md[auditconnect.MetadataCode] != tt.wantCode {
					t.Errorf("got outcome %q, code %q; want failure, %q (log %v)", md[audit.MetadataOutcome], md[auditconnect.MetadataCode], tt.wantCode, l)
				}
				if _, got := md[auditconnect.MetadataPanicked]; got != tt.wantPanicked || got && md[auditconnect.MetadataPanicked] != "true" {
					t.Errorf("got %s=%q, want it set: %v", auditconnect.MetadataPanicked, md[auditconnect.MetadataPanicked], tt.wantPanicked)
				}
			}
			if l := logs[0]; l.Action != "app.project.exported" || l.Metadata[auditconnect.MetadataMessagesSent] != "1" {
				t.Errorf("got %v, want the export's log, with the 1 message it sent", l)
			}
		})
	}
}

// TestCodeOf checks that the code recorded for an error is the one the
// client is sent: a Connect error's own, and for Go's context errors the
// codes connect-go writes for them.
func TestCodeOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want connect.Code
	}{
		{connect.NewError(connect.CodeNotFound, nil), connect.CodeNotFound},
		{fmt.Errorf("wrapped: %w", connect.NewError(connect.CodePermissionDenied, context.Canceled)), connect.CodePermissionDenied},
		{context.Canceled, connect.CodeCanceled},
		{fmt.Errorf("listing: %w", context.Canceled), connect.CodeCanceled},
		{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
		{fmt.Errorf("storing: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
		{errors.New("plain"), connect.CodeUnknown},
		{nil, connect.CodeUnknown},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), connect.CodeDeadlineExceeded},
		{fmt.Errorf("write: %w", syscall.EPIPE), connect.CodeCanceled},
		{fmt.Errorf("write: %w", syscall.ECONNRESET), connect.CodeCanceled},
		{errors.New("client disconnected"), connect.CodeCanceled},
		{errors.New("http2: stream closed"), connect.CodeCanceled},
	} {
		if got := auditconnect.CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
