package postgres

import (
	"encoding/binary"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Binary COPY, written by hand for group commit: each row is encoded once,
// in its caller's goroutine, and sent as it is (see copyIn), without a
// description round trip.
// Format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// postgresEpochMicros is 2000-01-01 00:00:00 UTC in Unix microseconds: the
// epoch of timestamptz's binary form.
const postgresEpochMicros = 946684800000000

// copySQL returns the COPY statement that reads what appendCopyRow writes.
func copySQL(table pgx.Identifier) string {
	return "COPY " + table.Sanitize() + " (" + strings.Join(columns, ", ") + ") FROM STDIN (FORMAT binary)"
}

// appendCopyRow appends r as one tuple of binary COPY to buf.
func appendCopyRow(buf []byte, r *row) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(columns)))
	for _, s := range [...]string{
		r.id, r.orgID, r.source, r.action,
		r.actorID, r.actorType, r.actorName,
		r.targetID, r.targetType, r.targetName,
	} {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	// jsonb: a version byte, then the JSON text.
	buf = binary.BigEndian.AppendUint32(buf, uint32(1+len(r.metadata)))
	buf = append(buf, 1)
	buf = append(buf, r.metadata...)
	buf = binary.BigEndian.AppendUint32(buf, 8)
	return binary.BigEndian.AppendUint64(buf, uint64(r.createdAt.UnixMicro()-postgresEpochMicros))
}

// copyTrailer ends the tuples of a binary COPY.
var copyTrailer = []byte{0xff, 0xff}
