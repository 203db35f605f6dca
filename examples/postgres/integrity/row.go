package integrity

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/raystack/salt/audit"
	"github.com/raystack/salt/examples/postgres"
)

// logColumns are the columns a log is read with; xact_id comes last, 0
// for a row written before migration 4.
const logColumns = "id, org_id, source, action, actor_id, actor_type, actor_name, " +
	"target_id, target_type, target_name, metadata, created_at, COALESCE(xact_id, 0)"

// storedLog is a row of audit_logs and its leaf hash.
type storedLog struct {
	log    audit.Log
	xactID int64
	// hash is the row's leaf hash: audit.Log.LeafHash for a valid log,
	// rawLeafHash for any other row.
	hash tlog.Hash
	// bad is set for a row that is not a valid log: one whose metadata or
	// created_at is no Log's, or that fails audit.Log.Validate. log then
	// holds what could be read of it, its ID at least.
	bad *badRow
}

// badRow is what is known of a row that is not a valid log.
type badRow struct {
	why error // names the field
	rec leaf  // its leaf record, over the raw columns
}

// RawDomain opens the raw encoding of a row of audit_logs that is not a
// valid log, before the version byte: it differs from audit.CanonicalDomain,
// so a raw row's leaf hash can never be taken for a log's.
const RawDomain = "salt-audit-row\x00"

// RawVersion is the version of the raw encoding, the byte after RawDomain.
const RawVersion = 1

// pgEpochMicros is 2000-01-01T00:00:00Z, PostgreSQL's epoch, in Unix
// microseconds.
const pgEpochMicros = 946684800 * 1_000_000

// rowScanner reads rows selected with logColumns. Sealing and verifying
// read every log, so it reads the raw values: the ten strings share one
// allocation, metadata is decoded as the Repository decodes it, and the
// encoding buffer is reused.
type rowScanner struct {
	enc []byte
}

// scan reads the current row of rows. A row that is not a valid log is
// no error: it comes back with bad set and its raw leaf hash. Only a
// result of another shape is an error.
func (sc *rowScanner) scan(rows pgx.Rows) (storedLog, error) {
	var s storedLog
	vals := rows.RawValues()
	fds := rows.FieldDescriptions()
	if len(vals) != 13 {
		return s, fmt.Errorf("got %d columns, want 13", len(vals))
	}
	tm := rows.Conn().TypeMap()
	if err := tm.Scan(fds[12].DataTypeOID, fds[12].Format, vals[12], &s.xactID); err != nil {
		return s, fmt.Errorf("xact_id: %w", err)
	}
	n := 0
	for _, v := range vals[:10] {
		n += len(v)
	}
	md := vals[10]
	mdErr := error(nil)
	if fds[10].Format == pgx.BinaryFormatCode { // jsonb: a version byte, then the text
		if len(md) == 0 || md[0] != 1 {
			mdErr = errors.New("metadata: unexpected jsonb encoding")
		} else {
			md = md[1:]
		}
	}
	buf := make([]byte, 0, n+len(md))
	for _, v := range vals[:10] {
		buf = append(buf, v...)
	}
	buf = append(buf, md...)
	all := string(buf)
	var f [10]string
	off := 0
	for i, v := range vals[:10] {
		f[i] = all[off : off+len(v)]
		off += len(v)
	}
	l := &s.log
	*l = audit.Log{
		ID: f[0], OrgID: f[1], Source: f[2], Action: f[3],
		Actor:  audit.Actor{ID: f[4], Type: f[5], Name: f[6]},
		Target: audit.Target{ID: f[7], Type: f[8], Name: f[9]},
	}
	var ts pgtype.Timestamptz
	if err := tm.Scan(fds[11].DataTypeOID, fds[11].Format, vals[11], &ts); err != nil {
		return s, fmt.Errorf("created_at of log %q: %w", l.ID, err)
	}
	if !ts.Valid {
		return s, fmt.Errorf("created_at of log %q is null", l.ID)
	}
	pgMicros, why := pgTime(ts)
	if why == nil {
		l.CreatedAt = ts.Time.UTC()
	}
	if mdErr == nil {
		if l.Metadata, mdErr = postgres.DecodeMetadata(all[off:]); mdErr != nil {
			mdErr = fmt.Errorf("metadata: %w", mdErr)
		}
	}
	if why == nil {
		why = mdErr
	}
	if why == nil {
		var err error
		if sc.enc, err = l.AppendCanonical(append(sc.enc[:0], 0x00)); err != nil {
			why = err
		} else {
			s.hash = sha256.Sum256(sc.enc)
			return s, nil
		}
	}
	// Not a valid log: its leaf hashes its raw columns.
	b := append(sc.enc[:0], 0x00)
	b = append(b, RawDomain...)
	b = append(b, RawVersion)
	for _, v := range f {
		b = appendCanonicalString(b, v)
	}
	b = appendCanonicalString(b, all[off:])
	b = binary.BigEndian.AppendUint64(b, uint64(pgMicros))
	sc.enc = b
	s.hash = sha256.Sum256(b)
	// Its record's digests are those of a log wherever the row reads as
	// one, so that a change names the field that changed.
	r := leaf{id: l.ID, createdAt: unixMicros(pgMicros), flags: leafRaw}
	for i, v := range f[1:] {
		r.digests[i] = crc(v)
	}
	if mdErr == nil {
		r.digests[numDigests-1] = metadataDigest(l.Metadata)
	} else {
		r.digests[numDigests-1] = crc(all[off:])
	}
	s.bad = &badRow{why: why, rec: r}
	l.Metadata = nil
	return s, nil
}

// pgTime returns ts as PostgreSQL keeps it, microseconds since its epoch
// (math.MaxInt64 and MinInt64 for ±infinity, which no CreatedAt is), and
// an error for ±infinity. Validate judges the range of finite times.
func pgTime(ts pgtype.Timestamptz) (int64, error) {
	switch ts.InfinityModifier {
	case pgtype.Infinity:
		return math.MaxInt64, errors.New("created_at: infinity")
	case pgtype.NegativeInfinity:
		return math.MinInt64, errors.New("created_at: -infinity")
	}
	t := ts.Time
	return (t.Unix()-pgEpochMicros/1_000_000)*1_000_000 + int64(t.Nanosecond()/1000), nil
}

// unixMicros converts microseconds since PostgreSQL's epoch to Unix
// microseconds, keeping ±infinity and saturating at the ends.
func unixMicros(pg int64) int64 {
	switch {
	case pg == math.MaxInt64 || pg > math.MaxInt64-pgEpochMicros:
		return math.MaxInt64
	case pg == math.MinInt64:
		return math.MinInt64
	}
	return pg + pgEpochMicros
}

// appendCanonicalString appends s with its length, as four bytes, big
// endian, before it, as the canonical encoding writes strings.
func appendCanonicalString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
