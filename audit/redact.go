package audit

import "math"

// Redacted replaces the value of a metadata key that looks secret.
const Redacted = "[REDACTED]"

// defaultRedactedKeys are the fragments that make a metadata key look
// secret to a Logger that was not given WithRedactedKeys.
var defaultRedactedKeys = []string{"password", "secret", "token", "authorization", "cookie", "api_key", "private_key"}

// redactor decides which metadata keys hold secrets: those that contain one
// of its fragments, compared case-insensitively with '-' read as '_'.
type redactor struct {
	// byFirst lists the normalized fragments by the bytes that can start
	// them in a key, so that a key is read once whatever the number of
	// fragments, and most of its bytes are one table lookup.
	byFirst [256][]string
	minLen  int // the length of the shortest fragment
}

func newRedactor(fragments []string) *redactor {
	r := &redactor{minLen: math.MaxInt}
	for _, f := range fragments {
		f = normalizeKey(f)
		if f == "" {
			continue
		}
		r.minLen = min(r.minLen, len(f))
		for c := range 256 {
			if normalizeByte(byte(c)) == f[0] {
				r.byFirst[c] = append(r.byFirst[c], f)
			}
		}
	}
	return r
}

// normalizeKey lowers ASCII letters and reads '-' as '_', byte by byte as
// secret compares.
func normalizeKey(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = normalizeByte(c)
	}
	return string(b)
}

func normalizeByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '-':
		return '_'
	}
	return c
}

// secret reports whether key looks secret. It does not allocate.
func (r *redactor) secret(key string) bool {
	for i := 0; i <= len(key)-r.minLen; i++ {
	next:
		for _, f := range r.byFirst[key[i]] {
			if len(key)-i < len(f) {
				continue
			}
			for j := 1; j < len(f); j++ {
				if normalizeByte(key[i+j]) != f[j] {
					continue next
				}
			}
			return true
		}
	}
	return false
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
