package audit

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"
)

// DefaultTimeout bounds how long a Logger waits for its Repository to store
// one log, unless WithTimeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Logger writes audit logs: it completes each log from its options and the
// context, validates it and stores it with the Repository.
//
// A Logger is safe for concurrent use. Make one per service at start-up
// and share it. A Logger with publishers (see WithPublisher) runs
// goroutines: call Close at shutdown to drain and stop them.
type Logger struct {
	repo        Repository
	source      string
	now         func() time.Time
	realClock   bool // now is time.Now
	sourceValid bool // source passes Validate
	newID       func() string
	timeout     time.Duration
	redact      *redactor

	pubs    []*publisher // see WithPublisher
	pub     publishing
	onError func(error)
}

// Option configures a Logger.
type Option func(*Logger)

// WithSource sets the Source of every log that does not name its own: the
// service emitting it, e.g. "frontier". Source is required, so a Logger
// without it can only store logs passed to Record with Source set.
func WithSource(source string) Option {
	return func(lg *Logger) { lg.source = source }
}

// WithClock sets the function that gives CreatedAt. The default is
// time.Now. Whatever it returns is stored in UTC at microsecond precision.
func WithClock(now func() time.Time) Option {
	return func(lg *Logger) {
		if now != nil {
			lg.now, lg.realClock = now, false
		}
	}
}

// WithIDFunc sets the function that gives IDs of logs. The default makes
// UUIDv7 strings, which sort by creation time; replace it only to make
// output deterministic, in tests and examples. IDs must be unique.
func WithIDFunc(newID func() string) Option {
	return func(lg *Logger) { lg.newID = newID }
}

// WithTimeout bounds how long Log and Record wait for the Repository to
// store a log, and how long they wait for room in a publisher's queue
// attached with BlockWhenFull. A value <= 0 removes the bound. The default
// is DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(lg *Logger) { lg.timeout = d }
}

// WithRedactedKeys replaces the fragments that make a metadata key look
// secret. The value of a secret-looking key is stored as Redacted. With no
// fragments nothing is redacted.
//
// A key looks secret when it contains one of the fragments, both read
// without the separators '_', '-', '.' and ' ' and compared rune by rune
// as strings.EqualFold compares them: by Unicode simple case folding, so
// "paſſword" contains "password" (but "ß" is not "ss"). A fragment of at
// most four characters, so read, must also start and end at word
// boundaries of the key: its start and end, a separator, a letter
// followed by a digit or a digit followed by a letter ("pin|1"), a
// lower-case letter followed by an upper-case one ("user|Pin"), and an
// upper-case letter followed by one that starts a capitalized word
// ("PIN|Code"). So "pin" makes "pin", "card.pin", "card_pin1", "userPin"
// and "PINCode" secret, but not "spinner", "shipping" or "pincode"; a
// longer fragment matches anywhere, "token" in "tokenizer" too.
//
// The default fragments (see DefaultRedactedKeys) are the names that
// credentials go by: password, passwd, pass, pwd, passphrase, passcode,
// pin, pgpass; otp, totp, hotp, mfacode, recoverycode, backupcode, cvv,
// cvc; secret, token, bearer, jwt, auth, authorization, credential, creds,
// apikey, accesskey, privatekey, privkey, sshkey, signingkey,
// encryptionkey, masterkey; dsn, databaseurl, dburl, connectionstring;
// cookie, sessionid, sessid, sessionkey. So "X-Api-Key", "Authorization",
// "X-Auth", "client_secret", "x-amz-security-token", "priv_key",
// "mfa_code", "Set-Cookie" and "session_id" are redacted, and so are
// connection strings, "dsn" and "DATABASE_URL", which carry a password;
// "author", "authority", "oauth_provider", "request_id" and "passenger"
// are not.
//
// A fragment makes every key that holds it secret, whatever the key
// means: "max_tokens" and "tokens_used" are redacted like "refresh_token",
// and "auth_method" like "basic_auth". That is the trade-off the defaults
// make, since redacting an innocent value costs less than leaking a
// secret; name such a value otherwise ("login_method"), or leave the
// fragment out. Personal data, such as an "ssn", is not in the defaults:
// what a service must not keep is its own policy, and it adds those names
// to DefaultRedactedKeys.
func WithRedactedKeys(fragments ...string) Option {
	return func(lg *Logger) { lg.redact = newRedactor(fragments) }
}

// NewLogger returns a Logger that stores logs in repo. It panics if repo is
// nil.
func NewLogger(repo Repository, opts ...Option) *Logger {
	if repo == nil {
		panic("audit: NewLogger with a nil Repository")
	}
	lg := &Logger{
		repo:      repo,
		now:       time.Now,
		realClock: true,
		timeout:   DefaultTimeout,
		redact:    newRedactor(defaultRedactedKeys),
		onError:   logPublishError,
	}
	for _, opt := range opts {
		opt(lg)
	}
	lg.sourceValid = checkField("source", lg.source, MaxSourceLen, true) == nil
	lg.startPublishing()
	return lg
}

// Log records that the actor in ctx performed action on target.
//
// The log gets a new ID, the current time, the Logger's source, and the
// org, actor and metadata that ctx carries (see SetActor, SetOrgID and
// SetMetadata). Secret-looking metadata values are redacted. Log returns
// once the Repository stored the log, or with the error that kept it from
// being stored: an error wrapping ErrInvalidLog if the log is not valid, or
// the Repository's error.
//
// The action has already happened when Log is called, so Log stores with
// ctx's values but not its cancellation: a request that ends while its
// audit log is being written does not lose it. The store is bounded by the
// Logger's timeout instead (see WithTimeout).
func (lg *Logger) Log(ctx context.Context, action string, target Target) error {
	l := logPool.Get().(*Log)
	*l = Log{Action: action, Target: target}
	err := lg.store(ctx, l)
	*l = Log{}
	logPool.Put(l)
	return err
}

// logPool holds the Logs that Log and Record complete and hand to the
// Repository, which must not retain them (see Repository.Create).
var logPool = sync.Pool{New: func() any { return new(Log) }}

// Record stores log like Log does, for callers that need control over its
// fields. Fields of log that are empty are filled as Log fills them: ID,
// CreatedAt, Source, and OrgID, Actor (when log.Actor is the zero Actor)
// and Metadata from ctx. Keys of log.Metadata win over the context's. A
// non-zero CreatedAt is kept, in UTC at microsecond precision.
//
// Record sets the fields it filled in *log, so the caller learns the ID.
// It never modifies log.Metadata or its map; the stored metadata is
// log.Metadata merged over the context's, with secret-looking values
// redacted.
//
// Record sets those fields whether or not the store succeeded, which makes
// it the safe retry of a store whose outcome is unknown: when the error
// wraps ErrMaybeStored, calling Record again with the same log stores it
// under the same ID and time, and an error wrapping ErrAlreadyExists then
// means that the first attempt stored it.
func (lg *Logger) Record(ctx context.Context, log *Log) error {
	l := logPool.Get().(*Log)
	*l = *log
	err := lg.store(ctx, l)
	md := log.Metadata
	*log = *l
	log.Metadata = md
	*l = Log{}
	logPool.Put(l)
	return err
}

// store completes l, validates it and stores it.
func (lg *Logger) store(ctx context.Context, l *Log) error {
	var known fieldSet // fields the Logger filled with values known to be valid
	// now is a reading of the real clock: for the store's deadline, and for
	// IDs, which follow the order in which they are made whatever times
	// callers and clocks give their logs.
	var now time.Time
	switch {
	case !l.CreatedAt.IsZero():
		l.CreatedAt = normalizeTime(l.CreatedAt)
	case lg.realClock:
		now = time.Now()
		// What normalizeTime does, quicker: a reading of the real clock is
		// within the years that microseconds since 1970 hold.
		l.CreatedAt = time.UnixMicro(now.UnixMicro()).UTC()
		known |= fieldCreatedAt
	default:
		l.CreatedAt = normalizeTime(lg.now())
	}
	if now.IsZero() {
		now = time.Now()
	}
	if l.ID == "" {
		if lg.newID != nil {
			l.ID = lg.newID()
		} else {
			l.ID = ids.next(now)
			known |= fieldID
		}
	}
	if l.Source == "" {
		l.Source = lg.source
		if lg.sourceValid {
			known |= fieldSource
		}
	}
	var scratch *scratchMap
	md, fromCtx, mdErr := lg.metadata(ctx, l, &scratch)
	if scratch != nil {
		// The Repository does not retain the map, nor, without
		// publishers, does anything else once the log is stored.
		defer scratch.release()
	}
	l.Metadata = md
	// In Validate's order, so that a log with several faults gets the
	// error Validate would give it: the fields, then the metadata.
	if err := l.validateFieldsExcept(known | fromCtx); err != nil {
		return err
	}
	if mdErr != nil {
		return mdErr
	}

	sctx, d := detach(ctx, lg.timeout, now)
	err := lg.repo.Create(sctx, l)
	d.stop()
	if err != nil {
		return fmt.Errorf("audit: storing %s log %s: %w", l.Action, l.ID, err)
	}
	if len(lg.pubs) > 0 {
		lg.publish(ctx, l)
	}
	return nil
}

// metadata fills l's OrgID and Actor from ctx where they are empty, and
// returns the metadata to store — ctx's merged with l's, redacted — with
// the error validateMetadata returns for it, and the fields it filled with
// values known to be valid. The map may be shared with ctx and must not be
// modified. When it sets *scratch, the map is, or was copied from, that
// scratch map, which the caller releases once nothing reads the log.
func (lg *Logger) metadata(ctx context.Context, l *Log, scratch **scratchMap) (map[string]string, fieldSet, error) {
	c := stateOf(ctx)
	if c == nil {
		var buf [stackPairs]kv
		pairs, err := collectPairs(buf[:0], l.Metadata)
		if err != nil {
			return l.Metadata, 0, err
		}
		md, redacted, err := redactPairs(lg.redact, l.Metadata, pairs)
		if !redacted && len(lg.pubs) > 0 && len(md) > 0 {
			// md is the caller's map, and publishers read the log after
			// Record returned, when the caller may be changing it again.
			md = cloneMetadata(md)
		}
		return md, 0, err
	}
	var known fieldSet
	if id := c.id; id != nil {
		actorOK, orgOK := id.checkIdentity()
		if l.OrgID == "" && id.hasOrgID {
			l.OrgID = id.orgID
			if orgOK {
				known |= fieldOrgID
			}
		}
		if l.Actor == (Actor{}) && id.hasActor {
			l.Actor = id.actor
			if actorOK {
				known |= fieldActor
			}
		}
	}
	if len(l.Metadata) == 0 {
		// The common case: the metadata is the context's.
		if c.mdCount == 0 {
			return nil, known, nil
		}
		if len(lg.pubs) == 0 && c.firstUse() {
			s := scratchMaps.Get().(*scratchMap)
			*scratch = s
			md, err := c.metadataInto(lg.redact, s.mapFor(c.mdCount))
			return md, known, err
		}
		// Merged, redacted and validated once per context.
		md, err := c.redactedMetadata(lg.redact)
		return md, known, err
	}
	var buf [stackPairs]kv
	_, md := c.flatten(buf[:0], make(map[string]string, c.mdCount+len(l.Metadata)))
	maps.Copy(md, l.Metadata)
	for k, v := range md {
		if v != Redacted && lg.redact.secret(k) {
			md[k] = Redacted
		}
	}
	return md, known, validateMetadata(md)
}

// scratchMap is a map that Logger.store merges the metadata of a context
// into for one log, and that serves the next log once that one is stored.
type scratchMap struct{ m map[string]string }

var scratchMaps = sync.Pool{New: func() any { return new(scratchMap) }}

// mapFor returns s's map, empty, made for n pairs if s has none.
func (s *scratchMap) mapFor(n int) map[string]string {
	if s.m == nil {
		s.m = make(map[string]string, n)
	}
	return s.m
}

// release empties s and puts it back in scratchMaps. A map that grew past
// stackPairs keys is dropped rather than kept for logs that are mostly
// smaller.
func (s *scratchMap) release() {
	if len(s.m) > stackPairs {
		s.m = nil
	} else {
		clear(s.m)
	}
	scratchMaps.Put(s)
}
