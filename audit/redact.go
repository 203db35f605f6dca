package audit

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Redacted replaces the value of a metadata key that looks secret.
const Redacted = "[REDACTED]"

// defaultRedactedKeys are the fragments that make a metadata key look
// secret to a Logger that was not given WithRedactedKeys.
var defaultRedactedKeys = []string{"password", "secret", "token", "authorization", "cookie", "api_key", "private_key"}

// redactor decides which metadata keys hold secrets: those that contain one
// of its fragments, compared case-insensitively (by Unicode lower case)
// with '-' read as '_'.
type redactor struct {
	// byFirst lists the folded fragments that are ASCII by the bytes that
	// can start them in a key, so that an ASCII key is read once whatever
	// the number of fragments, and most of its bytes are one table lookup.
	byFirst [256][]string
	minLen  int // the length of the shortest fragment in byFirst

	folded []string // every fragment, folded, for keys that are not ASCII
	wide   bool     // a folded fragment is not ASCII
}

func newRedactor(fragments []string) *redactor {
	r := &redactor{minLen: math.MaxInt}
	for _, f := range fragments {
		f = foldKey(f)
		if f == "" {
			continue
		}
		r.folded = append(r.folded, f)
		if !plainText(f) {
			r.wide = true
			continue
		}
		r.minLen = min(r.minLen, len(f))
		for c := range 256 {
			if foldByte(byte(c)) == f[0] {
				r.byFirst[c] = append(r.byFirst[c], f)
			}
		}
	}
	return r
}

// foldKey returns s in lower case with '-' read as '_': the form in which
// keys and fragments are compared.
func foldKey(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "-", "_")
}

// foldByte is foldKey for one ASCII byte.
func foldByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '-':
		return '_'
	}
	return c
}

// secret reports whether key looks secret. It does not allocate for keys
// that are ASCII, unless a fragment is not.
func (r *redactor) secret(key string) bool {
	for i := 0; i <= len(key)-r.minLen; i++ {
	next:
		for _, f := range r.byFirst[key[i]] {
			if len(key)-i < len(f) {
				continue
			}
			for j := 1; j < len(f); j++ {
				if foldByte(key[i+j]) != f[j] {
					continue next
				}
			}
			return true
		}
	}
	if !r.wide && isASCII(key) {
		return false
	}
	// Letters beyond ASCII fold by Unicode's rules, which may change their
	// length: fold the whole key.
	k := foldKey(key)
	for _, f := range r.folded {
		if strings.Contains(k, f) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// redact returns md, whose pairs are also given as a slice, with the
// values of secret keys replaced by Redacted, and whether it replaced any.
// It returns md itself when nothing needs redacting, and never modifies md.
func (r *redactor) redact(md map[string]string, pairs []kv) (map[string]string, bool) {
	var out map[string]string
	for _, p := range pairs {
		if p.v == Redacted || !r.secret(p.k) {
			continue
		}
		if out == nil {
			out = cloneMetadata(md)
		}
		out[p.k] = Redacted
	}
	if out == nil {
		return md, false
	}
	return out, true
}
