package tablename_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/schemagate/schemagate/tablename"
)

// TestCheck: names are put into SQL unquoted, so only names that mean the same to
// PostgreSQL and SQLite quoted or not pass; the others are refused with the reason.
func TestCheck(t *testing.T) {
	for _, name := range []string{"goose_db_version", "public.goose_db_version", "schemagate_journal", "_v$1",
		"app.versions", "version", "users_order", strings.Repeat("v", 63)} {
		if err := tablename.Check(name); err != nil {
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
		err := tablename.Check(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "is not a table name") {
			t.Errorf("%q: %v; want it refused saying %q", tc.name, err, tc.why)
		}
	}
}

type coded string

func (c coded) Error() string    { return "error " + string(c) }
func (c coded) SQLState() string { return string(c) }

// TestMissing: a table is missing on PostgreSQL's undefined_table, wrapped or not, and on
// SQLite's message; not on any other error, even one that mentions a table.
func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{coded("42P01"), true},
		{fmt.Errorf("read goose_db_version: %w", coded("42P01")), true},
		{errors.New("SQL logic error: no such table: goose_db_version (1)"), true},
		{coded("42501"), false}, // insufficient_privilege
		{coded("42P07"), false}, // duplicate_table
		{errors.New("connection refused"), false},
		{nil, false},
	} {
		if got := tablename.Missing(tc.err); got != tc.want {
			t.Errorf("Missing(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestCreateRace: the errors a CREATE TABLE IF NOT EXISTS gets when another created the table
// at the same moment, and no others.
func TestCreateRace(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{coded("23505"), true}, // unique_violation on pg_type
		{coded("42P07"), true}, // duplicate_table
		{fmt.Errorf("create journal: %w", coded("42710")), true}, // duplicate_object
		{coded("42501"), false},                                  // insufficient_privilege
		{errors.New("connection refused"), false},
	} {
		if got := tablename.CreateRace(tc.err); got != tc.want {
			t.Errorf("CreateRace(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
