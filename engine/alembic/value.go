package alembic

import "fmt"

// value is what a header field is assigned: None, a string, or a tuple or list of strings.
type value struct {
	kind valueKind
	strs []string
	line int
}

type valueKind int

const (
	valNone valueKind = iota
	valString
	valSeq
)

// list returns the value as the list Alembic makes of it: None and an empty sequence are no
// elements, a string is one.
func (v value) list() []string {
	if len(v.strs) == 0 {
		return nil
	}
	return v.strs
}

// valueParser reads the tokens right of '='. Its grammar is the small part of Python
// revision files use: value = expr {"," expr} [","]; expr = string {string} | None |
// "(" [elems] ")" | "[" [elems] "]".
type valueParser struct {
	toks []token
	i    int
	line int // where the value starts, for a value that is missing
}

func parseValue(toks []token, line int) (value, error) {
	p := &valueParser{toks: toks, line: line}
	first, err := p.expr()
	if err != nil || p.done() {
		return first, err
	}
	elems := []value{first}
	for !p.done() {
		if t := p.toks[p.i]; t.kind != tokOp || t.text != "," {
			return value{}, p.unexpected(t)
		}
		p.i++
		if p.done() {
			break
		}
		v, err := p.expr()
		if err != nil {
			return value{}, err
		}
		elems = append(elems, v)
	}
	return seqOf(first.line, elems)
}

func (p *valueParser) done() bool { return p.i >= len(p.toks) }

func (p *valueParser) expr() (value, error) {
	if p.done() {
		return value{}, fmt.Errorf("line %d: missing value", p.line)
	}
	switch t := p.toks[p.i]; {
	case t.kind == tokString:
		return p.strings()
	case t.kind == tokName && t.text == "None":
		p.i++
		return value{kind: valNone, line: t.line}, nil
	case t.kind == tokOp && (t.text == "(" || t.text == "["):
		return p.seq()
	default:
		return value{}, p.unexpected(t)
	}
}

// strings reads adjacent string literals, which Python joins into one.
func (p *valueParser) strings() (value, error) {
	v := value{kind: valString, strs: []string{""}, line: p.toks[p.i].line}
	for ; !p.done() && p.toks[p.i].kind == tokString; p.i++ {
		t := p.toks[p.i]
		if err := checkPrefix(t); err != nil {
			return value{}, err
		}
		v.strs[0] += t.text
	}
	return v, nil
}

func checkPrefix(t token) error {
	for _, c := range t.prefix {
		switch c {
		case 'f', 't':
			return fmt.Errorf("line %d: %s-strings are not supported, only plain string literals", t.line, t.prefix)
		case 'b':
			return fmt.Errorf("line %d: bytes literal %s%q is not a string", t.line, t.prefix, t.text)
		}
	}
	return nil
}

// seq reads a parenthesized or bracketed value: a tuple, a list, or a value in parentheses.
func (p *valueParser) seq() (value, error) {
	open := p.toks[p.i]
	closer := ")"
	if open.text == "[" {
		closer = "]"
	}
	p.i++
	var elems []value
	comma := false
	for {
		if p.done() {
			return value{}, fmt.Errorf("line %d: %q is never closed", open.line, open.text)
		}
		if t := p.toks[p.i]; t.kind == tokOp && t.text == closer {
			p.i++
			break
		}
		if len(elems) > 0 && !comma {
			return value{}, p.unexpected(p.toks[p.i])
		}
		v, err := p.expr()
		if err != nil {
			return value{}, err
		}
		elems = append(elems, v)
		comma = !p.done() && p.toks[p.i].kind == tokOp && p.toks[p.i].text == ","
		if comma {
			p.i++
		}
	}
	if open.text == "(" && len(elems) == 1 && !comma {
		return elems[0], nil
	}
	return seqOf(open.line, elems)
}

func seqOf(line int, elems []value) (value, error) {
	v := value{kind: valSeq, strs: []string{}, line: line}
	for _, e := range elems {
		if e.kind != valString {
			return value{}, fmt.Errorf("line %d: a tuple or list may hold only strings", e.line)
		}
		v.strs = append(v.strs, e.strs[0])
	}
	return v, nil
}

func (p *valueParser) unexpected(t token) error {
	return fmt.Errorf("line %d: unexpected %q; want a string, None, or a tuple or list of strings", t.line, t.text)
}
