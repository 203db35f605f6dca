package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// redactionTable is the rule of the default fragments, key by key.
var redactionTable = []struct {
	key    string
	secret bool
}{
	// Passwords, however they are written.
	{"password", true}, {"PASSWORD", true}, {"Password", true}, {"db_password_hash", true},
	{"passwd", true}, {"pass_word", true}, {"Pass-Word", true}, {"pass word", true}, {"pass.word", true},
	{"paſſword", true}, {"ＰＡＳＳＷＯＲＤ", false}, {"user.password", true}, {"newPassword", true},
	{"passwordless", true}, {"passphrase", true}, {"passcode", true},
	{"pwd", true}, {"PWD", true}, {"old_pwd", true}, {"xPwd", true}, {"pwdHash", true},
	{"pass", true}, {"db_pass", true}, {"userPass", true}, {"pass_through", true}, {"pgpass", true},
	// One-time codes, PINs and card security codes.
	{"otp", true}, {"OTP", true}, {"otp_code", true}, {"sms-otp", true}, {"OTPCode", true}, {"totp", true},
	{"pin", true}, {"PIN", true}, {"pin_code", true}, {"userPin", true}, {"PINCode", true}, {"card.pin", true},
	{"cvv", true}, {"CVC", true},
	// A change between letters and digits is a word boundary.
	{"pin1", true}, {"card_pin1", true}, {"PIN2", true}, {"cvv2", true}, {"2pin", true},
	{"mfa_code", true}, {"MFACode", true}, {"recovery_code", true}, {"recoveryCodes", true}, {"backup_code", true},
	// Tokens, keys and assertions.
	{"token", true}, {"refresh_token", true}, {"accessToken", true}, {"X-Auth-Token", true},
	{"x-amz-security-token", true}, {"id_token", true}, {"csrf-token", true},
	// A fragment is taken for a secret whatever the rest of the key says:
	// the cost of redacting an innocent value.
	{"tokenizer", true}, {"max_tokens", true}, {"tokens_used", true}, {"auth_method", true},
	{"OAuthProvider", true}, // camel case reads it O|Auth|Provider
	{"auth", true}, {"X-Auth", true}, {"basic_auth", true}, {"auth_code", true}, {"proxyAuth", true},
	{"secret", true}, {"client_secret", true}, {"clientSecret", true}, {"AWS_SECRET_ACCESS_KEY", true}, {"secretary", true},
	{"apiKey", true}, {"APIKEY", true}, {"api_key", true}, {"X-Api-Key", true}, {"x_api_key", true}, {"api-keys", true},
	{"access_key", true}, {"aws_access_key_id", true}, {"privateKey", true}, {"PRIVATE-KEY", true},
	{"Private-Key-Id", true}, {"ssh_private_key", true}, {"signing_key", true}, {"encryptionKey", true},
	{"privkey", true}, {"priv_key", true}, {"PrivKey", true}, {"ssh_key", true}, {"sshKey", true},
	{"master_key", true}, {"bearer", true}, {"Bearer", true}, {"jwt", true}, {"x-jwt-assertion", true},
	{"Authorization", true}, {"proxy-authorization", true}, {"credentials", true}, {"db_credential", true},
	{"creds", true}, {"aws_creds", true},
	// Connection strings, which carry a password.
	{"dsn", true}, {"DSN", true}, {"sentry_dsn", true}, {"database_url", true}, {"DATABASE_URL", true},
	{"databaseUrl", true}, {"db_url", true}, {"connection_string", true}, {"ConnectionString", true},
	{"to\u212aen", true}, // the Kelvin sign folds to k, as strings.EqualFold says
	// Sessions and cookies.
	{"cookie", true}, {"Set-Cookie", true}, {"cookies", true}, {"session_id", true}, {"sessionId", true},
	{"SESSIONID", true}, {"JSESSIONID", true}, {"PHPSESSID", true}, {"session.key", true},

	// What services log that is no secret.
	{"", false}, {"ip", false}, {"user_agent", false}, {"request_id", false}, {"trace_id", false},
	{"outcome", false}, {"route", false}, {"author", false}, {"oauth_provider", false},
	{"authority", false}, {"co_author", false}, {"authored_by", false}, {"authn", false}, {"oauth2_scope", false},
	{"spin2", false}, {"pinyin", false}, {"ipv4", false}, {"http2", false}, {"x509_subject", false},
	{"private_ip", false}, {"sshd_config", false}, {"recovery_email", false}, {"mfa_enabled", false},
	{"backup_id", false}, {"database_name", false}, {"db_host", false}, {"connection_id", false},
	{"credit_card_last4", false}, {"accredited", false},
	{"authenticated", false}, {"passenger", false}, {"compass", false}, {"bypass", false}, {"passport", false},
	{"spinner", false}, {"shipping", false}, {"pincode", false}, {"pinned", false}, {"opinion", false},
	{"footprint", false}, {"hotpath", false}, {"photp", false}, {"cvvs", false},
	{"api", false}, {"api_version", false}, {"key", false}, {"key_id", false}, {"public_key", false},
	{"primary_key", false}, {"idempotency_key", false}, {"cache_key", false}, {"monkey", false},
	{"session", false}, {"session_duration", false}, {"sessions", false}, {"jwks_url", false},
	{"tokne", false}, {"passwor", false}, {"api-ke", false}, {"ssn", false},
	{"p_w_d", true}, {"pw", false}, {"description", false}, {"compassion", false}, {"spin", false},
	{"İnvalid", false}, {"日本", false}, {"日本token", true}, {"ключ", false},
}

func TestRedactorDefaults(t *testing.T) {
	r := newRedactor(defaultRedactedKeys)
	secret, plain := 0, 0
	for _, tt := range redactionTable {
		if got := r.secret(tt.key); got != tt.secret {
			t.Errorf("secret(%q): got %v, want %v", tt.key, got, tt.secret)
		}
		if got := secretByDefinition(tt.key, defaultRedactedKeys); got != tt.secret {
			t.Errorf("the definition of secret(%q): got %v, want %v", tt.key, got, tt.secret)
		}
		if tt.secret {
			secret++
		} else {
			plain++
		}
	}
	if secret < 60 || plain < 40 {
		t.Errorf("got %d secret and %d plain keys in the table, want at least 60 and 40", secret, plain)
	}
}

// TestRedactedKeysDocumented: the doc of WithRedactedKeys lists the
// default fragments, in the order of defaultRedactedKeys.
func TestRedactedKeysDocumented(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "logger.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == "WithRedactedKeys" && fn.Doc != nil {
			doc = strings.Join(strings.Fields(fn.Doc.Text()), " ")
		}
	}
	const intro = "The default fragments (see DefaultRedactedKeys) are the names that credentials go by: "
	_, list, ok := strings.Cut(doc, intro)
	if !ok {
		t.Fatalf("the doc of WithRedactedKeys does not say %q; got %q", intro, doc)
	}
	list, _, _ = strings.Cut(list, ". ")
	var got []string
	for _, group := range strings.Split(list, ";") {
		for _, f := range strings.Split(group, ",") {
			got = append(got, strings.TrimSpace(f))
		}
	}
	if !slices.Equal(got, defaultRedactedKeys) {
		t.Errorf("the doc of WithRedactedKeys lists\n%q\nwant defaultRedactedKeys, in order:\n%q", got, defaultRedactedKeys)
	}
}

func TestRedactorFragments(t *testing.T) {
	if newRedactor(nil).secret("password") {
		t.Error("a redactor without fragments redacted")
	}
	for _, tt := range []struct {
		fragments []string
		key       string
		want      bool
	}{
		{[]string{"Session-ID", ""}, "x_session_id", true},
		{[]string{"Session-ID"}, "password", false},
		{[]string{"-", "_. "}, "anything", false},
		{[]string{"ssn"}, "user_ssn", true},
		{[]string{"ssn"}, "ssnumber", false},
		{[]string{"S-S-N"}, "ssn", true},
		{[]string{"ключ"}, "мой_КЛЮЧ", true},
		{[]string{"ключ"}, "ключи", false}, // four letters: a whole word
		{[]string{"пароль"}, "ПАРОЛЬ_ПОЛЬЗОВАТЕЛЯ", true},
		{[]string{"straße"}, "STRASSE", false}, // simple folding: ß is not ss
		{[]string{"straße"}, "STRAẞE", true},
		{[]string{"x-pin"}, "xPin", true},
		{[]string{"x-pin"}, "xpin", true},
		{[]string{"x-pin"}, "axpin", false},
		{[]string{"ſecret"}, "SECRET", true},
	} {
		r := newRedactor(tt.fragments)
		if got := r.secret(tt.key); got != tt.want {
			t.Errorf("fragments %q: secret(%q): got %v, want %v", tt.fragments, tt.key, got, tt.want)
		}
		if got := secretByDefinition(tt.key, tt.fragments); got != tt.want {
			t.Errorf("fragments %q: the definition of secret(%q): got %v, want %v", tt.fragments, tt.key, got, tt.want)
		}
	}
}

// TestRedactorManyFragments: fragments too many for the automaton are
// matched all the same.
func TestRedactorManyFragments(t *testing.T) {
	fragments := []string{"password", "pin"}
	for i := range 70 {
		fragments = append(fragments, strings.Repeat(string(rune('a'+i%26)), 1000)+"x")
	}
	r := newRedactor(fragments)
	if !r.slow {
		t.Fatal("the automaton was built for fragments of 70,000 bytes")
	}
	for _, tt := range []struct {
		key  string
		want bool
	}{{"user_password", true}, {"userPin", true}, {"shipping", false}, {strings.Repeat("b", 1000) + "X", true}, {strings.Repeat("b", 999) + "x", false}} {
		if got := r.secret(tt.key); got != tt.want {
			t.Errorf("secret(%.20q): got %v, want %v", tt.key, got, tt.want)
		}
	}
}

// TestFoldRune: foldRune maps two runes to the same rune exactly when
// strings.EqualFold takes them as equal, for every rune.
func TestFoldRune(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		f := foldRune(r)
		if !strings.EqualFold(string(f), string(r)) {
			t.Fatalf("foldRune(%U) = %U, which strings.EqualFold does not take as equal", r, f)
		}
		if g := foldRune(unicode.SimpleFold(r)); g != f {
			t.Fatalf("foldRune(%U) = %U but foldRune(%U) = %U: runes strings.EqualFold takes as equal fold apart", r, f, unicode.SimpleFold(r), g)
		}
	}
}

func TestRedactorSecretDoesNotAllocate(t *testing.T) {
	r := newRedactor(defaultRedactedKeys)
	keys := []string{"ip", "user_agent", "request_id", "X-Api-Key", "userPin", "card_pin1", "X-Auth", strings.Repeat("k", MaxMetadataKeyLen)}
	if n := testing.AllocsPerRun(100, func() {
		for _, k := range keys {
			r.secret(k)
		}
	}); n != 0 {
		t.Errorf("secret of ASCII keys: got %v allocations, want 0", n)
	}
}

func TestRedactorRedact(t *testing.T) {
	r := newRedactor(defaultRedactedKeys)
	redact := func(md map[string]string) (map[string]string, bool) {
		return r.redact(md, appendPairs(nil, md))
	}
	md := map[string]string{"ip": "1", "token": "t"}
	out, changed := redact(md)
	if !changed || out["token"] != Redacted || out["ip"] != "1" || md["token"] != "t" {
		t.Errorf("got %v, %v from %v", out, changed, md)
	}
	plain := map[string]string{"ip": "1"}
	if out, changed := redact(plain); changed || len(out) != 1 || out["ip"] != "1" {
		t.Errorf("got %v, %v, want the map unchanged", out, changed)
	}
	if out, changed := redact(nil); changed || out != nil {
		t.Errorf("got %v, %v, want nil", out, changed)
	}
}

// secretByDefinition is the rule WithRedactedKeys states, written plainly
// and slowly: key contains a fragment, rune by rune as strings.EqualFold
// compares, separators left out of both; and a fragment of at most four
// characters starts and ends at word boundaries of key.
func secretByDefinition(key string, fragments []string) bool {
	k, at := definitionWords(key)
	for _, fragment := range fragments {
		f, _ := definitionWords(fragment)
		if len(f) == 0 {
			continue
		}
	start:
		for i := 0; i+len(f) <= len(k); i++ {
			if len(f) <= 4 && (!at[i] || !at[i+len(f)]) {
				continue
			}
			for j := range f {
				if !strings.EqualFold(string(k[i+j]), string(f[j])) {
					continue start
				}
			}
			return true
		}
	}
	return false
}

// definitionWords returns the runes of s but its separators, and for each
// index of them, and their end, whether a word starts or ends there.
func definitionWords(s string) ([]rune, []bool) {
	in := []rune(s)
	var out []rune
	at := []bool{true}
	for i, c := range in {
		if c == '_' || c == '-' || c == '.' || c == ' ' {
			at[len(out)] = true
			continue
		}
		if i > 0 {
			p := in[i-1]
			letterDigit := unicode.IsLetter(p) && unicode.IsDigit(c) || unicode.IsDigit(p) && unicode.IsLetter(c)
			camel := unicode.IsLower(p) && unicode.IsUpper(c)
			acronymEnds := unicode.IsUpper(p) && unicode.IsUpper(c) && i+1 < len(in) && unicode.IsLower(in[i+1])
			if letterDigit || camel || acronymEnds {
				at[len(out)] = true
			}
		}
		out = append(out, c)
		at = append(at, false)
	}
	at[len(out)] = true
	return out, at
}

// FuzzRedactorSecret checks the table-driven scan, and the path for keys
// beyond ASCII, against the definition.
func FuzzRedactorSecret(f *testing.F) {
	for _, tt := range redactionTable {
		f.Add(tt.key, "api_key")
	}
	for _, k := range []string{"X-Api-Key", "user_agent", "PASSWORD_hash", "tok", "session-TOKEN", "", "a-p-i", "ﬃ", "ǅemo", "k\xffey"} {
		f.Add(k, "Pin")
	}
	f.Fuzz(func(t *testing.T, key, fragment string) {
		fragments := append([]string{fragment}, defaultRedactedKeys...)
		want := secretByDefinition(key, fragments)
		if got := newRedactor(fragments).secret(key); got != want {
			t.Fatalf("secret(%q) with fragment %q: got %v, want %v", key, fragment, got, want)
		}
	})
}

func BenchmarkRedactorSecret(b *testing.B) {
	r := newRedactor(defaultRedactedKeys)
	keys := []string{MetadataIP, MetadataUserAgent, MetadataRequestID, MetadataTraceID, "route", "X-Api-Key"}
	b.ReportAllocs()
	for range b.N {
		for _, k := range keys {
			r.secret(k)
		}
	}
}
