package alembic

import "errors"

// statement is one simple Python statement: the tokens of a logical line, or of one part of
// a line split by ';'.
type statement struct {
	toks []token
	top  bool  // at module level: the line starts at column 0
	err  error // the lexer gave up inside this statement
}

// splitStatements cuts src into statements. It stops at the first lexer error and records it
// on the statement it happened in.
func splitStatements(src []byte) []statement {
	l := newLexer(src)
	var out []statement
	var cur statement
	lineTop, afterSemi := false, false
	flush := func() {
		if len(cur.toks) > 0 || cur.err != nil {
			out = append(out, cur)
		}
		cur = statement{}
	}
	for {
		t := l.next()
		switch t.kind {
		case tokEOF:
			flush()
			return out
		case tokError:
			cur.err = errors.New(t.text)
			flush()
			return out
		case tokNewline, tokSemi:
			flush()
			afterSemi = t.kind == tokSemi
		default:
			if len(cur.toks) == 0 {
				if !afterSemi {
					lineTop = t.col == 0
				}
				cur.top = lineTop
			}
			cur.toks = append(cur.toks, t)
		}
	}
}

// assignment reports whether st assigns one of the header fields at module level, and returns
// the field and the tokens of the assigned value. An annotation without a value is not an
// assignment. A statement the lexer gave up in is returned with no value tokens.
func (st statement) assignment() (field string, value []token, ok bool) {
	if !st.top || len(st.toks) < 2 || st.toks[0].kind != tokName || !isField(st.toks[0].text) {
		return "", nil, false
	}
	field = st.toks[0].text
	switch op := st.toks[1]; {
	case op.kind == tokOp && op.text == "=":
		return field, st.toks[2:], true
	case op.kind == tokOp && op.text == ":":
		if i := indexAssign(st.toks[2:]); i >= 0 {
			return field, st.toks[2+i+1:], true
		}
		return field, nil, st.err != nil
	}
	return "", nil, false
}

func isField(name string) bool {
	switch name {
	case "revision", "down_revision", "branch_labels", "depends_on":
		return true
	}
	return false
}

// indexAssign finds the '=' outside brackets that ends an annotation.
func indexAssign(toks []token) int {
	depth := 0
	for i, t := range toks {
		if t.kind != tokOp {
			continue
		}
		switch t.text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth--
		case "=":
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
