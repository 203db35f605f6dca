package integrity

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/google/uuid"

	"github.com/raystack/salt/audit"
)

// Sink receives every checkpoint the Sealer signs, after it is committed,
// to keep a copy outside the database: a checkpoint kept elsewhere is what
// shows a tail deleted from the database, checkpoints included.
//
// Publish must not retain or modify cp.Note after it returns. The Sealer
// calls it from Run's goroutine, one checkpoint at a time, bounded by
// WithSinkTimeout.
type Sink interface {
	Publish(ctx context.Context, cp Checkpoint) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, cp Checkpoint) error

// Publish calls f(ctx, cp).
func (f SinkFunc) Publish(ctx context.Context, cp Checkpoint) error { return f(ctx, cp) }

// FileSink keeps the latest checkpoint in the file Path, replaced whole
// (written to a temporary file beside it, synced, then renamed), so that
// the file always holds one complete signed note: the file to give the
// verifier as the checkpoint kept. Put it on another machine's disk, a
// mounted bucket, or anywhere the database's owner cannot write.
type FileSink struct {
	Path string
}

// Publish implements Sink.
func (s FileSink) Publish(_ context.Context, cp Checkpoint) error {
	dir, base := filepath.Split(s.Path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return fmt.Errorf("integrity: file sink: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(cp.Note); err != nil {
		f.Close()
		return fmt.Errorf("integrity: file sink: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("integrity: file sink: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("integrity: file sink: %w", err)
	}
	if err := os.Rename(f.Name(), s.Path); err != nil {
		return fmt.Errorf("integrity: file sink: %w", err)
	}
	return nil
}

// ActionCheckpoint is the action of the logs PublisherSink hands to
// publishers.
const ActionCheckpoint = "audit.checkpoint.signed"

// PublisherSink hands each checkpoint to audit publishers (a webhook, a
// log pipeline, a message bus: those a Logger is given) as a log of
// action ActionCheckpoint by the system, whose metadata holds the signed
// note ("checkpoint"), the origin and the tree size. The log is only
// published, never stored in the trail it describes.
type PublisherSink struct {
	Source     string // the log's Source; "audit-sealer" if empty
	Publishers []audit.Publisher
}

// Publish implements Sink. It publishes to every publisher, and returns
// the first error.
func (s PublisherSink) Publish(ctx context.Context, cp Checkpoint) error {
	src := s.Source
	if src == "" {
		src = "audit-sealer"
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("integrity: publisher sink: %w", err)
	}
	l := audit.Log{
		ID: id.String(), Source: src, Action: ActionCheckpoint,
		Actor:  audit.Actor{Type: audit.ActorTypeSystem},
		Target: audit.Target{ID: cp.Origin, Type: "audit_trail"},
		Metadata: map[string]string{
			"checkpoint": string(cp.Note),
			"origin":     cp.Origin,
			"tree_size":  strconv.FormatInt(cp.Size, 10),
		},
		CreatedAt: cp.Time,
	}
	var first error
	for _, p := range s.Publishers {
		if err := p.Publish(ctx, l.Clone()); err != nil && first == nil {
			first = fmt.Errorf("integrity: publisher sink: %w", err)
		}
	}
	return first
}

// WebhookSink POSTs each checkpoint's signed note to URL, as text/plain.
// A response other than 2xx is an error. Client is http.DefaultClient if
// nil.
type WebhookSink struct {
	URL    string
	Client *http.Client
}

// Publish implements Sink.
func (s WebhookSink) Publish(ctx context.Context, cp Checkpoint) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(cp.Note))
	if err != nil {
		return fmt.Errorf("integrity: webhook sink: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("integrity: webhook sink: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("integrity: webhook sink: %s answered %s", s.URL, resp.Status)
	}
	return nil
}
