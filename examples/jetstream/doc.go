// Package jetstream is an audit.Repository whose writes go to a replicated
// NATS JetStream trail and whose reads come from a PostgreSQL projection of
// it, for a platform that outgrows one database: many services with many
// replicas each, or one that must keep auditing while its database is
// away.
//
// Create returns once a majority of a stream's replicas store the log; a
// Projector applies the streams to the audit_logs table of
// examples/postgres, and List and GetByID wait until it has applied what
// was written before they were called, then read the table.
package jetstream
