package integrity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
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
		{"with a time and a seal", "o\n5\n" + hash + "\ntime 1741964966\nseal " + hash + "\n", true, 5, 1741964966},
		{"two times", "o\n5\n" + hash + "\ntime 1\ntime 2\n", false, 0, 0},
		{"two seals", "o\n5\n" + hash + "\nseal " + hash + "\nseal " + hash + "\n", false, 0, 0},
		{"short seal", "o\n5\n" + hash + "\nseal CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==\n", false, 0, 0},
		{"zero seal", "o\n5\n" + hash + "\nseal AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", false, 0, 0},
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
// rotation, and opens it with either, with an unknown key, altered, of
// another origin, and signed by a key not named as its origin.
func TestOpenCheckpoint(t *testing.T) {
	t.Parallel()
	oldKey, oldV, _ := newKey(t, testOrigin, 1)
	newKeyS, newV, _ := newKey(t, testOrigin, 2)
	_, unknown, _ := newKey(t, testOrigin, 3)
	cp, err := Checkpoint{Origin: testOrigin, Size: 7, Hash: tlog.Hash{1, 2, 3}, Time: time.Unix(1741964966, 0).UTC()}.sign([]note.Signer{oldKey.Signer, newKeyS.Signer})
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
	// The key of another trail vouches for no checkpoint of this one.
	otherTrail, otherV, _ := newKey(t, "example.com/audit/other", 4)
	foreign, err := Checkpoint{Origin: testOrigin, Size: 7, Hash: tlog.Hash{1}}.sign([]note.Signer{otherTrail.Signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(foreign.Note, "", otherV); !errors.Is(err, ErrWrongOrigin) {
		t.Errorf("signed by a key named otherwise: got %v, want ErrWrongOrigin", err)
	}
}

// TestVerifiers reads verifier keys: a key given twice counts once (the
// note would otherwise be ambiguous, and every checkpoint fail), two keys
// of the same name and hash are refused.
func TestVerifiers(t *testing.T) {
	t.Parallel()
	key, _, vkey := newKey(t, testOrigin, 1)
	cp, err := Checkpoint{Origin: testOrigin, Size: 1, Hash: tlog.Hash{1}}.sign([]note.Signer{key.Signer})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := Verifiers(vkey, " "+vkey+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(cp.Note, testOrigin, vs); err != nil {
		t.Errorf("with the key given twice: %v", err)
	}
	// Same name and hash, another public key.
	parts := strings.SplitN(vkey, "+", 3) // name+hash+base64, which may hold a plus
	raw, _ := base64.StdEncoding.DecodeString(parts[2])
	raw[1] ^= 1
	twin := parts[0] + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(raw)
	if _, err := Verifiers(vkey, twin); !errors.Is(err, ErrMalformed) {
		t.Errorf("two keys of one name and hash: got %v, want ErrMalformed", err)
	}
}

// FuzzCheckpoint feeds any bytes to the checkpoint parsers: they never
// panic, a note they accept has a signature of the known key, and text
// they accept in the sealer's form formats back to itself.
func FuzzCheckpoint(f *testing.F) {
	key, verifiers, _ := newKey(f, testOrigin, 1)
	cp, err := Checkpoint{Origin: testOrigin, Size: 3, Hash: tlog.Hash{9}, Time: time.Unix(1741964966, 0)}.sign([]note.Signer{key.Signer})
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
			if err != nil {
				t.Fatalf("accepted %q, which note.Open refuses: %v", b, err)
			}
			if !slices.ContainsFunc(n.Sigs, func(s note.Signature) bool { return s.Name == c.Origin }) {
				t.Fatalf("accepted %q, with no signature by a key named %q, its origin", b, c.Origin)
			}
		}
	})
}

// FuzzInclusionProof feeds any bytes to ParseInclusionProof and verifies
// what it accepts: neither panics, and a proof that verifies is the one
// the seed's tree proves, for the seed's log.
func FuzzInclusionProof(f *testing.F) {
	key, verifiers, _ := newKey(f, testOrigin, 1)
	logs := makeLogs("fuzz", 5, testTime)
	var mem memTree
	for i, l := range logs {
		h, _ := l.LeafHash()
		hs, _ := tlog.StoredHashesForRecordHash(int64(i), h, &mem)
		mem.hashes = append(mem.hashes, hs...)
	}
	root, _ := tlog.TreeHash(5, &mem)
	cp, err := Checkpoint{Origin: testOrigin, Size: 5, Hash: root, Time: time.Unix(1741964966, 0)}.sign([]note.Signer{key.Signer})
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

// memProver proves consistency from a tree in memory.
type memProver struct{ tree *memTree }

func (m memProver) ConsistencyProof(_ context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	return tlog.ProveTree(newSize, oldSize, m.tree)
}

// memCheckpoint returns the signed checkpoint of the first size leaves of
// tree, at time sec.
func memCheckpoint(tb testing.TB, key Key, tree *memTree, size, sec int64) Checkpoint {
	tb.Helper()
	root, err := tlog.TreeHash(size, tree)
	if err != nil {
		tb.Fatal(err)
	}
	cp, err := Checkpoint{Origin: testOrigin, Size: size, Hash: root, Time: time.Unix(sec, 0).UTC()}.sign([]note.Signer{key.Signer})
	if err != nil {
		tb.Fatal(err)
	}
	return cp
}

// TestFileSink hands a FileSink checkpoints of a tree that grows, and
// ones that do not extend the one it keeps: it keeps the newest that
// extends it, refuses the others with ErrInconsistent, and leaves its
// file as it was.
func TestFileSink(t *testing.T) {
	t.Parallel()
	key, _, _ := newKey(t, testOrigin, 1)
	ctx := context.Background()
	var tree, fork memTree
	for i := range int64(8) {
		tree.add(t, i, tlog.RecordHash([]byte{byte(i)}))
		fork.add(t, i, tlog.RecordHash([]byte{byte(i), byte(min(i, 3))}))
	}
	dir := t.TempDir()
	sink := FileSink{Path: filepath.Join(dir, "latest.ckpt")}
	if got, err := sink.Latest(ctx); got != nil || err != nil {
		t.Fatalf("Latest of no file: got %q, %v; want nil", got, err)
	}
	kept := func() string {
		t.Helper()
		b, err := sink.Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tt := range []struct {
		name string
		from *memTree // the tree of the checkpoint, which proves
		size int64
		ok   bool
		time int64 // of the checkpoint, Unix seconds; 0 for later than the one kept
	}{
		{"the first", &tree, 3, true, 0},
		{"the same tree, later", &tree, 3, true, 0},
		{"another root at the same size", &fork, 3, false, 0},
		{"a larger tree that extends it", &tree, 6, true, 0},
		{"a smaller tree", &tree, 5, false, 0},
		{"a larger tree that does not extend it", &fork, 8, false, 0},
		{"the tree grown again", &tree, 8, true, 0},
		{"the same tree, earlier", &tree, 8, false, 1},
	} {
		before := kept()
		when := int64(100 + len(before))
		if tt.time != 0 {
			when = tt.time
		}
		cp := memCheckpoint(t, key, tt.from, tt.size, when)
		err := sink.Publish(ctx, cp, memProver{tt.from})
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.ok && kept() != string(cp.Note):
			t.Errorf("%s: the file holds %q, want the new checkpoint", tt.name, kept())
		case !tt.ok && !errors.Is(err, ErrInconsistent):
			t.Errorf("%s: got %v, want ErrInconsistent", tt.name, err)
		case !tt.ok && kept() != before:
			t.Errorf("%s: the file changed to %q", tt.name, kept())
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the file sink left %d files, want 1", len(entries))
	}
}

func TestSinks(t *testing.T) {
	t.Parallel()
	key, _, _ := newKey(t, testOrigin, 1)
	cp, err := Checkpoint{Origin: testOrigin, Size: 3, Hash: tlog.Hash{9}, Time: time.Unix(1741964966, 0).UTC()}.sign([]note.Signer{key.Signer})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

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
	if err := (WebhookSink{URL: srv.URL}).Publish(ctx, cp, nil); err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != string(cp.Note) {
		t.Errorf("webhook sink: got %q, want the note", b)
	}
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer fail.Close()
	if err := (WebhookSink{URL: fail.URL}).Publish(ctx, cp, nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("webhook sink answered 503: got %v, want an error", err)
	}

	var published []audit.Log
	p := PublisherSink{Publishers: []audit.Publisher{audit.PublisherFunc(func(_ context.Context, l audit.Log) error {
		published = append(published, l)
		return nil
	})}}
	if err := p.Publish(ctx, cp, nil); err != nil {
		t.Fatal(err)
	}
	if len(published) != 1 || published[0].Metadata["checkpoint"] != string(cp.Note) || published[0].Action != ActionCheckpoint || published[0].Validate() != nil {
		t.Errorf("publisher sink: got %+v, want one valid log holding the note", published)
	}
}
