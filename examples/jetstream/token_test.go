package jetstream

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestToken(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "%"},
		{"frontier", "frontier"},
		{"org-42", "org-42"},
		{"0198c0de-8d1c-7c4e-a3f4-5b8f5c1d2e3f", "0198c0de-8d1c-7c4e-a3f4-5b8f5c1d2e3f"},
		{"snake_case", "snake_case"},
		{"a.b", "a%2Eb"},
		{"*", "%2A"},
		{">", "%3E"},
		{"a b\tc\r\n", "a%20b%09c%0D%0A"},
		{"%", "%25"},
		{"%25", "%2525"},
		{"$JS", "%24JS"},
		{"é", "%C3%A9"},
		{"\xff", "%FF"},
	} {
		if got := Token(tt.in); got != tt.want {
			t.Errorf("Token(%q): got %q, want %q", tt.in, got, tt.want)
		}
		if got, err := ParseToken(tt.want); err != nil || got != tt.in {
			t.Errorf("ParseToken(%q): got %q, %v, want %q, nil", tt.want, got, err, tt.in)
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	// Each is a string that Token never returns, so that every token
	// stands for one string only.
	for _, tok := range []string{"", "%%", "%2", "%2e", "%41", "%5F", "%G0", "a%", "a.b", "a b", "é", "*", ">"} {
		if got, err := ParseToken(tok); err == nil {
			t.Errorf("ParseToken(%q): got %q, nil, want an error: Token makes no such token", tok, got)
		}
	}
}

// checkToken checks that tok can be one token of a NATS subject: not
// empty, and none of the bytes that separate tokens, stand for wildcards
// or that the protocol reads as white space.
func checkToken(t *testing.T, s, tok string) {
	t.Helper()
	if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n\f\v\x00") || !utf8.ValidString(tok) || tok[0] == '$' {
		t.Fatalf("Token(%q) = %q: not a safe subject token", s, tok)
	}
	if len(tok) > 3*len(s)+1 {
		t.Fatalf("Token(%q) = %q: %d bytes, want at most 3 per byte of the input", s, tok, len(tok))
	}
}

func FuzzToken(f *testing.F) {
	for _, s := range []string{"", "org-1", "a.b*c>d", "%", "%25", "é", "\x00\xff", " lead", "$SYS"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := Token(s)
		checkToken(t, s, tok)
		got, err := ParseToken(tok)
		if err != nil || got != s {
			t.Fatalf("ParseToken(Token(%q) = %q): got %q, %v, want the input back", s, tok, got, err)
		}
		// The other way: whatever ParseToken accepts, Token makes.
		if back, err := ParseToken(s); err == nil && Token(back) != s {
			t.Fatalf("ParseToken(%q) = %q, but Token of that is %q: two tokens for one string", s, back, Token(back))
		}
	})
}
