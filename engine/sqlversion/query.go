package sqlversion

import (
	"errors"
	"fmt"
	"strings"
)

// writes are the words that make a SELECT or WITH statement write: a data-modifying WITH
// (INSERT, UPDATE, DELETE, MERGE), SELECT … INTO (creates a table), and FOR UPDATE (locks rows).
var writes = map[string]bool{"INSERT": true, "UPDATE": true, "DELETE": true, "MERGE": true, "INTO": true}

// checkQuery refuses a query that is not one SELECT (or WITH … SELECT) statement, or that holds
// a word that writes. Words in strings, quoted names and comments do not count. It is a first
// line: the query also runs in a read-only transaction, which catches writes hidden in functions.
func checkQuery(q string) error {
	words, err := scan(q)
	if err != nil {
		return fmt.Errorf("version-query: %w", err)
	}
	if len(words) == 0 || (words[0] != "SELECT" && words[0] != "WITH") {
		return fmt.Errorf("version-query: must be one SELECT (or WITH … SELECT) statement, got %q", abbreviate(q))
	}
	for _, w := range words {
		if writes[w] {
			return fmt.Errorf("version-query: must only read, but it contains %s "+
				"(a WITH that modifies data, SELECT … INTO and FOR UPDATE write); "+
				`quote a column of that name ("%s")`, w, strings.ToLower(w))
		}
	}
	return nil
}

// scan returns the words of q outside strings, quoted names and comments, in upper case. A
// semicolon may only end the statement.
func scan(q string) ([]string, error) {
	var words []string
	s := &scanner{q: q}
	for s.i < len(q) {
		c := q[s.i]
		switch {
		case c == '-' && s.peek(1) == '-':
			s.skipLine()
		case c == '/' && s.peek(1) == '*':
			if err := s.skipComment(); err != nil {
				return nil, err
			}
		case c == '\'':
			if err := s.skipQuoted('\'', false); err != nil {
				return nil, err
			}
		case c == '"' || c == '`':
			if err := s.skipQuoted(c, false); err != nil {
				return nil, err
			}
		case c == '$' && s.dollarTag() != "":
			if err := s.skipDollar(); err != nil {
				return nil, err
			}
		case c == ';':
			s.i++
			if rest, _ := scan(q[s.i:]); len(rest) > 0 {
				return nil, errors.New("more than one statement; give one SELECT")
			}
			return words, nil
		case isWordStart(c):
			w := s.word()
			if (w == "E" || w == "e") && s.peek(0) == '\'' {
				if err := s.skipQuoted('\'', true); err != nil {
					return nil, err
				}
				continue
			}
			words = append(words, strings.ToUpper(w))
		default:
			s.i++
		}
	}
	return words, nil
}

type scanner struct {
	q string
	i int
}

func (s *scanner) peek(n int) byte {
	if s.i+n < len(s.q) {
		return s.q[s.i+n]
	}
	return 0
}

func (s *scanner) skipLine() {
	for s.i < len(s.q) && s.q[s.i] != '\n' {
		s.i++
	}
}

// skipComment skips a /* */ comment; PostgreSQL nests them.
func (s *scanner) skipComment() error {
	depth := 0
	for s.i < len(s.q) {
		switch {
		case s.q[s.i] == '/' && s.peek(1) == '*':
			depth++
			s.i += 2
		case s.q[s.i] == '*' && s.peek(1) == '/':
			depth--
			s.i += 2
			if depth == 0 {
				return nil
			}
		default:
			s.i++
		}
	}
	return errors.New("a /* comment is not closed")
}

// skipQuoted skips a string or quoted name closed by quote; a doubled quote stands for itself,
// and with backslashes (E'…') so does \'.
func (s *scanner) skipQuoted(quote byte, backslashes bool) error {
	s.i++
	for s.i < len(s.q) {
		c := s.q[s.i]
		switch {
		case backslashes && c == '\\':
			s.i += 2
		case c == quote && s.peek(1) == quote:
			s.i += 2
		case c == quote:
			s.i++
			return nil
		default:
			s.i++
		}
	}
	return fmt.Errorf("a %c is not closed", quote)
}

// dollarTag returns the $tag$ (or $$) opening a dollar-quoted string at the scanner's position,
// or "" when there is none ($1 is a parameter).
func (s *scanner) dollarTag() string {
	for j := s.i + 1; j < len(s.q); j++ {
		c := s.q[j]
		switch {
		case c == '$':
			return s.q[s.i : j+1]
		case !isWordStart(c) && (j == s.i+1 || !isDigit(c)):
			return ""
		}
	}
	return ""
}

func (s *scanner) skipDollar() error {
	tag := s.dollarTag()
	end := strings.Index(s.q[s.i+len(tag):], tag)
	if end < 0 {
		return fmt.Errorf("a %s string is not closed", tag)
	}
	s.i += len(tag) + end + len(tag)
	return nil
}

func (s *scanner) word() string {
	start := s.i
	for s.i < len(s.q) && (isWordStart(s.q[s.i]) || isDigit(s.q[s.i]) || s.q[s.i] == '$') {
		s.i++
	}
	return s.q[start:s.i]
}

func isWordStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}
