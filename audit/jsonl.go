package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// JSONLinesPublisher is a Publisher that writes each log to an io.Writer as
// one line of JSON: the log's own JSON encoding (the wire format of Log,
// with its json field names), followed by a newline. It is the simple way
// to ship audit logs to a log pipeline: attach it with WithPublisher and
// point it at os.Stdout or a file that a collector tails.
//
// Make one with NewJSONLinesPublisher; the zero value is not usable. A
// JSONLinesPublisher is safe for concurrent use. Each line is written
// with a single call to the writer's Write method, and no two calls
// overlap, so lines never interleave even when the writer is not itself
// safe for concurrent use.
type JSONLinesPublisher struct {
	w io.Writer
	// lock is held while writing: a mutex that a Publish whose ctx ends
	// can stop waiting for.
	lock chan struct{}
}

var _ Publisher = (*JSONLinesPublisher)(nil)

// NewJSONLinesPublisher returns a JSONLinesPublisher that writes to w. It
// panics if w is nil. The publisher does not buffer: a w that buffers,
// such as a *bufio.Writer, must be flushed by its owner.
func NewJSONLinesPublisher(w io.Writer) *JSONLinesPublisher {
	if w == nil {
		panic("audit: NewJSONLinesPublisher with a nil io.Writer")
	}
	return &JSONLinesPublisher{w: w, lock: make(chan struct{}, 1)}
}

// lineBuffers holds the buffers lines are encoded into, so that encoding
// can happen outside the lock without an allocation per line.
var lineBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledLine is the largest buffer kept for reuse; a huge log does not
// pin its buffer forever.
const maxPooledLine = 64 << 10

// Publish writes log as one line of JSON. HTML-sensitive characters are
// not escaped; newlines and other control characters inside strings are,
// as JSON requires, so a line never spans two.
//
// Publish returns ctx's error, writing nothing, if ctx ends before the
// line could be written, including while it waits for another Publish to
// finish writing. Otherwise it returns the writer's error, wrapped with the
// log's ID; a short write without an error is reported as
// io.ErrShortWrite. It does not modify or retain log.
func (p *JSONLinesPublisher) Publish(ctx context.Context, log Log) error {
	buf := lineBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledLine {
			buf.Reset()
			lineBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(log); err != nil { // Encode ends the line with '\n'
		return fmt.Errorf("audit: encoding log %s: %w", log.ID, err)
	}

	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case p.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	n, err := p.w.Write(buf.Bytes())
	<-p.lock
	if err == nil && n < buf.Len() {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("audit: writing log %s: %w", log.ID, err)
	}
	return nil
}
