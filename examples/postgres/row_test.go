package postgres

import (
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"
)

// FuzzAppendJSONObject checks the hand-written JSON encoding of metadata
// against encoding/json: whatever the strings, it decodes to the same map.
func FuzzAppendJSONObject(f *testing.F) {
	for _, seed := range [][2]string{
		{"k", "v"},
		{"", ""},
		{`q"uote`, `back\slash`},
		{"ctl\x00\x01\x1f\x7f", "line\nbreak\ttab\rcr"},
		{"ünï", "🙂 \u2028 \u2029 <script>&amp;</script>"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Skip("Validate rejects invalid UTF-8")
		}
		for _, md := range []map[string]string{nil, {k: v}, {k: v, k + "2": v + k}} {
			b := appendJSONObject(nil, md)
			var got map[string]string
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("appendJSONObject(%q) = %s: %v", md, b, err)
			}
			if !maps.Equal(got, md) {
				t.Fatalf("appendJSONObject(%q) = %s, decodes to %q", md, b, got)
			}
		}
	})
}

// FuzzDecodeJSONObject checks the metadata decoder against encoding/json
// on any input: both accept it with the same result, or both reject it.
func FuzzDecodeJSONObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { } `, `{"k": "v"}`, `{"a":"1","b":"2"}`, `{"a": "1", "a": "2"}`,
		`{"esc": "q\" b\\ s\/ \b\f\n\r\t \u00e9 \u2028 \ud83d\ude42 \ud83d \ude42x \u0000"}`,
		`{"ünï": "🙂"}`, `{"k": 1}`, `{"k": null}`, `{"k": "v",}`, `{"k" "v"}`, `["k"]`, `{"k": "\x"}`,
		"{\"bad\": \"\xff\"}", `{"k": "v"} x`, `{"k": "\u12"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeJSONObject(string(b))
		var want map[string]string
		wantErr := json.Unmarshal(b, &want)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeJSONObject(%q): error %v, encoding/json: %v", b, err, wantErr)
		}
		if err == nil && !maps.Equal(got, want) {
			t.Fatalf("decodeJSONObject(%q) = %q, encoding/json: %q", b, got, want)
		}
		if err == nil && got != nil && len(got) == 0 {
			t.Fatalf("decodeJSONObject(%q) = empty non-nil map, want nil", b)
		}
	})
}
