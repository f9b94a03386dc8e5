package sqlversion

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestRefusesWritingQueries: a query that would write (a WITH holding INSERT, UPDATE, DELETE or
// MERGE, SELECT … INTO, FOR UPDATE, a second statement) is refused before any I/O, with a
// message naming what it found. Words inside strings, quoted names and comments do not count.
func TestRefusesWritingQueries(t *testing.T) {
	for _, tc := range []struct{ query, word string }{
		{"WITH x AS (DELETE FROM schema_migrations RETURNING version) SELECT max(version) FROM x", "DELETE"},
		{"with x as (insert into t values (1) returning 1) select 1", "INSERT"},
		{"WITH x AS (UPDATE t SET v = 2 RETURNING v) SELECT v FROM x", "UPDATE"},
		{"WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING 1) SELECT 1", "MERGE"},
		{"WITH x AS (SELECT 1) DELETE FROM t", "DELETE"},
		{"SELECT version INTO copy_of_versions FROM schema_migrations", "INTO"},
		{"SELECT version FROM schema_migrations FOR UPDATE", "UPDATE"},
		{"SELECT version FROM t /* a comment */ ; DELETE FROM t", "more than one statement"},
		{"SELECT 'a;b'; SELECT 2", "more than one statement"},
	} {
		_, err := New(nil, tc.query, "1")
		if err == nil || !strings.Contains(err.Error(), tc.word) || !strings.Contains(err.Error(), "version-query") {
			t.Errorf("%q: %v; want it refused naming %s", tc.query, err, tc.word)
		}
	}
	for _, q := range []string{
		"SELECT version, dirty FROM schema_migrations;",
		"SELECT 'delete; insert into' AS v",
		`SELECT "update", "into" FROM t`,
		"SELECT version FROM t -- then DELETE everything\n",
		"SELECT $$ INSERT INTO x $$ || $tag$ ; MERGE $tag$",
		"SELECT E'it\\'s; update' FROM t",
		"/* INSERT */ WITH v AS (SELECT max(version) AS v FROM t) SELECT v FROM v",
		"SELECT updated_at, inserted, deleted_flag, into_x FROM t",
	} {
		if _, err := New(nil, q, "1"); err != nil {
			t.Errorf("%q refused: %v", q, err)
		}
	}
}

// TestReadOnlyTransaction: the query runs in a read-only transaction, so a write hidden in a
// function (nextval, a volatile function that inserts) fails, as a QueryError, and writes
// nothing.
func TestReadOnlyTransaction(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	exec(t, db, "CREATE SEQUENCE s")
	exec(t, db, "CREATE TABLE t (v bigint)")
	exec(t, db, `CREATE FUNCTION sneak() RETURNS bigint LANGUAGE plpgsql VOLATILE AS
		$$ BEGIN INSERT INTO t VALUES (7); RETURN 7; END $$`)

	src, err := New(db, "SELECT current_setting('transaction_read_only')", "on")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := src.Status(ctx); err != nil || st.CurrentLabel != "on" {
		t.Fatalf("transaction_read_only during the query: %q, %v; want on", st.CurrentLabel, err)
	}
	for _, q := range []string{"SELECT nextval('s')", "SELECT sneak()"} {
		src, err := New(db, q, "1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Status(ctx)
		var qe *QueryError
		if !errors.As(err, &qe) || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s: %v; want a QueryError saying the query must only read", q, err)
		}
	}
	var called bool
	if err := db.QueryRow("SELECT is_called FROM s").Scan(&called); err != nil || called {
		t.Errorf("the sequence advanced: is_called %v, %v", called, err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil || n != 0 {
		t.Errorf("the function wrote %d rows (%v)", n, err)
	}
	// The session is usable, and writable, afterwards.
	exec(t, db, "INSERT INTO t VALUES (1)")
}

// TestSQLiteQueryOnly: on SQLite the query runs with PRAGMA query_only on, and the connection
// goes back to the pool writable.
func TestSQLiteQueryOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	exec(t, db, "CREATE TABLE t (v integer)")
	src, err := New(db, "SELECT query_only FROM pragma_query_only", "1")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := src.Status(context.Background()); err != nil || st.CurrentLabel != "1" {
		t.Fatalf("query_only during the query: %q, %v; want 1", st.CurrentLabel, err)
	}
	exec(t, db, "INSERT INTO t VALUES (1)")
}
