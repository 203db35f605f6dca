package audit

import (
	"strings"
	"testing"
)

func TestRedactorSecret(t *testing.T) {
	r := newRedactor(defaultRedactedKeys)
	for key, want := range map[string]bool{
		"password": true, "PASSWORD": true, "db_password_hash": true, "X-Api-Key": true, "x_api_key": true,
		"Authorization": true, "set-cookie": true, "refresh_token": true, "Private-Key-Id": true, "client_secret": true,
		"": false, "ip": false, "api": false, "api-ke": false, "passwor": false, "tokne": false, "auth": false,
		"pass word": false, "ttoken": true, "日本token": true, "tok\u212aen": false,
	} {
		if got := r.secret(key); got != want {
			t.Errorf("secret(%q) = %v, want %v", key, got, want)
		}
	}
	if newRedactor(nil).secret("password") {
		t.Error("a redactor without fragments redacted")
	}
	custom := newRedactor([]string{"Session-ID", ""})
	if !custom.secret("x_session_id") || custom.secret("password") {
		t.Error("custom fragments are not normalized or the defaults leaked in")
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

// FuzzRedactorSecret checks the table-driven scan against its definition:
// a key is secret when its normalized form contains a normalized fragment.
func FuzzRedactorSecret(f *testing.F) {
	for _, k := range []string{"X-Api-Key", "user_agent", "PASSWORD_hash", "tok", "session-TOKEN", "", "a-p-i"} {
		f.Add(k, "api_key")
	}
	f.Fuzz(func(t *testing.T, key, fragment string) {
		r := newRedactor(append([]string{fragment}, defaultRedactedKeys...))
		want := false
		for _, f := range append([]string{fragment}, defaultRedactedKeys...) {
			if nf := foldKey(f); nf != "" && strings.Contains(foldKey(key), nf) {
				want = true
			}
		}
		if got := r.secret(key); got != want {
			t.Fatalf("secret(%q) with fragment %q = %v, want %v", key, fragment, got, want)
		}
	})
}
