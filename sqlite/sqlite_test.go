package sqlite

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParse: the path of a SQLite URL is percent-decoded, as in any URL; a # (which would start
// a fragment) and a bad escape are refused.
func TestParse(t *testing.T) {
	for _, tc := range []struct{ url, path string }{
		{"sqlite:///data/app.db", "/data/app.db"},
		{"sqlite://data/app.db", "data/app.db"},
		{"sqlite:data/app.db", "data/app.db"},
		{"sqlite3:///data/app.db?_pragma=journal_mode(WAL)", "/data/app.db"},
		{"file:/data/app.db", "/data/app.db"},
		{"sqlite:///data/my%20app.db", "/data/my app.db"},
		{"sqlite:///data/app%231.db", "/data/app#1.db"},
		{"sqlite:///data/100%25.db", "/data/100%.db"},
		{"sqlite:///data/what%3F.db", "/data/what?.db"},
		{"sqlite:///data/a+b.db", "/data/a+b.db"},
		{"sqlite:///data/caf%C3%A9.db", "/data/café.db"},
	} {
		path, _, err := Parse(tc.url)
		if err != nil || path != tc.path {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.url, path, err, tc.path)
		}
	}
	for _, tc := range []struct{ url, want string }{
		{"sqlite:///data/app#1.db", "%23"},
		{"sqlite:///data/app.db#frag", "%23"},
		{"sqlite:///data/app%zz.db", "escape"},
		{"sqlite:///data/app%00.db", "NUL"},
		{"sqlite://", "no SQLite file"},
		{"sqlite://:memory:", "in-memory"},
	} {
		if _, _, err := Parse(tc.url); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v; want an error containing %q", tc.url, err, tc.want)
		}
	}
}

// TestOpenNamesTheParsedFile: the driver opens the very file Parse names (the one the lock file
// goes beside), whatever characters its name has.
func TestOpenNamesTheParsedFile(t *testing.T) {
	for _, name := range []string{"app.db", "my app.db", "app#1.db", "100%.db", "what?.db", "café.db", "a&b=c.db"} {
		dir := t.TempDir()
		u := "sqlite://" + filepath.Join(dir, escape(name)) + "?_pragma=journal_mode(DELETE)"
		db, path, err := Open(u)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := db.Exec("CREATE TABLE t (v integer)"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		db.Close()
		if want := filepath.Join(dir, name); path != want {
			t.Errorf("%s: Open says %q, want %q", name, path, want)
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
