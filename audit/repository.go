package audit

import (
	"context"
	"errors"
)

// Sentinel errors. Implementations wrap them with detail (the field, the id)
// and callers test for them with errors.Is.
var (
	// ErrNotFound is returned when no log has the requested ID.
	ErrNotFound = errors.New("audit: log not found")
	// ErrAlreadyExists is returned when a log with the same ID is already stored.
	ErrAlreadyExists = errors.New("audit: log already exists")
	// ErrInvalidLog is returned when a Log fails Validate.
	ErrInvalidLog = errors.New("audit: invalid log")
	// ErrInvalidFilter is returned when a Filter fails Validate: a negative
	// or too large Limit, Since after Until, a malformed Cursor, or a string
	// that is not valid UTF-8 or holds a NUL byte.
	ErrInvalidFilter = errors.New("audit: invalid filter")
	// ErrMaybeStored is returned when a Repository cannot tell whether a log
	// was stored: the connection was lost after the log was sent, a commit
	// is still waiting on a replica, a deadline ended the wait for an
	// acknowledgement. The log may be stored now, or later, or never.
	//
	// The safe retry stores the same log again under the same ID, with
	// Logger.Record: an error wrapping ErrAlreadyExists then means that the
	// first attempt stored it. A retry through Logger.Log would make a new
	// ID, and so a second event.
	ErrMaybeStored = errors.New("audit: outcome unknown, the log may have been stored")
)

// ValidationError describes why a Log or a Filter was rejected. It wraps
// ErrInvalidLog or ErrInvalidFilter; use errors.Is to test for those, and
// errors.As to find the field.
type ValidationError struct {
	Field  string // the JSON name of the field, e.g. "actor.type", "limit"
	Reason string // what is wrong with it, e.g. "is required"
	err    error
}

func (e *ValidationError) Error() string {
	prefix := "audit: invalid"
	if e.err != nil {
		prefix = e.err.Error()
	}
	return prefix + ": " + e.Field + " " + e.Reason
}

// Unwrap returns ErrInvalidLog or ErrInvalidFilter for errors made by
// Validate; repositories return those errors as they are.
func (e *ValidationError) Unwrap() error { return e.err }

func invalidLog(field, reason string) error {
	return &ValidationError{Field: field, Reason: reason, err: ErrInvalidLog}
}

func invalidFilter(field, reason string) error {
	return &ValidationError{Field: field, Reason: reason, err: ErrInvalidFilter}
}

// Repository stores audit logs. Each service implements it for its own
// storage; audittest.TestRepository checks an implementation against every
// rule below, and NewMemoryRepository is the reference implementation.
//
// A Repository is append-only: logs are never updated or deleted through it.
// All methods must be safe for concurrent use and must honor cancellation
// of ctx, returning an error (usually wrapping ctx.Err()) when it ends
// before the work is done.
type Repository interface {
	// Create stores log.
	//
	// It first validates log and returns an error wrapping ErrInvalidLog if
	// Validate fails, storing nothing. A log whose ID is already stored is
	// rejected with an error wrapping ErrAlreadyExists. CreatedAt is stored
	// in UTC, truncated to microseconds. The stored copy is independent of
	// log and its Metadata map: Create must not modify log or its map, and
	// must not retain either after it returns.
	//
	// Create returns nil only once the log is stored: a later GetByID or
	// List finds it. An error means the log is not stored, unless it wraps
	// ErrMaybeStored, which a Create returns when it cannot know (the
	// connection failed after the log was sent, a commit waits on a
	// replica, ctx ended while the store was under way). An error that
	// wraps ErrMaybeStored may also wrap the cause, such as
	// context.DeadlineExceeded.
	Create(ctx context.Context, log *Log) error

	// List returns the logs that match filter, newest first: ordered by
	// CreatedAt descending, then ID descending. Every field of filter
	// restricts the result as Filter.Match describes, and at most
	// filter.Limit logs are returned (DefaultLimit when it is 0).
	//
	// Paging is by keyset: with filter.Cursor set to NextCursor of the
	// previous page, List returns the logs that follow it in that order, so
	// that no log is returned twice or skipped while newer logs are written.
	// A log is ordered by its CreatedAt, which the Logger sets before the
	// store: one that is stored late, with a CreatedAt among pages already
	// read, is not returned by that walk. Readers that follow the newest
	// logs should overlap their windows by the longest store (the Logger's
	// timeout) plus clock skew between writers, and drop IDs they have seen.
	//
	// An invalid filter (see Filter.Validate) is rejected with an error
	// wrapping ErrInvalidFilter. The returned logs, and their maps, belong to
	// the caller.
	List(ctx context.Context, filter Filter) ([]Log, error)

	// GetByID returns the log with the given ID, or an error wrapping
	// ErrNotFound. The returned log and its map belong to the caller.
	GetByID(ctx context.Context, id string) (Log, error)
}
