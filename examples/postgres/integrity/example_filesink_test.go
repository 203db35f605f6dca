package integrity_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/examples/postgres/integrity"
)

// memProver proves consistency from a tree of stored hashes in memory,
// as *integrity.Tree does from the database.
type memProver struct{ tree hashes }

func (p memProver) ConsistencyProof(_ context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	return tlog.ProveTree(newSize, oldSize, p.tree)
}

// A FileSink keeps the latest checkpoint, and replaces it only with one
// whose tree extends it: a rewritten history, or a stale replica's
// checkpoint, cannot overwrite the copy kept outside the database.
func ExampleFileSink() {
	const origin = "example.com/audit/frontier"
	skey, _, _ := note.GenerateKey(bytes.NewReader(make([]byte, 32)), origin) // a fixed key, for the example
	signer, _ := note.NewSigner(skey)
	var tree, other hashes
	for i := range int64(4) {
		stored, _ := tlog.StoredHashesForRecordHash(i, tlog.RecordHash([]byte{byte(i)}), tree)
		tree = append(tree, stored...)
		stored, _ = tlog.StoredHashesForRecordHash(i, tlog.RecordHash([]byte{byte(i), 1}), other)
		other = append(other, stored...)
	}
	checkpoint := func(t hashes, size int64) integrity.Checkpoint {
		root, _ := tlog.TreeHash(size, t)
		text := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
		msg, _ := note.Sign(&note.Note{Text: text}, signer)
		return integrity.Checkpoint{Origin: origin, Size: size, Hash: root, Note: msg}
	}

	dir, _ := os.MkdirTemp("", "filesink")
	defer os.RemoveAll(dir)
	sink := integrity.FileSink{Path: filepath.Join(dir, "frontier.ckpt")}
	ctx := context.Background()
	fmt.Println(sink.Publish(ctx, checkpoint(tree, 2), memProver{tree}))
	fmt.Println(sink.Publish(ctx, checkpoint(tree, 4), memProver{tree}))
	err := sink.Publish(ctx, checkpoint(tree, 3), memProver{tree})
	fmt.Println(errors.Is(err, integrity.ErrInconsistent))
	err = sink.Publish(ctx, checkpoint(other, 4), memProver{other})
	fmt.Println(errors.Is(err, integrity.ErrInconsistent))
	kept, _ := sink.Latest(ctx)
	fmt.Println(bytes.Equal(kept, checkpoint(tree, 4).Note))
	// Output:
	// <nil>
	// <nil>
	// true
	// true
	// true
}
