package integrity

import (
	"errors"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// TestLeafRecords round-trips leaf records (a log, a purge log, a raw
// row), names the fields in which two differ, and rejects records cut
// short or miscounted.
func TestLeafRecords(t *testing.T) {
	t.Parallel()
	logs := makeLogs("rec", 3, time.Now())
	logs[2].Action, logs[2].Actor = ActionPurged, audit.Actor{Type: audit.ActorTypeSystem}
	logs[2].Metadata = map[string]string{"cutoff": "2025-03-14T15:09:26.535897Z", "count": "12"}
	var b []byte
	var want []leaf
	for _, l := range logs {
		r := newLeaf(l, 7)
		want = append(want, r)
		b = appendLeaf(b, &r)
	}
	raw := leaf{id: "raw", createdAt: math.MaxInt64, flags: leafRaw}
	want = append(want, raw)
	b = appendLeaf(b, &raw)
	got, err := parseLeaves(b, 4)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	if got[2].flags != leafPurge || got[2].count != 12 || got[2].cutoff != time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC).UnixMicro() {
		t.Errorf("the purge log's record: %+v, want its cutoff and count", got[2])
	}
	if r := newLeaf(logs[2], 0); r.flags != 0 {
		t.Errorf("a purge log written before migration 4 is marked %#x, want no mark: it purged nothing sealed", r.flags)
	}
	changed := logs[1].Clone()
	changed.Actor.Name = "Mallory"
	changed.Metadata["outcome"] = "denied"
	r := newLeaf(&changed, 7)
	if fields := want[1].diff(&r); !slices.Equal(fields, []string{"actor.name", "metadata"}) {
		t.Errorf("diff: got %v, want [actor.name metadata]", fields)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		n    int
	}{
		{"cut short", b[:len(b)-1], 4},
		{"one short of its count", b, 5},
		{"more than its count", b, 3},
		{"a negative count", b, -1},
		{"a length past the end", []byte{0xff, 0xff, 0x03, 'x'}, 1},
		{"a length in more bytes than it needs", append([]byte{0x81, 0x00}, b[1:]...), 4},
		{"unknown flags", appendLeaf(nil, &leaf{id: "x", flags: 0x80}), 1},
		{"a purge of a negative count", appendLeaf(nil, &leaf{id: "x", flags: leafPurge, count: -1}), 1},
	} {
		if _, err := parseLeaves(tt.b, tt.n); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", tt.name, err)
		}
	}
}

// TestParseLeavesBoundsMemory: a count that the bytes cannot hold is
// refused before anything is allocated for it, so a crafted seal row
// cannot make the verifier allocate many times its size.
func TestParseLeavesBoundsMemory(t *testing.T) {
	b := make([]byte, 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := parseLeaves(b, len(b))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("a count of one record a byte: got %v, want ErrMalformed", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(len(b)) {
		t.Errorf("parsing %d bytes allocated %d bytes, want at most as many", len(b), n)
	}
}

// FuzzParseLeaves feeds any bytes and count to parseLeaves, which reads a
// column the table's owner can write: it never panics, and what it
// accepts is that many records that encode back to the same bytes.
func FuzzParseLeaves(f *testing.F) {
	var b []byte
	for _, l := range makeLogs("fuzz", 2, testTime) {
		r := newLeaf(l, 7)
		b = appendLeaf(b, &r)
	}
	b = appendLeaf(b, &leaf{id: "p", flags: leafPurge, cutoff: 1, count: 2})
	f.Add(b, 3)
	f.Add([]byte{}, 0)
	f.Add(append([]byte{0x81, 0x00}, b[1:]...), 3) // a length in more bytes than it needs
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		recs, err := parseLeaves(b, n)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var again []byte
		for i := range recs {
			again = appendLeaf(again, &recs[i])
		}
		if len(recs) != n || string(again) != string(b) {
			t.Fatalf("%d records of %x encode back as %x", len(recs), b, again)
		}
	})
}
