package postgres

import (
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Metadata is read back from jsonb as a flat JSON object of strings.
// Decoding it with encoding/json was most of the work of reading a page of
// logs, so it has a decoder of its own: one pass, and strings without
// escapes cut from the input rather than copied. Anything it does not
// expect (another type of value, invalid UTF-8) goes to encoding/json
// instead, which decides.

// decodeJSONObject decodes s, a JSON object whose values are strings. An
// empty object decodes to nil. The strings of the map may share memory
// with s.
func decodeJSONObject(s string) (map[string]string, error) {
	if md, ok := decodeFlatObject(s); ok {
		return md, nil
	}
	var md map[string]string
	if err := json.Unmarshal([]byte(s), &md); err != nil {
		return nil, err
	}
	if len(md) == 0 {
		return nil, nil
	}
	return md, nil
}

// decodeFlatObject decodes s if it is a JSON object of strings in valid
// UTF-8, and reports whether it was. Strings without escapes are cut from
// s.
func decodeFlatObject(s string) (map[string]string, bool) {
	d := flatDecoder{b: s}
	if !d.consume('{') {
		return nil, false
	}
	if d.consume('}') {
		return nil, d.end()
	}
	md := make(map[string]string, 8)
	for {
		k, ok := d.str()
		if !ok || !d.consume(':') {
			return nil, false
		}
		v, ok := d.str()
		if !ok {
			return nil, false
		}
		md[k] = v
		if d.consume(',') {
			continue
		}
		if d.consume('}') {
			return md, d.end()
		}
		return nil, false
	}
}

type flatDecoder struct {
	b string
	i int
}

func (d *flatDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips white space and c, if c comes next.
func (d *flatDecoder) consume(c byte) bool {
	d.skipSpace()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *flatDecoder) end() bool {
	d.skipSpace()
	return d.i == len(d.b)
}

// str decodes the JSON string that comes next.
func (d *flatDecoder) str() (string, bool) {
	if !d.consume('"') {
		return "", false
	}
	start := d.i
	ascii := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			s := d.b[start : d.i-1]
			if !ascii && !utf8.ValidString(s) {
				return "", false
			}
			return s, true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return "", false
}

// escaped decodes the rest of a string that starts at start and has an
// escape at d.i.
func (d *flatDecoder) escaped(start int) (string, bool) {
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// A pair makes one rune; anything else is U+FFFD, as
				// encoding/json has it.
				r2 := rune(-1)
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if r2, ok = d.hex4(); !ok {
						return "", false
					}
					if utf16.DecodeRune(r, r2) == utf8.RuneError {
						d.i, r2 = save, -1
					}
				}
				if r2 < 0 {
					r = utf8.RuneError
				} else {
					r = utf16.DecodeRune(r, r2)
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

// hex4 decodes the four hex digits of a \u escape.
func (d *flatDecoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(d.b[d.i:d.i+4], 16, 16)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(v), true
}
