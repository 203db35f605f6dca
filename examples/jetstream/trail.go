package jetstream

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Defaults of a Trail.
const (
	DefaultName       = "AUDIT"
	DefaultPrefix     = "audit"
	DefaultPartitions = 3
	DefaultReplicas   = 3
)

// ErrTrailMismatch is returned when the streams on the server were made for
// another layout of the trail than the one given: another number of
// partitions, or subjects that another trail uses. Opening such a trail
// would send an ID to another partition than the one that may already hold
// it, and so break the rejection of duplicates.
var ErrTrailMismatch = errors.New("jetstream audit: the streams on the server were made for another trail layout")

// Trail says where an audit trail lives: its streams on the JetStream
// server and its projection in PostgreSQL. The zero value is the default
// trail: streams AUDIT_0, AUDIT_1 and AUDIT_2 with 3 replicas each, on
// subjects audit.>, projected into the first schema of the search_path.
//
// Partitions is fixed for the life of a trail: a log's partition is a hash
// of its ID, and duplicates are found within one partition. CreateStreams
// records it on every stream, and Open and the Projector refuse a Trail
// that disagrees.
type Trail struct {
	// Name prefixes the names of the streams: Name_0 … Name_{Partitions-1}
	// hold the logs, Name_DEAD the dead letters. Default DefaultName.
	Name string
	// Prefix is the first token or tokens of every subject of the trail.
	// Default DefaultPrefix.
	Prefix string
	// Partitions is the number of streams the logs are spread over, each
	// with a Raft group and a leader of its own. Default DefaultPartitions.
	Partitions int
	// Replicas is the number of servers that store each stream: a write is
	// acknowledged once a majority of them has it. Default DefaultReplicas.
	Replicas int
	// Schema is the PostgreSQL schema of the projection, as given to
	// Migrate; "" leaves names unqualified, found through the search_path.
	Schema string
}

// resolve returns t with its defaults filled in, or an error if a field is
// invalid.
func (t Trail) resolve() (Trail, error) {
	if t.Name == "" {
		t.Name = DefaultName
	}
	if t.Prefix == "" {
		t.Prefix = DefaultPrefix
	}
	if t.Partitions == 0 {
		t.Partitions = DefaultPartitions
	}
	if t.Replicas == 0 {
		t.Replicas = DefaultReplicas
	}
	switch {
	case !validStreamName(t.Name) || len(t.Name) > 200:
		return t, fmt.Errorf("jetstream audit: trail name %q: want 1 to 200 letters, digits, '-' or '_'", t.Name)
	case len(t.Prefix) > 128 || !validPrefix(t.Prefix):
		return t, fmt.Errorf("jetstream audit: trail prefix %q: want up to 128 bytes of tokens made of letters, digits, '-' or '_', joined by '.'", t.Prefix)
	case t.Partitions < 1 || t.Partitions > 1024:
		return t, fmt.Errorf("jetstream audit: trail partitions %d: want 1 to 1024", t.Partitions)
	case t.Replicas < 1 || t.Replicas > 5:
		return t, fmt.Errorf("jetstream audit: trail replicas %d: want 1 to 5", t.Replicas)
	}
	return t, nil
}

func validStreamName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			return false
		}
	}
	return true
}

func validPrefix(s string) bool {
	for tok := range strings.SplitSeq(s, ".") {
		if !validStreamName(tok) {
			return false
		}
	}
	return true
}

// Stream returns the name of the stream of partition p.
func (t Trail) Stream(p int) string {
	t, _ = t.resolve()
	return t.stream(p)
}

func (t Trail) stream(p int) string { return t.Name + "_" + strconv.Itoa(p) }

// DeadLetterStream returns the name of the stream of dead letters.
func (t Trail) DeadLetterStream() string {
	t, _ = t.resolve()
	return t.Name + "_DEAD"
}

// Partition returns the partition that holds the log with the given ID: an
// FNV-1a hash of the ID's bytes, modulo Partitions.
func (t Trail) Partition(id string) int {
	t, _ = t.resolve()
	return t.partition(id)
}

func (t Trail) partition(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(t.Partitions))
}

// Subject returns the subject of a log: Prefix, partition, ID, OrgID and
// Source, each of the last three escaped with Token:
//
//	audit.1.0198c0de-8d1c-7c4e-a3f4-5b8f5c1d2e3f.org-42.frontier
//
// Every log has a subject of its own, since IDs are unique; that is what
// lets the server reject a second log with the same ID for ever.
func (t Trail) Subject(id, orgID, source string) string {
	t, _ = t.resolve()
	return t.subject(t.partition(id), id, orgID, source)
}

func (t Trail) subject(p int, id, orgID, source string) string {
	var b strings.Builder
	b.Grow(len(t.Prefix) + 8 + len(id) + len(orgID) + len(source))
	b.WriteString(t.Prefix)
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(p))
	b.WriteByte('.')
	b.WriteString(Token(id))
	b.WriteByte('.')
	b.WriteString(Token(orgID))
	b.WriteByte('.')
	b.WriteString(Token(source))
	return b.String()
}

// idFilter returns the subject filter that matches every subject of the
// log with the given ID, whatever its org and source. The ID comes before
// them in the subject so that the server finds it by prefix in its index
// of subjects, without a scan.
func (t Trail) idFilter(p int, id string) string {
	return t.Prefix + "." + strconv.Itoa(p) + "." + Token(id) + ".>"
}

// partitionSubjects returns the subjects of the stream of partition p.
func (t Trail) partitionSubjects(p int) string {
	return t.Prefix + "." + strconv.Itoa(p) + ".>"
}

// OrgFilter returns the subject filter that selects the logs of one org in
// every partition, for a consumer of the trail's streams. An empty orgID
// selects the logs that are not tenant scoped.
func (t Trail) OrgFilter(orgID string) string {
	t, _ = t.resolve()
	return t.Prefix + ".*.*." + Token(orgID) + ".*"
}

// SourceFilter returns the subject filter that selects the logs of one
// source in every partition, for a consumer of the trail's streams.
func (t Trail) SourceFilter(source string) string {
	t, _ = t.resolve()
	return t.Prefix + ".*.*.*." + Token(source)
}

// deadLetterSubject returns the subject of the dead letter of the message
// at seq in the stream of partition p. One subject per message lets the
// server reject a second dead letter of the same message.
func (t Trail) deadLetterSubject(p int, seq uint64) string {
	return t.Prefix + ".dead." + strconv.Itoa(p) + "." + strconv.FormatUint(seq, 10)
}

func (t Trail) deadLetterSubjects() string { return t.Prefix + ".dead.>" }
