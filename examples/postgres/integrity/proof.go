package integrity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
)

// maxProofHashes bounds the hashes of an inclusion proof: one a level,
// and a tree of at most 2^63 leaves has 63 levels above them.
const maxProofHashes = 63

// InclusionProof is what it takes to check, with no database, that a log
// is in the trail: the log, its leaf index, the hashes of its Merkle
// audit path (RFC 6962; hashes are base64 in JSON) and the signed
// checkpoint of the tree they lead to. Its JSON form is what the verifier
// command reads with -proof.
type InclusionProof struct {
	Log        audit.Log        `json:"log"`
	LeafIndex  int64            `json:"leaf_index"`
	TreeSize   int64            `json:"tree_size"`
	Proof      tlog.RecordProof `json:"proof"`
	Checkpoint string           `json:"checkpoint"`
}

// ParseInclusionProof reads an InclusionProof from its JSON form. It
// rejects unknown fields, trailing data and more hashes than any tree
// needs, with an error wrapping ErrMalformed; it verifies nothing (see
// InclusionProof.Verify).
func ParseInclusionProof(b []byte) (InclusionProof, error) {
	var p InclusionProof
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return InclusionProof{}, fmt.Errorf("%w inclusion proof: %w", ErrMalformed, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return InclusionProof{}, fmt.Errorf("%w inclusion proof: data after the object", ErrMalformed)
	}
	if len(p.Proof) > maxProofHashes {
		return InclusionProof{}, fmt.Errorf("%w inclusion proof: %d hashes", ErrMalformed, len(p.Proof))
	}
	if p.LeafIndex < 0 || p.TreeSize <= p.LeafIndex {
		return InclusionProof{}, fmt.Errorf("%w inclusion proof: leaf %d of a tree of %d", ErrMalformed, p.LeafIndex, p.TreeSize)
	}
	return p, nil
}

// Verify checks p: that its checkpoint is signed by a known key (and is
// of origin, if not empty), is of the tree size p claims, and that the
// proof leads from the log's leaf hash at its index to the checkpoint's
// root. It returns the checkpoint, or an error wrapping ErrProof,
// ErrUnknownKey, ErrBadSignature, ErrWrongOrigin, ErrMalformed or, for a
// log with no canonical encoding, audit.ErrInvalidLog.
func (p InclusionProof) Verify(origin string, known note.Verifiers) (Checkpoint, error) {
	cp, err := OpenCheckpoint([]byte(p.Checkpoint), origin, known)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Size != p.TreeSize {
		return cp, fmt.Errorf("%w: the checkpoint is of a tree of %d, the proof of %d", ErrProof, cp.Size, p.TreeSize)
	}
	h, err := p.Log.LeafHash()
	if err != nil {
		return cp, err
	}
	if err := tlog.CheckRecord(p.Proof, cp.Size, cp.Hash, p.LeafIndex, h); err != nil {
		return cp, fmt.Errorf("%w: log %q as leaf %d of the tree of %d: %w", ErrProof, p.Log.ID, p.LeafIndex, cp.Size, err)
	}
	return cp, nil
}

// VerifyConsistency checks that the tree of checkpoint older is a prefix
// of the tree of checkpoint newer, with the proof from
// Tree.ConsistencyProof. It returns an error wrapping ErrProof if not.
func VerifyConsistency(older, newer Checkpoint, p tlog.TreeProof) error {
	if older.Size > newer.Size {
		return fmt.Errorf("%w: a tree of %d cannot be a prefix of a tree of %d", ErrProof, older.Size, newer.Size)
	}
	if err := tlog.CheckTree(p, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fmt.Errorf("%w: the tree of %d is not a prefix of the tree of %d: %w", ErrProof, older.Size, newer.Size, err)
	}
	return nil
}

// extends returns an error wrapping ErrInconsistent unless the tree of
// cur extends the tree of old, checked with the consistency proof that
// prove returns from old's size to cur's: cur is no smaller, of the same
// root at the same size, and the proof verifies against both roots.
func extends(cur, old Checkpoint, prove func(oldSize int64) (tlog.TreeProof, error)) error {
	when := ""
	if !old.Time.IsZero() {
		when = " (" + old.Time.Format(time.RFC3339) + ")"
	}
	switch {
	case old.Size > cur.Size:
		return fmt.Errorf("%w: a tree of %d leaves does not extend the tree of %d signed before%s",
			ErrInconsistent, cur.Size, old.Size, when)
	case old.Size == cur.Size && old.Hash != cur.Hash:
		return fmt.Errorf("%w: the tree of %d has another root than the one signed before%s", ErrInconsistent, cur.Size, when)
	case old.Size == cur.Size || old.Size == 0:
		return nil
	}
	p, err := prove(old.Size)
	if err != nil {
		return fmt.Errorf("integrity: proving that the tree of %d extends the tree of %d: %w", cur.Size, old.Size, err)
	}
	if err := tlog.CheckTree(p, cur.Size, cur.Hash, old.Size, old.Hash); err != nil {
		return fmt.Errorf("%w: the tree of %d does not extend the tree of %d signed before%s: %w",
			ErrInconsistent, cur.Size, old.Size, when, err)
	}
	return nil
}
