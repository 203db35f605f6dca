package audit

import (
	"context"
	"sync/atomic"
)

// ctxKey is the key under which an *auditCtx answers Value.
type ctxKey struct{}

// auditCtx is the context the Set functions return. It carries the whole
// audit state of a request — actor, org and metadata — so that every read is
// one Value lookup, and each Set costs one allocation.
//
// An auditCtx is immutable once made, apart from cache, which holds values
// derived from the immutable fields and is published atomically; so an
// auditCtx may be shared by any number of goroutines.
type auditCtx struct {
	context.Context

	id *identity // the actor and org; nil when neither is set

	// Metadata is kept as layers, one per SetMetadata call: md holds this
	// call's pairs and mdParent the nearest ancestor with pairs of its own.
	// Merging waits until someone reads the metadata.
	md       []kv
	mdParent *auditCtx
	mdCount  int // pairs in this layer and all its ancestors, an upper bound on the merged size

	cache atomic.Pointer[mdCache]
}

// identity is the actor and org of a context, shared by the contexts
// derived from it that do not set either: immutable once made, apart from
// valid, which caches whether they would pass Validate.
type identity struct {
	actor    Actor
	orgID    string
	hasActor bool
	hasOrgID bool
	valid    atomic.Uint32 // see checkIdentity
}

// noIdentity is the identity of a context that sets neither actor nor org.
var noIdentity identity

// identityCtx is the auditCtx that SetActor and SetOrgID return, allocated
// with its new identity.
type identityCtx struct {
	auditCtx
	ident identity
}

type kv struct{ k, v string }

// SetMetadata allocates its pairs together with the context when there
// are few of them; these wrap an auditCtx with room for exactly that many,
// each in its own size class of the allocator.
type (
	auditCtx1 struct {
		auditCtx
		pairs [1]kv
	}
	auditCtx2 struct {
		auditCtx
		pairs [2]kv
	}
	auditCtx3 struct {
		auditCtx
		pairs [3]kv
	}
	auditCtx4 struct {
		auditCtx
		pairs [4]kv
	}
)

// mdCache holds the merged metadata of an auditCtx, and that map redacted
// by the policy of the Logger that read it last, with the result of
// validating it.
type mdCache struct {
	merged   map[string]string // nil when there is no metadata
	policy   *redactor
	redacted map[string]string
	invalid  error // validateMetadata(redacted)
}

func (c *auditCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

func (c *auditCtx) String() string {
	return contextName(c.Context) + ".WithAudit"
}

type stringer interface{ String() string }

func contextName(c context.Context) string {
	if s, ok := c.(stringer); ok {
		return s.String()
	}
	return "context"
}

func stateOf(ctx context.Context) *auditCtx {
	s, _ := ctx.Value(ctxKey{}).(*auditCtx)
	return s
}

// init makes the zero c a context over parent that starts with the state
// parent carries.
func (c *auditCtx) init(parent context.Context) {
	if parent == nil {
		panic("audit: cannot derive a context from a nil parent")
	}
	c.Context = parent
	if s := stateOf(parent); s != nil {
		c.id = s.id
		c.mdParent, c.mdCount = s.metadataLayer(), s.mdCount
	}
}

// ident returns the identity of c.
func (c *auditCtx) ident() *identity {
	if c.id == nil {
		return &noIdentity
	}
	return c.id
}

// withIdentity returns a new context over parent whose identity starts as
// parent's, for the caller to change before returning it.
func withIdentity(parent context.Context) *identityCtx {
	w := &identityCtx{}
	w.init(parent)
	if p := w.id; p != nil {
		w.ident.actor, w.ident.hasActor = p.actor, p.hasActor
		w.ident.orgID, w.ident.hasOrgID = p.orgID, p.hasOrgID
	}
	w.id = &w.ident
	return w
}

// metadataLayer returns the nearest auditCtx, c or an ancestor, that holds
// metadata pairs, or nil.
func (c *auditCtx) metadataLayer() *auditCtx {
	if len(c.md) > 0 {
		return c
	}
	return c.mdParent
}

// SetActor returns a copy of ctx that carries a as the actor of the audit
// logs written with it. Authentication middleware calls it once it knows
// who the caller is.
func SetActor(ctx context.Context, a Actor) context.Context {
	w := withIdentity(ctx)
	w.ident.actor, w.ident.hasActor = a, true
	return &w.auditCtx
}

// SetOrgID returns a copy of ctx that carries orgID as the tenant of the
// audit logs written with it.
func SetOrgID(ctx context.Context, orgID string) context.Context {
	w := withIdentity(ctx)
	w.ident.orgID, w.ident.hasOrgID = orgID, true
	return &w.auditCtx
}

// SetMetadata returns a copy of ctx that carries md merged over the
// metadata ctx already carries; for a key in both, md's value wins. md is
// copied: changing it later changes no context. ctx itself, and any other
// context derived from it, are not affected.
//
// An empty md returns ctx unchanged.
func SetMetadata(ctx context.Context, md map[string]string) context.Context {
	if len(md) == 0 {
		if ctx == nil {
			panic("audit: cannot derive a context from a nil parent")
		}
		return ctx
	}
	var c *auditCtx
	switch len(md) {
	case 1:
		w := &auditCtx1{}
		w.md = w.pairs[:0]
		c = &w.auditCtx
	case 2:
		w := &auditCtx2{}
		w.md = w.pairs[:0]
		c = &w.auditCtx
	case 3:
		w := &auditCtx3{}
		w.md = w.pairs[:0]
		c = &w.auditCtx
	case 4:
		w := &auditCtx4{}
		w.md = w.pairs[:0]
		c = &w.auditCtx
	default:
		c = &auditCtx{md: make([]kv, 0, len(md))}
	}
	c.init(ctx)
	for k, v := range md {
		c.md = append(c.md, kv{k, v})
	}
	c.mdCount += len(md)
	return c
}

// FromContext returns a Log holding the OrgID, Actor and Metadata that ctx
// carries; its other fields are zero. The Metadata map is the caller's own
// (nil when ctx carries none).
func FromContext(ctx context.Context) Log {
	c := stateOf(ctx)
	if c == nil {
		return Log{}
	}
	id := c.ident()
	return Log{OrgID: id.orgID, Actor: id.actor, Metadata: cloneMetadata(c.merged())}
}

// ActorFromContext returns the actor set by SetActor, and whether one was
// set. It does not allocate, so authorization code may call it freely.
func ActorFromContext(ctx context.Context) (Actor, bool) {
	if c := stateOf(ctx); c != nil && c.id != nil {
		return c.id.actor, c.id.hasActor
	}
	return Actor{}, false
}

// OrgIDFromContext returns the org set by SetOrgID, and whether one was set.
// It does not allocate.
func OrgIDFromContext(ctx context.Context) (string, bool) {
	if c := stateOf(ctx); c != nil && c.id != nil {
		return c.id.orgID, c.id.hasOrgID
	}
	return "", false
}

// flatten appends to dst the pairs of the metadata of c and its ancestors
// — each key once, with the value of the latest layer that set it — and
// puts the same pairs in m, which must be empty, or in a new map when m is
// nil. It returns the pairs and the map, which is nil when c carries no
// metadata and m is nil.
func (c *auditCtx) flatten(dst []kv, m map[string]string) ([]kv, map[string]string) {
	if c.mdCount == 0 {
		return dst, m
	}
	start := len(dst)
	newest := c.metadataLayer()
	// Whether a later layer set a key is looked up in the pairs taken so
	// far while they are few, and in the map being built otherwise.
	byMap := c.mdCount > stackPairs
	if byMap && m == nil {
		m = make(map[string]string, c.mdCount)
	}
	for l := newest; l != nil; l = l.mdParent {
		later := dst[start:]
		for _, p := range l.md {
			if l != newest && setIn(later, byMap, m, p.k) {
				continue
			}
			dst = append(dst, p)
			if byMap {
				m[p.k] = p.v
			}
		}
	}
	if !byMap {
		if m == nil {
			m = make(map[string]string, len(dst)-start)
		}
		for _, p := range dst[start:] {
			m[p.k] = p.v
		}
	}
	return dst, m
}

// setIn reports whether key is set in m, when byMap, or else in pairs.
func setIn(pairs []kv, byMap bool, m map[string]string, key string) bool {
	if byMap {
		_, ok := m[key]
		return ok
	}
	for _, p := range pairs {
		if p.k == key {
			return true
		}
	}
	return false
}

// merged returns the merged metadata of c. The map is shared and must not
// be modified.
func (c *auditCtx) merged() map[string]string {
	p := c.cache.Load()
	if p != nil && p != &loggedOnce {
		return p.merged
	}
	var buf [stackPairs]kv
	_, m := c.flatten(buf[:0], nil)
	c.cache.CompareAndSwap(p, &mdCache{merged: m})
	return m
}

// loggedOnce is what cache holds, instead of an mdCache, once a Logger took
// the metadata of the context without caching it (see firstUse): the next
// reader caches.
var loggedOnce mdCache

// firstUse reports whether nothing has read the merged metadata of c yet,
// and marks it read. A context is mostly logged once, so the first Logger
// to read it merges the metadata into a map of its own that it reuses for
// the next context, rather than allocating a map and a cache entry that
// nothing would read again; the second read caches.
func (c *auditCtx) firstUse() bool {
	return c.cache.Load() == nil && c.cache.CompareAndSwap(nil, &loggedOnce)
}

// redactedMetadata returns the merged metadata of c with r applied, and
// the error validateMetadata returns for it. The map is shared and must not
// be modified.
func (c *auditCtx) redactedMetadata(r *redactor) (map[string]string, error) {
	p := c.cache.Load()
	if p == &loggedOnce {
		p = nil
	}
	if p != nil && p.policy == r {
		return p.redacted, p.invalid
	}
	var buf [stackPairs]kv
	var pairs []kv
	next := &mdCache{policy: r}
	if p != nil {
		next.merged = p.merged
		pairs = appendPairs(buf[:0], p.merged)
	} else {
		pairs, next.merged = c.flatten(buf[:0], nil)
	}
	next.redacted, _, next.invalid = redactPairs(r, next.merged, pairs)
	// Another goroutine may have cached another policy meanwhile; either
	// result is correct, the cache only saves work.
	c.cache.Store(next)
	return next.redacted, next.invalid
}

// metadataInto is redactedMetadata for a context that firstUse reported
// unread: it merges the metadata into m, which must be empty, and caches
// nothing. The map it returns is m, or a redacted copy of it.
func (c *auditCtx) metadataInto(r *redactor, m map[string]string) (map[string]string, error) {
	var buf [stackPairs]kv
	pairs, m := c.flatten(buf[:0], m)
	md, _, err := redactPairs(r, m, pairs)
	return md, err
}

// redactPairs returns md, whose pairs are also given as a slice, with r
// applied, whether that changed it, and the error validateMetadata returns
// for the result. It never modifies md.
func redactPairs(r *redactor, md map[string]string, pairs []kv) (map[string]string, bool, error) {
	redacted, changed := r.redact(md, pairs)
	err := validatePairs(pairs)
	if err != nil && changed {
		// A secret value that was invalid is valid once redacted.
		err = validateMetadata(redacted)
	}
	return redacted, changed, err
}

// Bits of identity.valid.
const (
	identityChecked = 1 << iota
	actorValid
	orgIDValid
)

// checkIdentity reports whether the actor and the org ID of id would pass
// Log.Validate, checking them once per identity.
func (id *identity) checkIdentity() (actorOK, orgOK bool) {
	v := id.valid.Load()
	if v&identityChecked == 0 {
		// The same checks as Validate, on a log holding only the identity.
		l := Log{Actor: id.actor, OrgID: id.orgID}
		v = identityChecked
		if l.validateFieldsExcept(^fieldActor) == nil {
			v |= actorValid
		}
		if l.validateFieldsExcept(^fieldOrgID) == nil {
			v |= orgIDValid
		}
		id.valid.Store(v)
	}
	return v&actorValid != 0, v&orgIDValid != 0
}
