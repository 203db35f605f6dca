package integrity

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"
	"strconv"
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

// Flags of a leaf record.
const (
	// leafRaw marks a row that is not a valid log: its leaf hashes the
	// row's raw columns (see rawLeafHash), not a canonical encoding.
	leafRaw = 1 << iota
	// leafPurge marks a purge log of retention (see purgeOf): the record
	// carries its cutoff and count, so that they stay known after a later
	// purge removes the purge log itself.
	leafPurge
)

// leaf is what a seal keeps of each log besides its leaf hash: enough to
// name a log that was deleted (its ID, and its CreatedAt, which tells a
// log removed by retention from one deleted), a digest of each other
// field, to name the fields of a log that was changed, and, for a purge
// log, what it purged.
//
// The records of a seal are covered by its checkpoint's signature (see
// sealDigest), so they are as trustworthy as the checkpoints. The digests
// are CRC-32C, not a cryptographic hash: the leaf hash is what proves a
// log changed; the digests only say where.
type leaf struct {
	id        string
	createdAt int64 // Unix microseconds; math.MaxInt64 and MinInt64 for ±infinity
	digests   [numDigests]uint32
	flags     byte
	cutoff    int64 // for leafPurge, Unix microseconds
	count     int64 // for leafPurge
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(s string) uint32 { return crc32.Checksum([]byte(s), castagnoli) }

// newLeaf returns the leaf record of a valid log, written with xact_id
// xact (0 before migration 4).
func newLeaf(l *audit.Log, xact int64) leaf {
	r := leaf{id: l.ID, createdAt: l.CreatedAt.UTC().Truncate(time.Microsecond).UnixMicro()}
	for i, s := range [...]string{
		l.OrgID, l.Source, l.Action,
		l.Actor.ID, l.Actor.Type, l.Actor.Name,
		l.Target.ID, l.Target.Type, l.Target.Name,
	} {
		r.digests[i] = crc(s)
	}
	r.digests[numDigests-1] = metadataDigest(l.Metadata)
	if p, ok := purgeOf(l); ok && xact != 0 {
		r.flags |= leafPurge
		r.cutoff, r.count = p.cutoff.UnixMicro(), p.count
	}
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

// created returns the record's CreatedAt, for messages.
func (r *leaf) created() string {
	switch r.createdAt {
	case math.MaxInt64:
		return "infinity"
	case math.MinInt64:
		return "-infinity"
	}
	return time.UnixMicro(r.createdAt).UTC().Format(time.RFC3339Nano)
}

// A seal's leaves column is its leaf records, one after the other: the
// ID's length (an unsigned varint, as encoding/binary writes it) and
// bytes, CreatedAt in Unix microseconds (8 bytes, big endian), the digests
// (4 bytes each, big endian, in the order of digestFields), the flags (1
// byte) and, with leafPurge, the cutoff in Unix microseconds and the count
// (8 bytes each, big endian). At 36-byte UUIDs that is 86 bytes a log.

// minLeafSize is the size of the smallest leaf record: an empty ID.
const minLeafSize = 1 + 8 + 4*numDigests + 1

// appendLeaf appends the record r to b.
func appendLeaf(b []byte, r *leaf) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.id)))
	b = append(b, r.id...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.createdAt))
	for _, d := range r.digests {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	b = append(b, r.flags)
	if r.flags&leafPurge != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(r.cutoff))
		b = binary.BigEndian.AppendUint64(b, uint64(r.count))
	}
	return b
}

// parseLeaves parses the leaves column of a seal, which must hold n
// records. It allocates for no more records than b can hold.
func parseLeaves(b []byte, n int) ([]leaf, error) {
	if n < 0 || n > len(b)/minLeafSize {
		return nil, fmt.Errorf("%w leaves: %d records in %d bytes", ErrMalformed, n, len(b))
	}
	out := make([]leaf, 0, n)
	truncated := fmt.Errorf("%w leaf record: truncated", ErrMalformed)
	for len(b) > 0 {
		idLen, k := binary.Uvarint(b)
		if k <= 0 || idLen > uint64(len(b)) {
			return nil, truncated
		}
		if k != uvarintLen(idLen) { // one encoding per record
			return nil, fmt.Errorf("%w leaf record: a length of %d in %d bytes", ErrMalformed, idLen, k)
		}
		b = b[k:]
		if uint64(len(b)) < idLen+uint64(8+4*numDigests+1) {
			return nil, truncated
		}
		r := leaf{id: string(b[:idLen])}
		b = b[idLen:]
		r.createdAt = int64(binary.BigEndian.Uint64(b))
		b = b[8:]
		for i := range r.digests {
			r.digests[i] = binary.BigEndian.Uint32(b)
			b = b[4:]
		}
		r.flags = b[0]
		b = b[1:]
		if r.flags&^(leafRaw|leafPurge) != 0 {
			return nil, fmt.Errorf("%w leaf record: flags %#x", ErrMalformed, r.flags)
		}
		if r.flags&leafPurge != 0 {
			if len(b) < 16 {
				return nil, truncated
			}
			r.cutoff = int64(binary.BigEndian.Uint64(b))
			r.count = int64(binary.BigEndian.Uint64(b[8:]))
			b = b[16:]
			if r.count < 0 {
				return nil, fmt.Errorf("%w leaf record: a purge of %d logs", ErrMalformed, r.count)
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("%w leaves: more than %d records", ErrMalformed, n)
		}
		out = append(out, r)
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w leaves: %d records, want %d", ErrMalformed, len(out), n)
	}
	return out, nil
}

// ActionPurged is the action of the log that a purge by retention writes
// of itself, in the transaction of each chunk it deletes.
const ActionPurged = "audit.logs.purged"

// purgeCutoffLayout is the layout of a purge log's cutoff: RFC 3339, UTC,
// exactly six fractional digits.
const purgeCutoffLayout = "2006-01-02T15:04:05.000000Z"

// uvarintLen is the length of the shortest uvarint encoding of x, the one
// binary.AppendUvarint writes.
func uvarintLen(x uint64) int {
	if x == 0 {
		return 1
	}
	return (bits.Len64(x) + 6) / 7
}

// purgeInfo is what a purge log says it did.
type purgeInfo struct {
	cutoff time.Time
	count  int64
}

// purgeOf returns what the purge log l says, and whether l is one in the
// format retention writes: action ActionPurged, actor type system,
// metadata "cutoff" in purgeCutoffLayout and "count" in decimal.
func purgeOf(l *audit.Log) (purgeInfo, bool) {
	if l.Action != ActionPurged || l.Actor.Type != audit.ActorTypeSystem {
		return purgeInfo{}, false
	}
	s := l.Metadata["cutoff"]
	cutoff, err := time.Parse(purgeCutoffLayout, s)
	if err != nil || cutoff.Format(purgeCutoffLayout) != s {
		return purgeInfo{}, false
	}
	c := l.Metadata["count"]
	count, err := strconv.ParseInt(c, 10, 64)
	if err != nil || count < 0 || strconv.FormatInt(count, 10) != c {
		return purgeInfo{}, false
	}
	return purgeInfo{cutoff: cutoff, count: count}, true
}
