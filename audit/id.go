package audit

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// ids generates the IDs of every Logger in the process, so that IDs made
// in the same millisecond still sort in the order they were made.
var ids idGenerator

// idGenerator makes UUIDv7 strings (RFC 9562): 48 bits of Unix milliseconds,
// then a 12-bit counter that orders IDs within a millisecond (RFC 9562,
// section 6.2, method 1), then 62 random bits from the runtime's ChaCha8
// generator, which is seeded by the operating system.
type idGenerator struct {
	// last is the millisecond and counter of the last ID, as ms<<12 | counter.
	last atomic.Uint64
}

// next returns a new ID made at t, a reading of the real clock. IDs from one
// generator are strictly increasing, also when t stands still or goes
// back: the generator then keeps counting from the last millisecond it
// used, and when a millisecond's counter is exhausted it moves on to the
// next one.
func (g *idGenerator) next(t time.Time) string {
	ms := min(max(t.UnixMilli(), 0), 1<<48-1) // what 48 bits hold
	now := uint64(ms) << 12
	var state uint64
	for {
		last := g.last.Load()
		state = max(now, last+1)
		if g.last.CompareAndSwap(last, state) {
			break
		}
	}
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], state>>12<<16|state&0xfff)
	binary.BigEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // variant 10
	const digits = "0123456789abcdef"
	var buf [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			buf[j] = '-'
			j++
		}
		buf[j], buf[j+1] = digits[c>>4], digits[c&0xf]
		j += 2
	}
	return string(buf[:])
}
