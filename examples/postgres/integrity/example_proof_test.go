package integrity_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres/integrity"
)

// hashes is a tree of stored hashes in memory.
type hashes []tlog.Hash

func (h hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = h[x]
	}
	return out, nil
}

// An inclusion proof, as Tree.InclusionProof returns it, checked offline
// with the trail's verifier key alone. Here the tree and its checkpoint
// are made in memory.
func ExampleInclusionProof_Verify() {
	const origin = "example.com/audit/frontier"
	skey, vkey, _ := note.GenerateKey(bytes.NewReader(make([]byte, 32)), origin) // a fixed key, for the example
	signer, _ := note.NewSigner(skey)
	verifiers, _ := integrity.Verifiers(vkey)

	var tree hashes
	var logs []audit.Log
	for i := range 5 {
		l := audit.Log{
			ID: fmt.Sprintf("log-%d", i), Source: "frontier", Action: "app.doc.read",
			Actor:     audit.Actor{ID: "u-1", Type: audit.ActorTypeUser},
			CreatedAt: time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC),
		}
		h, _ := l.LeafHash()
		stored, _ := tlog.StoredHashesForRecordHash(int64(i), h, tree)
		tree = append(tree, stored...)
		logs = append(logs, l)
	}
	root, _ := tlog.TreeHash(5, tree)
	text := fmt.Sprintf("%s\n5\n%s\ntime 1741964966\n", origin, base64.StdEncoding.EncodeToString(root[:]))
	checkpoint, _ := note.Sign(&note.Note{Text: text}, signer)
	path, _ := tlog.ProveRecord(5, 3, tree)

	p := integrity.InclusionProof{Log: logs[3], LeafIndex: 3, TreeSize: 5, Proof: path, Checkpoint: string(checkpoint)}
	cp, err := p.Verify(origin, verifiers)
	fmt.Println(cp.Size, cp.Time.Format(time.RFC3339), len(p.Proof), err)

	p.Log.Actor.ID = "mallory"
	_, err = p.Verify(origin, verifiers)
	fmt.Println(errors.Is(err, integrity.ErrProof))
	// Output:
	// 5 2025-03-14T15:09:26Z 3 <nil>
	// true
}
