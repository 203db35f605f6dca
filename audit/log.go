package audit

import (
	"log/slog"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Size bounds of a Log, in bytes. Validate rejects a Log that exceeds any of
// them; nothing in this package ever shortens a string to make it fit.
const (
	MaxIDLen            = 256  // Log.ID
	MaxOrgIDLen         = 256  // Log.OrgID
	MaxSourceLen        = 256  // Log.Source
	MaxActionLen        = 256  // Log.Action
	MaxEntityIDLen      = 256  // Actor.ID and Target.ID
	MaxEntityTypeLen    = 256  // Actor.Type and Target.Type
	MaxEntityNameLen    = 1024 // Actor.Name and Target.Name
	MaxMetadataKeys     = 64   // number of entries in Log.Metadata
	MaxMetadataKeyLen   = 128  // each key of Log.Metadata; keys must also be non-empty
	MaxMetadataValueLen = 4096 // each value of Log.Metadata
)

// Well-known metadata keys. Services may add keys of their own; these are the
// ones every service fills the same way so that logs can be correlated.
const (
	MetadataIP        = "ip"         // the client's address, as the service determined it
	MetadataUserAgent = "user_agent" // the client's User-Agent
	MetadataRequestID = "request_id" // shared by every log written for one request
	MetadataTraceID   = "trace_id"   // W3C trace id, to join the audit trail with traces
	MetadataOutcome   = "outcome"    // one of OutcomeSuccess, OutcomeFailure, OutcomeDenied
)

// Values of the MetadataOutcome key.
const (
	OutcomeSuccess = "success" // the action happened
	OutcomeFailure = "failure" // the action was attempted and failed
	OutcomeDenied  = "denied"  // the caller was not allowed to perform the action
)

// Well-known actor types.
const (
	ActorTypeUser      = "user"      // a person
	ActorTypeService   = "service"   // a service account or another service
	ActorTypeSystem    = "system"    // the platform itself: schedulers, migrations, retention
	ActorTypeAnonymous = "anonymous" // an unauthenticated caller
)

// Actor is who performed an action.
type Actor struct {
	ID   string `json:"id"`
	Type string `json:"type"` // required; see the ActorType constants
	Name string `json:"name"`
}

// Target is the entity an action was performed on. An operation that touches
// several entities writes one Log per entity, sharing a MetadataRequestID value.
type Target struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Name string `json:"name"`
}

// Log is one audit event: who (Actor) did what (Action) to which entity
// (Target), in which tenant (OrgID), when (CreatedAt).
//
// Log is a plain value. Copies share the Metadata map; use Clone for a copy
// that can be modified independently.
type Log struct {
	// ID identifies the log. The Logger fills it with a UUIDv7 string, so IDs
	// sort in creation order.
	ID string `json:"id"`
	// OrgID is the tenant the log belongs to; "" means not tenant scoped.
	OrgID string `json:"org_id"`
	// Source is the service that emitted the log, e.g. "frontier".
	Source string `json:"source"`
	// Action is a dotted event name, e.g. "app.user.created".
	Action string `json:"action"`
	Actor  Actor  `json:"actor"`
	Target Target `json:"target"`
	// Metadata holds request details (see the Metadata constants) and
	// anything else the service wants to keep. A nil and an empty map mean
	// the same thing, and repositories need not tell them apart.
	Metadata map[string]string `json:"metadata,omitempty"`
	// CreatedAt is when the action happened, in UTC at microsecond precision.
	CreatedAt time.Time `json:"created_at"`
}

// Clone returns a copy of l whose Metadata map is its own. A nil or empty
// map is returned as nil.
func (l Log) Clone() Log {
	l.Metadata = cloneMetadata(l.Metadata)
	return l
}

// Validate reports whether l can be stored. The error it returns wraps
// ErrInvalidLog and is a *ValidationError naming the first offending field,
// in this order: id, org_id, source, action, actor.id, actor.type,
// actor.name, target.id, target.type, target.name, created_at, then
// metadata — the number of keys, then, of the offending pairs, the one
// with the least key in byte order. Logger.Log and Logger.Record name the
// same field for the log they would store.
//
// ID, Source, Action, Actor.Type and a CreatedAt are required; CreatedAt
// must fall in the years 1 to 9999 and not be the zero time once truncated
// to microseconds. Every string must be valid UTF-8 without NUL bytes, and
// within the Max* bounds.
func (l Log) Validate() error {
	if err := l.validateFields(); err != nil {
		return err
	}
	return validateMetadata(l.Metadata)
}

// The string fields of a Log as validateFields reads them: names for
// errors, bounds, and which are required.
var (
	fieldNames    = [...]string{"id", "org_id", "source", "action", "actor.id", "actor.type", "actor.name", "target.id", "target.type", "target.name"}
	fieldMax      = [...]int{MaxIDLen, MaxOrgIDLen, MaxSourceLen, MaxActionLen, MaxEntityIDLen, MaxEntityTypeLen, MaxEntityNameLen, MaxEntityIDLen, MaxEntityTypeLen, MaxEntityNameLen}
	fieldRequired = [...]bool{true, false, true, true, false, true, false, false, false, false}
)

// fieldSet is a set of the fields validateFields checks: bit i stands for
// fieldNames[i], and fieldCreatedAt for CreatedAt.
type fieldSet uint16

const (
	fieldID        fieldSet = 1 << 0
	fieldOrgID     fieldSet = 1 << 1
	fieldSource    fieldSet = 1 << 2
	fieldActor     fieldSet = 1<<4 | 1<<5 | 1<<6
	fieldCreatedAt fieldSet = 1 << 10
)

// validateFields checks every field of l but Metadata.
func (l *Log) validateFields() error { return l.validateFieldsExcept(0) }

// validateFieldsExcept checks every field of l but Metadata and the fields
// in known, which the caller knows to be valid.
func (l *Log) validateFieldsExcept(known fieldSet) error {
	// Only the fields not known, in the order of fieldNames.
	for unknown := ^known & (1<<len(fieldNames) - 1); unknown != 0; unknown &= unknown - 1 {
		i := bits.TrailingZeros16(uint16(unknown))
		if err := checkField(fieldNames[i], l.field(i), fieldMax[i], fieldRequired[i]); err != nil {
			return err
		}
	}
	if known&fieldCreatedAt != 0 || validTime(l.CreatedAt) {
		return nil
	}
	// What is stored is the time in UTC at microsecond precision, and it
	// must survive the JSON wire format, which holds years 1 to 9999 only.
	if t := l.CreatedAt; t.IsZero() || t.Before(firstTime) && !t.Before(time.Time{}) {
		return invalidLog("created_at", "is required")
	}
	return invalidLog("created_at", "is outside the years 1 to 9999")
}

// fields returns the string fields of l in the order of fieldNames.
func (l *Log) fields() [len(fieldNames)]string {
	var v [len(fieldNames)]string
	for i := range v {
		v[i] = l.field(i)
	}
	return v
}

// field returns the string field of l that fieldNames[i] names.
func (l *Log) field(i int) string {
	switch i {
	case 0:
		return l.ID
	case 1:
		return l.OrgID
	case 2:
		return l.Source
	case 3:
		return l.Action
	case 4:
		return l.Actor.ID
	case 5:
		return l.Actor.Type
	case 6:
		return l.Actor.Name
	case 7:
		return l.Target.ID
	case 8:
		return l.Target.Type
	}
	return l.Target.Name
}

// validTime reports whether t is a valid CreatedAt.
func validTime(t time.Time) bool {
	return !t.Before(firstTime) && t.Before(endOfTime)
}

// The range of valid CreatedAt values: the zero time is taken for "not
// set", and so is any time that truncates to it.
var (
	firstTime = time.Time{}.Add(time.Microsecond)
	endOfTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func checkField(name, value string, limit int, required bool) error {
	if value == "" {
		if required {
			return invalidLog(name, "is required")
		}
		return nil
	}
	if reason := checkString(value, limit); reason != "" {
		return invalidLog(name, reason)
	}
	return nil
}

func validateMetadata(md map[string]string) error {
	var buf [stackPairs]kv
	pairs, err := collectPairs(buf[:0], md)
	if err != nil {
		return err
	}
	return validatePairs(pairs)
}

// stackPairs is the size of the arrays on the stack that metadata pairs
// are collected in: enough for most logs, small enough to clear quickly.
// More pairs than that go to the heap.
const stackPairs = 16

// collectPairs appends the pairs of md to dst, unless md has too many keys
// to be valid.
func collectPairs(dst []kv, md map[string]string) ([]kv, error) {
	if len(md) > MaxMetadataKeys {
		return dst, tooManyKeys(len(md))
	}
	return appendPairs(dst, md), nil
}

func tooManyKeys(n int) error {
	return invalidLog("metadata", "has "+strconv.Itoa(n)+" keys, more than "+strconv.Itoa(MaxMetadataKeys))
}

// appendPairs appends the pairs of md to dst.
func appendPairs(dst []kv, md map[string]string) []kv {
	for k, v := range md {
		dst = append(dst, kv{k, v})
	}
	return dst
}

// validatePairs validates metadata given as pairs with distinct keys.
// Of several offending pairs it names the one with the least key, in byte
// order, whatever order the pairs come in: map order must not decide which
// error a log gets.
func validatePairs(pairs []kv) error {
	if len(pairs) > MaxMetadataKeys {
		return tooManyKeys(len(pairs))
	}
	if field, reason := leastBadPair(pairs, MaxMetadataKeyLen, MaxMetadataValueLen); field != "" {
		return invalidLog(field, reason)
	}
	return nil
}

// leastBadPair names, of the pairs whose key is empty or not acceptable in
// keyMax bytes or whose value is not acceptable in valMax, the one with
// the least key, and says why: the field and reason of its error, or ""
// when there is none.
func leastBadPair(pairs []kv, keyMax, valMax int) (field, reason string) {
	bad := -1
	for i, p := range pairs {
		if p.k != "" && checkString(p.k, keyMax) == "" && checkString(p.v, valMax) == "" {
			continue
		}
		if bad < 0 || p.k < pairs[bad].k {
			bad = i
		}
	}
	if bad < 0 {
		return "", ""
	}
	p := pairs[bad]
	if p.k == "" {
		return "metadata", "has an empty key"
	}
	if reason := checkString(p.k, keyMax); reason != "" {
		return "metadata key " + strconv.Quote(truncateForMessage(p.k)), reason
	}
	return "metadata[" + strconv.Quote(truncateForMessage(p.k)) + "]", checkString(p.v, valMax)
}

// checkString returns why s is not acceptable as a stored string of at most
// limit bytes, or "" if it is.
func checkString(s string, limit int) string {
	if len(s) > limit {
		return "is " + strconv.Itoa(len(s)) + " bytes, longer than " + strconv.Itoa(limit)
	}
	if plainText(s) {
		return ""
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "contains a NUL byte"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	return ""
}

// plainText reports whether s is ASCII without NUL bytes, eight bytes at a
// time: the fast path of checkString, which most strings take.
func plainText[T string | []byte](s T) bool {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
	)
	for len(s) >= 8 {
		v := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		// v&hi finds non-ASCII bytes; (v-lo)&^v&hi finds zero bytes.
		if (v|(v-lo)&^v)&hi != 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// truncateForMessage keeps error messages short when a key is huge.
func truncateForMessage(s string) string {
	const n = 32
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// LogValue implements slog.LogValuer, so that slog.Info("audit", "log", l)
// prints the log as a group with sorted metadata.
func (l Log) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs,
		slog.String("id", l.ID),
		slog.String("action", l.Action),
		slog.String("source", l.Source),
	)
	if l.OrgID != "" {
		attrs = append(attrs, slog.String("org_id", l.OrgID))
	}
	attrs = append(attrs,
		slog.Group("actor", entityAttrs(l.Actor.ID, l.Actor.Type, l.Actor.Name)...),
		slog.Group("target", entityAttrs(l.Target.ID, l.Target.Type, l.Target.Name)...),
	)
	if len(l.Metadata) > 0 {
		keys := make([]string, 0, len(l.Metadata))
		for k := range l.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		md := make([]any, 0, len(keys))
		for _, k := range keys {
			md = append(md, slog.String(k, l.Metadata[k]))
		}
		attrs = append(attrs, slog.Group("metadata", md...))
	}
	attrs = append(attrs, slog.Time("created_at", l.CreatedAt))
	return slog.GroupValue(attrs...)
}

func entityAttrs(id, typ, name string) []any {
	attrs := make([]any, 0, 3)
	if typ != "" {
		attrs = append(attrs, slog.String("type", typ))
	}
	if id != "" {
		attrs = append(attrs, slog.String("id", id))
	}
	if name != "" {
		attrs = append(attrs, slog.String("name", name))
	}
	return attrs
}

// cloneMetadata returns an independent copy of md, or nil if md is empty.
func cloneMetadata(md map[string]string) map[string]string {
	if len(md) == 0 {
		return nil
	}
	return maps.Clone(md)
}

// normalizeTime returns t in UTC, truncated to microseconds: the precision
// every Repository keeps, so that all of them, and cursors, agree.
func normalizeTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
