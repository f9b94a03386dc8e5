package alembic

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseDirProject(t *testing.T) {
	g, err := ParseDir(os.DirFS("testdata"), "branches")
	if err != nil {
		t.Fatalf("ParseDir: %v", err)
	}
	if heads := g.Heads(); !slices.Equal(heads, []string{"4000", "5000"}) {
		t.Errorf("Heads() = %v, want [4000 5000]", heads)
	}
	if ids := idsOf(g.Revisions()); !slices.Equal(ids, []string{"1000", "2a00", "2b00", "3000", "4000", "5000"}) {
		t.Errorf("Revisions() = %v", ids)
	}
	if r, _ := g.Revision("2a00"); !slices.Equal(r.DownRevisions, []string{"1000"}) {
		t.Errorf("2a00 revises %v, want [1000] (the docstring says 0000)", r.DownRevisions)
	}
	if r, _ := g.Revision("5000"); r.File != "extra/5000_after_merge.py" {
		t.Errorf("5000 is in %q, want extra/5000_after_merge.py", r.File)
	}
	checkQuery(t, g, query{
		db:      []string{"2b00"},
		applied: []string{"1000", "2b00"},
		pending: []string{"2a00", "3000", "4000", "5000"},
	})
	checkQuery(t, g, query{db: []string{"4000"}, applied: []string{"1000", "2a00", "4000"}, pending: []string{"2b00", "3000", "5000"}})
}

func TestParseDirSkips(t *testing.T) {
	broken := &fstest.MapFile{Data: []byte("revision = compute()\n")}
	fsys := fstest.MapFS{
		"versions/a.py":                 {Data: []byte("revision = 'a'\ndown_revision = None\n")},
		"versions/sub/b.py":             {Data: []byte("revision = 'b'\ndown_revision = 'a'\n")},
		"versions/__init__.py":          broken,
		"versions/.#a.py":               broken,
		"versions/__pycache__/stale.py": broken,
		"versions/a.cpython-312.pyc":    broken,
		"versions/README":               broken,
		"other/c.py":                    broken,
	}
	g, err := ParseDir(fsys, "versions")
	if err != nil {
		t.Fatalf("ParseDir: %v", err)
	}
	if ids := idsOf(g.Revisions()); !slices.Equal(ids, []string{"a", "b"}) {
		t.Errorf("Revisions() = %v, want [a b]", ids)
	}
}

func TestParseDirErrors(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{
			name: "file that does not parse",
			fsys: fstest.MapFS{"v/a.py": {Data: []byte("revision = 'a'\n")}, "v/sub/bad.py": {Data: []byte("revision = compute()\n")}},
			want: "alembic revision file sub/bad.py: cannot read revision",
		},
		{
			name: "duplicate id",
			fsys: fstest.MapFS{"v/a.py": {Data: []byte("revision = 'a'\n")}, "v/b.py": {Data: []byte("revision = 'a'\n")}},
			want: "alembic revision file b.py: revision a is also in a.py",
		},
		{
			name: "unknown down_revision",
			fsys: fstest.MapFS{"v/a.py": {Data: []byte("revision = 'a'\ndown_revision = 'gone'\n")}},
			want: "alembic revision file a.py: down_revision gone",
		},
		{
			name: "missing directory",
			fsys: fstest.MapFS{"other/a.py": {Data: []byte("revision = 'a'\n")}},
			want: "read alembic versions v",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDir(tt.fsys, "v")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseDir error = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestParseDirUnreadableFile(t *testing.T) {
	fsys := failingFS{MapFS: fstest.MapFS{"v/a.py": {Data: []byte("revision = 'a'\n")}}}
	_, err := ParseDir(fsys, "v")
	if !errors.Is(err, fs.ErrPermission) || !strings.HasPrefix(err.Error(), "alembic revision file a.py: ") {
		t.Errorf("ParseDir error = %v, want a permission error naming a.py", err)
	}
}

// failingFS lists its files but cannot read any.
type failingFS struct{ fstest.MapFS }

func (f failingFS) ReadFile(name string) ([]byte, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
}
