package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/raystack/salt/audit"
)

// validLog returns a log that passes Validate, for tests to spoil.
func validLog() audit.Log {
	return audit.Log{
		ID:        "0193a4b2-7c3d-7e21-8f00-1234567890ab",
		OrgID:     "org-1",
		Source:    "frontier",
		Action:    "app.user.created",
		Actor:     audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "Ada"},
		Target:    audit.Target{ID: "u-2", Type: "user", Name: "grace@example.com"},
		Metadata:  map[string]string{audit.MetadataIP: "203.0.113.9"},
		CreatedAt: time.Date(2026, 11, 26, 9, 30, 0, 123456000, time.UTC),
	}
}

func TestLogValidate(t *testing.T) {
	tooManyKeys := map[string]string{}
	for i := range audit.MaxMetadataKeys + 1 {
		tooManyKeys[strings.Repeat("k", i+1)] = "v"
	}
	maxKeys := map[string]string{}
	for i := range audit.MaxMetadataKeys {
		maxKeys[strings.Repeat("k", i+1)] = "v"
	}
	for _, tt := range []struct {
		name   string
		change func(*audit.Log)
		field  string // "" means valid
	}{
		{"valid", func(*audit.Log) {}, ""},
		{"no org is fine", func(l *audit.Log) { l.OrgID = "" }, ""},
		{"no target is fine", func(l *audit.Log) { l.Target = audit.Target{} }, ""},
		{"nil metadata is fine", func(l *audit.Log) { l.Metadata = nil }, ""},
		{"unicode is fine", func(l *audit.Log) { l.Actor.Name = "Ādá 日本 🚀" }, ""},
		{"bounds are inclusive", func(l *audit.Log) {
			l.ID = strings.Repeat("i", audit.MaxIDLen)
			l.Actor.Name = strings.Repeat("n", audit.MaxEntityNameLen)
			l.Metadata = map[string]string{strings.Repeat("k", audit.MaxMetadataKeyLen): strings.Repeat("v", audit.MaxMetadataValueLen)}
		}, ""},
		{"64 keys", func(l *audit.Log) { l.Metadata = maxKeys }, ""},
		{"missing id", func(l *audit.Log) { l.ID = "" }, "id"},
		{"missing source", func(l *audit.Log) { l.Source = "" }, "source"},
		{"missing action", func(l *audit.Log) { l.Action = "" }, "action"},
		{"missing actor type", func(l *audit.Log) { l.Actor.Type = "" }, "actor.type"},
		{"zero time", func(l *audit.Log) { l.CreatedAt = time.Time{} }, "created_at"},
		{"zero time once truncated", func(l *audit.Log) { l.CreatedAt = time.Time{}.Add(999) }, "created_at"},
		{"year 10000", func(l *audit.Log) { l.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "created_at"},
		{"year 0", func(l *audit.Log) { l.CreatedAt = time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC) }, "created_at"},
		{"first microsecond is fine", func(l *audit.Log) { l.CreatedAt = time.Time{}.Add(time.Microsecond) }, ""},
		{"year 9999 is fine", func(l *audit.Log) { l.CreatedAt = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) }, ""},
		{"long id", func(l *audit.Log) { l.ID = strings.Repeat("i", audit.MaxIDLen+1) }, "id"},
		{"long org", func(l *audit.Log) { l.OrgID = strings.Repeat("o", audit.MaxOrgIDLen+1) }, "org_id"},
		{"long source", func(l *audit.Log) { l.Source = strings.Repeat("s", audit.MaxSourceLen+1) }, "source"},
		{"long action", func(l *audit.Log) { l.Action = strings.Repeat("a", audit.MaxActionLen+1) }, "action"},
		{"long actor id", func(l *audit.Log) { l.Actor.ID = strings.Repeat("a", audit.MaxEntityIDLen+1) }, "actor.id"},
		{"long actor type", func(l *audit.Log) { l.Actor.Type = strings.Repeat("a", audit.MaxEntityTypeLen+1) }, "actor.type"},
		{"long actor name", func(l *audit.Log) { l.Actor.Name = strings.Repeat("a", audit.MaxEntityNameLen+1) }, "actor.name"},
		{"long target id", func(l *audit.Log) { l.Target.ID = strings.Repeat("t", audit.MaxEntityIDLen+1) }, "target.id"},
		{"long target type", func(l *audit.Log) { l.Target.Type = strings.Repeat("t", audit.MaxEntityTypeLen+1) }, "target.type"},
		{"long target name", func(l *audit.Log) { l.Target.Name = strings.Repeat("t", audit.MaxEntityNameLen+1) }, "target.name"},
		{"NUL in action", func(l *audit.Log) { l.Action = "app.\x00user" }, "action"},
		{"NUL at the end of a long name", func(l *audit.Log) { l.Target.Name = strings.Repeat("n", 40) + "\x00" }, "target.name"},
		{"invalid UTF-8 in source", func(l *audit.Log) { l.Source = "fron\xfftier" }, "source"},
		{"invalid UTF-8 after valid non-ASCII", func(l *audit.Log) { l.Actor.Name = "日本\xe6" }, "actor.name"},
		{"NUL after non-ASCII", func(l *audit.Log) { l.Actor.Name = "日本\x00" }, "actor.name"},
		{"empty metadata key", func(l *audit.Log) { l.Metadata = map[string]string{"": "v"} }, "metadata"},
		{"long metadata key", func(l *audit.Log) {
			l.Metadata = map[string]string{strings.Repeat("k", audit.MaxMetadataKeyLen+1): "v"}
		}, "metadata key"},
		{"long metadata value", func(l *audit.Log) {
			l.Metadata = map[string]string{"k": strings.Repeat("v", audit.MaxMetadataValueLen+1)}
		}, `metadata["k"]`},
		{"NUL in metadata value", func(l *audit.Log) { l.Metadata = map[string]string{"k": "\x00"} }, `metadata["k"]`},
		{"invalid UTF-8 in metadata key", func(l *audit.Log) { l.Metadata = map[string]string{"k\xc3": "v"} }, "metadata key"},
		{"too many metadata keys", func(l *audit.Log) { l.Metadata = tooManyKeys }, "metadata"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := validLog()
			tt.change(&l)
			err := l.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, audit.ErrInvalidLog) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidLog", err)
			}
			var ve *audit.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %T, want a *ValidationError", err)
			}
			if !strings.HasPrefix(ve.Field, tt.field) {
				t.Errorf("got field %q, want %q", ve.Field, tt.field)
			}
			if !strings.Contains(err.Error(), ve.Field) || !utf8.ValidString(err.Error()) {
				t.Errorf("message %q does not name field %q in valid UTF-8", err, ve.Field)
			}
		})
	}
}

func TestLogJSONWireFormat(t *testing.T) {
	l := validLog()
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "org_id", "source", "action", "actor", "target", "metadata", "created_at"} {
		if _, ok := wire[key]; !ok {
			t.Errorf("JSON %s has no %q", b, key)
		}
	}
	actor, _ := wire["actor"].(map[string]any)
	for _, key := range []string{"id", "type", "name"} {
		if _, ok := actor[key]; !ok {
			t.Errorf("actor JSON %v has no %q", actor, key)
		}
	}
	if got, want := wire["created_at"], "2026-11-26T09:30:00.123456Z"; got != want {
		t.Errorf("got created_at %v, want %v", got, want)
	}

	var back audit.Log
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	checkSameLog(t, back, l)

	l.Metadata = nil
	b, _ = json.Marshal(l)
	if bytes.Contains(b, []byte("metadata")) {
		t.Errorf("got %s, want no metadata key for a log without metadata", b)
	}
}

func TestLogClone(t *testing.T) {
	l := validLog()
	c := l.Clone()
	c.Metadata[audit.MetadataIP] = "changed"
	if l.Metadata[audit.MetadataIP] != "203.0.113.9" {
		t.Errorf("changing the clone's map changed the original: %v", l.Metadata)
	}
	if got := (audit.Log{Metadata: map[string]string{}}).Clone().Metadata; got != nil {
		t.Errorf("got %v, want an empty map cloned as nil", got)
	}
}

func TestLogValue(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	l := validLog()
	l.Metadata["user_agent"] = "curl/8"
	logger.Info("audit", "log", l)
	want := `level=INFO msg=audit log.id=0193a4b2-7c3d-7e21-8f00-1234567890ab log.action=app.user.created log.source=frontier ` +
		`log.org_id=org-1 log.actor.type=user log.actor.id=u-1 log.actor.name=Ada log.target.type=user log.target.id=u-2 ` +
		`log.target.name=grace@example.com log.metadata.ip=203.0.113.9 log.metadata.user_agent=curl/8 ` +
		`log.created_at=2026-11-26T09:30:00.123Z` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// checkSameLog fails t unless got and want hold the same log: same
// strings, same metadata (nil and empty alike), same instant.
func checkSameLog(t *testing.T, got, want audit.Log) {
	t.Helper()
	type fields struct {
		ID, OrgID, Source, Action string
		Actor                     audit.Actor
		Target                    audit.Target
	}
	g := fields{got.ID, got.OrgID, got.Source, got.Action, got.Actor, got.Target}
	w := fields{want.ID, want.OrgID, want.Source, want.Action, want.Actor, want.Target}
	if g != w {
		t.Errorf("got %+v, want %+v", g, w)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("got created_at %v, want %v", got.CreatedAt, want.CreatedAt)
	}
	gm, wm := got.Metadata, want.Metadata
	if len(gm) != len(wm) {
		t.Errorf("got metadata %v, want %v", gm, wm)
	}
	for k, v := range wm {
		if g, ok := gm[k]; !ok || g != v {
			t.Errorf("got metadata %v, want %v", gm, wm)
			break
		}
	}
}

func FuzzLogValidate(f *testing.F) {
	l := validLog()
	f.Add(l.ID, l.Source, l.Action, l.Actor.Type, l.Actor.Name, "ip", "203.0.113.9")
	f.Add("", "s", "a", "user", "\xff", "", "\x00")
	f.Add("id", "s", "a.b", "t", strings.Repeat("日", 400), "k", strings.Repeat("v", 5000))
	f.Fuzz(func(t *testing.T, id, source, action, actorType, name, key, value string) {
		l := validLog()
		l.ID, l.Source, l.Action, l.Actor.Type, l.Actor.Name = id, source, action, actorType, name
		l.Metadata = map[string]string{key: value}
		err := l.Validate()
		valid := func(s string, limit int, required bool) bool {
			return len(s) <= limit && utf8.ValidString(s) && !strings.ContainsRune(s, 0) && (s != "" || !required)
		}
		want := valid(id, audit.MaxIDLen, true) && valid(source, audit.MaxSourceLen, true) &&
			valid(action, audit.MaxActionLen, true) && valid(actorType, audit.MaxEntityTypeLen, true) &&
			valid(name, audit.MaxEntityNameLen, false) && valid(key, audit.MaxMetadataKeyLen, true) &&
			valid(value, audit.MaxMetadataValueLen, false)
		if (err == nil) != want {
			t.Fatalf("Validate = %v, want valid = %v", err, want)
		}
		if err != nil && !errors.Is(err, audit.ErrInvalidLog) {
			t.Fatalf("got %v, want an error wrapping ErrInvalidLog", err)
		}
	})
}

func FuzzLogJSON(f *testing.F) {
	b, _ := json.Marshal(validLog())
	f.Add(b)
	f.Add([]byte(`{"id":"x","source":"s","action":"a","actor":{"type":"user"},"created_at":"2026-01-02T03:04:05.999999999+05:30","metadata":{"k":"\u0000"}}`))
	f.Add([]byte(`{"metadata":null,"created_at":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var l audit.Log
		if err := json.Unmarshal(data, &l); err != nil {
			return
		}
		if l.Validate() != nil {
			return
		}
		// A valid decoded log survives a round trip through its wire format.
		out, err := json.Marshal(l)
		if err != nil {
			t.Fatalf("marshal of a valid log: %v", err)
		}
		var back audit.Log
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("unmarshal of %s: %v", out, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("round trip made the log invalid: %v", err)
		}
		checkSameLog(t, back, l)
	})
}

// TestValidateNamesOneFirstField: of several faults, Validate names the
// first in its documented order, whatever order the map gives the pairs.
func TestValidateNamesOneFirstField(t *testing.T) {
	md := map[string]string{"z": "\x00", "b\xff": "v", "m": strings.Repeat("v", audit.MaxMetadataValueLen+1), "a": "fine", "c\x00": "v"}
	for _, tt := range []struct {
		name  string
		log   audit.Log
		field string
	}{
		{"pairs", audit.Log{ID: "i", Source: "s", Action: "a", Actor: audit.Actor{Type: "user"}, CreatedAt: time.Now(), Metadata: md}, `metadata key "b\xff"`},
		{"a field before the pairs", audit.Log{ID: "i", Source: "s", Actor: audit.Actor{Type: "user"}, CreatedAt: time.Now(), Metadata: md}, "action"},
		{"created_at before the pairs", audit.Log{ID: "i", Source: "s", Action: "a", Actor: audit.Actor{Type: "user"}, Metadata: md}, "created_at"},
		{"the empty key first", audit.Log{ID: "i", Source: "s", Action: "a", Actor: audit.Actor{Type: "user"}, CreatedAt: time.Now(),
			Metadata: map[string]string{"a": "\x00", "": "v"}}, "metadata"},
		{"a value", audit.Log{ID: "i", Source: "s", Action: "a", Actor: audit.Actor{Type: "user"}, CreatedAt: time.Now(),
			Metadata: map[string]string{"y": "\xff", "x": "\x00", "w": "fine"}}, `metadata["x"]`},
	} {
		for range 50 { // map order changes from one range to the next
			var ve *audit.ValidationError
			if err := tt.log.Validate(); !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("%s: got %v, want an error naming %s", tt.name, err, tt.field)
			}
		}
	}
	f := audit.Filter{Metadata: map[string]string{"z": "\x00", "b\xff": "v", "c\x00": "v", "a": "fine"}}
	for range 50 {
		var ve *audit.ValidationError
		if err := f.Validate(); !errors.As(err, &ve) || ve.Field != `metadata key "b\xff"` {
			t.Fatalf("Filter.Validate: got %v, want an error naming the least offending key", err)
		}
	}
}
