package alembic

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Errors ParseDir and NewGraph wrap, with the file that has the problem.
var (
	// ErrDuplicate is a revision id or branch label that two revisions declare.
	ErrDuplicate = errors.New("duplicate revision id or branch label")
	// ErrUnknownReference is a down_revision or depends_on naming no revision of the graph.
	ErrUnknownReference = errors.New("reference to an unknown revision")
	// ErrCycle is a revision that is its own ancestor.
	ErrCycle = errors.New("revision cycle")
)

// UnknownRevisionError is a database revision the graph does not know: the database is ahead
// of this set of revision files, or on a branch they do not have.
type UnknownRevisionError struct {
	IDs []string // sorted
}

func (e *UnknownRevisionError) Error() string {
	if len(e.IDs) == 1 {
		return fmt.Sprintf("unknown alembic revision %s", e.IDs[0])
	}
	return fmt.Sprintf("unknown alembic revisions %s", strings.Join(e.IDs, ", "))
}

// Graph is the revision graph of a set of revision files.
type Graph struct {
	revs     map[string]*Revision
	parents  map[string][]string // down_revisions, then depends_on resolved to revision ids
	children map[string][]string // the reverse of parents, sorted
}

// ParseDir reads every *.py file in dir of fsys and its subdirectories, except __init__.py,
// editor lock files (.#*) and anything under __pycache__, and builds their graph. A file
// that cannot be read or parsed (*ParseError), a duplicate revision id or branch label, a
// down_revision or depends_on naming no revision, or a cycle is an error naming the file.
func ParseDir(fsys fs.FS, dir string) (*Graph, error) {
	var revs []*Revision
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return fmt.Errorf("read alembic versions %s: %w", p, err)
		case d.IsDir() && d.Name() == "__pycache__":
			return fs.SkipDir
		case d.IsDir() || !isRevisionFile(d.Name()):
			return nil
		}
		name := relPath(dir, p)
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("alembic revision file %s: %w", name, err)
		}
		r, err := ParseFile(name, src)
		if err != nil {
			return err
		}
		revs = append(revs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return NewGraph(revs...)
}

func isRevisionFile(name string) bool {
	return path.Ext(name) == ".py" && name != "__init__.py" && !strings.HasPrefix(name, ".#")
}

func relPath(dir, p string) string {
	if dir == "." {
		return p
	}
	return strings.TrimPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// NewGraph builds the graph of revs. Every down_revision must name a revision of revs, every
// depends_on a revision or a branch label, and no revision may be its own ancestor. The graph
// keeps revs: they must not change afterwards.
func NewGraph(revs ...*Revision) (*Graph, error) {
	g := &Graph{
		revs:     make(map[string]*Revision, len(revs)),
		parents:  make(map[string][]string, len(revs)),
		children: make(map[string][]string, len(revs)),
	}
	labels, err := g.index(revs)
	if err != nil {
		return nil, err
	}
	for _, r := range revs {
		if err := g.link(r, labels); err != nil {
			return nil, err
		}
	}
	for _, c := range g.children {
		slices.Sort(c)
	}
	return g, g.checkCycles()
}

// index fills g.revs and returns the branch labels, each with the revision declaring it.
func (g *Graph) index(revs []*Revision) (map[string]*Revision, error) {
	for _, r := range revs {
		if r.ID == "" {
			return nil, fmt.Errorf("alembic revision file %s: %w", r.File, ErrNoRevision)
		}
		if prev, dup := g.revs[r.ID]; dup {
			return nil, fmt.Errorf("alembic revision file %s: revision %s is also in %s: %w", r.File, r.ID, prev.File, ErrDuplicate)
		}
		g.revs[r.ID] = r
	}
	labels := make(map[string]*Revision)
	for _, r := range revs {
		for _, l := range r.BranchLabels {
			prev, dup := labels[l]
			if rev, isID := g.revs[l]; isID {
				prev, dup = rev, true
			}
			if dup {
				return nil, fmt.Errorf("alembic revision file %s: branch label %s is also used by %s: %w", r.File, l, prev.File, ErrDuplicate)
			}
			labels[l] = r
		}
	}
	return labels, nil
}

func (g *Graph) link(r *Revision, labels map[string]*Revision) error {
	for _, d := range r.DownRevisions {
		if _, ok := g.revs[d]; !ok {
			return fmt.Errorf("alembic revision file %s: down_revision %s: %w", r.File, d, ErrUnknownReference)
		}
		g.addEdge(r.ID, d)
	}
	for _, d := range r.DependsOn {
		if l, ok := labels[d]; ok {
			d = l.ID
		}
		if _, ok := g.revs[d]; !ok {
			return fmt.Errorf("alembic revision file %s: depends_on %s: %w", r.File, d, ErrUnknownReference)
		}
		g.addEdge(r.ID, d)
	}
	return nil
}

func (g *Graph) addEdge(child, parent string) {
	if slices.Contains(g.parents[child], parent) {
		return
	}
	g.parents[child] = append(g.parents[child], parent)
	g.children[parent] = append(g.children[parent], child)
}

// checkCycles walks every revision's ancestry depth first and reports the first cycle found.
func (g *Graph) checkCycles() error {
	const (
		visiting = 1
		done     = 2
	)
	state := make(map[string]int, len(g.revs))
	var stack []string
	var visit func(id string) error
	visit = func(id string) error {
		switch state[id] {
		case done:
			return nil
		case visiting:
			cycle := slices.Concat(stack[slices.Index(stack, id):], []string{id})
			return fmt.Errorf("alembic revision file %s: %s: %w", g.revs[id].File, strings.Join(cycle, " -> "), ErrCycle)
		}
		state[id] = visiting
		stack = append(stack, id)
		for _, p := range g.parents[id] {
			if err := visit(p); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		return nil
	}
	for _, id := range g.ids() {
		if err := visit(id); err != nil {
			return err
		}
	}
	return nil
}

// ids returns every revision id, sorted.
func (g *Graph) ids() []string {
	ids := make([]string, 0, len(g.revs))
	for id := range g.revs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
