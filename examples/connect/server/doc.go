// Package server is the projects API as a Connect-RPC service
// (projects.v1.ProjectService, in proto/projects/v1/projects.proto) whose
// every procedure with side effects is audited by the interceptors of
// package auditconnect, for Connect, gRPC and gRPC-Web clients alike. Any
// audit.Repository stores the trail:
//
//	srv, err := server.New(server.Config{Repository: repo, Tokens: httpserver.DemoTokens()})
//	http.ListenAndServe(addr, srv.Handler()) // or server.Run, which also speaks h2c
//
// # Procedures
//
//	CreateProject   any role   app.project.created
//	UpdateProject   any role   app.project.updated
//	DeleteProject   admin      app.project.deleted
//	GetProject      any role   not audited (NO_SIDE_EFFECTS)
//	ListProjects    any role   not audited (NO_SIDE_EFFECTS)
//	ExportProjects  any role   app.project.exported (server streaming)
//	ListAuditLogs   admin      app.audit_log.listed
//
// Procedures says so as the table the audit interceptor reads. Every call
// without a valid bearer token fails with CodeUnauthenticated, and is
// recorded as a denial by the anonymous actor when the procedure is
// audited; a member calling an admin procedure gets CodePermissionDenied,
// also recorded as a denial; any other error is a failure.
//
// # Who may read the trail
//
// ListAuditLogs lists the logs of the caller's org, newest first, to
// admins only; the org is always the caller's, and a request that names
// another one is denied. Its filters map to an audit.Filter (see
// FilterFromRequest); one that is not valid fails with
// CodeInvalidArgument, naming the field. Pages follow next_page_token,
// an audit.NextCursor: keyset paging, without duplicates or gaps while
// logs are written.
//
// # When an audit log cannot be stored
//
// The interceptor writes a call's log after the handler has returned, so
// a change has been made by then; an export's log is written before its
// first project is sent. Config.StoreFailure chooses whether the call
// then fails with CodeUnavailable (the default) or keeps its result —
// under the default, a listing of the trail and an export return nothing
// unaudited, and CreateProject, which is not idempotent, keeps its result
// under both — and either way the log is written whole to Config.ErrorLog,
// so that the event is not lost. A store whose outcome is unknown is
// retried with the same log first (auditconnect.Record). A service that
// must never make a change it could not audit writes the change and its
// log in one database transaction in the handler, and calls
// auditconnect.MarkLogged.
package server
