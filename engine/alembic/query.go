package alembic

import (
	"slices"
)

// Revision returns the revision with the given id.
func (g *Graph) Revision(id string) (*Revision, bool) {
	r, ok := g.revs[id]
	return r, ok
}

// Revisions returns every revision, sorted by id.
func (g *Graph) Revisions() []*Revision {
	out := make([]*Revision, 0, len(g.revs))
	for _, id := range g.ids() {
		out = append(out, g.revs[id])
	}
	return out
}

// Heads returns, sorted, the revisions no other revision names as its down_revision: what
// `alembic upgrade heads` leaves the database at. A revision others only depend on is still
// a head.
func (g *Graph) Heads() []string {
	below := make(map[string]bool, len(g.revs))
	for _, r := range g.revs {
		for _, d := range r.DownRevisions {
			below[d] = true
		}
	}
	var heads []string
	for _, id := range g.ids() {
		if !below[id] {
			heads = append(heads, id)
		}
	}
	return heads
}

// Applied returns every revision at or below heads: the heads and all their ancestors through
// down_revision and depends_on. A head the graph does not know is an *UnknownRevisionError.
func (g *Graph) Applied(heads []string) (map[string]bool, error) {
	var unknown []string
	for _, h := range heads {
		if _, ok := g.revs[h]; !ok && !slices.Contains(unknown, h) {
			unknown = append(unknown, h)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, &UnknownRevisionError{IDs: unknown}
	}
	applied := make(map[string]bool, len(g.revs))
	todo := slices.Clone(heads)
	for len(todo) > 0 {
		id := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if !applied[id] {
			applied[id] = true
			todo = append(todo, g.parents[id]...)
		}
	}
	return applied, nil
}

// Pending returns the revisions a database at dbHeads has not applied, in an order Alembic
// could apply them: every revision after its down_revisions and depends_on, ties broken by
// id. No dbHeads is a database without revisions. A db head the graph does not know is an
// *UnknownRevisionError: the database is ahead of these files or diverged from them.
func (g *Graph) Pending(dbHeads []string) ([]*Revision, error) {
	applied, err := g.Applied(dbHeads)
	if err != nil {
		return nil, err
	}
	waiting := make(map[string]int) // pending revision -> parents not yet ordered
	var ready []string
	for _, id := range g.ids() {
		if applied[id] {
			continue
		}
		for _, p := range g.parents[id] {
			if !applied[p] {
				waiting[id]++
			}
		}
		if waiting[id] == 0 {
			ready = append(ready, id)
		}
	}
	return g.order(ready, waiting), nil
}

// order sorts the pending revisions topologically (Kahn's algorithm), always taking the
// smallest ready id. ready must be sorted.
func (g *Graph) order(ready []string, waiting map[string]int) []*Revision {
	var out []*Revision
	for len(ready) > 0 {
		id := ready[0]
		ready = ready[1:]
		out = append(out, g.revs[id])
		for _, c := range g.children[id] {
			// c is pending too: what is applied has its ancestors applied.
			if waiting[c]--; waiting[c] == 0 {
				i, _ := slices.BinarySearch(ready, c)
				ready = slices.Insert(ready, i, c)
			}
		}
	}
	return out
}
