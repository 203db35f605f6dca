package audit

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryRepository is a Repository that keeps logs in memory: the reference
// implementation of the Repository contract, for tests, examples and small
// tools. Its logs are lost when the process ends.
//
// Each log is stored encoded in large byte blocks, a copy that shares
// nothing with the caller and that the garbage collector need not scan. The
// logs are kept ordered by (CreatedAt, ID), overall and per org, so List
// reads only the stretch of that order it returns, not every log. It is
// safe for concurrent use.
type MemoryRepository struct {
	mu     sync.RWMutex
	blocks [][]byte   // encoded logs; the last one is being filled
	spare  []byte     // an empty block for a log that does not fit in the last one
	recs   [][]record // every log, in the order stored, in chunks of recChunk; indexes are record numbers
	nrecs  uint32
	order  []uint32 // record numbers, oldest first
	byOrg  map[string][]uint32
	// IDs are indexed twice. Logs whose ID sorts after every ID before it
	// — the common case with time-ordered IDs — are listed in idOrder, so
	// checking and indexing them is a comparison and an append. The others
	// go into the hash table byID.
	idOrder []uint32 // record numbers with increasing IDs
	byID    []uint64 // hash table of IDs: see idSlot
	nIDs    int      // slots in use
	seed    maphash.Seed
}

// record locates one encoded log.
type record struct {
	micros int64  // CreatedAt in Unix microseconds
	block  uint32 // index in blocks
	off    uint32 // offset in the block
	size   uint32 // length of the encoding
	idOff  uint16 // where the ID starts in the encoding: see encode
	idLen  uint16
}

var _ Repository = (*MemoryRepository)(nil)

// NewMemoryRepository returns an empty MemoryRepository.
func NewMemoryRepository() *MemoryRepository {
	return &MemoryRepository{
		byOrg: make(map[string][]uint32),
		seed:  maphash.MakeSeed(),
	}
}

// Encoded logs go in blocks of blockSize bytes, and records in chunks of
// recChunk: storage grows by new pieces rather than by copying what it
// holds into ever larger ones.
const (
	blockSize = 64 << 10
	recChunk  = 4096
)

// rec returns record n.
func (r *MemoryRepository) rec(n uint32) *record {
	return &r.recs[n/recChunk][n%recChunk]
}

// Create implements Repository.
func (r *MemoryRepository) Create(ctx context.Context, log *Log) error {
	// Check what is cheap to check — presence, bounds, the time — reading
	// the map once for both validating and encoding. Whether the strings
	// are valid text is checked on their copy, in one pass; text that is
	// not plain ASCII is checked string by string, outside the lock.
	values := log.fields()
	var buf [stackPairs]kv
	md, ok := boundsOK(log, &values, buf[:0])
	if !ok {
		if err := log.Validate(); err != nil {
			return err
		}
		md = appendPairs(buf[:0], log.Metadata)
	}
	for textChecked := false; ; textChecked = true {
		r.mu.Lock()
		checkText, err := r.store(ctx, log, &values, md, textChecked)
		r.mu.Unlock()
		if !checkText {
			return err
		}
		if err := log.validateFields(); err != nil {
			return err
		}
		if err := validatePairs(md); err != nil {
			return err
		}
	}
}

// store stores log, whose string fields are values and metadata md, and
// whose bounds are checked; r.mu must be held. Unless textChecked, it
// reports instead that the text needs checking, when it is not plain
// ASCII, or when the ID is stored already: an invalid log is ErrInvalidLog
// before a canceled ctx, which is an error before a duplicate ID.
func (r *MemoryRepository) store(ctx context.Context, log *Log, values *[len(fieldNames)]string, md []kv, textChecked bool) (checkText bool, err error) {
	n := r.nrecs
	ordered := len(r.idOrder) == 0 || log.ID > string(r.idBytes(r.idOrder[len(r.idOrder)-1]))
	var h, slot uint32
	if !ordered {
		// An ID below the largest may be stored already, in either index.
		var dup bool
		if _, dup = r.findOrdered(log.ID); !dup {
			h = r.hash(log.ID)
			slot, dup = r.findID(h, log.ID)
		}
		if dup {
			if !textChecked {
				return true, nil
			}
			if err := ctx.Err(); err != nil {
				return false, err
			}
			return false, fmt.Errorf("%w: id %q", ErrAlreadyExists, log.ID)
		}
	}
	rec, b := r.encode(log, values, md)
	if !textChecked && !plainText(b[rec.idOff:]) {
		return true, nil
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	// Keep the encoding: until now it lay past the end of the last block,
	// or in the spare block.
	if int(rec.block) == len(r.blocks) {
		r.blocks = append(r.blocks, r.spare[:rec.size])
		r.spare = nil
	} else {
		r.blocks[rec.block] = r.blocks[rec.block][:rec.off+rec.size]
	}
	if n%recChunk == 0 {
		r.recs = append(r.recs, make([]record, 0, recChunk))
	}
	r.recs[n/recChunk] = append(r.recs[n/recChunk], rec)
	r.nrecs++
	if ordered {
		r.idOrder = append(r.idOrder, n)
	} else {
		r.addID(slot, h, n)
	}
	p := position{micros: rec.micros, id: log.ID}
	r.order = r.insertOrdered(r.order, n, p)
	if log.OrgID != "" {
		r.byOrg[log.OrgID] = r.insertOrdered(r.byOrg[log.OrgID], n, p)
	}
	return false, nil
}

// boundsOK appends the metadata pairs of l to dst and reports whether l,
// whose string fields are values, passes the checks of Validate that do
// not read the strings' bytes: required fields, lengths, the number of keys
// and CreatedAt. When it reports false, Validate fails.
func boundsOK(l *Log, values *[len(fieldNames)]string, dst []kv) ([]kv, bool) {
	for i := range values {
		if n := len(values[i]); n > fieldMax[i] || n == 0 && fieldRequired[i] {
			return dst, false
		}
	}
	if !validTime(l.CreatedAt) || len(l.Metadata) > MaxMetadataKeys {
		return dst, false
	}
	dst = appendPairs(dst, l.Metadata)
	for _, p := range dst {
		if len(p.k) == 0 || len(p.k) > MaxMetadataKeyLen || len(p.v) > MaxMetadataValueLen {
			return dst, false
		}
	}
	return dst, true
}

// The ID index is an open-addressing hash table with linear probing, kept
// at most half full. A slot holds the upper 32 bits of an ID's hash and
// the record number + 1, so 0 is an empty slot; a table of plain integers
// is one memory access per probe and nothing for the garbage collector.
func idSlot(h uint32, n uint32) uint64 { return uint64(h)<<32 | uint64(n+1) }

func (r *MemoryRepository) hash(id string) uint32 {
	return uint32(maphash.String(r.seed, id) >> 32)
}

// findOrdered returns the record number of the log with the given ID if
// it is in idOrder.
func (r *MemoryRepository) findOrdered(id string) (uint32, bool) {
	i, found := slices.BinarySearchFunc(r.idOrder, id, func(n uint32, id string) int {
		return strings.Compare(string(r.idBytes(n)), id)
	})
	if !found {
		return 0, false
	}
	return r.idOrder[i], true
}

// findID returns the record number of the log with the given ID and hash,
// and true; or the slot where that ID belongs, and false.
func (r *MemoryRepository) findID(h uint32, id string) (uint32, bool) {
	if len(r.byID) == 0 {
		return 0, false
	}
	mask := uint32(len(r.byID) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := r.byID[i]
		if s == 0 {
			return i, false
		}
		if uint32(s>>32) == h && string(r.idBytes(uint32(s)-1)) == id {
			return uint32(s) - 1, true
		}
	}
}

// addID records that record n has the ID whose hash is h, at slot, which
// findID returned for it.
func (r *MemoryRepository) addID(slot, h, n uint32) {
	if 2*(r.nIDs+1) <= len(r.byID) {
		r.byID[slot] = idSlot(h, n)
		r.nIDs++
		return
	}
	// Grow: rehash every slot into a table twice as large.
	old := r.byID
	r.byID = make([]uint64, max(1024, 2*len(old)))
	mask := uint32(len(r.byID) - 1)
	for _, s := range append(old, idSlot(h, n)) {
		if s == 0 {
			continue
		}
		i := uint32(s>>32) & mask
		for r.byID[i] != 0 {
			i = (i + 1) & mask
		}
		r.byID[i] = s
	}
	r.nIDs++
}

// encode writes the encoding of l, with values as its string fields and md
// as its metadata, just past the end of the last block or in the spare
// block, and returns its record and its bytes. The encoding is kept only
// once the caller extends the block over it, or appends the spare block.
//
// The encoding is a header — one byte holding the number of metadata pairs
// and the wideLengths flag, then the length of each string in one byte, or
// in two little-endian bytes with wideLengths — followed by the strings:
// the ID, the other fields in the order of fieldNames, and each pair's key
// and value. The strings are contiguous, so that one pass over them checks
// them all. l's fields must be within their bounds.
func (r *MemoryRepository) encode(l *Log, values *[len(fieldNames)]string, md []kv) (record, []byte) {
	size, longest := 0, 0
	for i := range values {
		size += len(values[i])
		longest = max(longest, len(values[i]))
	}
	for _, p := range md {
		size += len(p.k) + len(p.v)
		longest = max(longest, len(p.v)) // keys are shorter than 256 bytes
	}
	width := 1
	if longest > 0xff {
		width = 2
	}
	hdr := 1 + width*(len(values)+2*len(md))
	size += hdr
	// The last block, if the log fits; else the spare block, which becomes
	// the last one if the log is kept and waits for the next log if not.
	bi, off := len(r.blocks), 0
	var b []byte
	if last := len(r.blocks) - 1; last >= 0 && cap(r.blocks[last])-len(r.blocks[last]) >= size {
		bi, off = last, len(r.blocks[last])
		b = r.blocks[last][off : off+size]
	} else {
		if cap(r.spare) < size {
			r.spare = make([]byte, 0, max(blockSize, size))
		}
		b = r.spare[:size]
	}
	b[0] = byte(len(md))
	if width == 2 {
		b[0] |= wideLengths
	}
	h, s := 1, hdr
	put := func(v string) {
		b[h] = byte(len(v))
		if width == 2 {
			b[h+1] = byte(len(v) >> 8)
		}
		h += width
		s += copy(b[s:], v)
	}
	for i := range values {
		put(values[i])
	}
	for _, p := range md {
		put(p.k)
		put(p.v)
	}
	return record{
		micros: l.CreatedAt.UnixMicro(),
		block:  uint32(bi),
		off:    uint32(off),
		size:   uint32(size),
		idOff:  uint16(hdr),
		idLen:  uint16(len(l.ID)),
	}, b
}

// wideLengths flags an encoding whose lengths take two bytes.
const wideLengths = 0x80

// The encoding relies on the bounds of a valid log: the number of pairs
// fits in the header byte beside wideLengths, a key's length in one byte,
// the ID's offset and length in a record's uint16s, and any string's
// length in two bytes. These fail to compile if a bound outgrows them.
const (
	_ uint8  = wideLengths - 1 - MaxMetadataKeys
	_ uint8  = MaxMetadataKeyLen
	_        = uint16(1 + 2*(len(fieldNames)+2*MaxMetadataKeys))
	_ uint16 = max(MaxIDLen, MaxOrgIDLen, MaxSourceLen, MaxActionLen,
		MaxEntityIDLen, MaxEntityTypeLen, MaxEntityNameLen, MaxMetadataValueLen)
)

// bytes returns the encoding of record n.
func (r *MemoryRepository) bytes(n uint32) []byte {
	rec := r.rec(n)
	return r.blocks[rec.block][rec.off : rec.off+rec.size]
}

// idBytes returns the ID of record n, in the block.
func (r *MemoryRepository) idBytes(n uint32) []byte {
	rec := r.rec(n)
	start := rec.off + uint32(rec.idOff)
	return r.blocks[rec.block][start : start+uint32(rec.idLen)]
}

// decode returns record n as a Log of its own. Its strings share one
// allocation.
func (r *MemoryRepository) decode(n uint32) Log {
	rec := r.rec(n)
	b := r.bytes(n)
	s := string(b[rec.idOff:])
	wide := b[0]&wideLengths != 0
	h, i := 1, 0
	next := func() string {
		start := i
		if wide {
			i += int(b[h]) | int(b[h+1])<<8
			h += 2
		} else {
			i += int(b[h])
			h++
		}
		return s[start:i]
	}
	l := Log{ID: next(), CreatedAt: time.UnixMicro(rec.micros).UTC()}
	l.OrgID, l.Source, l.Action = next(), next(), next()
	l.Actor = Actor{ID: next(), Type: next(), Name: next()}
	l.Target = Target{ID: next(), Type: next(), Name: next()}
	if count := int(b[0] &^ wideLengths); count > 0 {
		l.Metadata = make(map[string]string, count)
		for range count {
			k := next()
			l.Metadata[k] = next()
		}
	}
	return l
}

// compare orders record n against position p, oldest first.
func (r *MemoryRepository) compare(n uint32, p position) int {
	rec := r.rec(n)
	switch {
	case rec.micros < p.micros:
		return -1
	case rec.micros > p.micros:
		return 1
	}
	id := r.idBytes(n)
	switch {
	case string(id) < p.id:
		return -1
	case string(id) > p.id:
		return 1
	}
	return 0
}

// insertOrdered inserts record n, at position p, into nums, which is
// ordered oldest first. Logs mostly arrive in order, so the common case is
// an append.
func (r *MemoryRepository) insertOrdered(nums []uint32, n uint32, p position) []uint32 {
	if len(nums) == 0 || r.compare(nums[len(nums)-1], p) < 0 {
		return append(nums, n)
	}
	i, _ := slices.BinarySearchFunc(nums, p, r.compare)
	return slices.Insert(nums, i, n)
}

// List implements Repository.
func (r *MemoryRepository) List(ctx context.Context, filter Filter) ([]Log, error) {
	m, err := filter.compile()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit := filter.PageSize()

	r.mu.RLock()
	defer r.mu.RUnlock()
	nums := r.order
	if filter.OrgID != "" {
		nums = r.byOrg[filter.OrgID]
	}
	// Start just below the cursor and Until, and walk towards older logs
	// until the page is full or Since is passed.
	end := len(nums)
	if m.hasCursor {
		end, _ = slices.BinarySearchFunc(nums, m.cursor, r.compare)
	}
	if !filter.Until.IsZero() {
		end, _ = slices.BinarySearchFunc(nums[:end], filter.Until, func(n uint32, until time.Time) int {
			return time.UnixMicro(r.rec(n).micros).Compare(until)
		})
	}
	out := make([]Log, 0, min(limit, end))
	for i := end - 1; i >= 0 && len(out) < limit; i-- {
		n := nums[i]
		if !filter.Since.IsZero() && time.UnixMicro(r.rec(n).micros).Before(filter.Since) {
			break
		}
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if l := r.decode(n); m.match(&l) {
			out = append(out, l)
		}
	}
	return out, nil
}

// GetByID implements Repository.
func (r *MemoryRepository) GetByID(ctx context.Context, id string) (Log, error) {
	if err := ctx.Err(); err != nil {
		return Log{}, err
	}
	h := r.hash(id)
	r.mu.RLock()
	defer r.mu.RUnlock()
	n, ok := r.findOrdered(id)
	if !ok {
		n, ok = r.findID(h, id)
	}
	if !ok {
		return Log{}, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	return r.decode(n), nil
}

// Len returns the number of logs stored.
func (r *MemoryRepository) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return int(r.nrecs)
}
