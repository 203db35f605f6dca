// Package audit records who did what to which entity, in which tenant, and
// when: the audit trail of a service.
//
// A service sets who the caller is once, in its authentication middleware,
// and then records what happened wherever it happens:
//
//	ctx = audit.SetActor(ctx, audit.Actor{ID: user.ID, Type: audit.ActorTypeUser, Name: user.Email})
//	ctx = audit.SetOrgID(ctx, user.OrgID)
//	...
//	err := logger.Log(ctx, "app.project.created", audit.Target{ID: p.ID, Type: "project", Name: p.Name})
//
// # The schema
//
// A [Log] is one event: an [Actor] performed an Action on a [Target], in an
// OrgID, at CreatedAt, reported by a Source service, with Metadata about the
// request. Its JSON names (id, org_id, source, action, actor, target,
// metadata, created_at) are the wire format shared by every service.
// [Log.Validate] bounds every field (see the Max constants), requires valid
// UTF-8 without NUL bytes, and never shortens anything: a log that does not
// fit is rejected with an error wrapping [ErrInvalidLog].
//
// The design answers three questions the way the services need:
//
//   - OrgID is optional. Services without tenants leave it empty. Code that
//     lists logs for a caller must set [Filter].OrgID from the caller's
//     identity, never from the caller's input.
//   - A Log has exactly one Target. An operation that touches N entities
//     writes N logs that share a [MetadataRequestID] value, so filters and
//     indexes stay simple.
//   - There is no level. Severity follows from the action name, and the
//     outcome goes in the [MetadataOutcome] key: [OutcomeSuccess],
//     [OutcomeFailure] or [OutcomeDenied]. Failures and denials are often the
//     events an audit trail exists for.
//
// Times are kept in UTC at microsecond precision, the precision PostgreSQL
// stores, so that every [Repository], cursor and round trip agrees.
//
// # Context
//
// [SetActor], [SetOrgID] and [SetMetadata] return a new context and never
// change the values their parent carries, so concurrent requests and
// sibling contexts cannot see each other's metadata. Maps are copied on the
// way in and on the way out. [ActorFromContext] and [OrgIDFromContext] are
// for authorization code and do not allocate.
//
// # Storing
//
// A [Logger] fills what a log is missing — a UUIDv7 ID, the time, its
// source, and the org, actor and metadata of the context — replaces
// secret-looking metadata values with [Redacted] (see [WithRedactedKeys]),
// validates the log and stores it with a [Repository] before it returns.
// An audit log is never dropped silently: when it cannot be stored, Log
// returns the error. The action being audited has already happened, so a
// canceled request does not abandon its log; the store is bounded by the
// Logger's own timeout.
//
// Each service implements [Repository] for its own storage. The package
// audittest checks an implementation against every rule of the contract,
// and [MemoryRepository] is the reference implementation. Listing is by
// keyset: [NextCursor] continues a [Filter] after the page it was given,
// without duplicates or gaps while new logs are written.
//
// # Errors
//
// Errors are wrapped with detail and tested with errors.Is against the
// package's sentinels: [ErrInvalidLog] for a log that fails
// [Log.Validate] (a [*ValidationError] names the field), [ErrInvalidFilter]
// for a [Filter] that fails [Filter.Validate], [ErrAlreadyExists] for a
// log whose ID is stored already, [ErrNotFound] for an ID that is not, and
// [ErrMaybeStored] for a store whose outcome a [Repository] cannot know —
// the safe retry is [Logger.Record] with the same log, under the same ID.
// What a publisher did not deliver is reported as a [*PublishError],
// whose cause may be [ErrQueueFull] or [ErrClosed].
//
// # Publishing
//
// A Logger can hand every stored log to [Publisher]s — a webhook, a log
// pipeline ([JSONLinesPublisher]), a message bus — through a bounded queue
// per publisher (see [WithPublisher]). Publishing never fails Log, and
// never holds it up unless a publisher is attached with [BlockWhenFull];
// what a publisher could not deliver is counted in [Logger.Stats] and
// reported to an error handler. [Logger.Close] drains the queues within
// its context's deadline. It may be called from any goroutine, the error
// handler included, and more than once: every call waits for the same
// drain and returns the same result, but one given the context of a
// Publish call, which cannot wait for that call and returns at once. A
// publisher that fails, panics or ends its goroutine with runtime.Goexit
// loses only the log it was given.
package audit
