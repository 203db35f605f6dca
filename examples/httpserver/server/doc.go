// Package server is the projects API: a small net/http service that shows
// the whole path of an audit trail, from who the caller is to who may read
// what was recorded. Any audit.Repository stores the trail:
//
//	srv, err := server.New(server.Config{Repository: repo, Tokens: server.DemoTokens()})
//
// # Routes
//
//	GET    /healthz                          no token needed
//	GET    /projects                         any role; not audited (a read)
//	POST   /projects                         any role        app.project.created
//	PATCH  /projects/{id}                    any role        app.project.updated
//	DELETE /projects/{id}                    admin           app.project.deleted
//	POST   /projects/{id}/members            admin           app.member.added
//	DELETE /projects/{id}/members/{user}     admin           app.member.removed
//	GET    /audit-logs                       admin           app.audit_log.listed
//
// Bodies are JSON: {"name": "..."} for projects, {"user_id": "...",
// "role": "editor"|"viewer"} for members. Errors are {"error": "..."}.
//
// # Who the caller is
//
// A bearer token (Authorization: Bearer <token>) names a Principal: an
// actor (a user or a service account), its org and its role. The
// authentication middleware puts the actor and org into the request's
// context with audit.SetActor and audit.SetOrgID, and handlers authorize
// with audit.ActorFromContext and audit.OrgIDFromContext. A request to an
// audited route without a valid token is recorded as app.auth.failed with
// the anonymous actor, and answered 401.
//
// # What request it was
//
// The request-metadata middleware runs first, so that denials carry it
// too. It sets, with audit.SetMetadata, request_id (X-Request-Id when it is
// a safe token, else a new UUID; sent back in X-Request-Id), user_agent,
// trace_id (from a W3C traceparent header) and ip (the connection's peer,
// unless the peer is a configured trusted proxy). A header that is
// malformed is dropped and one that is too long is cut, so no client can
// make the audit log of its request invalid. That reading is shared with
// other transports: it lives in package
// github.com/raystack/salt/audit/auditmeta.
//
// # What happened
//
// Every change, every failed attempt and every denial writes one log with
// the outcome metadata key: success, failure (with a "reason": not_found,
// conflict, invalid_request, or storage_error when the repository fails to
// list logs) or denied (reason admin_required, missing_token or
// invalid_token). Denials are the events an audit trail
// exists for, so none is skipped.
//
// A change is made only if its audit log was stored: the project store
// applies a change after the log is written, under the same lock, and
// when the Logger returns an error the change is dropped and the client
// gets 500. An unaudited change is worse than a failed one. A service
// with a database gets the same guarantee by writing the change and the
// log in one transaction. When the log of a denial or a failure cannot be
// stored, the client still gets the 4xx it earned, since nothing changed;
// the log is written to Config.ErrorLog so that the event is not lost.
//
// # Who may read the trail
//
// GET /audit-logs lists the logs of the caller's org, newest first, to
// admins only. Its query parameters map to an audit.Filter (see
// FilterFromQuery); the org is always the caller's, whatever the query
// says. The response is {"logs": [...], "next_cursor": "..."}; pass
// next_cursor as cursor for the next page; it is "" on the last page. A
// bad parameter is answered 400 with a message naming it. Each listing is
// itself recorded, and is not returned when that log cannot be stored.
//
// # Shared with examples/connect
//
// The same service on Connect-RPC, examples/connect, takes who its callers
// are from this package — Principal, Role, TokenTable (with the one rule
// for tokens, ValidToken), DemoTokens — and runs the way this one does,
// with Flags and Serve. So both examples accept the same tokens by the
// same rules, and stop the same way.
package server
