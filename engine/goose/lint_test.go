package goose_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/schemagate/schemagate/engine/goose"
)

// TestLint: each problem a migration set can have is found, with its file, its line where it
// has one, and a fix; a clean set has none.
func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  []string // parts of the one finding's String()
	}{
		{"no up", fstest.MapFS{"00001_a.sql": file("CREATE TABLE a (id int);\n")},
			[]string{"00001_a.sql:1:", "no -- +goose Up", "add a line -- +goose Up"}},
		{"golang-migrate", fstest.MapFS{"000001_init.up.sql": file("CREATE TABLE a (id int);\n"),
			"000001_init.down.sql": file("DROP TABLE a;\n")},
			[]string{"000001_init.down.sql", "golang-migrate layout", "--engine command"}},
		{"upper-case extension", fstest.MapFS{"00002_b.SQL": file("-- +goose Up\nSELECT 1;\n"), "00001_a.sql": file("-- +goose Up\nSELECT 1;\n")},
			[]string{"00002_b.SQL", "lower case", "rename it to 00002_b.sql"}},
		{"backup copy", fstest.MapFS{"00002_b.sql~": file("x"), "00001_a.sql": file("-- +goose Up\nSELECT 1;\n")},
			[]string{"00002_b.sql~", "would skip it"}},
		{"no version", fstest.MapFS{"add_users.sql": file("-- +goose Up\nSELECT 1;\n")},
			[]string{"add_users.sql", "VERSION_description.sql"}},
		{"duplicate", fstest.MapFS{"001_a.sql": file("-- +goose Up\nSELECT 1;\n"), "1_b.sql": file("-- +goose Up\nSELECT 1;\n")},
			[]string{"1_b.sql", "version 1 is also 001_a.sql"}},
		{"dollar body", fstest.MapFS{"00001_f.sql": file("-- +goose Up\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n")},
			[]string{"00001_f.sql:2:", "$$-quoted body holds semicolons", "StatementBegin"}},
		{"do block", fstest.MapFS{"00001_d.sql": file("-- +goose Up\nDO $body$\nBEGIN\n  PERFORM 1;\nEND $body$;\n")},
			[]string{"00001_d.sql:2:", "semicolons"}},
		{"concurrently", fstest.MapFS{"00001_i.sql": file("-- +goose Up\nCREATE TABLE t (id int);\ncreate index  concurrently t_id on t (id);\n")},
			[]string{"00001_i.sql:3:", "CREATE INDEX CONCURRENTLY cannot run inside a transaction", "NO TRANSACTION"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			findings := goose.Lint(tc.files)
			if len(findings) != 1 {
				t.Fatalf("%d findings, want 1: %v", len(findings), findings)
			}
			for _, w := range tc.want {
				if !strings.Contains(findings[0].String(), w) {
					t.Errorf("%q does not contain %q", findings[0], w)
				}
			}
		})
	}
	clean := fstest.MapFS{
		"00001_a.sql":  file("-- +goose Up\nCREATE TABLE a (id int); -- vacuum later\n-- +goose Down\nDROP TABLE a;\n"),
		"00002_f.sql":  file("-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n"),
		"00003_i.sql":  file("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n"),
		"00004_d.sql":  file("-- +goose Up\nSELECT $$no semicolon here$$;\n"),
		"00005_do.sql": file("-- +goose Up\nDO $$ BEGIN PERFORM 1; END $$;\n"),
		"00006_fn.sql": file("-- +goose Up\nCREATE FUNCTION g() RETURNS int AS $$\n  SELECT 1\n$$ LANGUAGE sql;\n"),
		"README.md":    file("notes"),
	}
	if findings := goose.Lint(clean); len(findings) != 0 {
		t.Errorf("a clean set has findings: %v", findings)
	}
}
