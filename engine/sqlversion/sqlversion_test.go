package sqlversion

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/schemagate/schemagate/internal/pgtest"
)

func open(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestGolangMigrate: golang-migrate's schema_migrations (version bigint, dirty boolean), one
// row. A dirty version is never ready, whatever it is, and the status says why and what to do.
func TestGolangMigrate(t *testing.T) {
	db := open(t)
	src, err := New(db, "SELECT version, dirty FROM schema_migrations", "20240301120000")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := src.Status(ctx)
	if err != nil || st.TableExists || st.Ready() {
		t.Fatalf("before the table exists: %+v, %v", st, err)
	}
	exec(t, db, "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)")
	st, err = src.Status(ctx)
	if err != nil || !st.TableExists || st.Ready() || st.CurrentLabel != "none" {
		t.Fatalf("empty table: %+v, %v", st, err)
	}
	for _, tc := range []struct {
		row         string
		ready, head bool
		blocked     string
		current     int64
	}{
		{"(20240101000000, false)", false, false, "", 20240101000000},
		{"(20240301120000, true)", false, false, "marked dirty", 20240301120000},
		{"(20240301120000, false)", true, false, "", 20240301120000},
		{"(20250101000000, false)", true, true, "", 20250101000000},
	} {
		exec(t, db, "DELETE FROM schema_migrations")
		exec(t, db, "INSERT INTO schema_migrations VALUES "+tc.row)
		st, err := src.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready() != tc.ready || st.Ahead() != tc.head || st.Current != tc.current || st.Target != 20240301120000 {
			t.Errorf("%s: ready %v ahead %v current %d target %d; want %v %v %d", tc.row, st.Ready(), st.Ahead(),
				st.Current, st.Target, tc.ready, tc.head, tc.current)
		}
		if !strings.Contains(st.Blocked, tc.blocked) || (tc.blocked == "") != (st.Blocked == "") {
			t.Errorf("%s: blocked %q, want %q", tc.row, st.Blocked, tc.blocked)
		}
		if tc.blocked != "" && !strings.Contains(st.Describe(), "dirty") {
			t.Errorf("%s: the description does not say why: %q", tc.row, st.Describe())
		}
	}
}

// TestTextVersions: Flyway's dotted versions and Prisma's migration names are compared as
// versions, not as text; the status names them.
func TestTextVersions(t *testing.T) {
	db := open(t)
	exec(t, db, `CREATE TABLE flyway_schema_history (version text, success boolean, installed_rank int)`)
	exec(t, db, `INSERT INTO flyway_schema_history VALUES ('1.2.9', true, 1), ('1.2.10', true, 2), ('1.3', false, 3)`)
	src, err := New(db, `SELECT version FROM flyway_schema_history WHERE success ORDER BY installed_rank DESC LIMIT 1`, "1.2.10")
	if err != nil {
		t.Fatal(err)
	}
	st, err := src.Status(context.Background())
	if err != nil || !st.Ready() || st.Ahead() || st.CurrentLabel != "1.2.10" {
		t.Fatalf("flyway at 1.2.10, target 1.2.10: %+v, %v", st, err)
	}
	src, _ = New(db, `SELECT version FROM flyway_schema_history WHERE success ORDER BY installed_rank DESC LIMIT 1`, "1.11")
	if st, _ := src.Status(context.Background()); st.Ready() || !strings.Contains(st.Describe(), "1.2.10") || !strings.Contains(st.Describe(), "1.11") {
		t.Errorf("flyway at 1.2.10, target 1.11: ready %v, %q", st.Ready(), st.Describe())
	}
}

// TestBadQueries: a query that is not one SELECT is refused before any I/O; one whose result
// has the wrong shape is a QueryError, not an unavailable database.
func TestBadQueries(t *testing.T) {
	for _, q := range []string{"", "DELETE FROM schema_migrations", "SELECT 1; DROP TABLE x", " ; "} {
		if _, err := New(nil, q, "1"); err == nil {
			t.Errorf("%q accepted", q)
		}
	}
	if _, err := New(nil, "SELECT 1", ""); err == nil || !strings.Contains(err.Error(), "target-version") {
		t.Errorf("no target: %v", err)
	}
	db := open(t)
	for _, q := range []string{"SELECT 1, true, 3", "SELECT * FROM generate_series(1, 3)", "SELECT 1, 'x'"} {
		src, err := New(db, q, "1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Status(context.Background())
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Errorf("%q: %v, want a QueryError", q, err)
		}
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"9", "10", -1},
		{"0010", "10", 0},
		{"1.2.9", "1.2.10", -1},
		{"1.2", "1.2.1", -1},
		{"2", "1.9", 1},
		{"20240101000000_init", "20240202000000_add_users", -1},
		{"20240202000000_add_users", "20240202000000_add_users", 0},
		{"abc", "abd", -1},
	} {
		if got := Compare(tc.a, tc.b); got != tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Compare(tc.b, tc.a); got != -tc.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
