package auditmeta

// ParseTraceparent returns the trace id of a W3C Trace Context traceparent
// header value, "version-traceid-parentid-flags", and whether v is one
// that can be read: every field lowercase hex of the right length, the
// version not ff, neither id all zeros. A version 00 value has exactly these
// four fields; a later version may append more after a '-', which are
// ignored, as the specification asks.
func ParseTraceparent(v string) (traceID string, ok bool) {
	const (
		versionEnd = 2
		traceEnd   = versionEnd + 1 + 32
		parentEnd  = traceEnd + 1 + 16
		flagsEnd   = parentEnd + 1 + 2 // 55, the length of a version 00 value
	)
	if len(v) < flagsEnd || v[versionEnd] != '-' || v[traceEnd] != '-' || v[parentEnd] != '-' {
		return "", false
	}
	version := v[:versionEnd]
	traceID = v[versionEnd+1 : traceEnd]
	parentID := v[traceEnd+1 : parentEnd]
	flags := v[parentEnd+1 : flagsEnd]
	if !lowerHex(version) || version == "ff" || !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return "", false
	}
	if allZeros(traceID) || allZeros(parentID) {
		return "", false
	}
	if len(v) > flagsEnd && (version == "00" || v[flagsEnd] != '-') {
		return "", false
	}
	return traceID, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZeros(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
