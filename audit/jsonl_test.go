package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raystack/salt/audit"
)

// jsonlRecorder keeps every Write call's bytes. It has no lock of its own
// on purpose: under -race, any two overlapping Write calls are reported,
// which proves that the publisher serializes them.
type jsonlRecorder struct {
	writes [][]byte
}

func (w *jsonlRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func jsonlLog(i int) audit.Log {
	return audit.Log{
		ID:     fmt.Sprintf("0190a6e0-0000-7000-8000-%012d", i),
		OrgID:  "org-" + fmt.Sprint(i%7),
		Source: "frontier",
		Action: "app.user.created",
		Actor:  audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "ada@example.com"},
		Target: audit.Target{ID: fmt.Sprint("t-", i), Type: "user", Name: "grace"},
		Metadata: map[string]string{
			audit.MetadataRequestID: fmt.Sprint("req-", i),
			"note":                  "line\nbreak <b>&</b> \"quoted\" \u2028",
		},
		CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Microsecond),
	}
}

// jsonlDecode decodes one line strictly: a field that Log does not have is
// an error.
func jsonlDecode(t *testing.T, line []byte) audit.Log {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l audit.Log
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("decoding line %q: %v", line, err)
	}
	if dec.More() {
		t.Fatalf("line %q holds more than one JSON value", line)
	}
	return l
}

func TestJSONLinesPublisherConcurrent(t *testing.T) {
	const goroutines, perGoroutine = 32, 250
	w := &jsonlRecorder{}
	p := audit.NewJSONLinesPublisher(w)

	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perGoroutine)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perGoroutine {
				if err := p.Publish(ctx, jsonlLog(g*perGoroutine+i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Publish: %v", err)
	}

	if got, want := len(w.writes), goroutines*perGoroutine; got != want {
		t.Fatalf("got %d writes, want %d: one Write per log", got, want)
	}
	seen := make(map[string]bool)
	for _, line := range w.writes {
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("got write %q, want exactly one line ending in a newline", line)
		}
		got := jsonlDecode(t, line)
		var i int
		if _, err := fmt.Sscanf(got.ID[len(got.ID)-12:], "%d", &i); err != nil {
			t.Fatalf("unexpected ID %q", got.ID)
		}
		if want := jsonlLog(i); !reflect.DeepEqual(got, want) {
			t.Errorf("line decodes to %+v, want %+v", got, want)
		}
		if seen[got.ID] {
			t.Errorf("log %s written twice", got.ID)
		}
		seen[got.ID] = true
	}
}

func TestJSONLinesPublisherWireFormat(t *testing.T) {
	var buf bytes.Buffer
	l := jsonlLog(1)
	if err := audit.NewJSONLinesPublisher(&buf).Publish(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("got %q, want one line: newlines inside values must be escaped", line)
	}
	if !strings.Contains(line, `<b>&</b>`) {
		t.Errorf("got %q, want HTML characters written as they are", line)
	}

	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id":     l.ID,
		"org_id": l.OrgID,
		"source": "frontier",
		"action": "app.user.created",
		"actor":  map[string]any{"id": "u-1", "type": "user", "name": "ada@example.com"},
		"target": map[string]any{"id": "t-1", "type": "user", "name": "grace"},
		"metadata": map[string]any{
			"request_id": "req-1",
			"note":       l.Metadata["note"],
		},
		"created_at": "2025-03-01T12:00:00.000001Z",
	}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("got fields %v, want %v: the wire format of Log", fields, want)
	}
}

func TestJSONLinesPublisherDoesNotModifyLog(t *testing.T) {
	l := jsonlLog(2)
	before := l.Clone()
	if err := audit.NewJSONLinesPublisher(io.Discard).Publish(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l, before) {
		t.Errorf("got %+v after Publish, want %+v: Publish must not modify the log", l, before)
	}
}

type jsonlErrWriter struct{ err error }

func (w jsonlErrWriter) Write([]byte) (int, error) { return 0, w.err }

type jsonlShortWriter struct{}

func (jsonlShortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestJSONLinesPublisherErrors(t *testing.T) {
	errDisk := errors.New("disk full")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tt := range []struct {
		name string
		w    io.Writer
		ctx  context.Context
		want error
	}{
		{"writer error is returned", jsonlErrWriter{errDisk}, context.Background(), errDisk},
		{"short write is an error", jsonlShortWriter{}, context.Background(), io.ErrShortWrite},
		{"ended ctx writes nothing", jsonlErrWriter{errDisk}, canceled, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := audit.NewJSONLinesPublisher(tt.w).Publish(tt.ctx, jsonlLog(3))
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want an error wrapping %v", err, tt.want)
			}
		})
	}
}

// jsonlBlockingWriter blocks in Write until release is closed.
type jsonlBlockingWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (w *jsonlBlockingWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	return len(p), nil
}

func TestJSONLinesPublisherWaitRespectsCtx(t *testing.T) {
	w := &jsonlBlockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	p := audit.NewJSONLinesPublisher(w)

	first := make(chan error, 1)
	go func() { first <- p.Publish(context.Background(), jsonlLog(4)) }()
	<-w.entered // the first Publish holds the writer

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Publish(ctx, jsonlLog(5)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded: a Publish waiting for the writer stops when its ctx ends", err)
	}

	close(w.release)
	if err := <-first; err != nil {
		t.Errorf("first Publish: got %v, want nil", err)
	}
	select {
	case <-w.entered:
		t.Error("the Publish whose ctx ended wrote its line later")
	default:
	}
}

func TestNewJSONLinesPublisherNilWriter(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewJSONLinesPublisher(nil) did not panic")
		}
	}()
	audit.NewJSONLinesPublisher(nil)
}

// jsonlBuffer is a bytes.Buffer that may be read while a Logger's
// goroutines write to it.
type jsonlBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *jsonlBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *jsonlBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func TestJSONLinesPublisherWithLogger(t *testing.T) {
	const goroutines, perGoroutine = 8, 100
	before := runtime.NumGoroutine()
	repo := audit.NewMemoryRepository()
	var out jsonlBuffer
	var reported []error
	var mu sync.Mutex
	lg := audit.NewLogger(repo,
		audit.WithSource("frontier"),
		audit.WithPublisher(audit.NewJSONLinesPublisher(&out), audit.PublishWorkers(4), audit.BlockWhenFull()),
		audit.WithErrorHandler(func(err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, err)
		}),
	)
	ctx := audit.SetMetadata(audit.SetActor(context.Background(), audit.Actor{ID: "u-1", Type: audit.ActorTypeUser}),
		map[string]string{audit.MetadataRequestID: "req-1"})

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perGoroutine {
				if err := lg.Log(ctx, "app.user.created", audit.Target{ID: fmt.Sprint(g, "-", i), Type: "user"}); err != nil {
					t.Errorf("Log: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := lg.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close has stopped the Logger's goroutines, and the publisher starts
	// none of its own.
	for i := 0; runtime.NumGoroutine() > before; i++ {
		if i == 100 {
			t.Fatalf("got %d goroutines after Close, want at most %d as before NewLogger", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(reported) > 0 {
		t.Fatalf("got %d publish errors, want none; first: %v", len(reported), reported[0])
	}

	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if got, want := len(lines), goroutines*perGoroutine; got != want {
		t.Fatalf("got %d lines, want %d: one per stored log", got, want)
	}
	for _, line := range lines {
		got := jsonlDecode(t, line)
		stored, err := repo.GetByID(context.Background(), got.ID)
		if err != nil {
			t.Fatalf("line for log %s: %v", got.ID, err)
		}
		if !reflect.DeepEqual(got, stored) {
			t.Errorf("line decodes to %+v, want the stored log %+v", got, stored)
		}
	}
}
