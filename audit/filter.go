package audit

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"time"
)

// Page sizes of List.
const (
	DefaultLimit = 100  // used when Filter.Limit is 0
	MaxLimit     = 1000 // a larger Filter.Limit is rejected with ErrInvalidFilter
)

// Filter selects logs for Repository.List. Fields are ANDed; a zero field
// matches everything.
//
// Code that lists logs on behalf of a caller must set OrgID from the
// caller's identity, never from the caller's input.
type Filter struct {
	OrgID      string // exact match
	Source     string // exact match
	Action     string // exact match
	ActorID    string // exact match
	ActorType  string // exact match
	TargetID   string // exact match
	TargetType string // exact match
	// Metadata matches logs whose metadata holds every one of these pairs.
	Metadata map[string]string
	// Since and Until bound CreatedAt: Since <= CreatedAt < Until. A zero
	// time leaves that side open.
	Since, Until time.Time
	// Limit is the most logs List returns: 0 means DefaultLimit; a negative
	// value or one above MaxLimit is invalid.
	Limit int
	// Cursor continues a listing after the page it was made from: pass
	// NextCursor(page). "" starts at the newest log. Cursors are opaque and
	// URL-safe; they are not signed, so never trust one to grant access —
	// force OrgID instead.
	Cursor string
}

// Validate reports whether f can be used for List. The error it returns
// wraps ErrInvalidFilter and is a *ValidationError naming the field.
func (f Filter) Validate() error {
	_, err := f.compile()
	return err
}

// Match reports whether List with filter f could return l: the reference
// semantics of every field but Limit. With a Cursor, it matches only logs
// that come after the cursor's position, newest first. An invalid filter
// matches nothing.
func (f Filter) Match(l Log) bool {
	m, err := f.compile()
	if err != nil {
		return false
	}
	return m.match(&l)
}

// PageSize returns the number of logs List returns at most for f: Limit,
// or DefaultLimit when Limit is 0. It does not check that f is valid.
func (f Filter) PageSize() int {
	if f.Limit == 0 {
		return DefaultLimit
	}
	return f.Limit
}

// matcher is a validated Filter with its cursor decoded, for matching many
// logs.
type matcher struct {
	f         *Filter
	hasCursor bool
	cursor    position
}

func (f *Filter) compile() (matcher, error) {
	m := matcher{f: f}
	fields := [...]struct{ name, value string }{
		{"org_id", f.OrgID},
		{"source", f.Source},
		{"action", f.Action},
		{"actor_id", f.ActorID},
		{"actor_type", f.ActorType},
		{"target_id", f.TargetID},
		{"target_type", f.TargetType},
	}
	for _, fl := range fields {
		if reason := checkString(fl.value, maxFilterString); reason != "" {
			return m, invalidFilter(fl.name, reason)
		}
	}
	// Of several offending pairs, the one with the least key is named, so
	// that map order does not decide the error.
	var buf [stackPairs]kv
	if field, reason := leastBadPair(appendPairs(buf[:0], f.Metadata), maxFilterString, maxFilterString); field != "" {
		return m, invalidFilter(field, reason)
	}
	if f.Limit < 0 {
		return m, invalidFilter("limit", "is negative")
	}
	if f.Limit > MaxLimit {
		return m, invalidFilter("limit", "is "+strconv.Itoa(f.Limit)+", more than "+strconv.Itoa(MaxLimit))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Since.After(f.Until) {
		return m, invalidFilter("since", "is after until")
	}
	if f.Cursor != "" {
		p, err := decodeCursor(f.Cursor)
		if err != nil {
			return m, err
		}
		m.hasCursor, m.cursor = true, p
	}
	return m, nil
}

// maxFilterString bounds filter strings: no stored string is longer than a
// metadata value, so a longer filter string could never match.
const maxFilterString = MaxMetadataValueLen

func (m *matcher) match(l *Log) bool {
	f := m.f
	if f.OrgID != "" && l.OrgID != f.OrgID ||
		f.Source != "" && l.Source != f.Source ||
		f.Action != "" && l.Action != f.Action ||
		f.ActorID != "" && l.Actor.ID != f.ActorID ||
		f.ActorType != "" && l.Actor.Type != f.ActorType ||
		f.TargetID != "" && l.Target.ID != f.TargetID ||
		f.TargetType != "" && l.Target.Type != f.TargetType {
		return false
	}
	if !f.Since.IsZero() && l.CreatedAt.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !l.CreatedAt.Before(f.Until) {
		return false
	}
	for k, v := range f.Metadata {
		if got, ok := l.Metadata[k]; !ok || got != v {
			return false
		}
	}
	if m.hasCursor && !m.cursor.before(l) {
		return false
	}
	return true
}

// position is a place in the newest-first order of logs: what a cursor
// encodes.
type position struct {
	micros int64 // CreatedAt as Unix microseconds
	id     string
}

func positionOf(l *Log) position {
	return position{micros: l.CreatedAt.UnixMicro(), id: l.ID}
}

// before reports whether p comes before l in newest-first order, that is,
// whether l is strictly older than p: (CreatedAt, ID) < (p.micros, p.id).
func (p position) before(l *Log) bool {
	lm := l.CreatedAt.UnixMicro()
	return lm < p.micros || lm == p.micros && l.ID < p.id
}

// NextCursor returns the cursor that continues a listing after page, the
// result of a List call: it encodes the position of page's last log. It
// returns "" for an empty page.
//
// A page shorter than the filter's Limit is the last one; callers that want
// to avoid one more round trip stop there.
func NextCursor(page []Log) string {
	if len(page) == 0 {
		return ""
	}
	return encodeCursor(positionOf(&page[len(page)-1]))
}

// Cursor layout, before base64url: version byte, CreatedAt as big-endian
// Unix microseconds, the ID's bytes, then a CRC-32 of everything before it.
// The checksum turns an edited or truncated cursor into ErrInvalidFilter
// instead of a silently different page.
const (
	cursorVersion  = 1
	cursorOverhead = 1 + 8 + 4
	maxCursorLen   = (cursorOverhead+MaxIDLen+2)/3*4 + 4 // generous bound on the encoded length
)

func encodeCursor(p position) string {
	buf := make([]byte, 0, cursorOverhead+len(p.id))
	buf = append(buf, cursorVersion)
	buf = binary.BigEndian.AppendUint64(buf, uint64(p.micros))
	buf = append(buf, p.id...)
	buf = binary.BigEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf))
	return base64.RawURLEncoding.EncodeToString(buf)
}

// ParseCursor decodes a cursor made by NextCursor into the CreatedAt and ID
// of the log it follows. It is for Repository implementations that page in
// their own storage; a malformed cursor is an error wrapping
// ErrInvalidFilter.
func ParseCursor(cursor string) (createdAt time.Time, id string, err error) {
	p, err := decodeCursor(cursor)
	if err != nil {
		return time.Time{}, "", err
	}
	return time.UnixMicro(p.micros).UTC(), p.id, nil
}

func decodeCursor(s string) (position, error) {
	if len(s) > maxCursorLen {
		return position{}, invalidFilter("cursor", "is malformed")
	}
	buf, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(buf) < cursorOverhead+1 || buf[0] != cursorVersion {
		return position{}, invalidFilter("cursor", "is malformed")
	}
	body, sum := buf[:len(buf)-4], binary.BigEndian.Uint32(buf[len(buf)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return position{}, invalidFilter("cursor", "is malformed")
	}
	id := string(body[9:])
	micros := int64(binary.BigEndian.Uint64(body[1:9]))
	// A cursor is the position of a valid log: its time is in the years
	// Validate allows, so that no repository is handed a time it cannot
	// store.
	if checkString(id, MaxIDLen) != "" || micros < firstTime.UnixMicro() || micros >= endOfTime.UnixMicro() {
		return position{}, invalidFilter("cursor", "is malformed")
	}
	return position{micros: micros, id: id}, nil
}
