package integrity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/uuid"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
)

// Sink receives every checkpoint the Sealer signs, after it is committed,
// to keep a copy outside the database: a checkpoint kept elsewhere is what
// shows a tail deleted from the database, checkpoints included.
//
// With the checkpoint comes p, which proves, from the tree in the
// database, that the tree of cp extends an older one: what a sink that
// keeps checkpoints (FileSink) or a witness (C2SP tlog-witness asks for
// the proof from the size it last saw) needs. A proof read from the
// database is no evidence by itself; check it with VerifyConsistency
// against the roots of both checkpoints.
//
// Publish must not retain or modify cp.Note after it returns. The Sealer
// calls it from Run's goroutine, one checkpoint at a time, bounded by
// WithSinkTimeout.
type Sink interface {
	Publish(ctx context.Context, cp Checkpoint, p Prover) error
}

// Prover proves that a tree extends an older one. *Tree is one.
type Prover interface {
	// ConsistencyProof returns the proof that the tree of size oldSize is
	// a prefix of the tree of size newSize (see Tree.ConsistencyProof).
	ConsistencyProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)
}

// Keeper is a Sink that keeps the checkpoints it is handed and can return
// the latest. At its first seal, a Sealer reads the latest of each of its
// Keeper sinks, and refuses to sign a tree that does not extend it: a
// Sealer restarted after the database's history was rewritten does not
// sign the rewritten one.
type Keeper interface {
	Sink
	// Latest returns the latest checkpoint kept, as the signed note it
	// was handed, or nil if it keeps none yet.
	Latest(ctx context.Context) ([]byte, error)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, cp Checkpoint, p Prover) error

// Publish calls f(ctx, cp, p).
func (f SinkFunc) Publish(ctx context.Context, cp Checkpoint, p Prover) error { return f(ctx, cp, p) }

// FileSink keeps the latest checkpoint in the file Path, so that the file
// always holds one complete signed note: the file to give the verifier as
// the checkpoint kept. Put it on another machine's disk, a mounted bucket,
// or anywhere the database's owner cannot write; give each replica a file
// of its own.
//
// It replaces the checkpoint it holds only with one that extends it: of
// the same size and root, signed no earlier, or larger with a consistency
// proof from the one it holds that verifies. Anything else is refused
// with an error wrapping ErrInconsistent, and the file keeps what it held:
// so that a Sealer made to sign a rewritten history, or a stale replica,
// cannot overwrite the evidence. The new file is written beside the old,
// synced, renamed over it, and the directory synced.
type FileSink struct {
	Path string
}

var _ Keeper = FileSink{}

// Publish implements Sink.
func (s FileSink) Publish(ctx context.Context, cp Checkpoint, p Prover) error {
	old, err := s.Latest(ctx)
	if err != nil {
		return err
	}
	if old != nil {
		if err := checkExtends(ctx, old, cp, p); err != nil {
			return fmt.Errorf("integrity: file sink %s: %w", s.Path, err)
		}
	}
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
	// The rename is durable once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("integrity: file sink: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("integrity: file sink: syncing %s: %w", dir, err)
	}
	return nil
}

// Latest implements Keeper: the file's content, or nil if there is no
// file yet.
func (s FileSink) Latest(context.Context) ([]byte, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("integrity: file sink: %w", err)
	}
	return b, nil
}

// checkExtends returns an error wrapping ErrInconsistent unless the tree
// of cp extends the tree of the checkpoint note old, as p proves. The
// signature of old is not checked: it is what the sink itself kept.
func checkExtends(ctx context.Context, old []byte, cp Checkpoint, p Prover) error {
	text, _, ok := cutNote(string(old))
	if !ok {
		return fmt.Errorf("%w: the checkpoint kept is not a signed note", ErrInconsistent)
	}
	kept, err := ParseCheckpointText(text)
	if err != nil {
		return fmt.Errorf("%w: the checkpoint kept: %w", ErrInconsistent, err)
	}
	if kept.Origin != cp.Origin {
		return fmt.Errorf("%w: the checkpoint kept is of %q, not %q", ErrInconsistent, kept.Origin, cp.Origin)
	}
	if cp.Size == kept.Size && cp.Time.Before(kept.Time) {
		return fmt.Errorf("%w: a checkpoint of the tree of %d signed at %s is older than the one kept, of %s",
			ErrInconsistent, cp.Size, cp.Time.Format(time.RFC3339), kept.Time.Format(time.RFC3339))
	}
	return extends(cp, kept, func(oldSize int64) (tlog.TreeProof, error) { return p.ConsistencyProof(ctx, oldSize, cp.Size) })
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
func (s PublisherSink) Publish(ctx context.Context, cp Checkpoint, _ Prover) error {
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
func (s WebhookSink) Publish(ctx context.Context, cp Checkpoint, _ Prover) error {
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
