package engine_test

import (
	"strings"
	"testing"

	"github.com/schemagate/schemagate/engine"
)

// TestCheckTableName: names are put into SQL unquoted, so only names that mean the same to
// PostgreSQL and SQLite quoted or not pass; the others are refused with the reason.
func TestCheckTableName(t *testing.T) {
	for _, name := range []string{"goose_db_version", "public.goose_db_version", "schemagate_journal", "_v$1",
		"app.versions", "version", "users_order", strings.Repeat("v", 63)} {
		if err := engine.CheckTableName(name); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
	for _, tc := range []struct{ name, why string }{
		{"MyVersions", `write "myversions"`},
		{"Public.versions", `write "public.versions"`},
		{"user", "user is an SQL reserved word"},
		{"User", "user is an SQL reserved word"},
		{"public.order", "order is an SQL reserved word"},
		{"select.versions", "select is an SQL reserved word"},
		{"transaction", "reserved word"}, // SQLite's
		{strings.Repeat("v", 64), "63 bytes"},
		{"x; DROP TABLE y", "lower-case letters"},
		{"Ünicode", "lower-case letters"},
		{"a.b.c", "optionally schema.table"},
		{"", "is not a table name"},
	} {
		err := engine.CheckTableName(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "is not a table name") {
			t.Errorf("%q: %v; want it refused saying %q", tc.name, err, tc.why)
		}
	}
}
