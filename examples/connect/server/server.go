package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
	"github.com/raystack/salt/examples/connect/auditconnect"
	projectsv1 "github.com/raystack/salt/examples/connect/gen/projects/v1"
	"github.com/raystack/salt/examples/connect/gen/projects/v1/projectsv1connect"
	httpserver "github.com/raystack/salt/examples/httpserver/server"
)

// DefaultSource is the Source of the audit logs of a Server that was not
// given a Logger.
const DefaultSource = "projects-api"

// Audit actions of the service. Every log also carries the outcome, the
// procedure and its Connect code (see auditconnect.NewAuditInterceptor).
const (
	ActionProjectCreated  = "app.project.created"
	ActionProjectUpdated  = "app.project.updated"
	ActionProjectDeleted  = "app.project.deleted"
	ActionProjectExported = "app.project.exported"
	ActionAuditLogListed  = "app.audit_log.listed"
)

// Procedures is the audit table of the service: which procedures are
// audited, under which action, and what their target is. GetProject and
// ListProjects are reads (NO_SIDE_EFFECTS in the proto) and are not
// listed, so they are not audited; ExportProjects and ListAuditLogs are
// reads too, listed because bulk exports and reads of the audit trail are
// events an audit trail must show. ExportProjects is LogBeforeSend: its
// log says the export began, and has no messages_sent. CreateProject is
// KeepResult whatever Config.StoreFailure says: a create is not
// idempotent, so answering Unavailable for a project that was created
// would make its client retry and create a second one.
func Procedures() auditconnect.Procedures {
	create := auditconnect.Rule(ActionProjectCreated,
		func(req *projectsv1.CreateProjectRequest, res *projectsv1.CreateProjectResponse) audit.Target {
			return projectTarget(res.GetProject().GetId(), req.GetName()) // no id when it failed
		})
	create.OnStoreFailure = auditconnect.KeepResult
	return auditconnect.Procedures{
		projectsv1connect.ProjectServiceCreateProjectProcedure: create,
		projectsv1connect.ProjectServiceUpdateProjectProcedure: auditconnect.Rule(ActionProjectUpdated,
			func(req *projectsv1.UpdateProjectRequest, _ *projectsv1.UpdateProjectResponse) audit.Target {
				return projectTarget(req.GetId(), req.GetName())
			}),
		// The handler writes the log of a deletion that succeeded, with
		// the project's name; the interceptor writes denials and failures.
		projectsv1connect.ProjectServiceDeleteProjectProcedure: auditconnect.Rule(ActionProjectDeleted,
			func(req *projectsv1.DeleteProjectRequest, _ *projectsv1.DeleteProjectResponse) audit.Target {
				return projectTarget(req.GetId(), "")
			}),
		// An export is a read whose data must not leave unaudited: its log
		// is written before the first project is sent.
		projectsv1connect.ProjectServiceExportProjectsProcedure: exportRule(),
		projectsv1connect.ProjectServiceListAuditLogsProcedure: auditconnect.Rule(ActionAuditLogListed,
			func(*projectsv1.ListAuditLogsRequest, *projectsv1.ListAuditLogsResponse) audit.Target {
				return audit.Target{Type: "audit_log"}
			}),
	}
}

// exportRule is the audit rule of ExportProjects: LogBeforeSend, so that
// under FailCall no project leaves unless the export's log is stored.
func exportRule() auditconnect.Procedure {
	p := auditconnect.Rule(ActionProjectExported,
		func(*projectsv1.ExportProjectsRequest, *projectsv1.ExportProjectsResponse) audit.Target {
			return audit.Target{Type: "project"}
		})
	p.LogBeforeSend = true
	return p
}

// Config configures a Server.
type Config struct {
	// Repository stores the audit logs and answers ListAuditLogs.
	// Required.
	Repository audit.Repository
	// Logger writes the audit logs. It must store into Repository, or
	// ListAuditLogs will not show what it writes. Nil means a Logger made
	// with audit.NewLogger(Repository, audit.WithSource(DefaultSource)),
	// which Close closes; a Logger given here is the caller's to close.
	Logger *audit.Logger
	// Tokens maps each bearer token to its principal, as in
	// examples/httpserver (httpserver.NewTokenTable says which are
	// accepted). With none, every call fails with CodeUnauthenticated.
	Tokens map[string]httpserver.Principal
	// Metadata says which proxies are trusted to name the client's
	// address, and how request ids are made. The zero value trusts none.
	// The metadata interceptor keeps its own copy of Metadata.TrustedProxies.
	Metadata auditmeta.Config
	// StoreFailure is what becomes of a call whose audit log could not be
	// stored: auditconnect.FailCall (the default when 0) or
	// auditconnect.KeepResult. CreateProject keeps its result under both
	// (see Procedures).
	StoreFailure auditconnect.StoreFailure
	// ErrorLog receives what the server cannot tell a client, above all an
	// audit log that could not be stored. Nil means slog.Default().
	ErrorLog *slog.Logger
}

// Server is the projects API, a projectsv1connect.ProjectServiceHandler
// whose handler (see Handler) serves Connect, gRPC and gRPC-Web with the
// audit interceptors of package auditconnect. It is safe for concurrent
// use.
type Server struct {
	repo      audit.Repository
	logger    *audit.Logger
	ownLogger bool
	// authenticate is the Authenticator of the identity interceptor, over
	// the token table of Config.Tokens.
	authenticate auditconnect.Authenticator
	errorLog     *slog.Logger
	projects     *projectStore
	now          func() time.Time
	handler      http.Handler
}

var _ projectsv1connect.ProjectServiceHandler = (*Server)(nil)

// New returns a Server configured by cfg, or an error naming what in cfg
// is wrong.
func New(cfg Config) (*Server, error) {
	if cfg.Repository == nil {
		return nil, errors.New("server: Config.Repository is nil")
	}
	tokens, err := httpserver.NewTokenTable(cfg.Tokens)
	if err != nil {
		return nil, fmt.Errorf("server: Config.Tokens: %w", err)
	}
	if err := cfg.Metadata.Validate(); err != nil {
		return nil, fmt.Errorf("server: Config.Metadata: %w", err)
	}
	failure := cfg.StoreFailure
	switch failure {
	case 0:
		failure = auditconnect.FailCall
	case auditconnect.FailCall, auditconnect.KeepResult:
	default:
		return nil, fmt.Errorf("server: Config.StoreFailure %d is not FailCall or KeepResult", failure)
	}
	s := &Server{
		authenticate: authenticator(tokens),
		repo:         cfg.Repository,
		logger:       cfg.Logger,
		errorLog:     cfg.ErrorLog,
		projects:     newProjectStore(),
		now:          func() time.Time { return time.Now().UTC() },
	}
	if s.logger == nil {
		s.logger = audit.NewLogger(cfg.Repository, audit.WithSource(DefaultSource))
		s.ownLogger = true
	}
	if s.errorLog == nil {
		s.errorLog = slog.Default()
	}
	s.handler = s.newHandler(
		auditconnect.NewMetadataInterceptor(cfg.Metadata),
		auditconnect.NewIdentityInterceptor(s.authenticate),
		auditconnect.NewAuditInterceptor(s.logger, Procedures(),
			auditconnect.WithStoreFailure(failure),
			auditconnect.WithErrorHandler(s.logStoreError)),
	)
	return s, nil
}

// newHandler returns the HTTP handler of the service with interceptors,
// first outermost, reading messages of at most MaxMessageBytes, and
// GET /healthz.
func (s *Server) newHandler(interceptors ...connect.Interceptor) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(projectsv1connect.NewProjectServiceHandler(s,
		connect.WithInterceptors(interceptors...),
		connect.WithReadMaxBytes(MaxMessageBytes)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// logStoreError keeps an audit log that could not be stored in the error
// log, with the request's metadata, so that the event is not lost.
func (s *Server) logStoreError(ctx context.Context, l audit.Log, err error) {
	s.errorLog.ErrorContext(ctx, "audit log not stored", "err", err, "audit", l, "request", audit.FromContext(ctx).Metadata)
}

// Handler returns the HTTP handler of the service: the ProjectService at
// its path, for Connect, gRPC and gRPC-Web clients, and GET /healthz.
// gRPC needs HTTP/2: serve it with TLS or, as Run does, with unencrypted
// HTTP/2 enabled.
func (s *Server) Handler() http.Handler { return s.handler }

// Close closes the Logger the server made for itself, draining what it
// still publishes, within ctx. It does nothing for a Logger given in
// Config. Call it once the server stopped taking requests.
func (s *Server) Close(ctx context.Context) error {
	if s.ownLogger {
		return s.logger.Close(ctx)
	}
	return nil
}

// Time bounds of NewHTTPServer.
const (
	// ReadHeaderTimeout bounds the time a request's headers take to
	// arrive.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds the time a whole request, headers and body, takes
	// to arrive, so that a client cannot hold a call open by sending its
	// body slowly. It does not bound the response: net/http lifts the read
	// deadline of an HTTP/1.1 connection once the body is read, and HTTP/2
	// applies it to the request body alone, so a server stream may last
	// longer. A client-streaming procedure, which this service has none
	// of, would have to finish sending within it. There is no
	// WriteTimeout, which would cut server streams.
	ReadTimeout = 30 * time.Second
	// IdleTimeout bounds how long a connection waits for its next request.
	IdleTimeout = 2 * time.Minute
)

// NewHTTPServer returns an http.Server for h that speaks HTTP/1.1 and
// unencrypted HTTP/2 (h2c, with prior knowledge), as gRPC clients
// without TLS need, with ReadHeaderTimeout, ReadTimeout, IdleTimeout and
// MaxHeaderBytes. Its errors go to errorLog, at level Warn; nil means
// slog.Default().
func NewHTTPServer(h http.Handler, errorLog *slog.Logger) *http.Server {
	if errorLog == nil {
		errorLog = slog.Default()
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn),
	}
}

// MaxHeaderBytes bounds the headers of a request: a larger request is
// refused before it reaches the service (HTTP/1.1 answers 431).
const MaxHeaderBytes = 64 << 10

// MaxMessageBytes bounds a request message as the handler reads it, after
// decompression: a larger one is refused with connect.CodeResourceExhausted
// as soon as the bound is passed, before it is decoded, so that a client
// cannot make the server hold a message of any size. The largest valid
// request of this service, a ListAuditLogs with every filter at its
// bound, is a few kilobytes.
const MaxMessageBytes = 1 << 20

// Run serves s on addr, a "host:port" to listen on, until ctx ends; then
// it stops taking calls, waits up to httpserver.ShutdownTimeout for those
// in flight, whose audit logs are still written, and closes s. Once it
// listens it calls ready, if not nil, with the base URL of the server,
// e.g. "http://127.0.0.1:8080", which tells the port when addr's is 0.
// It is httpserver.Serve, with the http.Server of NewHTTPServer.
//
// It returns nil after a graceful shutdown, or the error that stopped it.
func Run(ctx context.Context, addr string, s *Server, ready func(baseURL string)) error {
	return httpserver.Serve(ctx, addr, NewHTTPServer(s.Handler(), s.errorLog), ready, s.Close)
}
