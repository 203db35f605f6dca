package audittest

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/raystack/salt/audit"
)

// base is the time the kit's logs are created around. It is a whole
// microsecond, so at(us, ns) with ns below 1000 is stored as at(us, 0).
var base = time.Date(2024, time.March, 9, 14, 30, 15, 123456000, time.UTC)

// at returns base plus us microseconds and ns nanoseconds.
func at(us, ns int) time.Time {
	return base.Add(time.Duration(us)*time.Microsecond + time.Duration(ns))
}

// Zones in which some logs and filters give their times: the same instant
// must behave the same in any location.
var (
	zoneEast = time.FixedZone("UTC+05:30", 5*3600+30*60)
	zoneWest = time.FixedZone("UTC-08:00", -8*3600)
)

// gen makes test logs from a seeded generator, so that every run stores
// the same logs and a failure can be reproduced.
type gen struct {
	rng *rand.Rand
	ids map[string]bool
}

func newGen(seed uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, 0x61756469747465)), ids: make(map[string]bool)}
}

// idChars are the bytes of generated IDs. Digits, upper and lower case
// letters sort differently by bytes than by most collations, so IDs made
// from them catch a store that orders or compares IDs by a locale.
const idChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// id returns a new ID starting with prefix and unique within g.
func (g *gen) id(prefix string) string {
	for {
		var b strings.Builder
		b.WriteString(prefix)
		for range 10 {
			b.WriteByte(idChars[g.rng.IntN(len(idChars))])
		}
		if id := b.String(); !g.ids[id] {
			g.ids[id] = true
			return id
		}
	}
}

// ns returns a random count of nanoseconds below a microsecond: noise that
// a repository must truncate away.
func (g *gen) ns() int { return g.rng.IntN(1000) }

// newLog returns a valid log with the given ID and CreatedAt.
func newLog(id string, createdAt time.Time) audit.Log {
	return audit.Log{
		ID:        id,
		Source:    "audittest",
		Action:    "audittest.log.checked",
		Actor:     audit.Actor{ID: "u-1", Type: audit.ActorTypeUser, Name: "Ada"},
		Target:    audit.Target{ID: "t-1", Type: "thing", Name: "Thing one"},
		Metadata:  map[string]string{audit.MetadataRequestID: id},
		CreatedAt: createdAt,
	}
}

// logs returns n logs with IDs starting with prefix, CreatedAt from
// when(i) and anything else from shape(i, &log) when shape is not nil, in
// a shuffled order so that the order of storing tells nothing.
func (g *gen) logs(n int, prefix string, when func(i int) time.Time, shape func(i int, l *audit.Log)) []audit.Log {
	out := make([]audit.Log, n)
	for i := range out {
		out[i] = newLog(g.id(prefix), when(i))
		if shape != nil {
			shape(i, &out[i])
		}
	}
	g.shuffle(out)
	return out
}

func (g *gen) shuffle(logs []audit.Log) {
	g.rng.Shuffle(len(logs), func(i, j int) { logs[i], logs[j] = logs[j], logs[i] })
}

// field is one string field of a Log, with the bounds Validate puts on it.
type field struct {
	name     string // the JSON name, as in audit.ValidationError
	max      int
	required bool
	set      func(l *audit.Log, v string)
}

var fields = []field{
	{"id", audit.MaxIDLen, true, func(l *audit.Log, v string) { l.ID = v }},
	{"org_id", audit.MaxOrgIDLen, false, func(l *audit.Log, v string) { l.OrgID = v }},
	{"source", audit.MaxSourceLen, true, func(l *audit.Log, v string) { l.Source = v }},
	{"action", audit.MaxActionLen, true, func(l *audit.Log, v string) { l.Action = v }},
	{"actor.id", audit.MaxEntityIDLen, false, func(l *audit.Log, v string) { l.Actor.ID = v }},
	{"actor.type", audit.MaxEntityTypeLen, true, func(l *audit.Log, v string) { l.Actor.Type = v }},
	{"actor.name", audit.MaxEntityNameLen, false, func(l *audit.Log, v string) { l.Actor.Name = v }},
	{"target.id", audit.MaxEntityIDLen, false, func(l *audit.Log, v string) { l.Target.ID = v }},
	{"target.type", audit.MaxEntityTypeLen, false, func(l *audit.Log, v string) { l.Target.Type = v }},
	{"target.name", audit.MaxEntityNameLen, false, func(l *audit.Log, v string) { l.Target.Name = v }},
}

// fill returns a string of exactly n bytes made of unit, padded with 'x'.
// Multi-byte units catch a store that counts characters, not bytes.
func fill(n int, unit string) string {
	s := strings.Repeat(unit, n/len(unit))
	return s + strings.Repeat("x", n-len(s))
}
