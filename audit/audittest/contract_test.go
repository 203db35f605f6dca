package audittest_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// The kit relies on package audit for two things beyond the Repository
// methods: Log.Validate accepts only logs that every repository can store
// and return as they were, and a cursor that is not exactly what
// NextCursor made is malformed. These tests hold package audit to both.

// TestValidateAcceptsOnlyStorableCreatedAt: a log Validate accepts must
// read back unchanged but for truncation to microseconds, and must have a
// JSON form, the wire format of Log.
func TestValidateAcceptsOnlyStorableCreatedAt(t *testing.T) {
	for _, tt := range []struct {
		name      string
		createdAt time.Time
	}{
		{"first nanosecond of year 1, the zero time once truncated", time.Time{}.Add(1)},
		{"year 10000, beyond RFC 3339 and JSON", time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC)},
		{"year 300000, beyond Unix microseconds in an int64", time.Date(300000, time.January, 1, 0, 0, 0, 0, time.UTC)},
		{"year -300000, beyond Unix microseconds in an int64", time.Date(-300000, time.January, 1, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := audit.Log{ID: "l", Source: "s", Action: "a", Actor: audit.Actor{Type: audit.ActorTypeUser}, CreatedAt: tt.createdAt}
			err := l.Validate()
			if errors.Is(err, audit.ErrInvalidLog) {
				return
			}
			repo := audit.NewMemoryRepository()
			ctx := context.Background()
			var stored string
			if err := repo.Create(ctx, &l); err != nil {
				stored = "Create failed: " + err.Error()
			} else if got, err := repo.GetByID(ctx, l.ID); err != nil {
				stored = "GetByID failed: " + err.Error()
			} else {
				stored = "the memory repository returns CreatedAt " + got.CreatedAt.String()
				if err := got.Validate(); err != nil {
					stored += ", which fails Validate: " + err.Error()
				}
			}
			_, jsonErr := json.Marshal(l)
			t.Errorf("Validate(log created at %s): got %v, want an error wrapping audit.ErrInvalidLog: a valid log can be stored and read back as it was, and encoded as JSON\n\t%s\n\tjson.Marshal: %v",
				tt.createdAt, err, stored, jsonErr)
		})
	}
}

// TestEditedCursorIsMalformed: a cursor with one character replaced is not
// the cursor NextCursor made, and is rejected as malformed, as the
// package documents, even where the replaced bits are ones base64 does
// not decode.
func TestEditedCursorIsMalformed(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// A UUID, 36 bytes, makes a 49-byte cursor: the last of its base64
	// characters carries 2 bits of it and 4 unused ones.
	c := audit.NextCursor([]audit.Log{{ID: "01930f6e-8a3c-7b2e-9d4f-5a6b7c8d9e0f", CreatedAt: time.Date(2024, time.March, 9, 14, 30, 15, 123456000, time.UTC)}})
	var accepted []string
	for i := range len(c) {
		for j := range len(alphabet) {
			edited := c[:i] + alphabet[j:j+1] + c[i+1:]
			if edited != c && (audit.Filter{Cursor: edited}).Validate() == nil {
				accepted = append(accepted, edited)
			}
		}
	}
	if len(accepted) > 0 {
		t.Errorf("cursors made from %q by replacing one character: got %d accepted by Filter.Validate, e.g. %q, want none: an edited cursor is ErrInvalidFilter",
			c, len(accepted), accepted[0])
	}
}
