package integrity

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
)

func TestParseCheckpointText(t *testing.T) {
	t.Parallel()
	const hash = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
	for _, tt := range []struct {
		name, text string
		ok         bool
		size       int64
		time       int64
	}{
		{"three lines", "example.com/log\n20852163\n" + hash + "\n", true, 20852163, 0},
		{"empty tree", "o\n0\n" + hash + "\n", true, 0, 0},
		{"with a time", "o\n5\n" + hash + "\ntime 1741964966\n", true, 5, 1741964966},
		{"other extension lines", "o\n5\n" + hash + "\nsomething\nelse\n", true, 5, 0},
		{"no final newline", "o\n5\n" + hash, false, 0, 0},
		{"two lines", "o\n5\n", false, 0, 0},
		{"empty origin", "\n5\n" + hash + "\n", false, 0, 0},
		{"leading zero", "o\n05\n" + hash + "\n", false, 0, 0},
		{"negative size", "o\n-5\n" + hash + "\n", false, 0, 0},
		{"size with a plus", "o\n+5\n" + hash + "\n", false, 0, 0},
		{"short hash", "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n", false, 0, 0},
		{"hash not canonical base64", "o\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n", false, 0, 0},
		{"empty extension line", "o\n5\n" + hash + "\n\n", false, 0, 0},
		{"time with leading zero", "o\n5\n" + hash + "\ntime 01\n", false, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseCheckpointText(tt.text)
			if !tt.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("got %+v, %v; want ErrMalformed", c, err)
				}
				return
			}
			if err != nil || c.Size != tt.size || tt.time != 0 && c.Time.Unix() != tt.time || tt.time == 0 && !c.Time.IsZero() {
				t.Fatalf("got %+v, %v; want size %d, time %d", c, err, tt.size, tt.time)
			}
		})
	}
}

// TestOpenCheckpoint signs a checkpoint with two keys, as during a
// rotation, and opens it with either, with an unknown key, altered, and
// of another origin.
func TestOpenCheckpoint(t *testing.T) {
	t.Parallel()
	oldKey, oldV, _ := newKey(t, testOrigin, 1)
	newKeyS, newV, _ := newKey(t, testOrigin, 2)
	_, unknown, _ := newKey(t, testOrigin, 3)
	cp, err := Checkpoint{Origin: testOrigin, Size: 7, Hash: tlog.Hash{1, 2, 3}, Time: time.Unix(1741964966, 0).UTC()}.sign([]note.Signer{oldKey, newKeyS})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []note.Verifiers{oldV, newV} {
		got, err := OpenCheckpoint(cp.Note, testOrigin, v)
		if err != nil || got.Size != 7 || got.Hash != cp.Hash || !got.Time.Equal(cp.Time) {
			t.Fatalf("got %+v, %v; want the checkpoint", got, err)
		}
	}
	if _, err := OpenCheckpoint(cp.Note, testOrigin, unknown); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), testOrigin+"+") {
		t.Errorf("an unknown key: got %v, want ErrUnknownKey naming the keys", err)
	}
	altered := []byte(strings.Replace(string(cp.Note), "\n7\n", "\n8\n", 1))
	if _, err := OpenCheckpoint(altered, testOrigin, oldV); !errors.Is(err, ErrBadSignature) {
		t.Errorf("an altered size: got %v, want ErrBadSignature", err)
	}
	if _, err := OpenCheckpoint(cp.Note, "example.com/other", oldV); !errors.Is(err, ErrWrongOrigin) {
		t.Errorf("another origin: got %v, want ErrWrongOrigin", err)
	}
	if _, err := OpenCheckpoint([]byte("not a note"), "", oldV); !errors.Is(err, ErrMalformed) {
		t.Errorf("not a note: got %v, want ErrMalformed", err)
	}
}

// FuzzCheckpoint feeds any bytes to the checkpoint parsers: they never
// panic, a note they accept has a signature of the known key, and text
// they accept in the sealer's form formats back to itself.
func FuzzCheckpoint(f *testing.F) {
	signer, verifiers, _ := newKey(f, testOrigin, 1)
	cp, err := Checkpoint{Origin: testOrigin, Size: 3, Hash: tlog.Hash{9}, Time: time.Unix(1741964966, 0)}.sign([]note.Signer{signer})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp.Note)
	f.Add([]byte(cp.text()))
	f.Add([]byte("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— o AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCheckpointText(string(b)); err == nil {
			if c.Origin == "" || c.Size < 0 {
				t.Fatalf("accepted %q as %+v", b, c)
			}
			if lines := strings.Count(string(b), "\n"); lines == 3 || lines == 4 && !c.Time.IsZero() {
				if c.text() != string(b) {
					t.Fatalf("%q formats back as %q", b, c.text())
				}
			}
		}
		if c, err := OpenCheckpoint(b, "", verifiers); err == nil {
			n, err := note.Open(b, verifiers)
			if err != nil || len(n.Sigs) == 0 || c.Size < 0 {
				t.Fatalf("accepted %q, which note.Open refuses: %v", b, err)
			}
		}
	})
}

// FuzzInclusionProof feeds any bytes to ParseInclusionProof and verifies
// what it accepts: neither panics, and a proof that verifies is the one
// the seed's tree proves, for the seed's log.
func FuzzInclusionProof(f *testing.F) {
	signer, verifiers, _ := newKey(f, testOrigin, 1)
	logs := makeLogs("fuzz", 5, testTime)
	var mem memTree
	for i, l := range logs {
		h, _ := l.LeafHash()
		hs, _ := tlog.StoredHashesForRecordHash(int64(i), h, &mem)
		mem.hashes = append(mem.hashes, hs...)
	}
	root, _ := tlog.TreeHash(5, &mem)
	cp, err := Checkpoint{Origin: testOrigin, Size: 5, Hash: root, Time: time.Unix(1741964966, 0)}.sign([]note.Signer{signer})
	if err != nil {
		f.Fatal(err)
	}
	proof, _ := tlog.ProveRecord(5, 3, &mem)
	seed, _ := json.Marshal(InclusionProof{Log: *logs[3], LeafIndex: 3, TreeSize: 5, Proof: proof, Checkpoint: string(cp.Note)})
	f.Add(seed)
	f.Add([]byte(`{"log":{},"leaf_index":0,"tree_size":1,"proof":[],"checkpoint":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseInclusionProof(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if _, err := p.Verify(testOrigin, verifiers); err == nil {
			h, _ := p.Log.LeafHash()
			want, _ := logs[3].LeafHash()
			if p.LeafIndex != 3 || h != want {
				t.Fatalf("a proof of leaf %d, log %+v verifies", p.LeafIndex, p.Log)
			}
		}
	})
}

func TestSinks(t *testing.T) {
	t.Parallel()
	signer, _, _ := newKey(t, testOrigin, 1)
	cp, err := Checkpoint{Origin: testOrigin, Size: 3, Hash: tlog.Hash{9}, Time: time.Unix(1741964966, 0).UTC()}.sign([]note.Signer{signer})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	path := filepath.Join(t.TempDir(), "latest.ckpt")
	for range 2 {
		if err := (FileSink{Path: path}).Publish(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != string(cp.Note) {
		t.Errorf("file sink: got %q, %v; want the note", b, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("file sink left %d files, want 1", len(entries))
	}

	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got <- string(b)
	}))
	defer srv.Close()
	if err := (WebhookSink{URL: srv.URL}).Publish(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != string(cp.Note) {
		t.Errorf("webhook sink: got %q, want the note", b)
	}
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer fail.Close()
	if err := (WebhookSink{URL: fail.URL}).Publish(ctx, cp); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("webhook sink answered 503: got %v, want an error", err)
	}

	var published []audit.Log
	p := PublisherSink{Publishers: []audit.Publisher{audit.PublisherFunc(func(_ context.Context, l audit.Log) error {
		published = append(published, l)
		return nil
	})}}
	if err := p.Publish(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if len(published) != 1 || published[0].Metadata["checkpoint"] != string(cp.Note) || published[0].Action != ActionCheckpoint || published[0].Validate() != nil {
		t.Errorf("publisher sink: got %+v, want one valid log holding the note", published)
	}
}
