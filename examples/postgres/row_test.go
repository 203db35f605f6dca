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
