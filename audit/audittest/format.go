package audittest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raystack/salt/audit"
)

// Failure messages show logs, filters and cursors compactly but exactly:
// strings are quoted, so that invalid UTF-8, NUL bytes and trailing spaces
// show, and cut when long; times are in UTC with nanoseconds.

// fmtLog formats l on one line, leaving out empty optional fields.
func fmtLog(l audit.Log) string {
	var b strings.Builder
	b.WriteString("{id:" + fmtString(l.ID))
	if l.OrgID != "" {
		b.WriteString(" org_id:" + fmtString(l.OrgID))
	}
	b.WriteString(" source:" + fmtString(l.Source) + " action:" + fmtString(l.Action))
	b.WriteString(" actor:" + fmtEntity(l.Actor.Type, l.Actor.ID, l.Actor.Name))
	if l.Target != (audit.Target{}) {
		b.WriteString(" target:" + fmtEntity(l.Target.Type, l.Target.ID, l.Target.Name))
	}
	if l.Metadata != nil {
		b.WriteString(" metadata:" + fmtMetadata(l.Metadata))
	}
	b.WriteString(" created_at:" + fmtTime(l.CreatedAt) + "}")
	return b.String()
}

func fmtEntity(typ, id, name string) string {
	s := fmtString(typ) + "/" + fmtString(id)
	if name != "" {
		s += "(" + fmtString(name) + ")"
	}
	return s
}

// fmtMetadata formats md with sorted keys; a nil map shows as nil, so that
// a message can tell it from an empty one.
func fmtMetadata(md map[string]string) string {
	if md == nil {
		return "nil"
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i == 8 {
			fmt.Fprintf(&b, " …%d more", len(keys)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(fmtString(k) + ":" + fmtString(md[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// fmtString quotes s, cut to its first bytes when it is long.
func fmtString(s string) string {
	const most = 40
	if len(s) <= most {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:most]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// fmtTime formats t in UTC with every digit of its nanoseconds, and names
// its location when that is not UTC.
func fmtTime(t time.Time) string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000000Z")
	if loc := t.Location(); loc != time.UTC {
		s += "(in " + loc.String() + ")"
	}
	return s
}

// fmtIDs lists the IDs of logs, the first and the last ones when there are
// many.
func fmtIDs(logs []audit.Log) string {
	const head, tail = 12, 3
	ids := make([]string, 0, head+tail+1)
	for i, l := range logs {
		switch {
		case i < head || i >= len(logs)-tail || len(logs) <= head+tail:
			ids = append(ids, fmtString(l.ID))
		case i == head:
			ids = append(ids, "…"+strconv.Itoa(len(logs)-head-tail)+" more…")
		}
	}
	return "[" + strings.Join(ids, " ") + "]"
}

// fmtFilter formats the fields of f that are set; a cursor is shown as the
// position it encodes.
func fmtFilter(f audit.Filter) string {
	var parts []string
	str := func(name, v string) {
		if v != "" {
			parts = append(parts, name+":"+fmtString(v))
		}
	}
	str("OrgID", f.OrgID)
	str("Source", f.Source)
	str("Action", f.Action)
	str("ActorID", f.ActorID)
	str("ActorType", f.ActorType)
	str("TargetID", f.TargetID)
	str("TargetType", f.TargetType)
	if f.Metadata != nil {
		parts = append(parts, "Metadata:"+fmtMetadata(f.Metadata))
	}
	if !f.Since.IsZero() {
		parts = append(parts, "Since:"+fmtTime(f.Since))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "Until:"+fmtTime(f.Until))
	}
	if f.Limit != 0 {
		parts = append(parts, "Limit:"+strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		if at, id, err := audit.ParseCursor(f.Cursor); err == nil {
			parts = append(parts, "Cursor:after("+fmtTime(at)+" "+fmtString(id)+")")
		} else {
			parts = append(parts, "Cursor:"+fmtString(f.Cursor))
		}
	}
	return "Filter{" + strings.Join(parts, " ") + "}"
}
