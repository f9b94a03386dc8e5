package alembic

import (
	"bytes"
	"fmt"
	"strings"
)

type tokenKind int

const (
	tokEOF     tokenKind = iota
	tokNewline           // end of a logical line
	tokSemi              // ';' outside brackets: another statement on the same line
	tokName              // identifier or keyword
	tokString            // string literal; text is its value, prefix its lower-cased prefix
	tokOp                // bracket, ',', '.', or a run of operator characters such as '=' or '=='
	tokOther             // number or anything else
	tokError             // the lexer gave up; text says why
)

type token struct {
	kind   tokenKind
	text   string
	prefix string
	line   int // 1-based
	col    int // byte offset in the line; 0 for a statement at module level
}

// lexer splits Python source into just the tokens the header parser needs. It knows strings
// (triple-quoted ones included), comments, brackets and line structure; everything else is an
// opaque token.
type lexer struct {
	src       []byte
	pos       int
	line      int
	lineStart int
	opens     []token // brackets not closed yet
	done      bool
}

func newLexer(src []byte) *lexer {
	src = bytes.TrimPrefix(src, []byte("\ufeff"))
	return &lexer{src: src, line: 1}
}

func (l *lexer) tok(kind tokenKind, text string, start int) token {
	return token{kind: kind, text: text, line: l.line, col: start - l.lineStart}
}

func (l *lexer) fail(line int, format string, args ...any) token {
	l.done = true
	return token{kind: tokError, text: fmt.Sprintf("line %d: ", line) + fmt.Sprintf(format, args...), line: line}
}

func (l *lexer) newline() {
	l.pos++
	l.line++
	l.lineStart = l.pos
}

func (l *lexer) next() token {
	for !l.done && l.pos < len(l.src) {
		if t, ok := l.scan(); ok {
			return t
		}
	}
	if !l.done && len(l.opens) > 0 {
		open := l.opens[len(l.opens)-1]
		return l.fail(open.line, "%q is never closed", open.text)
	}
	l.done = true
	return token{kind: tokEOF, line: l.line}
}

// scan reads from l.pos; it reports false when it consumed only space, a comment or a
// newline inside brackets.
func (l *lexer) scan() (token, bool) {
	c := l.src[l.pos]
	switch {
	case c == '\n':
		t := l.tok(tokNewline, "", l.pos)
		l.newline()
		return t, len(l.opens) == 0
	case c == ' ' || c == '\t' || c == '\r' || c == '\f':
		l.pos++
	case c == '#':
		for l.pos < len(l.src) && l.src[l.pos] != '\n' {
			l.pos++
		}
	case c == '\\':
		l.pos++
		l.skipLineEnd()
	case c == '"' || c == '\'':
		return l.str(l.pos, ""), true
	case isIdentStart(c):
		return l.name(), true
	default:
		return l.punct(), true
	}
	return token{}, false
}

// skipLineEnd consumes the newline that follows a backslash continuation.
func (l *lexer) skipLineEnd() {
	if l.pos < len(l.src) && l.src[l.pos] == '\r' {
		l.pos++
	}
	if l.pos < len(l.src) && l.src[l.pos] == '\n' {
		l.newline()
	}
}

func (l *lexer) name() token {
	start := l.pos
	for l.pos < len(l.src) && isIdentPart(l.src[l.pos]) {
		l.pos++
	}
	word := string(l.src[start:l.pos])
	if l.pos < len(l.src) && (l.src[l.pos] == '"' || l.src[l.pos] == '\'') && isStringPrefix(word) {
		return l.str(start, strings.ToLower(word))
	}
	return l.tok(tokName, word, start)
}

func (l *lexer) punct() token {
	start := l.pos
	c := l.src[l.pos]
	l.pos++
	switch {
	case strings.IndexByte("([{", c) >= 0:
		t := l.tok(tokOp, string(c), start)
		l.opens = append(l.opens, t)
		return t
	case strings.IndexByte(")]}", c) >= 0:
		if len(l.opens) > 0 {
			l.opens = l.opens[:len(l.opens)-1]
		}
		return l.tok(tokOp, string(c), start)
	case c == ';' && len(l.opens) == 0:
		return l.tok(tokSemi, ";", start)
	case c == ',' || c == '.' || c == ';':
		return l.tok(tokOp, string(c), start)
	case isOpChar(c):
		for l.pos < len(l.src) && isOpChar(l.src[l.pos]) {
			l.pos++
		}
		return l.tok(tokOp, string(l.src[start:l.pos]), start)
	}
	for l.pos < len(l.src) && isOtherPart(l.src[l.pos]) {
		l.pos++
	}
	return l.tok(tokOther, string(l.src[start:l.pos]), start)
}

// str reads a string literal whose prefix starts at start and whose quote is at l.pos.
func (l *lexer) str(start int, prefix string) token {
	t := l.tok(tokString, "", start)
	t.prefix = prefix
	quote := l.src[l.pos]
	delim := []byte{quote}
	if l.pos+2 < len(l.src) && l.src[l.pos+1] == quote && l.src[l.pos+2] == quote {
		delim = []byte{quote, quote, quote}
	}
	l.pos += len(delim)
	bodyStart := l.pos
	for l.pos < len(l.src) {
		switch c := l.src[l.pos]; {
		case c == '\\':
			l.pos++
			if l.pos < len(l.src) && l.src[l.pos] == '\n' {
				l.newline()
			} else {
				l.pos++
			}
		case len(delim) == 1 && c == '\n':
			return l.fail(t.line, "unterminated string")
		case c == '\n':
			l.newline()
		case bytes.HasPrefix(l.src[l.pos:], delim):
			t.text = string(l.src[bodyStart:l.pos])
			l.pos += len(delim)
			if !strings.Contains(prefix, "r") {
				t.text = unescape(t.text)
			}
			return t
		default:
			l.pos++
		}
	}
	return l.fail(t.line, "unterminated string")
}

func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }

func isOpChar(c byte) bool { return strings.IndexByte("=<>!+-*/%&|^~@:", c) >= 0 }

func isOtherPart(c byte) bool {
	return c > ' ' && c != '#' && c != '"' && c != '\'' && c != '\\' &&
		strings.IndexByte("()[]{},;.", c) < 0 && !isOpChar(c)
}

// isStringPrefix reports whether word can prefix a Python string literal (r, u, b, f, t and
// their combinations).
func isStringPrefix(word string) bool {
	if len(word) > 2 {
		return false
	}
	for _, c := range strings.ToLower(word) {
		if !strings.ContainsRune("rubft", c) {
			return false
		}
	}
	return true
}

// unescape resolves the escapes a revision id could plausibly contain; Python keeps unknown
// escapes as they are, and so does this.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case '\\', '\'', '"':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '\n':
		default:
			b.WriteByte('\\')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
