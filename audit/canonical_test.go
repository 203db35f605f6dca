package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

var update = flag.Bool("update", false, "rewrite testdata/canonical-v1.json from the cases of TestCanonicalVectors")

const vectorsFile = "testdata/canonical-v1.json"

// vectorLog is a Log as the vector file writes it: metadata null and {}
// stay apart, and created_at keeps the precision and offset it was given
// with, so that the file shows what an implementation must normalize.
type vectorLog struct {
	ID        string            `json:"id"`
	OrgID     string            `json:"org_id"`
	Source    string            `json:"source"`
	Action    string            `json:"action"`
	Actor     audit.Actor       `json:"actor"`
	Target    audit.Target      `json:"target"`
	Metadata  map[string]string `json:"metadata"`
	CreatedAt string            `json:"created_at"`
}

func (v vectorLog) log(tb testing.TB) audit.Log {
	tb.Helper()
	t, err := time.Parse(time.RFC3339Nano, v.CreatedAt)
	if err != nil && v.CreatedAt != "" {
		tb.Fatalf("created_at %q: %v", v.CreatedAt, err)
	}
	return audit.Log{
		ID: v.ID, OrgID: v.OrgID, Source: v.Source, Action: v.Action,
		Actor: v.Actor, Target: v.Target, Metadata: v.Metadata, CreatedAt: t,
	}
}

// vector is one entry of the vector file. An invalid log has no encoding
// and no leaf hash.
type vector struct {
	Name    string    `json:"name"`
	Log     vectorLog `json:"log"`
	Invalid bool      `json:"invalid,omitempty"`
	SameAs  string    `json:"same_as,omitempty"` // the vector it must encode like, as a normalization

	Encoding string `json:"encoding,omitempty"`
	LeafHash string `json:"leaf_hash,omitempty"`
}

// vectorCases are the logs of the vector file: every field, Unicode and
// the order of keys (bytewise, which differs from UTF-16 order for U+FF5E
// and U+1F600), nil and empty metadata, 64 keys, every field at its
// largest, times to truncate, and logs that Validate rejects.
func vectorCases() []vector {
	base := vectorLog{
		ID: "0195b4e4-1f3a-7c2e-9d4b-6a8f0e2c1d3b", OrgID: "org-1", Source: "frontier", Action: "app.user.created",
		Actor:     audit.Actor{ID: "u-1", Type: "user", Name: "Ada"},
		Target:    audit.Target{ID: "u-2", Type: "user", Name: "grace@example.com"},
		Metadata:  map[string]string{"ip": "192.0.2.1", "request_id": "req-1", "outcome": "success"},
		CreatedAt: "2025-03-14T15:09:26.535897Z",
	}
	minimal := vectorLog{ID: "1", Source: "s", Action: "a", Actor: audit.Actor{Type: "system"}, CreatedAt: "2025-03-14T15:09:26.535897Z"}
	with := func(v vectorLog, f func(*vectorLog)) vectorLog {
		v.Metadata = maps.Clone(v.Metadata)
		f(&v)
		return v
	}
	many := map[string]string{}
	for i := range audit.MaxMetadataKeys {
		many[fmt.Sprintf("key-%02d", i)] = strconv.Itoa(i * i)
	}
	tooMany := maps.Clone(many)
	tooMany["one-more"] = "x"
	largest := vectorLog{
		ID: strings.Repeat("i", audit.MaxIDLen), OrgID: strings.Repeat("o", audit.MaxOrgIDLen),
		Source: strings.Repeat("s", audit.MaxSourceLen), Action: strings.Repeat("a", audit.MaxActionLen),
		Actor: audit.Actor{
			ID: strings.Repeat("1", audit.MaxEntityIDLen), Type: strings.Repeat("t", audit.MaxEntityTypeLen),
			Name: strings.Repeat("é", audit.MaxEntityNameLen/2), // 2 bytes each
		},
		Target: audit.Target{
			ID: strings.Repeat("2", audit.MaxEntityIDLen), Type: strings.Repeat("T", audit.MaxEntityTypeLen),
			Name: strings.Repeat("n", audit.MaxEntityNameLen),
		},
		Metadata:  map[string]string{strings.Repeat("k", audit.MaxMetadataKeyLen): strings.Repeat("v", audit.MaxMetadataValueLen)},
		CreatedAt: "9999-12-31T23:59:59.999999999Z",
	}
	return []vector{
		{Name: "minimal, metadata null", Log: minimal},
		{Name: "minimal, metadata empty", SameAs: "minimal, metadata null", Log: with(minimal, func(v *vectorLog) { v.Metadata = map[string]string{} })},
		{Name: "every field", Log: base},
		{Name: "adjacent fields that concatenate alike (1/2)", Log: with(base, func(v *vectorLog) { v.Actor.ID, v.Actor.Type = "ab", "c" })},
		{Name: "adjacent fields that concatenate alike (2/2)", Log: with(base, func(v *vectorLog) { v.Actor.ID, v.Actor.Type = "a", "bc" })},
		{Name: "metadata key and value that concatenate alike (1/2)", Log: with(base, func(v *vectorLog) { v.Metadata = map[string]string{"ab": "c"} })},
		{Name: "metadata key and value that concatenate alike (2/2)", Log: with(base, func(v *vectorLog) { v.Metadata = map[string]string{"a": "bc"} })},
		{Name: "metadata with an empty value", Log: with(base, func(v *vectorLog) { v.Metadata = map[string]string{"outcome": ""} })},
		{Name: "unicode, keys in byte order", Log: with(base, func(v *vectorLog) {
			v.Actor.Name = "Ada Lovelace — 日本語 👩‍💻"
			v.Target.Name = "e\u0301 is not é" // not normalized: bytes are kept as they are
			v.Metadata = map[string]string{"\uff5e": "fullwidth tilde", "😀": "after U+FF5E in bytes, before it in UTF-16", "Z": "1", "a": "2", "é": "3"}
		})},
		{Name: "control characters, quotes and backslashes", Log: with(base, func(v *vectorLog) {
			v.Actor.Name = "line\nbreak\ttab \"quote\" \\ \u007f"
			v.Metadata = map[string]string{"user_agent": "curl/8.5.0\r\n"}
		})},
		{Name: "64 metadata keys", Log: with(base, func(v *vectorLog) { v.Metadata = many })},
		{Name: "every field at its largest", Log: largest},
		{Name: "created_at with nanoseconds: truncated to microseconds", SameAs: "every field", Log: with(base, func(v *vectorLog) { v.CreatedAt = "2025-03-14T15:09:26.535897999Z" })},
		{Name: "created_at with an offset: taken in UTC", SameAs: "every field", Log: with(base, func(v *vectorLog) { v.CreatedAt = "2025-03-14T16:09:26.535897+01:00" })},
		{Name: "created_at before 1970: negative, truncated toward the past", Log: with(base, func(v *vectorLog) { v.CreatedAt = "1969-12-31T23:59:59.9999995Z" })},
		{Name: "created_at, the first valid microsecond", Log: with(base, func(v *vectorLog) { v.CreatedAt = "0001-01-01T00:00:00.000001Z" })},
		{Name: "invalid: no id", Invalid: true, Log: with(base, func(v *vectorLog) { v.ID = "" })},
		{Name: "invalid: NUL byte", Invalid: true, Log: with(base, func(v *vectorLog) { v.Actor.Name = "a\x00b" })},
		{Name: "invalid: 65 metadata keys", Invalid: true, Log: with(base, func(v *vectorLog) { v.Metadata = tooMany })},
		{Name: "invalid: id too long", Invalid: true, Log: with(base, func(v *vectorLog) { v.ID = strings.Repeat("i", audit.MaxIDLen+1) })},
		{Name: "invalid: no created_at", Invalid: true, Log: with(base, func(v *vectorLog) { v.CreatedAt = "0001-01-01T00:00:00.000000999Z" })},
	}
}

// TestCanonicalVectors checks the vector file against the encoder, and
// the file's cases against vectorCases, so that neither drifts.
func TestCanonicalVectors(t *testing.T) {
	want := vectorCases()
	for i := range want {
		v := &want[i]
		l := v.Log.log(t)
		enc, err := l.AppendCanonical(nil)
		if v.Invalid {
			if !errors.Is(err, audit.ErrInvalidLog) || len(enc) != 0 {
				t.Fatalf("%s: AppendCanonical = %d bytes, %v; want no bytes and ErrInvalidLog", v.Name, len(enc), err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: AppendCanonical: %v", v.Name, err)
		}
		h, err := l.LeafHash()
		if err != nil {
			t.Fatalf("%s: LeafHash: %v", v.Name, err)
		}
		if want := sha256.Sum256(append([]byte{0}, enc...)); h != want {
			t.Fatalf("%s: LeafHash = %x, want SHA-256(0x00 || encoding) = %x", v.Name, h, want)
		}
		v.Encoding, v.LeafHash = hex.EncodeToString(enc), hex.EncodeToString(h[:])
	}
	if *update {
		b, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var got []vector
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s has %d vectors, want %d: run go test -run TestCanonicalVectors -update", vectorsFile, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("%s, vector %d (%s):\ngot  %+v\nwant %+v\nthe file and the encoder disagree", vectorsFile, i, want[i].Name, got[i], want[i])
		}
	}
	// The file's own claims, decoded without the encoder: each encoding
	// decodes to its log, and hashes to its leaf hash.
	seen := map[string]string{}
	for _, v := range got {
		if v.Invalid {
			continue
		}
		enc, err := hex.DecodeString(v.Encoding)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		dec, err := decodeCanonical(enc)
		if err != nil {
			t.Fatalf("%s: decoding the vector's encoding: %v", v.Name, err)
		}
		if want := stored(v.Log.log(t)); !reflect.DeepEqual(dec, want) {
			t.Errorf("%s: encoding decodes to %+v, want %+v", v.Name, dec, want)
		}
		h := sha256.Sum256(append([]byte{0}, enc...))
		if hex.EncodeToString(h[:]) != v.LeafHash {
			t.Errorf("%s: leaf hash %s, want SHA-256(0x00 || encoding) = %x", v.Name, v.LeafHash, h)
		}
		if other, dup := seen[v.Encoding]; dup && other != v.SameAs {
			t.Errorf("%s and %s encode alike", other, v.Name)
		}
		if _, dup := seen[v.Encoding]; !dup {
			seen[v.Encoding] = v.Name
		}
		if v.SameAs != "" && seen[v.Encoding] != v.SameAs {
			t.Errorf("%s encodes unlike %s, which it must encode like", v.Name, v.SameAs)
		}
	}
}

// TestCanonicalBytes spells out the encoding of one small log byte by
// byte, independently of the encoder, to pin the layout the doc states.
func TestCanonicalBytes(t *testing.T) {
	l := audit.Log{
		ID: "id", Source: "src", Action: "a.b",
		Actor:     audit.Actor{Type: "system"},
		Target:    audit.Target{Name: "é"},
		Metadata:  map[string]string{"z": "1", "a": ""},
		CreatedAt: time.Unix(1, 2500).UTC(), // 1 s and 2.5 µs: 1000002 µs
	}
	var want []byte
	want = append(want, "salt-audit-log\x00\x01"...)
	for _, s := range []string{"id", "", "src", "a.b", "", "system", "", "", "", "\xc3\xa9"} {
		want = append(want, 0, 0, 0, byte(len(s)))
		want = append(want, s...)
	}
	want = append(want, 0, 0, 0, 2)
	want = append(want, 0, 0, 0, 1, 'a', 0, 0, 0, 0)
	want = append(want, 0, 0, 0, 1, 'z', 0, 0, 0, 1, '1')
	want = append(want, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x42) // 1000002
	got, err := l.AppendCanonical([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("got  %x\nwant prefix + %x", got, want)
	}
}

// TestCanonicalInvalid checks that a log Validate rejects has neither an
// encoding nor a leaf hash, and that the error is Validate's.
func TestCanonicalInvalid(t *testing.T) {
	l := audit.Log{ID: "1", Source: "s", Action: "a", Actor: audit.Actor{Type: "user"}, CreatedAt: time.Now(), Metadata: map[string]string{"": "x"}}
	b, err := l.AppendCanonical([]byte("keep"))
	if !errors.Is(err, audit.ErrInvalidLog) || string(b) != "keep" {
		t.Fatalf("AppendCanonical = %q, %v; want the slice unchanged and ErrInvalidLog", b, err)
	}
	if h, err := l.LeafHash(); !errors.Is(err, audit.ErrInvalidLog) || h != [32]byte{} {
		t.Fatalf("LeafHash = %x, %v; want a zero hash and ErrInvalidLog", h, err)
	}
}

// stored returns l as a Repository stores it: CreatedAt in UTC truncated
// to microseconds, empty metadata as nil.
func stored(l audit.Log) audit.Log {
	l.CreatedAt = l.CreatedAt.UTC().Truncate(time.Microsecond)
	if len(l.Metadata) == 0 {
		l.Metadata = nil
	}
	return l
}

// decodeCanonical is a reference decoder of version 1, written from the
// package doc. It accepts only what AppendCanonical writes: keys strictly
// ascending, no trailing bytes. That every encoding decodes back to its
// log is what makes the encoding unambiguous.
func decodeCanonical(b []byte) (audit.Log, error) {
	var l audit.Log
	head := audit.CanonicalDomain + "\x01"
	if !bytes.HasPrefix(b, []byte(head)) {
		return l, errors.New("no domain separator and version 1")
	}
	b = b[len(head):]
	str := func() (string, error) {
		if len(b) < 4 {
			return "", errors.New("short length")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(len(b)) < uint64(n) {
			return "", errors.New("short string")
		}
		s := string(b[:n])
		b = b[n:]
		return s, nil
	}
	var err error
	for _, p := range []*string{&l.ID, &l.OrgID, &l.Source, &l.Action, &l.Actor.ID, &l.Actor.Type, &l.Actor.Name, &l.Target.ID, &l.Target.Type, &l.Target.Name} {
		if *p, err = str(); err != nil {
			return l, err
		}
	}
	if len(b) < 4 {
		return l, errors.New("short metadata count")
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	prev := ""
	for i := range n {
		k, err := str()
		if err != nil {
			return l, err
		}
		v, err := str()
		if err != nil {
			return l, err
		}
		if i > 0 && k <= prev {
			return l, errors.New("metadata keys out of order")
		}
		prev = k
		if l.Metadata == nil {
			l.Metadata = map[string]string{}
		}
		l.Metadata[k] = v
	}
	if len(b) != 8 {
		return l, errors.New("created_at is not the last 8 bytes")
	}
	l.CreatedAt = time.UnixMicro(int64(binary.BigEndian.Uint64(b))).UTC()
	return l, nil
}

// FuzzCanonical checks, for any log, that AppendCanonical is
// deterministic, that its encoding decodes back to the log as stored (so
// two logs stored differently never encode alike), that a log changed in
// any one field encodes differently, and that a log Validate rejects has
// no encoding.
func FuzzCanonical(f *testing.F) {
	f.Add("id", "org", "src", "act", "aid", "user", "Ada", "tid", "doc", "Doc", "ip=1\nua=x", int64(1741964966535897), uint8(3), "x")
	f.Add("a", "", "b", "c", "", "system", "", "", "", "", "", int64(-1), uint8(10), "")
	f.Add("1", "", "s", "a", "ab", "c", "", "", "", "", "k=", int64(0), uint8(4), "a")
	f.Fuzz(func(t *testing.T, id, org, src, act, aid, atype, aname, tid, ttype, tname, md string, micros int64, which uint8, alt string) {
		l := audit.Log{
			ID: id, OrgID: org, Source: src, Action: act,
			Actor:     audit.Actor{ID: aid, Type: atype, Name: aname},
			Target:    audit.Target{ID: tid, Type: ttype, Name: tname},
			Metadata:  parseMetadata(md),
			CreatedAt: time.UnixMicro(micros).Add(time.Duration(which) * time.Nanosecond),
		}
		enc, err := l.AppendCanonical(nil)
		if verr := l.Validate(); verr != nil {
			if err == nil || len(enc) != 0 {
				t.Fatalf("invalid log (%v): AppendCanonical = %d bytes, %v; want no bytes and Validate's error", verr, len(enc), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid log: AppendCanonical: %v", err)
		}
		again, _ := l.AppendCanonical(nil)
		if !bytes.Equal(enc, again) {
			t.Fatal("two encodings of one log differ")
		}
		dec, err := decodeCanonical(enc)
		if err != nil {
			t.Fatalf("decoding %x: %v", enc, err)
		}
		if want := stored(l); !reflect.DeepEqual(dec, want) {
			t.Fatalf("encoding decodes to %+v, want %+v", dec, want)
		}
		m := mutate(l, which, alt)
		if m.Validate() != nil || reflect.DeepEqual(stored(m), stored(l)) {
			return
		}
		if menc, _ := m.AppendCanonical(nil); bytes.Equal(menc, enc) {
			t.Fatalf("%+v and %+v encode alike", l, m)
		}
	})
}

// parseMetadata reads lines of key=value.
func parseMetadata(s string) map[string]string {
	if s == "" {
		return nil
	}
	md := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		md[k] = v
	}
	return md
}

// mutate returns l with the field that which selects set to alt, or, for
// metadata and time, changed by alt.
func mutate(l audit.Log, which uint8, alt string) audit.Log {
	l = l.Clone()
	switch which % 13 {
	case 0:
		l.ID = alt
	case 1:
		l.OrgID = alt
	case 2:
		l.Source = alt
	case 3:
		l.Action = alt
	case 4:
		l.Actor.ID = alt
	case 5:
		l.Actor.Type = alt
	case 6:
		l.Actor.Name = alt
	case 7:
		l.Target.ID = alt
	case 8:
		l.Target.Type = alt
	case 9:
		l.Target.Name = alt
	case 10:
		if l.Metadata == nil {
			l.Metadata = map[string]string{}
		}
		l.Metadata[alt] = alt
	case 11:
		for k := range l.Metadata {
			delete(l.Metadata, k)
			break
		}
	case 12:
		l.CreatedAt = l.CreatedAt.Add(time.Duration(len(alt)+1) * time.Microsecond)
	}
	return l
}
