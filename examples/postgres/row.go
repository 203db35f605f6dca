package postgres

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/raystack/salt/audit"
)

// columns are the columns of audit_logs, in the order rows are written and
// read.
var columns = []string{
	"id", "org_id", "source", "action",
	"actor_id", "actor_type", "actor_name",
	"target_id", "target_type", "target_name",
	"metadata", "created_at",
}

// The range of timestamptz: 4713 BC to 294276 AD. Times outside it cannot
// be stored, and the driver would not encode them faithfully. Validate
// keeps CreatedAt within years 1 to 9999; filters and cursors may hold any
// time.
var (
	minTime = time.Date(-4712, time.November, 24, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(294277, time.January, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

// row is a validated log as it is written: metadata encoded as JSON,
// CreatedAt in UTC truncated to microseconds.
type row struct {
	id, orgID, source, action        string
	actorID, actorType, actorName    string
	targetID, targetType, targetName string
	metadata                         []byte
	createdAt                        time.Time
}

// newRow validates l and returns it as a row. The row shares no memory
// with l that l's owner may change.
func newRow(l *audit.Log) (row, error) {
	if err := l.Validate(); err != nil {
		return row{}, err
	}
	created := l.CreatedAt.UTC().Truncate(time.Microsecond)
	if created.Before(minTime) || !created.Before(maxTime) {
		return row{}, fmt.Errorf("%w: created_at %s is outside the range PostgreSQL stores", audit.ErrInvalidLog, created.Format(time.RFC3339))
	}
	return row{
		id: l.ID, orgID: l.OrgID, source: l.Source, action: l.Action,
		actorID: l.Actor.ID, actorType: l.Actor.Type, actorName: l.Actor.Name,
		targetID: l.Target.ID, targetType: l.Target.Type, targetName: l.Target.Name,
		metadata:  appendJSONObject(nil, l.Metadata),
		createdAt: created,
	}, nil
}

// values returns r as the values of columns.
func (r *row) values() []any {
	return []any{
		r.id, r.orgID, r.source, r.action,
		r.actorID, r.actorType, r.actorName,
		r.targetID, r.targetType, r.targetName,
		r.metadata, r.createdAt,
	}
}

// scanLog reads the current row of rows, selected with columns, as a
// Log. The Log's strings share one allocation.
func scanLog(rows pgx.Rows) (audit.Log, error) {
	vals := rows.RawValues()
	fds := rows.FieldDescriptions()
	if len(vals) != len(columns) {
		return audit.Log{}, fmt.Errorf("got %d columns, want %d", len(vals), len(columns))
	}
	md := vals[10]
	if fds[10].Format == pgx.BinaryFormatCode { // jsonb: a version byte, then text
		if len(md) == 0 || md[0] != 1 {
			return audit.Log{}, fmt.Errorf("unexpected jsonb encoding of metadata")
		}
		md = md[1:]
	}
	// Text is the same in either format: the bytes of the string.
	n := len(md)
	for _, v := range vals[:10] {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	for _, v := range vals[:10] {
		b.Write(v)
	}
	b.Write(md)
	s := b.String()
	var fields [11]string
	off := 0
	for i, v := range vals[:10] {
		fields[i] = s[off : off+len(v)]
		off += len(v)
	}
	l := audit.Log{
		ID: fields[0], OrgID: fields[1], Source: fields[2], Action: fields[3],
		Actor:  audit.Actor{ID: fields[4], Type: fields[5], Name: fields[6]},
		Target: audit.Target{ID: fields[7], Type: fields[8], Name: fields[9]},
	}
	if err := rows.Conn().TypeMap().Scan(fds[11].DataTypeOID, fds[11].Format, vals[11], &l.CreatedAt); err != nil {
		return audit.Log{}, fmt.Errorf("created_at of log %q: %w", l.ID, err)
	}
	l.CreatedAt = l.CreatedAt.UTC()
	var err error
	if l.Metadata, err = decodeJSONObject(s[off:]); err != nil {
		return audit.Log{}, fmt.Errorf("metadata of log %q: %w", l.ID, err)
	}
	return l, nil
}

// appendJSONObject appends md to buf as a JSON object. Keys come in map
// order: jsonb keeps its own. The strings must be valid UTF-8, as Validate
// ensures.
func appendJSONObject(buf []byte, md map[string]string) []byte {
	buf = append(buf, '{')
	first := true
	for k, v := range md {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = appendJSONString(buf, v)
	}
	return append(buf, '}')
}

// appendJSONString appends s to buf as a JSON string: quotes, backslashes
// and control characters escaped, everything else as it is.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
