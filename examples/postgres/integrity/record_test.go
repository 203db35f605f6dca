package integrity

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// TestLeafRecords round-trips leaf records, names the fields in which two
// differ, and rejects records cut short or miscounted.
func TestLeafRecords(t *testing.T) {
	t.Parallel()
	logs := makeLogs("rec", 3, time.Now())
	var b []byte
	var want []leaf
	for _, l := range logs {
		r := newLeaf(l)
		want = append(want, r)
		b = appendLeaf(b, &r)
	}
	got, err := parseLeaves(b, 3)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	changed := logs[1].Clone()
	changed.Actor.Name = "Mallory"
	changed.Metadata["outcome"] = "denied"
	r := newLeaf(&changed)
	if fields := want[1].diff(&r); !slices.Equal(fields, []string{"actor.name", "metadata"}) {
		t.Errorf("diff: got %v, want [actor.name metadata]", fields)
	}
	for _, tt := range []struct {
		name string
		b    []byte
		n    int
	}{
		{"cut short", b[:len(b)-1], 3},
		{"one short of its count", b, 4},
		{"more than its count", b, 2},
		{"a negative count", b, -1},
		{"a length past the end", []byte{0xff, 0xff, 'x'}, 1},
	} {
		if _, err := parseLeaves(tt.b, tt.n); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", tt.name, err)
		}
	}
}
