package alembic

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// rev is a revision for graph tests; its file is named after its id.
func rev(id string, down ...string) *Revision {
	return &Revision{ID: id, DownRevisions: down, File: id + "_m.py"}
}

func labelled(r *Revision, labels ...string) *Revision {
	r.BranchLabels = labels
	return r
}

func depending(r *Revision, on ...string) *Revision {
	r.DependsOn = on
	return r
}

// query is a database at db heads, with what it has applied and what is pending, in order.
type query struct {
	db      []string
	applied []string // sorted
	pending []string
}

func TestGraph(t *testing.T) {
	tests := []struct {
		name    string
		revs    []*Revision
		heads   []string
		queries []query
	}{
		{
			name:  "linear chain, applied in chain order rather than id order",
			revs:  []*Revision{rev("a3", "b2"), rev("b2", "c1"), rev("c1")},
			heads: []string{"a3"},
			queries: []query{
				{db: nil, applied: nil, pending: []string{"c1", "b2", "a3"}},
				{db: []string{"b2"}, applied: []string{"b2", "c1"}, pending: []string{"a3"}},
				{db: []string{"a3"}, applied: []string{"a3", "b2", "c1"}, pending: nil},
			},
		},
		{
			name:  "branch with two heads",
			revs:  []*Revision{rev("0"), rev("x", "0"), rev("y", "0")},
			heads: []string{"x", "y"},
			queries: []query{
				{db: nil, pending: []string{"0", "x", "y"}},
				{db: []string{"x"}, applied: []string{"0", "x"}, pending: []string{"y"}},
				{db: []string{"y", "x"}, applied: []string{"0", "x", "y"}, pending: nil},
			},
		},
		{
			name:  "branches of unequal length: ready revisions taken by id",
			revs:  []*Revision{rev("0"), rev("x", "0"), rev("y", "0"), rev("a", "x")},
			heads: []string{"a", "y"},
			queries: []query{
				{db: nil, pending: []string{"0", "x", "a", "y"}},
			},
		},
		{
			name:  "merge joins the branches back to one head",
			revs:  []*Revision{rev("0"), rev("x", "0"), rev("y", "0"), rev("am", "x", "y"), rev("n", "am")},
			heads: []string{"n"},
			queries: []query{
				{db: nil, pending: []string{"0", "x", "y", "am", "n"}},
				{db: []string{"x"}, applied: []string{"0", "x"}, pending: []string{"y", "am", "n"}},
				{db: []string{"y"}, applied: []string{"0", "y"}, pending: []string{"x", "am", "n"}},
				{db: []string{"x", "y"}, applied: []string{"0", "x", "y"}, pending: []string{"am", "n"}},
				{db: []string{"am"}, applied: []string{"0", "am", "x", "y"}, pending: []string{"n"}},
			},
		},
		{
			name:  "depends_on orders a second base after what it depends on; both stay heads",
			revs:  []*Revision{rev("a1"), rev("z1", "a1"), depending(rev("d1"), "z1")},
			heads: []string{"d1", "z1"},
			queries: []query{
				{db: nil, pending: []string{"a1", "z1", "d1"}},
				{db: []string{"a1"}, applied: []string{"a1"}, pending: []string{"z1", "d1"}},
				{db: []string{"d1"}, applied: []string{"a1", "d1", "z1"}, pending: nil},
			},
		},
		{
			name:  "depends_on a branch label",
			revs:  []*Revision{rev("a1"), labelled(rev("z1", "a1"), "billing"), depending(rev("d1"), "billing")},
			heads: []string{"d1", "z1"},
			queries: []query{
				{db: nil, pending: []string{"a1", "z1", "d1"}},
				{db: []string{"d1"}, applied: []string{"a1", "d1", "z1"}, pending: nil},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := NewGraph(tt.revs...)
			if err != nil {
				t.Fatalf("NewGraph: %v", err)
			}
			if got := g.Heads(); !slices.Equal(got, tt.heads) {
				t.Errorf("Heads() = %v, want %v", got, tt.heads)
			}
			for _, q := range tt.queries {
				checkQuery(t, g, q)
			}
		})
	}
}

func checkQuery(t *testing.T, g *Graph, q query) {
	t.Helper()
	applied, err := g.Applied(q.db)
	if err != nil {
		t.Fatalf("Applied(%v): %v", q.db, err)
	}
	var got []string
	for id := range applied {
		got = append(got, id)
	}
	slices.Sort(got)
	if !slices.Equal(got, q.applied) {
		t.Errorf("Applied(%v) = %v, want %v", q.db, got, q.applied)
	}
	pending, err := g.Pending(q.db)
	if err != nil {
		t.Fatalf("Pending(%v): %v", q.db, err)
	}
	if ids := idsOf(pending); !slices.Equal(ids, q.pending) {
		t.Errorf("Pending(%v) = %v, want %v", q.db, ids, q.pending)
	}
}

func idsOf(revs []*Revision) []string {
	var ids []string
	for _, r := range revs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestNewGraphErrors(t *testing.T) {
	tests := []struct {
		name  string
		revs  []*Revision
		err   error
		names []string // what the message must name: files first
	}{
		{"duplicate id", []*Revision{rev("0"), {ID: "0", File: "copy.py"}}, ErrDuplicate, []string{"copy.py", "0_m.py"}},
		{"duplicate branch label", []*Revision{labelled(rev("0"), "core"), labelled(rev("1", "0"), "core")}, ErrDuplicate, []string{"1_m.py", "0_m.py", "core"}},
		{"branch label that is a revision id", []*Revision{rev("0"), labelled(rev("1", "0"), "0")}, ErrDuplicate, []string{"1_m.py"}},
		{"unknown down_revision", []*Revision{rev("0"), rev("1", "zz")}, ErrUnknownReference, []string{"1_m.py", "down_revision zz"}},
		{"unknown depends_on", []*Revision{rev("0"), depending(rev("1", "0"), "zz")}, ErrUnknownReference, []string{"1_m.py", "depends_on zz"}},
		{"down_revision naming a branch label", []*Revision{labelled(rev("0"), "core"), rev("1", "core")}, ErrUnknownReference, []string{"1_m.py"}},
		{"cycle", []*Revision{rev("0"), rev("a", "b"), rev("b", "a")}, ErrCycle, []string{"a_m.py", "a -> b -> a"}},
		{"cycle through depends_on", []*Revision{rev("a"), depending(rev("b", "a"), "c"), rev("c", "b")}, ErrCycle, []string{"b_m.py", "b -> c -> b"}},
		{"own down_revision", []*Revision{rev("a", "a")}, ErrCycle, []string{"a_m.py", "a -> a"}},
		{"no id", []*Revision{{File: "empty.py"}}, ErrNoRevision, []string{"empty.py"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGraph(tt.revs...)
			if !errors.Is(err, tt.err) {
				t.Fatalf("NewGraph error = %v, want %v", err, tt.err)
			}
			if !strings.HasPrefix(err.Error(), "alembic revision file "+tt.names[0]+": ") {
				t.Errorf("error %q does not start by naming %s", err, tt.names[0])
			}
			for _, n := range tt.names[1:] {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
		})
	}
}

func TestUnknownDatabaseHeads(t *testing.T) {
	g, err := NewGraph(rev("0"), rev("1", "0"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Pending([]string{"zz", "1", "yy", "zz"})
	var ue *UnknownRevisionError
	if !errors.As(err, &ue) {
		t.Fatalf("Pending error = %v, want an *UnknownRevisionError", err)
	}
	if want := []string{"yy", "zz"}; !slices.Equal(ue.IDs, want) {
		t.Errorf("UnknownRevisionError.IDs = %v, want %v", ue.IDs, want)
	}
	if _, err := g.Applied([]string{"yy"}); !errors.As(err, &ue) || err.Error() != "unknown alembic revision yy" {
		t.Errorf("Applied error = %v, want unknown alembic revision yy", err)
	}
}

func TestRevisionLookup(t *testing.T) {
	g, err := NewGraph(rev("b", "a"), rev("a"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := g.Revision("b"); !ok || r.File != "b_m.py" {
		t.Errorf("Revision(b) = %v, %v", r, ok)
	}
	if _, ok := g.Revision("c"); ok {
		t.Error("Revision(c) found")
	}
	if ids := idsOf(g.Revisions()); !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("Revisions() = %v, want [a b]", ids)
	}
}
