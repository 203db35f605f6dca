// Package audittest checks implementations of audit.Repository against the
// contract written on that interface, on audit.Filter and on audit.Log.
//
// Each service stores its audit logs in its own storage and implements
// audit.Repository for it. Its tests prove the implementation right with
// one call:
//
//	func TestRepository(t *testing.T) {
//		audittest.TestRepository(t, func(t *testing.T) audit.Repository {
//			db := openTestDB(t) // a fresh, empty store for this subtest
//			t.Cleanup(func() { db.Close() })
//			return store.NewRepository(db)
//		})
//	}
//
// TestRepository runs one subtest per promise, each on a fresh repository,
// so that a failure says which promise was broken and shows the logs and
// the filter involved. audit.NewMemoryRepository, the reference
// implementation, passes it; so must every other implementation.
//
// # What is checked
//
// The subtests, by name:
//
//   - CreateValidates: a log that fails Log.Validate is rejected with
//     audit.ErrInvalidLog and not stored, before anything else is looked
//     at: also when its ID is stored already, and when ctx is done. Every
//     field is tried missing, one byte too long, as invalid UTF-8 and with
//     a NUL byte.
//   - CreateRejectsDuplicateID: a stored ID is rejected with
//     audit.ErrAlreadyExists, whatever the rest of the log, and the stored
//     log stays as it was; IDs differing in one byte (case, spaces,
//     Unicode normalization) are different.
//   - CreateCopiesLog: Create does not modify the caller's log or map, and
//     changing them afterwards changes nothing stored.
//   - ResultsBelongToCaller: changing what List and GetByID returned
//     changes nothing stored, and later calls do not change it either.
//   - GetByIDUnknown: an ID that is not stored, including IDs no log could
//     have, is audit.ErrNotFound.
//   - RoundTrip: every field reads back byte for byte, at every size bound
//     and in any script, metadata keys with dots, operators and header
//     names included; nil and empty Metadata read back with len 0, an
//     empty value stays; CreatedAt reads back in UTC, truncated to
//     microseconds.
//   - ListOrder, ListTieBreak: newest first, then ID descending by bytes
//     among logs with the same microsecond.
//   - FilterFields, FilterTimeRange, FilterMetadata: every field alone and
//     combined; Since inclusive, Until exclusive, against the stored time,
//     and an open bound open from year 1 to 9999; Metadata as a subset,
//     whatever the keys look like.
//   - FilterInvalid, MalformedCursor: a filter that fails Filter.Validate,
//     and any malformed cursor, is audit.ErrInvalidFilter.
//   - ListLimit: audit.DefaultLimit when Limit is 0, exactly Limit when
//     more match, audit.ErrInvalidFilter above audit.MaxLimit.
//   - Pagination, PaginationLarge: walking with audit.NextCursor returns
//     every match exactly once, in order, with full pages until a short
//     last one, every field of the filter restricting every page; cursors
//     are positions, valid whether or not a log is stored there, and a
//     cursor and Since and Until bound a page together. PaginationLarge
//     walks more than audit.MaxLimit logs that share few timestamps, also
//     while newer logs are written.
//   - PaginationWhileWriting: a walk neither repeats nor skips a log while
//     newer logs are written, between its pages and concurrently.
//   - TenantIsolation: with Filter.OrgID set, no other org's log is ever
//     returned, whatever the other fields and the cursor.
//   - ContextDone: Create, List and GetByID fail with a done ctx, and a
//     Create that failed so stored nothing.
//   - CreateOutcome: Create's error says what was stored, when ctx ends
//     while Create is under way (see below).
//   - ConcurrentUse: many goroutines create, read and list at once; a log
//     can be read once Create returned, and only whole; of concurrent
//     Creates of one ID exactly one succeeds, and an ID stays taken
//     however many logs follow. Run it with -race.
//
// Results of List are judged by audit.Filter.Match, the reference
// semantics of every Filter field, and ordered as the contract says; the
// kit never hands a repository a cursor other than one made by
// audit.NextCursor.
//
// # Unknown outcomes
//
// A Create may answer with an error wrapping audit.ErrMaybeStored when it
// cannot know whether the log was stored. The kit accepts that answer
// where a store can honestly not know: in CreateOutcome, whose contexts
// end 0 to 2 ms after the call, while a write may be under way. There it
// does not demand that nothing was stored; it retries as the contract
// says — Create of the same log — and demands nil or
// audit.ErrAlreadyExists, and the log stored after. A Create that fails
// there with any other error must have stored nothing, then or later: an
// error that does not say "maybe" says "not stored".
//
// The kit does not accept audit.ErrMaybeStored where the outcome is
// known without asking the store: for a log that fails Validate, which
// Create checks first; for a duplicate ID, which the store itself
// reported; and for a ctx that is done before Create is called, which
// Create can see before it sends anything, at no cost. Everywhere else —
// a Create with a context that does not end — the kit expects the log
// stored, as it expects every call of a healthy store to succeed.
//
// # Mistakes it catches
//
// The kit's own tests hold it to a list of mistakes that plausible
// implementations make, each a repository that goes wrong in that one way
// and that the kit must fail, in the case of the promise it breaks:
//
//   - Create: skipping validation, or part of it — bounds counted in
//     characters, as VARCHAR(n) counts them, NUL bytes let through —;
//     looking up the ID, or ctx, before validating; names or IDs cut to
//     a column's size; strings trimmed, stripped of control characters or
//     normalized to NFC; an ID unique per org only, compared in a
//     case-insensitive or PAD SPACE collation, or reported as the
//     driver's unique violation instead of audit.ErrAlreadyExists; a
//     duplicate stored, or written over the stored log; the caller's map
//     kept, or its CreatedAt changed.
//   - Time: nanoseconds kept; milliseconds (DATETIME(3), JavaScript and
//     BSON dates); rounding instead of truncating; a local zone on the way
//     out; wall clocks stored without their zone; float seconds; order by
//     the time given rather than the time stored, by RFC 3339 text, or by
//     Unix microseconds as text; Since or Until truncated, rounded, cut to
//     milliseconds, read without their zone, inclusive where exclusive or
//     the other way; an open Since read as 1970, an open Until as now.
//   - Metadata: empty values dropped, keys canonicalized as HTTP headers,
//     dots in keys escaped; a filter that matches any pair, keys alone,
//     prefixes, an absent key as "", nothing for an empty map, or that
//     builds a path from the key.
//   - Order and pages: oldest first; ties in the order stored, by ID
//     ascending, by a collation, or by UTF-16 code units (SQL Server's
//     _BIN2 collations, Java and JavaScript strings), IDs in cursors
//     compared so too; Limit ignored, plus one, all for 0,
//     clamped above audit.MaxLimit, or applied before the order or before
//     the metadata filter; a page buffer reused; a cursor read as an
//     offset, inclusive, by its time alone, by its fields apart, at
//     milliseconds, or malformed and taken as the first page; later pages
//     that drop the exact-match fields, Since or the metadata filter; a
//     cursor that replaces Until, or Until that replaces the cursor.
//   - Filters: OrgID ignored, "" taken for "no org", or matched as a key
//     prefix; exact fields matched as prefixes, without trailing spaces,
//     case-insensitively, or against the wrong column; an invalid filter
//     reported with an error of the store's own.
//   - GetByID: nil for an unknown ID, a prefix match, an encoding error for
//     an ID no log can have, the stored maps handed out.
//   - Context and outcomes: a done ctx ignored, or checked after the
//     write; audit.ErrMaybeStored for a ctx done before the call, or for
//     every error; a write that goes on after Create reported a plain
//     error; a deduplication window that keeps the IDs of writes it
//     abandoned, or forgets old IDs; a log readable only some time after
//     Create returned, or in part, its metadata written apart; a
//     duplicate check and write under separate locks.
//
// # Running it
//
// newRepo is called once per subtest, and some subtests call it once per
// case; it must return a repository that holds no logs. Against a
// database that is typically a new schema, or emptied tables, per call.
// The kit uses only the three methods of audit.Repository and stores at
// most 1,615 logs in one repository. SkipLarge leaves out the
// largest cases for quick local runs; Parallel runs the subtests in
// parallel when the repositories newRepo returns share nothing.
package audittest
