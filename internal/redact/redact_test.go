package redact

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// hard is a password with every character that escapes differently in URLs, JSON and Go.
const hard = `p"w\d%4@x:y z<&>`

// TestEverySpelling: the secret is hidden however it was written out.
func TestEverySpelling(t *testing.T) {
	r := New(hard)
	jsonOnce, _ := json.Marshal(hard)
	jsonTwice, _ := json.Marshal(string(jsonOnce))
	u := url.URL{Scheme: "postgres", User: url.UserPassword("app", hard), Host: "db:5432", Path: "/app"}
	var zl bytes.Buffer
	log := zerolog.New(&zl)
	log.Error().Str("dsn", u.String()).Msg("connect failed for password " + hard)
	for name, text := range map[string]string{
		"raw":         "password is " + hard,
		"query":       "x=" + url.QueryEscape(hard),
		"path":        "/" + url.PathEscape(hard),
		"url":         u.String(),
		"json":        string(jsonOnce),
		"json twice":  string(jsonTwice),
		"go quoted":   strconv.Quote(hard),
		"zerolog":     zl.String(),
		"percent all": percentAll(hard, "0123456789abcdef"),
	} {
		got := r.String(text)
		if leaks(got) {
			t.Errorf("%s: %q still shows the password", name, got)
		}
		if !strings.Contains(got, Mask) {
			t.Errorf("%s: %q hides nothing", name, got)
		}
		if b := r.Bytes([]byte(text)); leaks(string(b)) {
			t.Errorf("%s: Bytes left the password: %q", name, b)
		}
	}
}

// leaks reports whether s holds the password in a recognisable form: whole, or its distinctive
// middle.
func leaks(s string) bool {
	return strings.Contains(s, hard) || strings.Contains(s, "4@x:y") || strings.Contains(s, "4%40x%3Ay") ||
		strings.Contains(s, `\d%4`)
}

// TestUnnamedPasswords: passwords no setting named are hidden where their shape gives them away.
func TestUnnamedPasswords(t *testing.T) {
	var r *Redactor
	for in, want := range map[string]string{
		"ALTER ROLE app PASSWORD 's3cr3t-1'":                       "ALTER ROLE app PASSWORD '" + Mask + "'",
		"CREATE USER x WITH ENCRYPTED password 'it''s'":            "CREATE USER x WITH ENCRYPTED password '" + Mask + "'",
		"EXECUTE 'ALTER ROLE app PASSWORD ''s3cr3t-2'''":           "EXECUTE 'ALTER ROLE app PASSWORD ''" + Mask + "'''",
		"dblink_connect('host=db password=s3cr3t-3 dbname=x')":     "dblink_connect('host=db password=" + Mask + " dbname=x')",
		"OPTIONS (user 'u', password 's3cr3t-4')":                  "OPTIONS (user 'u', password '" + Mask + "')",
		"using postgres://app:s3cr3t-5@db:5432/app?sslmode=verify": "using postgres://app:" + Mask + "@db:5432/app?sslmode=verify",
		"no secret at all: password is required":                   "no secret at all: password is required",
	} {
		if got := r.String(in); got != want {
			t.Errorf("%q:\n got %q\nwant %q", in, got, want)
		}
	}
}

// TestShortSecretsLeftAlone: a secret shorter than four bytes is not replaced as a string.
func TestShortSecretsLeftAlone(t *testing.T) {
	if got := New("ab").String("abc cab"); got != "abc cab" {
		t.Errorf("got %q", got)
	}
}

// TestWith adds secrets to a Redactor.
func TestWith(t *testing.T) {
	r := New("first-secret").With("second-secret")
	if got := r.String("first-secret second-secret"); got != Mask+" "+Mask {
		t.Errorf("got %q", got)
	}
}

func ExampleRedactor_String() {
	r := New("hunter22")
	fmt.Println(r.String(`connect to db:5432 as app failed: password "hunter22" rejected`))
	// Output: connect to db:5432 as app failed: password "********" rejected
}
