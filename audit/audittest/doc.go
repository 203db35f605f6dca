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
//     audit.ErrInvalidLog and not stored; every field is tried missing,
//     one byte too long, as invalid UTF-8 and with a NUL byte.
//   - CreateRejectsDuplicateID: a stored ID is rejected with
//     audit.ErrAlreadyExists, whatever the rest of the log; IDs differing
//     in one byte (case, spaces, Unicode normalization) are different.
//   - CreateCopiesLog: Create does not modify the caller's log or map, and
//     changing them afterwards changes nothing stored.
//   - ResultsBelongToCaller: changing what List and GetByID returned
//     changes nothing stored.
//   - GetByIDUnknown: an ID that is not stored, including IDs no log could
//     have, is audit.ErrNotFound.
//   - RoundTrip: every field reads back byte for byte, at every size bound
//     and in any script; nil and empty Metadata read back with len 0, an
//     empty value stays; CreatedAt reads back in UTC, truncated to
//     microseconds.
//   - ListOrder, ListTieBreak: newest first, then ID descending by bytes
//     among logs with the same microsecond.
//   - FilterFields, FilterTimeRange, FilterMetadata: every field alone and
//     combined; Since inclusive, Until exclusive, against the stored time;
//     Metadata as a subset.
//   - FilterInvalid, MalformedCursor: a filter that fails Filter.Validate,
//     and any malformed cursor, is audit.ErrInvalidFilter.
//   - ListLimit: audit.DefaultLimit when Limit is 0, exactly Limit when
//     more match, audit.ErrInvalidFilter above audit.MaxLimit.
//   - Pagination, PaginationLarge: walking with audit.NextCursor returns
//     every match exactly once, in order, with full pages until a short
//     last one; cursors are positions, valid whether or not a log is
//     stored there. PaginationLarge walks more than audit.MaxLimit logs
//     that share few timestamps, also while newer logs are written.
//   - PaginationWhileWriting: a walk neither repeats nor skips a log while
//     newer logs are written, between its pages and concurrently.
//   - TenantIsolation: with Filter.OrgID set, no other org's log is ever
//     returned, whatever the other fields and the cursor.
//   - ContextDone: Create, List and GetByID fail with a done ctx, and a
//     Create that failed so stored nothing.
//   - ConcurrentUse: many goroutines create, read and list at once; a log
//     can be read once Create returned; of concurrent Creates of one ID
//     exactly one succeeds. Run it with -race.
//
// Results of List are judged by audit.Filter.Match, the reference
// semantics of every Filter field, and ordered as the contract says; the
// kit never hands a repository a cursor other than one made by
// audit.NextCursor.
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
