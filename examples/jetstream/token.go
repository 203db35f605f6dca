package jetstream

import (
	"errors"
	"strings"
)

// emptyToken stands for the empty string: a subject token cannot be empty,
// and Token never makes a lone "%" from a non-empty string.
const emptyToken = "%"

// plainByte reports whether c stands for itself in a token: ASCII letters,
// digits, '-' and '_'. Every other byte is escaped, which keeps out what a
// subject token cannot hold ('.', '*', '>', white space, control bytes)
// and whatever a subject filter or a shell might read differently.
func plainByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// Token returns s as one subject token: ASCII letters, digits, '-' and '_'
// as they are, every other byte as '%' and two upper-case hexadecimal
// digits, and the empty string as "%". The mapping is one to one, so
// equal tokens mean equal strings, and ParseToken reverses it. A UUID, an
// org ID like "org-42" or a source like "frontier" is its own token; a
// string of n bytes takes at most 3n bytes.
//
// Consumers that select logs by org or source build their filters with it
// (see Trail.OrgFilter).
func Token(s string) string {
	if s == "" {
		return emptyToken
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plainByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// errBadToken is returned by ParseToken for a string Token does not make.
var errBadToken = errors.New("jetstream audit: not a token made by Token")

// ParseToken returns the string that Token turned into tok. It returns an
// error for any string that Token does not return.
func ParseToken(tok string) (string, error) {
	if tok == emptyToken {
		return "", nil
	}
	if tok == "" {
		return "", errBadToken
	}
	var b []byte
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if plainByte(c) {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if c != '%' || i+2 >= len(tok) {
			return "", errBadToken
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		if !ok1 || !ok2 {
			return "", errBadToken
		}
		d := hi<<4 | lo
		if plainByte(d) {
			return "", errBadToken // Token writes it as it is
		}
		if b == nil {
			b = make([]byte, i, len(tok))
			copy(b, tok[:i])
		}
		b = append(b, d)
		i += 2
	}
	if b == nil {
		return tok, nil
	}
	return string(b), nil
}

// unhex decodes an upper-case hexadecimal digit, the only case Token writes.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
