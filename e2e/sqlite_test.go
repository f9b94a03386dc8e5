package e2e

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// sqliteDB is a SQLite database file for a test, with a connection for the test's own reads.
type sqliteDB struct {
	path string
	url  string
	db   *sql.DB
}

func newSQLite(t *testing.T) *sqliteDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	return &sqliteDB{path: path, url: "sqlite:///" + path, db: openSQLite(t, path)}
}

// openSQLite opens the SQLite file at path for the test's own reads.
func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (d *sqliteDB) int(t *testing.T, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (d *sqliteDB) args(command, dir string, extra ...string) []string {
	return append([]string{command, "--database-url", d.url, "--dir", dir}, extra...)
}

func (d *sqliteDB) assertAppliedOnce(t *testing.T, n int) {
	t.Helper()
	if dup := d.int(t, "SELECT count(*) FROM (SELECT version FROM applied_log GROUP BY version HAVING count(*) > 1)"); dup != 0 {
		t.Errorf("%d migrations applied more than once", dup)
	}
	if got := d.int(t, "SELECT count(DISTINCT version) FROM applied_log"); got != int64(n) {
		t.Errorf("applied_log has %d versions, want %d", got, n)
	}
	if got := d.int(t, "SELECT count(*) FROM goose_db_version WHERE version_id > 0"); got != int64(n) {
		t.Errorf("goose_db_version has %d rows, want %d", got, n)
	}
}

// TestSQLiteFileLock: 8 worker processes share one SQLite file (the classic UVICORN_WORKERS>1
// case); the file lock elects exactly one, and every worker exits 0.
func TestSQLiteFileLock(t *testing.T) {
	d := newSQLite(t)
	dir := writeMigrations(t, migrationSet{N: 6, SQLite: true, Slow: map[int]float64{3: 0.5}})
	rs := startAll(t, 8, "worker", d.args("migrate", dir))
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 6)
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run'"); n != 1 {
		t.Errorf("%d migration runs, want 1", n)
	}
}

// TestSQLiteFileLockHolderKilled kills the holder with SIGKILL during a slow migration: the
// kernel drops its flock, SQLite rolls its transaction back, and a survivor finishes.
func TestSQLiteFileLockHolderKilled(t *testing.T) {
	d := newSQLite(t)
	dir := writeMigrations(t, migrationSet{N: 4, SQLite: true, Slow: map[int]float64{2: 4}})
	rs := startAll(t, 4, "worker", d.args("migrate", dir))

	// The holder writes itself into the lock file; the journal says what it applies.
	var holder struct {
		Replica string `json:"replica"`
		PID     int    `json:"pid"`
	}
	await(t, time.Minute, "the holder to start the slow migration", func() bool {
		var name string
		err := d.db.QueryRow("SELECT name FROM schemagate_journal WHERE kind = 'run' AND outcome = 'running'").Scan(&name)
		if err != nil || name != "00002_step_2.sql" {
			return false
		}
		b, err := os.ReadFile(d.path + ".schemagate-lock")
		return err == nil && json.Unmarshal(b, &holder) == nil && holder.PID != 0
	})
	victim := byName(t, rs, holder.Replica)
	if victim.Cmd.Process.Pid != holder.PID {
		t.Fatalf("the lock file names pid %d, but %s is pid %d", holder.PID, holder.Replica, victim.Cmd.Process.Pid)
	}
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	survivors := except(rs, victim)
	waitAll(t, survivors, 2*time.Minute, 0)
	d.assertAppliedOnce(t, 4)
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'abandoned'"); n != 1 {
		t.Errorf("%d abandoned runs, want 1 (the killed holder's)", n)
	}
}
