package audit_test

import (
	"fmt"
	"time"

	"github.com/raystack/salt/audit"
)

// A log's leaf hash is what a Merkle tree over the trail holds for it. It
// depends on the log as stored: the same log with its time given in
// another zone, or with nanoseconds a repository drops, has the same hash.
func ExampleLog_LeafHash() {
	l := audit.Log{
		ID:        "0195b4e4-1f3a-7c2e-9d4b-6a8f0e2c1d3b",
		Source:    "frontier",
		Action:    "app.user.created",
		Actor:     audit.Actor{ID: "u-1", Type: audit.ActorTypeUser},
		Target:    audit.Target{ID: "u-2", Type: "user"},
		CreatedAt: time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC),
	}
	h, err := l.LeafHash()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%x\n", h)

	l.CreatedAt = l.CreatedAt.In(time.FixedZone("UTC+1", 3600)).Add(999 * time.Nanosecond)
	h2, _ := l.LeafHash()
	fmt.Println(h2 == h)

	enc, _ := l.AppendCanonical(nil)
	fmt.Printf("%q, %d bytes\n", enc[:16], len(enc))
	// Output:
	// 6002766b44272922e54a45480b9a47d3b261681b98299ba791cc137b5ed4ce06
	// true
	// "salt-audit-log\x00\x01", 142 bytes
}
