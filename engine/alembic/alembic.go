// Package alembic reads the revision graph of an Alembic migration directory without Python,
// so schemagate can decide readiness for apps that migrate with Alembic (Open WebUI, for one).
//
// Revision files are Python modules; this package parses them as text and reads only their
// module-level revision, down_revision, branch_labels and depends_on assignments, whose values
// are string literals, None, or tuples and lists of strings. From those it builds the graph
// and answers which revisions are heads, which a database at some heads has applied, and which
// are still pending, in an order Alembic could apply them.
package alembic

import (
	"errors"
	"fmt"
)

// Revision is one Alembic revision file.
type Revision struct {
	ID            string   // revision
	DownRevisions []string // down_revision: none for a base, several for a merge
	BranchLabels  []string // branch_labels
	DependsOn     []string // depends_on: revision ids or branch labels
	File          string   // file name, for messages
}

func (r *Revision) String() string { return r.File }

// ParseError is a revision file whose header could not be read.
type ParseError struct {
	File  string
	Field string // the assignment that could not be read; empty when the file has no revision
	Err   error
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("alembic revision file %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("alembic revision file %s: cannot read %s: %v", e.File, e.Field, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ErrNoRevision is the cause of a ParseError for a file with no module-level revision
// assignment.
var ErrNoRevision = errors.New("no module-level revision assignment")

// ParseFile reads the header of the revision file name, whose content is src. Docstrings,
// comments and indented code are ignored; where a field is assigned twice, the last assignment
// counts, as in Python.
func ParseFile(name string, src []byte) (*Revision, error) {
	r := &Revision{File: name}
	found := false
	var lexErr error
	for _, st := range splitStatements(src) {
		field, toks, ok := st.assignment()
		if !ok {
			lexErr = firstErr(lexErr, st.err)
			continue
		}
		if err := r.set(field, st, toks); err != nil {
			return nil, &ParseError{File: name, Field: field, Err: err}
		}
		found = found || field == "revision"
	}
	if !found {
		err := ErrNoRevision
		if lexErr != nil {
			err = fmt.Errorf("%w (%v)", ErrNoRevision, lexErr)
		}
		return nil, &ParseError{File: name, Err: err}
	}
	return r, nil
}

// firstErr returns the first of two errors that is not nil.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (r *Revision) set(field string, st statement, toks []token) error {
	if st.err != nil {
		return st.err
	}
	v, err := parseValue(toks, st.toks[0].line)
	if err != nil {
		return err
	}
	for _, s := range v.strs {
		if s == "" {
			return fmt.Errorf("line %d: empty string", v.line)
		}
	}
	switch field {
	case "revision":
		if v.kind != valString {
			return fmt.Errorf("line %d: must be a single string", v.line)
		}
		r.ID = v.strs[0]
	case "down_revision":
		r.DownRevisions = v.list()
	case "branch_labels":
		r.BranchLabels = v.list()
	case "depends_on":
		r.DependsOn = v.list()
	}
	return nil
}
