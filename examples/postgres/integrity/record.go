package integrity

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/raystack/salt/audit"
)

// The fields that a leaf record keeps a digest of, in the order of the
// digests. ID and CreatedAt are kept whole.
var digestFields = [...]string{
	"org_id", "source", "action",
	"actor.id", "actor.type", "actor.name",
	"target.id", "target.type", "target.name",
	"metadata",
}

const numDigests = len(digestFields)

// leaf is what a seal keeps of each log besides its leaf hash: enough to
// name a log that was deleted (its ID, and its CreatedAt, which tells a
// log removed by retention from one deleted), and a digest of each other
// field, to name the fields of a log that was changed.
//
// The digests are CRC-32C, not a cryptographic hash: the leaf hash, which
// the signed checkpoints cover, is what proves a log changed; the digests
// only say where, and whoever could forge them could rewrite them anyway.
type leaf struct {
	id        string
	createdAt int64 // Unix microseconds
	digests   [numDigests]uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// newLeaf returns the leaf record of a valid log.
func newLeaf(l *audit.Log) leaf {
	r := leaf{id: l.ID, createdAt: l.CreatedAt.UTC().Truncate(time.Microsecond).UnixMicro()}
	for i, s := range [...]string{
		l.OrgID, l.Source, l.Action,
		l.Actor.ID, l.Actor.Type, l.Actor.Name,
		l.Target.ID, l.Target.Type, l.Target.Name,
	} {
		r.digests[i] = crc32.Checksum([]byte(s), castagnoli)
	}
	r.digests[numDigests-1] = metadataDigest(l.Metadata)
	return r
}

// metadataDigest is the CRC-32C of the metadata's entries in key order,
// each key and value with its length before it.
func metadataDigest(md map[string]string) uint32 {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(md[k])))
		b = append(b, md[k]...)
	}
	return crc32.Checksum(b, castagnoli)
}

// diff returns the names of the fields in which r and other differ.
func (r *leaf) diff(other *leaf) []string {
	var fields []string
	if r.id != other.id {
		fields = append(fields, "id")
	}
	for i := range r.digests {
		if r.digests[i] != other.digests[i] {
			fields = append(fields, digestFields[i])
		}
	}
	if r.createdAt != other.createdAt {
		fields = append(fields, "created_at")
	}
	return fields
}

// A seal's leaves column is its leaf records, one after the other: the
// ID's length (2 bytes, big endian) and bytes, CreatedAt in Unix
// microseconds (8 bytes, big endian), and the digests (4 bytes each, big
// endian, in the order of digestFields). At 36-byte UUIDs that is 86 bytes
// a log.

// appendLeaf appends the record r to b.
func appendLeaf(b []byte, r *leaf) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.id)))
	b = append(b, r.id...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.createdAt))
	for _, d := range r.digests {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return b
}

// parseLeaves parses the leaves column of a seal, which must hold n
// records.
func parseLeaves(b []byte, n int) ([]leaf, error) {
	if n < 0 || n > len(b) {
		return nil, fmt.Errorf("%w leaves: %d records in %d bytes", ErrMalformed, n, len(b))
	}
	out := make([]leaf, 0, n)
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w leaf record: truncated", ErrMalformed)
		}
		idLen := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if len(b) < idLen+8+4*numDigests {
			return nil, fmt.Errorf("%w leaf record: truncated", ErrMalformed)
		}
		r := leaf{id: string(b[:idLen])}
		b = b[idLen:]
		r.createdAt = int64(binary.BigEndian.Uint64(b))
		b = b[8:]
		for i := range r.digests {
			r.digests[i] = binary.BigEndian.Uint32(b)
			b = b[4:]
		}
		out = append(out, r)
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w leaves: %d records, want %d", ErrMalformed, len(out), n)
	}
	return out, nil
}
