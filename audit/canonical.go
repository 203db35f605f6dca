package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
)

// CanonicalVersion is the version of the canonical encoding that
// AppendCanonical writes. It is the byte that follows CanonicalDomain.
const CanonicalVersion = 1

// CanonicalDomain opens every canonical encoding, before the version byte,
// so that the encoding of a Log, and so its leaf hash, can never be taken
// for the bytes of anything else hashed with the same hash.
const CanonicalDomain = "salt-audit-log\x00"

// AppendCanonical appends the canonical encoding of l to b and returns the
// extended slice: the bytes that every implementation, in any language,
// reproduces from the same log, and that LeafHash hashes.
//
// A log that fails Validate has no encoding: AppendCanonical returns b
// unchanged and Validate's error, which wraps ErrInvalidLog. Such a log
// cannot be stored, so no stored log lacks an encoding.
//
// The encoding is that of the log as a Repository stores it: CreatedAt is
// taken in UTC, truncated to microseconds, and a nil and an empty Metadata
// encode alike. Two logs that a Repository would store differently never
// encode alike. The layout is given in the package documentation, under
// "Canonical encoding".
func (l Log) AppendCanonical(b []byte) ([]byte, error) {
	if err := l.Validate(); err != nil {
		return b, err
	}
	return l.appendCanonical(b), nil
}

// appendCanonical appends the encoding of l, which must be valid.
func (l *Log) appendCanonical(b []byte) []byte {
	fields := l.fields()
	var buf [stackPairs]kv
	pairs := appendPairs(buf[:0], l.Metadata)
	slices.SortFunc(pairs, func(x, y kv) int { return strings.Compare(x.k, y.k) })
	n := len(CanonicalDomain) + 1 + 4*len(fields) + 4 + 8
	for _, f := range fields {
		n += len(f)
	}
	for _, p := range pairs {
		n += 8 + len(p.k) + len(p.v)
	}
	b = slices.Grow(b, n)
	b = append(b, CanonicalDomain...)
	b = append(b, CanonicalVersion)
	for _, f := range fields {
		b = appendCanonicalString(b, f)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(pairs)))
	for _, p := range pairs {
		b = appendCanonicalString(b, p.k)
		b = appendCanonicalString(b, p.v)
	}
	return binary.BigEndian.AppendUint64(b, uint64(normalizeTime(l.CreatedAt).UnixMicro()))
}

// appendCanonicalString appends s with its length, as four bytes, big
// endian, before it.
func appendCanonicalString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// LeafHash returns the hash of l as a leaf of an RFC 6962 Merkle tree: the
// SHA-256 of a zero byte followed by the canonical encoding of l (see
// AppendCanonical). It returns Validate's error for a log that fails
// Validate.
func (l Log) LeafHash() ([sha256.Size]byte, error) {
	var buf [1024]byte
	b, err := l.AppendCanonical(append(buf[:0], 0x00))
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}
