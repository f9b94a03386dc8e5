package sqlite

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParse: the path of a SQLite URL is percent-decoded, as in any URL; a # (which would start
// a fragment) and a bad escape are refused. Slashes mean what the URL's dialect means by them.
func TestParse(t *testing.T) {
	t.Chdir("/") // sqlite:///x is then one file for every dialect
	for _, tc := range []struct{ url, path string }{
		{"sqlite:///data/app.db", "/data/app.db"},
		{"sqlite:////data/app.db", "/data/app.db"},
		{"sqlite://data/app.db", "data/app.db"},
		{"sqlite:data/app.db", "data/app.db"},
		{"sqlite3:////data/app.db?_pragma=journal_mode(WAL)", "/data/app.db"},
		{"file:/data/app.db", "/data/app.db"},
		{"file:///data/app.db", "/data/app.db"},
		{"sqlite+pysqlite:///data/app.db", "data/app.db"},
		{"sqlite+aiosqlite:////data/app.db", "/data/app.db"},
		{"sqlite:////data/my%20app.db", "/data/my app.db"},
		{"sqlite:////data/app%231.db", "/data/app#1.db"},
		{"sqlite:////data/100%25.db", "/data/100%.db"},
		{"sqlite:////data/what%3F.db", "/data/what?.db"},
		{"sqlite:////data/a+b.db", "/data/a+b.db"},
		{"sqlite:////data/caf%C3%A9.db", "/data/café.db"},
	} {
		loc, err := Parse(tc.url)
		if err != nil || loc.Path != tc.path || loc.Note != "" {
			t.Errorf("Parse(%q) = %q (%q), %v; want %q", tc.url, loc.Path, loc.Note, err, tc.path)
		}
	}
	for _, tc := range []struct{ url, want string }{
		{"sqlite:////data/app#1.db", "%23"},
		{"sqlite:////data/app.db#frag", "%23"},
		{"sqlite:////data/app%zz.db", "escape"},
		{"sqlite:////data/app%00.db", "NUL"},
		{"sqlite://", "no SQLite file"},
		{"sqlite://:memory:", "in-memory"},
		{"sqlite+pysqlite://", "must be followed by"},
		{"sqlite+pysqlite:data.db", "must be followed by"},
	} {
		if _, err := Parse(tc.url); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v; want an error containing %q", tc.url, err, tc.want)
		}
	}
}

// TestThreeSlashes: sqlite:///data/app.db is /data/app.db for most tools and data/app.db for
// SQLAlchemy. Away from /, the reading whose file (or, before the first run, whose directory)
// exists is taken, saying so; where nothing tells them apart, the URL is refused with both.
func TestThreeSlashes(t *testing.T) {
	root := t.TempDir() // stands for /, holding an absolute reading's file
	wd := t.TempDir()
	t.Chdir(wd)
	abs := filepath.Join(root, "data", "app.db")
	rel := filepath.Join(wd, strings.TrimPrefix(abs, "/"))
	u := "sqlite://" + abs // three slashes

	if _, err := Parse(u); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("neither directory exists: %v; want a refusal", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		t.Fatal(err)
	}
	if loc, err := Parse(u); err != nil || loc.Path != abs || !strings.Contains(loc.Note, "SQLAlchemy would read") {
		t.Errorf("only the absolute directory exists: %q (%q), %v; want %q", loc.Path, loc.Note, err, abs)
	}
	if err := os.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Parse(u)
	if err == nil || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), abs) ||
		!strings.Contains(err.Error(), rel) {
		t.Errorf("both directories exist: %v; want a refusal naming both readings", err)
	}
	if err := os.WriteFile(rel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if loc, err := Parse(u); err != nil || loc.Path != rel || !strings.Contains(loc.Note, "as SQLAlchemy does") {
		t.Errorf("only the relative file exists: %q (%q), %v; want %q", loc.Path, loc.Note, err, rel)
	}
	if err := os.WriteFile(abs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(u); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("both files exist: %v; want a refusal", err)
	}
}

// TestOpenNamesTheParsedFile: the driver opens the very file Parse names (the one the lock file
// goes beside), whatever characters its name has.
func TestOpenNamesTheParsedFile(t *testing.T) {
	for _, name := range []string{"app.db", "my app.db", "app#1.db", "100%.db", "what?.db", "café.db", "a&b=c.db"} {
		dir := t.TempDir()
		u := "sqlite:///" + filepath.Join(dir, escape(name)) + "?_pragma=journal_mode(DELETE)"
		db, loc, err := Open(u)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := db.Exec("CREATE TABLE t (v integer)"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		db.Close()
		if want := filepath.Join(dir, name); loc.Path != want {
			t.Errorf("%s: Open says %q, want %q", name, loc.Path, want)
		}
		entries, _ := os.ReadDir(dir)
		var files []string
		for _, e := range entries {
			files = append(files, e.Name())
		}
		if !slices.Equal(files, []string{name}) {
			t.Errorf("%s: the driver made %q", name, files)
		}
	}
}

// escape writes name as a URL path writes it.
func escape(name string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", "#", "%23", "?", "%3F")
	return r.Replace(name)
}
