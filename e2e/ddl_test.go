package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// writeFiles writes migration files named by their contents' keys into a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var ddlMigrations = map[string]string{
	"00001_accounts.sql": "-- +goose Up\nCREATE TABLE accounts (id int PRIMARY KEY);\nINSERT INTO accounts VALUES (1);\n",
	"00002_add_email.sql": "-- +goose Up\nALTER TABLE accounts ADD COLUMN email text;\n" +
		"CREATE TABLE IF NOT EXISTS applied_log (version int, at timestamptz DEFAULT clock_timestamp());\nINSERT INTO applied_log (version) VALUES (2);\n",
}

// holdTable opens a transaction that reads accounts and keeps it open: ALTER TABLE then
// waits for it. The transaction ends when the returned function or the test ends.
func holdTable(t *testing.T, d *db) (pid int, release func()) {
	t.Helper()
	conn := pgtest.Connect(t, d.url)
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT * FROM accounts"); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			tx.Rollback(ctx)
		}
	}
	t.Cleanup(release)
	return pid, release
}

// TestDDLLockTimeout: a migration's ALTER TABLE queued behind a long transaction gives up after
// --ddl-lock-timeout, so the app's queries on that table are not stuck behind it; the migration
// is rolled back, the log names the transaction in the way, and it is retried until the
// transaction ends, then applied once.
func TestDDLLockTimeout(t *testing.T) {
	d := newDB(t)
	dir := writeFiles(t, ddlMigrations)
	if code := start(t, "setup", d.args("migrate", dir, "--target-version", "1")).wait(t, time.Minute); code != 0 {
		t.Fatal("setup failed")
	}
	blocker, release := holdTable(t, d)
	r := start(t, "migrator", d.args("migrate", dir, "--ddl-lock-timeout", "300ms", "--ddl-lock-retries", "30"))
	await(t, 30*time.Second, "the migrator to report the lock timeout", func() bool {
		return strings.Contains(r.output(), "waited longer than --ddl-lock-timeout")
	})
	out := r.output()
	if !strings.Contains(out, `"pid":`+strconv.Itoa(blocker)) {
		t.Errorf("the log does not name the blocking transaction (pid %d):\n%s", blocker, out)
	}
	// Between attempts the app's reads of the table go through at once: no ALTER waits in the queue.
	app := pgtest.Connect(t, d.url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	blocked := 0
	for range 20 {
		begin := time.Now()
		if _, err := app.Exec(ctx, "SELECT count(*) FROM accounts"); err != nil {
			t.Fatal(err)
		}
		if time.Since(begin) > 400*time.Millisecond {
			blocked++
		}
		time.Sleep(20 * time.Millisecond)
	}
	if blocked > 2 {
		t.Errorf("%d of 20 reads of the table waited over 400ms behind the migration", blocked)
	}
	release()
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d after the transaction ended:\n%s", code, r.output())
	}
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE version = 2"); n != 1 {
		t.Errorf("migration 2 applied %d times", n)
	}
}

// TestDDLLockTimeoutGivesUp: when the transaction in the way outlasts the retries, the
// migration fails (exit 3) saying what to do, and nothing of it is applied.
func TestDDLLockTimeoutGivesUp(t *testing.T) {
	d := newDB(t)
	dir := writeFiles(t, ddlMigrations)
	if code := start(t, "setup", d.args("migrate", dir, "--target-version", "1")).wait(t, time.Minute); code != 0 {
		t.Fatal("setup failed")
	}
	holdTable(t, d)
	r := start(t, "migrator", d.args("migrate", dir, "--ddl-lock-timeout", "200ms", "--ddl-lock-retries", "1"))
	if code := r.wait(t, time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3:\n%s", code, r.output())
	}
	if out := r.output(); !containsAll(out, "00002_add_email.sql", "lock timeout", "2 times", "--ddl-lock-timeout") {
		t.Errorf("the failure does not say what happened and what to do:\n%s", out)
	}
	var cols int
	d.conn.QueryRow(context.Background(), "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts'").Scan(&cols)
	if cols != 1 {
		t.Errorf("accounts has %d columns: the failed migration left a change", cols)
	}
}
