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
//
// # Canonical encoding
//
// [Log.AppendCanonical] writes the bytes that stand for a log wherever it
// must be reproduced exactly, by any implementation in any language: to
// hash it, sign it, or seal it in a Merkle tree. [Log.LeafHash] is the
// hash of a log as a leaf of an RFC 6962 tree: SHA-256(0x00 ‖ encoding).
// Version 1 ([CanonicalVersion]) is, in order:
//
//   - the domain separator [CanonicalDomain], the 15 bytes
//     "salt-audit-log" and 0x00, then the version byte 0x01;
//   - the ten strings ID, OrgID, Source, Action, Actor.ID, Actor.Type,
//     Actor.Name, Target.ID, Target.Type and Target.Name, each as its
//     length in bytes (4 bytes, unsigned, big endian) and its UTF-8 bytes;
//   - the number of Metadata entries (4 bytes, big endian), then each
//     entry, keys in ascending order of their bytes, as its key and its
//     value, each written as the strings above;
//   - CreatedAt as the signed number of microseconds since
//     1970-01-01T00:00:00Z (8 bytes, two's complement, big endian), taken
//     in UTC and truncated to the microsecond, as a Repository stores it.
//
// Every field is there, always in the same place, and each string carries
// its length, so no two different logs encode alike and no escaping rule
// has to be agreed on. That is why the encoding is length-prefixed binary
// rather than canonical JSON: JSON would have to fix how each character is
// escaped, how keys sort (RFC 8785 sorts by UTF-16 code units, not by
// bytes) and how times are written, each a place where two
// implementations can disagree on a valid log. A nil and an empty
// Metadata encode alike, as repositories store them alike. A log that
// fails [Log.Validate] has no encoding: both methods return Validate's
// error. The file testdata/canonical-v1.json holds logs, their encodings
// (hex) and leaf hashes for other implementations to test against.
package audit
