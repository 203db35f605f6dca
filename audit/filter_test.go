package audit_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

func TestFilterValidate(t *testing.T) {
	now := time.Now()
	cursor := audit.NextCursor([]audit.Log{validLog()})
	for _, tt := range []struct {
		name   string
		filter audit.Filter
		field  string // "" means valid
	}{
		{"zero", audit.Filter{}, ""},
		{"max limit", audit.Filter{Limit: audit.MaxLimit}, ""},
		{"since equals until", audit.Filter{Since: now, Until: now}, ""},
		{"only since", audit.Filter{Since: now}, ""},
		{"cursor", audit.Filter{Cursor: cursor}, ""},
		{"negative limit", audit.Filter{Limit: -1}, "limit"},
		{"limit over max", audit.Filter{Limit: audit.MaxLimit + 1}, "limit"},
		{"since after until", audit.Filter{Since: now.Add(time.Second), Until: now}, "since"},
		{"garbage cursor", audit.Filter{Cursor: "not a cursor"}, "cursor"},
		{"truncated cursor", audit.Filter{Cursor: cursor[:len(cursor)-3]}, "cursor"},
		{"edited cursor", audit.Filter{Cursor: editCursor(cursor)}, "cursor"},
		{"huge cursor", audit.Filter{Cursor: strings.Repeat("A", 10000)}, "cursor"},
		{"NUL in action", audit.Filter{Action: "a\x00"}, "action"},
		{"invalid UTF-8 in org", audit.Filter{OrgID: "\xff"}, "org_id"},
		{"empty metadata key", audit.Filter{Metadata: map[string]string{"": "v"}}, "metadata"},
		{"NUL in metadata value", audit.Filter{Metadata: map[string]string{"k": "\x00"}}, `metadata["k"]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.filter.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, audit.ErrInvalidFilter) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidFilter", err)
			}
			var ve *audit.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("got %v, want a *ValidationError for %q", err, tt.field)
			}
			if tt.filter.Match(validLog()) {
				t.Error("an invalid filter matched a log")
			}
		})
	}
}

// editCursor changes one character in the middle of a cursor.
func editCursor(c string) string {
	b := []byte(c)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestFilterMatch(t *testing.T) {
	l := validLog()
	older := l
	older.CreatedAt = l.CreatedAt.Add(-time.Microsecond)
	sameTimeLowerID := l
	sameTimeLowerID.ID = "0193a4b2-7c3d-7e21-8f00-1234567890aa"
	for _, tt := range []struct {
		name   string
		filter audit.Filter
		want   bool
	}{
		{"zero matches all", audit.Filter{}, true},
		{"org", audit.Filter{OrgID: "org-1"}, true},
		{"other org", audit.Filter{OrgID: "org-2"}, false},
		{"source", audit.Filter{Source: "frontier"}, true},
		{"other source", audit.Filter{Source: "shield"}, false},
		{"action", audit.Filter{Action: "app.user.created"}, true},
		{"action is exact", audit.Filter{Action: "app.user"}, false},
		{"actor id", audit.Filter{ActorID: "u-1"}, true},
		{"other actor id", audit.Filter{ActorID: "u-2"}, false},
		{"actor type", audit.Filter{ActorType: audit.ActorTypeUser}, true},
		{"other actor type", audit.Filter{ActorType: audit.ActorTypeService}, false},
		{"target id", audit.Filter{TargetID: "u-2"}, true},
		{"other target id", audit.Filter{TargetID: "u-1"}, false},
		{"target type", audit.Filter{TargetType: "user"}, true},
		{"other target type", audit.Filter{TargetType: "group"}, false},
		{"metadata subset", audit.Filter{Metadata: map[string]string{audit.MetadataIP: "203.0.113.9"}}, true},
		{"metadata other value", audit.Filter{Metadata: map[string]string{audit.MetadataIP: "198.51.100.1"}}, false},
		{"metadata missing key", audit.Filter{Metadata: map[string]string{"x": ""}}, false},
		{"since is inclusive", audit.Filter{Since: l.CreatedAt}, true},
		{"since after", audit.Filter{Since: l.CreatedAt.Add(time.Nanosecond)}, false},
		{"until is exclusive", audit.Filter{Until: l.CreatedAt}, false},
		{"until after", audit.Filter{Until: l.CreatedAt.Add(time.Nanosecond)}, true},
		{"all fields ANDed", audit.Filter{OrgID: "org-1", Source: "frontier", Action: "app.user.created", ActorID: "u-1", ActorType: "user", TargetID: "u-2", TargetType: "user"}, true},
		{"one field off", audit.Filter{OrgID: "org-1", Source: "frontier", Action: "app.user.deleted"}, false},
		{"cursor at the log excludes it", audit.Filter{Cursor: audit.NextCursor([]audit.Log{l})}, false},
		{"cursor at an older log excludes it", audit.Filter{Cursor: audit.NextCursor([]audit.Log{older})}, false},
		{"cursor at a lower ID with equal time excludes it", audit.Filter{Cursor: audit.NextCursor([]audit.Log{sameTimeLowerID})}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.Match(l); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	// Logs after the cursor, newest first: older, or as old with a lower ID.
	c := audit.Filter{Cursor: audit.NextCursor([]audit.Log{l})}
	if !c.Match(older) || !c.Match(sameTimeLowerID) {
		t.Error("a cursor did not match the logs that follow it")
	}
}

func TestCursorRoundTrip(t *testing.T) {
	l := validLog()
	l.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", 3600))
	c := audit.NextCursor([]audit.Log{validLog(), l})
	if strings.ContainsAny(c, "+/=?&% ") {
		t.Errorf("cursor %q is not URL-safe", c)
	}
	at, id, err := audit.ParseCursor(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := l.CreatedAt.UTC().Truncate(time.Microsecond); !at.Equal(want) || at.Location() != time.UTC {
		t.Errorf("got time %v, want %v in UTC", at, want)
	}
	if id != l.ID {
		t.Errorf("got id %q, want %q", id, l.ID)
	}
	if got := audit.NextCursor(nil); got != "" {
		t.Errorf("got %q for an empty page, want \"\"", got)
	}
	if _, _, err := audit.ParseCursor(editCursor(c)); !errors.Is(err, audit.ErrInvalidFilter) {
		t.Errorf("got %v for an edited cursor, want ErrInvalidFilter", err)
	}
}

func TestFilterPageSize(t *testing.T) {
	if got := (audit.Filter{}).PageSize(); got != audit.DefaultLimit {
		t.Errorf("got %d, want %d", got, audit.DefaultLimit)
	}
	if got := (audit.Filter{Limit: 7}).PageSize(); got != 7 {
		t.Errorf("got %d, want 7", got)
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add(audit.NextCursor([]audit.Log{validLog()}))
	f.Add("")
	f.Add("AQ")
	f.Add(strings.Repeat("_", 400))
	f.Fuzz(func(t *testing.T, cursor string) {
		at, id, err := audit.ParseCursor(cursor)
		if err != nil {
			if !errors.Is(err, audit.ErrInvalidFilter) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidFilter", err)
			}
			if cursor != "" && (audit.Filter{Cursor: cursor}).Validate() == nil {
				t.Fatal("Validate accepted a cursor ParseCursor rejects")
			}
			return
		}
		// What parses is a position that encodes back to a cursor that
		// parses to the same position.
		again := audit.NextCursor([]audit.Log{{ID: id, CreatedAt: at}})
		at2, id2, err := audit.ParseCursor(again)
		if err != nil || !at2.Equal(at) || id2 != id {
			t.Fatalf("re-encoded cursor %q parsed to %v, %q, %v; want %v, %q", again, at2, id2, err, at, id)
		}
	})
}
