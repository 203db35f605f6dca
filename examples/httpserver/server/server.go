package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/audit/auditmeta"
)

// DefaultSource is the Source of the audit logs of a Server that was not
// given a Logger.
const DefaultSource = "projects-api"

// Audit actions the server records. Every log also carries the
// audit.MetadataOutcome key: success, failure or denied.
const (
	ActionProjectCreated = "app.project.created"
	ActionProjectUpdated = "app.project.updated"
	ActionProjectDeleted = "app.project.deleted"
	ActionMemberAdded    = "app.member.added"
	ActionMemberRemoved  = "app.member.removed"
	ActionAuditLogListed = "app.audit_log.listed"
	// ActionAuthFailed is a request to an audited route without a valid
	// token. Its actor is anonymous, its "route" metadata the route tried
	// and its "reason" missing_token or invalid_token. It has no org: who
	// sent it is unknown, so it is for the operators of the service, not
	// for the admins of an org.
	ActionAuthFailed = "app.auth.failed"
)

// Config configures a Server.
type Config struct {
	// Repository stores the audit logs and answers GET /audit-logs.
	// Required.
	Repository audit.Repository
	// Logger writes the audit logs. It must store into Repository, or the
	// list endpoint will not show what it writes. Nil means a Logger made
	// with audit.NewLogger(Repository, audit.WithSource(DefaultSource)),
	// which Close closes; a Logger given here is the caller's to close.
	Logger *audit.Logger
	// Tokens maps each bearer token to its principal. With none, every
	// request but GET /healthz is turned away.
	Tokens map[string]Principal
	// TrustedProxies are the peers whose ForwardedHeader is believed; see
	// auditmeta.Config.ClientIP. Nil trusts no peer: the recorded ip is always
	// the peer's.
	TrustedProxies []netip.Prefix
	// ForwardedHeader is the header the trusted proxies set:
	// auditmeta.HeaderXForwardedFor (the default when "") or
	// auditmeta.HeaderForwarded.
	ForwardedHeader string
	// ErrorLog receives what the server cannot tell a client, above all an
	// audit log that could not be stored. Nil means slog.Default().
	ErrorLog *slog.Logger
}

// Server is the projects API: an http.Handler whose every change, failed
// attempt and denial is recorded in the audit trail, which the admins of
// each org read through GET /audit-logs. See the package documentation
// for its routes. It is safe for concurrent use.
type Server struct {
	repo      audit.Repository
	logger    *audit.Logger
	ownLogger bool
	tokens    TokenTable
	meta      auditmeta.Config // how request metadata is read
	errorLog  *slog.Logger
	projects  *projectStore
	handler   http.Handler
}

// New returns a Server configured by cfg, or an error naming what in cfg
// is wrong.
func New(cfg Config) (*Server, error) {
	if cfg.Repository == nil {
		return nil, errors.New("server: Config.Repository is nil")
	}
	tokens, err := NewTokenTable(cfg.Tokens)
	if err != nil {
		return nil, fmt.Errorf("server: Config.Tokens: %w", err)
	}
	meta := auditmeta.Config{
		TrustedProxies:  slices.Clone(cfg.TrustedProxies),
		ForwardedHeader: cfg.ForwardedHeader,
	}
	if err := meta.Validate(); err != nil {
		return nil, fmt.Errorf("server: Config.ForwardedHeader: %w", err)
	}
	s := &Server{
		repo:     cfg.Repository,
		logger:   cfg.Logger,
		tokens:   tokens,
		meta:     meta,
		errorLog: cfg.ErrorLog,
		projects: newProjectStore(),
	}
	if s.logger == nil {
		s.logger = audit.NewLogger(cfg.Repository, audit.WithSource(DefaultSource))
		s.ownLogger = true
	}
	if s.errorLog == nil {
		s.errorLog = slog.Default()
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /projects", s.authenticate(false, s.listProjects))
	mux.Handle("POST /projects", s.authenticate(true, s.createProject))
	mux.Handle("PATCH /projects/{id}", s.authenticate(true, s.updateProject))
	mux.Handle("DELETE /projects/{id}", s.authenticate(true, s.deleteProject))
	mux.Handle("POST /projects/{id}/members", s.authenticate(true, s.addMember))
	mux.Handle("DELETE /projects/{id}/members/{user}", s.authenticate(true, s.removeMember))
	mux.Handle("GET /audit-logs", s.authenticate(true, s.listAuditLogs))
	s.handler = s.withRequestMetadata(mux)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Close closes the Logger the server made for itself, draining what it
// still publishes, within ctx. It does nothing for a Logger given in
// Config. Call it once the server stopped taking requests.
func (s *Server) Close(ctx context.Context) error {
	if s.ownLogger {
		return s.logger.Close(ctx)
	}
	return nil
}

// record stores the audit log of action on target with the given outcome;
// the actor, org and request metadata come from ctx. kv are further
// metadata, as key, value pairs.
//
// When the log cannot be stored, record reports it to the error log, with
// the log itself so that the event is not lost, and returns the error.
// What the caller does then is the server's policy: a change whose log
// cannot be stored is not made and the request fails with 500 (an
// unaudited change is worse than a failed one); a denial or failure is
// still answered as such, since it changed nothing.
func (s *Server) record(ctx context.Context, action string, target audit.Target, outcome string, kv ...string) error {
	md := make(map[string]string, 1+len(kv)/2)
	md[audit.MetadataOutcome] = outcome
	for i := 0; i+1 < len(kv); i += 2 {
		md[kv[i]] = kv[i+1]
	}
	l := audit.Log{Action: action, Target: target, Metadata: md}
	err := s.logger.Record(ctx, &l)
	if err != nil {
		s.errorLog.ErrorContext(ctx, "audit log not stored", "err", err, "audit", l, "request", audit.FromContext(ctx).Metadata)
	}
	return err
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// writeAuditUnavailable answers a request whose change was not made, or
// whose data was not returned, because its audit log could not be stored.
func writeAuditUnavailable(w http.ResponseWriter) {
	writeError(w, http.StatusInternalServerError, "the request could not be audited, so it was not carried out; try again later")
}
