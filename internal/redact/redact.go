// Package redact keeps secrets out of everything schemagate writes: logs, the journal, the
// announcements waiters receive, the documents it serves, and what `status` prints.
//
// A Redactor is built once from every secret the process knows (the database password, the
// Raft secret, the values of secret-looking settings it passes on) and replaces each of them,
// in every spelling it may take on its way out: as given, percent-encoded the ways URLs
// encode it, escaped once or twice for JSON, quoted as Go quotes strings. It also hides, in any
// text, what is recognisably a password although no setting named it: the password of a URL
// (scheme://user:password@host), a password=… pair of a connection string, and the literal of
// SQL's PASSWORD '…' (ALTER ROLE, CREATE USER, user mappings).
package redact

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Mask replaces what is hidden.
const Mask = "********"

// minLength is the shortest secret replaced as a string: replacing shorter ones would garble
// ordinary text while protecting little.
const minLength = 4

// Redactor replaces secrets. The zero value and nil hide only what the patterns recognise.
type Redactor struct {
	secrets []string
	forms   [][]byte // every spelling of every secret, longest first
}

// New returns a Redactor for secrets.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		if len(s) < minLength {
			continue
		}
		for _, f := range spellings(s) {
			if len(f) >= minLength && !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	// Longest first: a spelling that contains another is replaced whole.
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	r := &Redactor{secrets: secrets}
	for _, f := range forms {
		r.forms = append(r.forms, []byte(f))
	}
	return r
}

// With returns a Redactor that also hides secrets.
func (r *Redactor) With(secrets ...string) *Redactor {
	var all []string
	if r != nil {
		all = slices.Clone(r.secrets)
	}
	return New(append(all, secrets...)...)
}

// spellings lists the ways s may be written out: as is, percent-encoded (query, path, user
// info, every byte), then each of those escaped for JSON (once, and again for JSON inside
// JSON, with and without HTML escaping) and quoted as Go quotes.
func spellings(s string) []string {
	base := []string{s, url.QueryEscape(s), url.PathEscape(s), strings.TrimPrefix(url.UserPassword("", s).String(), ":"),
		percentAll(s, "0123456789ABCDEF"), percentAll(s, "0123456789abcdef")}
	var out []string
	for _, b := range base {
		out = append(out, b, goQuoted(b))
		for _, j := range jsonEscaped(b) {
			out = append(out, j)
			out = append(out, jsonEscaped(j)...)
		}
	}
	return out
}

// percentAll percent-encodes every byte of s that is not a letter or digit, with hex digits
// from digits.
func percentAll(s, digits string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}

// jsonEscaped is s as it appears inside a JSON string, with and without HTML escaping.
func jsonEscaped(s string) []string {
	var out []string
	for _, html := range []bool{false, true} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(s) == nil {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(b.String(), "\n"), `"`), `"`))
		}
	}
	return out
}

// goQuoted is s as strconv.Quote writes it, without the quotes.
func goQuoted(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// Patterns of passwords no setting named.
var (
	// scheme://user:password@host — the password part.
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'"]*:)([^\s@/'"]+)(@)`)
	// password=value in a connection string, quoted or not.
	conninfoPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"&;,)]+)`)
	// SQL: PASSWORD 'literal' (also inside a quoted statement, where the quotes are doubled),
	// and user mapping options: password 'literal'.
	sqlPassword = regexp.MustCompile(`(?i)(\bpassword\s+)(''(?:[^']|'''')*''|'(?:[^']|'')*')`)
)

// String returns s with every secret and recognisable password replaced by Mask.
func (r *Redactor) String(s string) string {
	if r != nil {
		for _, f := range r.forms {
			if strings.Contains(s, string(f)) {
				s = strings.ReplaceAll(s, string(f), Mask)
			}
		}
	}
	s = urlPassword.ReplaceAllString(s, "${1}"+Mask+"${3}")
	s = conninfoPassword.ReplaceAllString(s, "${1}"+Mask)
	return sqlPassword.ReplaceAllStringFunc(s, func(m string) string {
		sub := sqlPassword.FindStringSubmatch(m)
		quote := "'"
		if strings.HasPrefix(sub[2], "''") {
			quote = "''" // the statement is itself inside a string literal
		}
		return sub[1] + quote + Mask + quote
	})
}

// Bytes is String for a byte slice; it returns b itself when nothing is hidden.
func (r *Redactor) Bytes(b []byte) []byte {
	out := b
	if r != nil {
		for _, f := range r.forms {
			if bytes.Contains(out, f) {
				out = bytes.ReplaceAll(out, f, []byte(Mask))
			}
		}
	}
	if urlPassword.Match(out) || conninfoPassword.Match(out) || sqlPassword.Match(out) {
		out = []byte(r.String(string(out)))
	}
	return out
}

// Error returns err's message, redacted.
func (r *Redactor) Error(err error) string {
	if err == nil {
		return ""
	}
	return r.String(err.Error())
}
