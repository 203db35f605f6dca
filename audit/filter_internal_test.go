package audit

import (
	"errors"
	"testing"
	"time"
)

func TestCursorTimeRange(t *testing.T) {
	// A cursor with a good checksum but a time no valid log can have is
	// malformed: repositories are never handed such a time.
	for _, micros := range []int64{
		firstTime.UnixMicro() - 1,
		endOfTime.UnixMicro(),
		-1 << 63,
		1<<63 - 1,
	} {
		c := encodeCursor(position{micros: micros, id: "x"})
		if _, _, err := ParseCursor(c); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("time %d: got %v, want ErrInvalidFilter", micros, err)
		}
	}
	for _, at := range []time.Time{firstTime, endOfTime.Add(-time.Microsecond), time.Unix(0, 0)} {
		c := encodeCursor(position{micros: at.UnixMicro(), id: "x"})
		got, _, err := ParseCursor(c)
		if err != nil || !got.Equal(at) {
			t.Errorf("time %v: got %v, %v", at, got, err)
		}
	}
}
