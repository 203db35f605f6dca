package audit

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces the value of a metadata key that looks secret.
const Redacted = "[REDACTED]"

// defaultRedactedKeys are the fragments that make a metadata key look
// secret to a Logger that was not given WithRedactedKeys: the names
// credentials go by — what proves who someone is or grants access —, so
// that the trail, which is kept for years and read by many, holds none.
// The short ones (see wordLen) match whole words only.
var defaultRedactedKeys = []string{
	// Passwords and what stands in for them.
	"password", "passwd", "pass", "pwd", "passphrase", "passcode", "pin", "pgpass",
	// One-time codes, recovery codes and card security codes.
	"otp", "totp", "hotp", "mfacode", "recoverycode", "backupcode", "cvv", "cvc",
	// Tokens, keys and signed assertions.
	"secret", "token", "bearer", "jwt", "auth", "authorization", "credential", "creds",
	"apikey", "accesskey", "privatekey", "privkey", "sshkey", "signingkey", "encryptionkey", "masterkey",
	// Connection strings, which carry a password.
	"dsn", "databaseurl", "dburl", "connectionstring",
	// Sessions.
	"cookie", "sessionid", "sessid", "sessionkey",
}

// DefaultRedactedKeys returns the fragments that make a metadata key look
// secret unless WithRedactedKeys replaces them, for a service that adds
// its own: WithRedactedKeys(append(DefaultRedactedKeys(), "ssn")...).
func DefaultRedactedKeys() []string {
	return append([]string(nil), defaultRedactedKeys...)
}

// wordLen is the length, in characters once normalized, up to which a
// fragment matches only whole words of a key: "pin" must not make
// "shipping" secret, nor "pass" "passenger".
const wordLen = 4

// fragment is a fragment of WithRedactedKeys, normalized.
type fragment struct {
	s    string
	word bool // matches only from a word boundary to a word boundary
}

// redactor decides which metadata keys hold secrets: see WithRedactedKeys
// for the rule.
//
// Keys that are ASCII are read once, one table lookup a byte whatever the
// number of fragments: an Aho-Corasick automaton of the fragments that
// are ASCII once normalized, over an alphabet of the bytes they hold.
type redactor struct {
	sym   [256]uint8 // the symbol of a key's byte: symOther, symSep, or 1 + the index of its folded form in the alphabet
	width int        // the number of symbols but symSep
	next  []uint16   // next[state*width+sym] is the state after reading sym in state
	out   []uint8    // what ends at a state: outSub, and bit n-1 for a word fragment of n bytes
	all   []fragment // every fragment, for keys that are not ASCII
	// slow is set when the ASCII fragments hold more bytes than states fit
	// in next's entries: every key then takes the slow path.
	slow bool
}

// Symbols of redactor.sym beside the alphabet.
const (
	symOther = 0
	symSep   = 255
)

// outSub in redactor.out: a fragment that matches anywhere ends here.
const outSub = 1 << wordLen

func newRedactor(fragments []string) *redactor {
	r := &redactor{}
	var ascii []fragment
	size := 0
	for _, s := range fragments {
		norm, _ := normalizeKey(s)
		if norm == "" {
			continue
		}
		f := fragment{s: norm, word: utf8.RuneCountInString(norm) <= wordLen}
		r.all = append(r.all, f)
		if isASCII(norm) {
			ascii = append(ascii, f)
			size += len(norm)
		}
	}
	if size >= math.MaxUint16 {
		r.slow, ascii = true, nil
	}
	// The alphabet: the bytes of the ASCII fragments; a key's byte that is
	// none of them is symOther, which no fragment holds.
	for c := range 256 {
		if byteClass[c] == classSep {
			r.sym[c] = symSep
		}
	}
	r.width = 1
	for _, f := range ascii {
		for i := 0; i < len(f.s); i++ {
			if c := f.s[i]; r.sym[c] == symOther {
				for b := range 256 {
					if asciiFold[b] == c {
						r.sym[b] = uint8(r.width)
					}
				}
				r.width++
			}
		}
	}
	// The trie of the fragments, then its failure links breadth first,
	// which turn it into the automaton.
	r.next = make([]uint16, r.width)
	r.out = make([]uint8, 1)
	for _, f := range ascii {
		state := 0
		for i := 0; i < len(f.s); i++ {
			t := &r.next[state*r.width+int(r.sym[f.s[i]])]
			if *t == 0 {
				*t = uint16(len(r.out))
				r.next = append(r.next, make([]uint16, r.width)...)
				r.out = append(r.out, 0)
			}
			state = int(r.next[state*r.width+int(r.sym[f.s[i]])])
		}
		if f.word {
			r.out[state] |= 1 << (len(f.s) - 1)
		} else {
			r.out[state] |= outSub
		}
	}
	fail := make([]uint16, len(r.out))
	queue := []int{}
	for sym := range r.width {
		if t := r.next[sym]; t != 0 {
			queue = append(queue, int(t))
		}
	}
	for len(queue) > 0 {
		state := queue[0]
		queue = queue[1:]
		r.out[state] |= r.out[fail[state]]
		for sym := range r.width {
			t := &r.next[state*r.width+sym]
			if *t == 0 {
				*t = r.next[int(fail[state])*r.width+sym]
				continue
			}
			fail[*t] = r.next[int(fail[state])*r.width+sym]
			queue = append(queue, int(*t))
		}
	}
	return r
}

// Byte classes, for the fast path of secret.
const (
	classOther = iota
	classSep
	classLower
	classUpper
	classDigit
)

var (
	byteClass [256]uint8
	asciiFold [256]byte // a byte beyond ASCII folds to itself
)

func init() {
	for c := range 256 {
		asciiFold[c] = byte(c)
		switch {
		case isSeparator(rune(c)):
			byteClass[c] = classSep
		case 'a' <= c && c <= 'z':
			byteClass[c] = classLower
		case 'A' <= c && c <= 'Z':
			byteClass[c] = classUpper
			asciiFold[c] = byte(c) + 'a' - 'A'
		case '0' <= c && c <= '9':
			byteClass[c] = classDigit
		}
	}
}

// isSeparator reports whether r is left out of keys and fragments when
// they are compared.
func isSeparator(r rune) bool { return r == '_' || r == '-' || r == '.' || r == ' ' }

// secret reports whether key looks secret. It does not allocate for keys
// that are ASCII.
func (r *redactor) secret(key string) bool {
	if r.slow {
		return r.secretSlow(key)
	}
	// recent holds where in key the last bytes read start, for the word
	// fragments that end at a byte.
	var recent [8]int
	state, n := 0, 0
	ascii := true
	// The tables in locals: the loop then reads them from registers rather
	// than through r at every byte.
	syms, next, outs, width := &r.sym, r.next, r.out, r.width
	for i := 0; i < len(key); i++ {
		c := key[i]
		sym := syms[c]
		if sym == symSep {
			continue
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
		state = int(next[state*width+int(sym)])
		recent[n&(len(recent)-1)] = i
		n++
		out := outs[state]
		if out == 0 {
			continue
		}
		if out&outSub != 0 {
			return true
		}
		for size := 1; size <= wordLen; size++ {
			if out&(1<<(size-1)) != 0 && startsWord(key, recent[(n-size)&(len(recent)-1)]) && startsWord(key, i+1) {
				return true
			}
		}
	}
	if ascii {
		return false
	}
	// Letters beyond ASCII fold by Unicode's rules, which may change their
	// length and make word boundaries: fold the whole key. What the scan
	// found holds there too, so the scan only looked for it sooner.
	return r.secretSlow(key)
}

// startsWord reports whether, in the ASCII reading of key, a word starts
// (or ends) at byte i: the rule of normalizeKey, for the bytes it sees as
// ASCII. Beyond ASCII it may miss a boundary, never make one up.
func startsWord(key string, i int) bool {
	if i == 0 || i == len(key) {
		return true
	}
	switch wordBreak[byteClass[key[i-1]]][byteClass[key[i]]] {
	case breakYes:
		return true
	case breakNo:
		return false
	}
	return i+1 < len(key) && byteClass[key[i+1]] == classLower
}

// Values of wordBreak.
const (
	breakNo      = iota
	breakYes     // a word starts between the two bytes
	breakAcronym // two upper-case letters: a word starts if a lower-case letter follows
)

// wordBreak[prev][c] says whether a word starts between a byte of class
// prev and one of class c, by the rule of normalizeKey: at a separator,
// between a letter and a digit, from a lower-case letter to an upper-case
// one, and before the last upper-case letter of an acronym that a
// capitalized word follows.
var wordBreak = [5][5]uint8{
	classOther: {classSep: breakYes},
	classSep:   {breakYes, breakYes, breakYes, breakYes, breakYes},
	classLower: {classSep: breakYes, classUpper: breakYes, classDigit: breakYes},
	classUpper: {classSep: breakYes, classUpper: breakAcronym, classDigit: breakYes},
	classDigit: {classSep: breakYes, classLower: breakYes, classUpper: breakYes},
}

// secretSlow is secret for any key: letters beyond ASCII fold by Unicode's
// rules, which may change their length in bytes.
func (r *redactor) secretSlow(key string) bool {
	norm, at := normalizeKey(key)
	for _, f := range r.all {
		for off := 0; ; {
			i := strings.Index(norm[off:], f.s)
			if i < 0 {
				break
			}
			i += off
			if !f.word || at[i] && at[i+len(f.s)] {
				return true
			}
			_, size := utf8.DecodeRuneInString(norm[i:])
			off = i + size
		}
	}
	return false
}

// normalizeKey returns s folded by foldRune, without separators, and for
// each byte offset of the result, and its end, whether a word of s starts
// or ends there: at a separator, where a letter is followed by a digit or
// a digit by a letter ("pin1"), where a lower-case letter is followed by
// an upper-case one ("userPin"), and where an upper-case letter is
// followed by one that starts a capitalized word ("PINCode").
func normalizeKey(s string) (string, []bool) {
	var b strings.Builder
	at := []bool{true}
	runes := []rune(s)
	for i, c := range runes {
		if isSeparator(c) {
			at[len(at)-1] = true
			continue
		}
		if i > 0 {
			p := runes[i-1]
			switch {
			case unicode.IsLetter(p) && unicode.IsDigit(c), unicode.IsDigit(p) && unicode.IsLetter(c):
				at[len(at)-1] = true
			case unicode.IsUpper(c) && (unicode.IsLower(p) ||
				unicode.IsUpper(p) && i+1 < len(runes) && unicode.IsLower(runes[i+1])):
				at[len(at)-1] = true
			}
		}
		b.WriteRune(foldRune(c))
		for len(at) < b.Len()+1 {
			at = append(at, false)
		}
	}
	at[len(at)-1] = true
	return b.String(), at
}

// foldRune maps every rune of a Unicode simple case folding orbit — the
// runes strings.EqualFold takes as equal — to the same rune: the ASCII
// lower-case letter if the orbit has an ASCII letter ('ſ' and 'S' to
// 's', the Kelvin sign to 'k'), else the orbit's least rune.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		return rune(asciiFold[r])
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf {
			return rune(asciiFold[f])
		}
		least = min(least, f)
	}
	return least
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
