package alembic

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestSourceStatus reads alembic_version of a real database against the revisions of the e2e
// test app (a branch and its merge): ready only at the directory's head; a revision the
// directory does not know makes the database ahead; no table means nothing is applied.
func TestSourceStatus(t *testing.T) {
	g, err := Open("../../e2e/testdata/alembic-app/app/migrations")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src, err := NewSource(g, db, "")
	if err != nil {
		t.Fatal(err)
	}
	if p := src.Plan(); p.Target != 6 || len(p.Migrations) != 6 || p.Migrations[0].Name != "7e5b5dc7342b_init.py" {
		t.Fatalf("plan: %+v", p)
	}
	ctx := context.Background()
	if st, err := src.Status(ctx); err != nil || st.TableExists || st.Ready() || len(st.Pending) != 6 {
		t.Fatalf("no table: %+v, %v", st, err)
	} else if from, err := src.StatusFrom("", true); err != nil || !reflect.DeepEqual(from, st) {
		t.Errorf("no table: StatusFrom gives %+v, %v; Status %+v", from, err, st)
	}
	if _, err := db.Exec("CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		heads        []string
		ready, ahead bool
		pending      int
		describe     string
	}{
		{nil, false, false, 6, "the database is at none; this replica needs 4ace53fd72c8 (6 pending, next 7e5b5dc7342b_init.py)"},
		{[]string{"ca81bd47c050"}, false, false, 4, "(4 pending"},
		{[]string{"242a2047eae0", "1af9b942657b"}, false, false, 2, "at 1af9b942657b, 242a2047eae0;"},
		{[]string{"4ace53fd72c8"}, true, false, 0, "at 4ace53fd72c8, which this replica needs"},
		{[]string{"ffffffffffff"}, true, true, 0, "unknown to this replica: ffffffffffff"},
	} {
		if _, err := db.Exec("DELETE FROM alembic_version"); err != nil {
			t.Fatal(err)
		}
		for _, h := range tc.heads {
			if _, err := db.Exec("INSERT INTO alembic_version VALUES ($1)", h); err != nil {
				t.Fatal(err)
			}
		}
		st, err := src.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready() != tc.ready || st.Ahead() != tc.ahead || len(st.Pending) != tc.pending || !strings.Contains(st.Describe(), tc.describe) {
			t.Errorf("heads %v: ready %v ahead %v pending %d %q; want %v %v %d %q", tc.heads, st.Ready(), st.Ahead(),
				len(st.Pending), st.Describe(), tc.ready, tc.ahead, tc.pending, tc.describe)
		}
		// The same status, read in one query on another's behalf (a wait for the migrator).
		var answer string
		if err := db.QueryRow(src.StatusQuery()).Scan(&answer); err != nil {
			t.Fatal(err)
		}
		if from, err := src.StatusFrom(answer, false); err != nil || !reflect.DeepEqual(from, st) {
			t.Errorf("heads %v: StatusFrom(%s) gives %+v, %v; Status %+v", tc.heads, answer, from, err, st)
		}
	}
	if _, err := NewSource(g, db, "bad name"); err == nil {
		t.Error("a bad table name was accepted")
	}
}
