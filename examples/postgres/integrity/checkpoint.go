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
// one per line, and two extension lines: "time" and the Unix seconds at
// which the sealer took the snapshot the seal reads, and "seal" and the
// base64 SHA-256 of the seal's bookkeeping and leaf records:
//
//	example.com/audit/frontier
//	20852163
//	CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//	time 1741964966
//	seal 4eOF6rtdZ2Ozm9Xx0EKj5sF2bAjbfuH+3IRhSbnB5nM=
//
//	— example.com/audit/frontier Az3grlgtzPICa5OS8npVmf1Myq/...
//
// C2SP calls extension lines NOT RECOMMENDED, because monitors of other
// logs cannot audit them: they say nothing about the tree, and a witness
// makes no statement about them. These two are for this trail's own
// verifier, and the signature covers them like the rest of the text, so
// they are as authentic as the root:
//
//   - time is why the sealer signs a checkpoint every interval even when
//     no log arrived: each one says "by this time the trail had this many
//     logs", so a verifier can tell that the newest checkpoint in the
//     database is older than it should be, and that a log was stored long
//     after the time it claims (see Backdated);
//   - seal covers what the tree does not: the seal's place in the
//     sequence, the last log it sealed, its snapshot's horizon and next
//     transaction id, and the leaf records (each sealed log's ID and
//     CreatedAt), which the verifier relies on to tell late and
//     backdated logs, inserted ones and logs removed by retention.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
	Time   time.Time // UTC, whole seconds; zero if the note has no time line
	// Seal is the digest of the seal's bookkeeping; zero if the note has
	// no seal line.
	Seal tlog.Hash
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
	if c.Seal != (tlog.Hash{}) {
		b.WriteString("seal ")
		b.WriteString(base64.StdEncoding.EncodeToString(c.Seal[:]))
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
// none empty, of which "time N" (N decimal seconds) is read as
// Checkpoint.Time and "seal B" (B the base64 of 32 bytes) as
// Checkpoint.Seal; each may appear once, other lines are ignored. It
// returns an error wrapping ErrMalformed for anything else.
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
	if !decodeHash(lines[2], &c.Hash) {
		return bad("root hash is not the base64 of 32 bytes")
	}
	var haveTime, haveSeal bool
	for _, l := range lines[3:] {
		if s, ok := strings.CutPrefix(l, "time "); ok {
			sec, err := strconv.ParseInt(s, 10, 64)
			if haveTime || err != nil || sec < 0 || strconv.FormatInt(sec, 10) != s {
				return bad("time " + strconv.Quote(s) + " is not one decimal number of seconds")
			}
			haveTime = true
			c.Time = time.Unix(sec, 0).UTC()
		} else if s, ok := strings.CutPrefix(l, "seal "); ok {
			if haveSeal || !decodeHash(s, &c.Seal) || c.Seal == (tlog.Hash{}) {
				return bad("seal " + strconv.Quote(s) + " is not one base64 digest of 32 bytes")
			}
			haveSeal = true
		}
	}
	return c, nil
}

// decodeHash decodes the strict base64 of a 32-byte hash into h.
func decodeHash(s string, h *tlog.Hash) bool {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return false
	}
	copy(h[:], b)
	return true
}

// OpenCheckpoint verifies the signed note msg with the known verifiers and
// parses its text. At least one known key must have signed it, and every
// signature by a known key must verify; signatures by other keys (a
// witness, a key not yet known) are ignored, as signed notes require. One
// known key that signed it must be named as the checkpoint's origin, as
// C2SP asks of a log's key: so that the key of one trail cannot vouch for
// the checkpoints of another. With origin not empty, the checkpoint's
// origin must be origin.
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
	var names []string
	for _, sig := range n.Sigs {
		if sig.Name == c.Origin {
			names = nil
			break
		}
		names = append(names, sig.Name)
	}
	if names != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %q signed by keys named %q only", ErrWrongOrigin, c.Origin, names)
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}

// Verifiers returns the note verifiers of vkeys, verifier keys as
// note.NewVerifier reads them ("name+hash+base64"). Give every key that
// signed checkpoints still kept: the current one and those rotated out.
// A key given twice counts once; two different keys of the same name and
// key hash are an error wrapping ErrMalformed, since no signature could
// tell them apart.
func Verifiers(vkeys ...string) (note.Verifiers, error) {
	vs := make([]note.Verifier, 0, len(vkeys))
	seen := map[string]bool{}
	ids := map[string]string{}
	for _, k := range vkeys {
		k = strings.TrimSpace(k)
		if seen[k] {
			continue
		}
		seen[k] = true
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("%w verifier key %q: %w", ErrMalformed, k, err)
		}
		id := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
		if other, dup := ids[id]; dup {
			return nil, fmt.Errorf("%w verifier keys %q and %q: two keys with the same name and hash %s", ErrMalformed, other, k, id)
		}
		ids[id] = k
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}
