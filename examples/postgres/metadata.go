package postgres

// DecodeMetadata decodes the metadata column of audit_logs, the text of a
// jsonb object whose values are strings, as the Repository reads it: an
// empty object decodes to nil, and the map's strings may share memory with
// s. It is for readers of the table other than the Repository, such as
// package integrity, which reads every log to seal it.
func DecodeMetadata(s string) (map[string]string, error) { return decodeJSONObject(s) }
