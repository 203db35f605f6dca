package integrity

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Errors of checkpoints and proofs. Functions return them wrapped, with
// what was wrong; test them with errors.Is.
var (
	// ErrMalformed is returned when a checkpoint, a proof or a stored
	// record does not follow its format.
	ErrMalformed = errors.New("integrity: malformed")
	// ErrUnknownKey is returned when a checkpoint carries no signature of
	// a known key. The error names the keys that did sign it.
	ErrUnknownKey = errors.New("integrity: checkpoint signed by no known key")
	// ErrBadSignature is returned when a signature of a known key does not
	// verify: the checkpoint was altered, or forged.
	ErrBadSignature = errors.New("integrity: invalid signature")
	// ErrWrongOrigin is returned when a checkpoint is of another trail.
	ErrWrongOrigin = errors.New("integrity: checkpoint of another origin")
	// ErrProof is returned when a proof does not prove what it claims.
	ErrProof = errors.New("integrity: proof does not verify")
)

// Checkpoint is a signed tree head in the C2SP tlog-checkpoint format: a
// signed note (c2sp.org/signed-note, as golang.org/x/mod/sumdb/note signs
// them) whose text is the origin, the tree size and the base64 root hash,
// one per line, and one extension line, "time" and the Unix seconds at
// which the sealer signed it:
//
//	example.com/audit/frontier
//	20852163
//	CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//	time 1741964966
//
//	— example.com/audit/frontier Az3grlgtzPICa5OS8npVmf1Myq/...
//
// The time is why the sealer signs a checkpoint every interval even when
// no log arrived: each one says "at this time the trail had this many
// logs", so a copy kept elsewhere shows a tail deleted since, and a
// verifier can tell that the newest checkpoint in the database is older
// than it should be. Witnesses cosign the first three lines (see the
// package documentation); the extension line is for this trail's own
// verifier.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
	Time   time.Time // UTC, whole seconds; zero if the note has no time line
	// Note is the whole signed note, text and signature lines, as signed.
	Note []byte
}

// text returns the note text of c: the lines that are signed.
func (c Checkpoint) text() string {
	var b strings.Builder
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	if !c.Time.IsZero() {
		b.WriteString("time ")
		b.WriteString(strconv.FormatInt(c.Time.Unix(), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// sign returns c with Note set to its text signed by signers.
func (c Checkpoint) sign(signers []note.Signer) (Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: c.text()}, signers...)
	if err != nil {
		return c, fmt.Errorf("integrity: signing the checkpoint: %w", err)
	}
	c.Note = msg
	return c, nil
}

// ParseCheckpointText parses the text of a checkpoint note, without its
// signatures: an origin that is not empty, a tree size in decimal without
// leading zeros, the base64 of a 32-byte root hash, and extension lines,
// none empty, of which a first "time N" line is read as Checkpoint.Time.
// It returns an error wrapping ErrMalformed for anything else.
func ParseCheckpointText(text string) (Checkpoint, error) {
	bad := func(why string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w checkpoint: %s", ErrMalformed, why)
	}
	if !strings.HasSuffix(text, "\n") {
		return bad("text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return bad("fewer than three lines")
	}
	for _, l := range lines {
		if l == "" {
			return bad("an empty line")
		}
	}
	c := Checkpoint{Origin: lines[0]}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return bad("tree size " + strconv.Quote(lines[1]) + " is not a decimal number without leading zeros")
	}
	c.Size = size
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return bad("root hash is not the base64 of 32 bytes")
	}
	copy(c.Hash[:], h)
	if len(lines) > 3 {
		if s, ok := strings.CutPrefix(lines[3], "time "); ok {
			sec, err := strconv.ParseInt(s, 10, 64)
			if err != nil || sec < 0 || strconv.FormatInt(sec, 10) != s {
				return bad("time " + strconv.Quote(s) + " is not a decimal number of seconds")
			}
			c.Time = time.Unix(sec, 0).UTC()
		}
	}
	return c, nil
}

// OpenCheckpoint verifies the signed note msg with the known verifiers and
// parses its text. At least one known key must have signed it, and every
// signature by a known key must verify; signatures by other keys (a
// witness, a key not yet known) are ignored, as signed notes require. With
// origin not empty, the checkpoint's origin must be origin.
//
// Errors wrap ErrUnknownKey (no known key signed it), ErrBadSignature,
// ErrMalformed or ErrWrongOrigin.
func OpenCheckpoint(msg []byte, origin string, known note.Verifiers) (Checkpoint, error) {
	n, err := note.Open(msg, known)
	if err != nil {
		var unknown *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unknown):
			var keys []string
			for _, s := range unknown.Note.UnverifiedSigs {
				keys = append(keys, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return Checkpoint{}, fmt.Errorf("%w: signed by %s", ErrUnknownKey, strings.Join(keys, ", "))
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		return Checkpoint{}, fmt.Errorf("%w note: %w", ErrMalformed, err)
	}
	c, err := ParseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if origin != "" && c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: %q, want %q", ErrWrongOrigin, c.Origin, origin)
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}

// Verifiers returns the note verifiers of vkeys, verifier keys as
// note.NewVerifier reads them ("name+hash+base64"). Give every key that
// signed checkpoints still kept: the current one and those rotated out.
func Verifiers(vkeys ...string) (note.Verifiers, error) {
	vs := make([]note.Verifier, 0, len(vkeys))
	for _, k := range vkeys {
		v, err := note.NewVerifier(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("%w verifier key %q: %w", ErrMalformed, k, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}
