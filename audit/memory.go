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
	idLen  uint32 // the encoding starts with the ID's bytes
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
	// Validate, reading the map once for both validating and encoding.
	if err := log.validateFields(); err != nil {
		return err
	}
	var buf [MaxMetadataKeys]kv
	md, err := collectPairs(buf[:0], log.Metadata)
	if err == nil {
		err = validatePairs(md)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
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
			return fmt.Errorf("%w: id %q", ErrAlreadyExists, log.ID)
		}
	}
	rec := r.encode(log, md)
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
	return nil
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

// encode appends the encoding of l, with md as its metadata, to the last
// block and returns its record. The encoding is the ID's bytes, then each
// other string, the number of metadata pairs as one byte, and each pair's
// strings; strings are written as appendString does. l must be valid.
func (r *MemoryRepository) encode(l *Log, md []kv) record {
	size := len(l.ID) + len(l.OrgID) + len(l.Source) + len(l.Action) +
		len(l.Actor.ID) + len(l.Actor.Type) + len(l.Actor.Name) +
		len(l.Target.ID) + len(l.Target.Type) + len(l.Target.Name) +
		2*(9+2*len(md)) + 1
	for _, p := range md {
		size += len(p.k) + len(p.v)
	}
	if len(r.blocks) == 0 || cap(r.blocks[len(r.blocks)-1])-len(r.blocks[len(r.blocks)-1]) < size {
		r.blocks = append(r.blocks, make([]byte, 0, max(blockSize, size)))
	}
	bi := len(r.blocks) - 1
	b := r.blocks[bi]
	off := len(b)
	b = append(b, l.ID...)
	b = appendString(b, l.OrgID)
	b = appendString(b, l.Source)
	b = appendString(b, l.Action)
	b = appendString(b, l.Actor.ID)
	b = appendString(b, l.Actor.Type)
	b = appendString(b, l.Actor.Name)
	b = appendString(b, l.Target.ID)
	b = appendString(b, l.Target.Type)
	b = appendString(b, l.Target.Name)
	b = append(b, byte(len(md)))
	for _, p := range md {
		b = appendString(appendString(b, p.k), p.v)
	}
	r.blocks[bi] = b
	return record{
		micros: l.CreatedAt.UnixMicro(),
		block:  uint32(bi),
		off:    uint32(off),
		size:   uint32(len(b) - off),
		idLen:  uint32(len(l.ID)),
	}
}

// appendString appends s with its length as two little-endian bytes: a
// valid log holds no longer string.
func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)), byte(len(s)>>8)), s...)
}

// bytes returns the encoding of record n.
func (r *MemoryRepository) bytes(n uint32) []byte {
	rec := r.rec(n)
	return r.blocks[rec.block][rec.off : rec.off+rec.size]
}

// idBytes returns the ID of record n, in the block.
func (r *MemoryRepository) idBytes(n uint32) []byte {
	return r.bytes(n)[:r.rec(n).idLen]
}

// decode returns record n as a Log of its own. Its strings share one
// allocation.
func (r *MemoryRepository) decode(n uint32) Log {
	rec := r.rec(n)
	b := r.bytes(n)
	s := string(b) // read lengths from b, cut strings from s
	i := int(rec.idLen)
	next := func() string {
		start := i + 2
		i = start + (int(b[i]) | int(b[i+1])<<8)
		return s[start:i]
	}
	l := Log{ID: s[:i], CreatedAt: time.UnixMicro(rec.micros).UTC()}
	l.OrgID, l.Source, l.Action = next(), next(), next()
	l.Actor = Actor{ID: next(), Type: next(), Name: next()}
	l.Target = Target{ID: next(), Type: next(), Name: next()}
	count := int(b[i])
	i++
	if count > 0 {
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
