package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// interrupt leaves migration 2 of a fresh set interrupted: its migrator is killed while the
// migration, which runs without a transaction, sleeps after its first statement.
func interrupt(t *testing.T) (*db, string) {
	t.Helper()
	d := newDB(t)
	dir := writeFiles(t, map[string]string{
		"00001_a.sql": "-- +goose Up\nCREATE TABLE a (id int);\n",
		"00002_b.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE b (id int);\nSELECT pg_sleep(60) AS interrupted_sleeps;\nCREATE TABLE c (id int);\n",
		"00003_d.sql": "-- +goose Up\nCREATE TABLE d (id int);\n",
	})
	victim := start(t, "victim", d.args("migrate", dir))
	d.activeStatement(t, time.Minute, "interrupted_sleeps")
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	refused := start(t, "refused", d.args("migrate", dir))
	if code := refused.wait(t, time.Minute); code != 3 {
		t.Fatalf("the interrupted migration was not refused: exit %d:\n%s", code, refused.output())
	}
	return d, dir
}

// TestResolve: a person decides on an interrupted migration with resolve, journaled with who
// and why: --allow-rerun lets the next migrator run it once more; --mark-applied marks it applied after it
// was finished by hand, and the next migrator goes on past it without running it.
func TestResolve(t *testing.T) {
	t.Run("rerun", func(t *testing.T) {
		d, dir := interrupt(t)
		pgtest.Exec(t, d.conn, "DROP TABLE b") // undo what it left behind
		r := start(t, "ops", d.args("resolve", dir, "--migration", "00002_b.sql", "--allow-rerun", "--by", "alice",
			"--reason", "dropped the half-made table"))
		if code := r.wait(t, time.Minute); code != 0 || !strings.Contains(r.Stdout.String(), "may run once more") {
			t.Fatalf("resolve --allow-rerun: exit %d:\n%s", code, r.output())
		}
		if code := start(t, "next", d.args("migrate", dir)).wait(t, 2*time.Minute); code != 0 {
			t.Fatal("the migration did not run once more")
		}
		if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE tablename IN ('b', 'c', 'd')"); n != 3 {
			t.Errorf("%d of the tables of migrations 2 and 3 exist", n)
		}
		if n := d.int(t, `SELECT count(*) FROM schemagate_journal WHERE kind = 'resolution' AND replica = 'alice'
			AND error LIKE '%dropped the half-made table%'`); n != 1 {
			t.Error("the journal does not record the resolution, by whom and why")
		}
	})
	t.Run("applied", func(t *testing.T) {
		d, dir := interrupt(t)
		pgtest.Exec(t, d.conn, "CREATE TABLE c (id int)") // finish it by hand
		r := start(t, "ops", d.args("resolve", dir, "--migration", "2", "--mark-applied", "--reason", "finished by hand"))
		if code := r.wait(t, time.Minute); code != 0 || !strings.Contains(r.Stdout.String(), "marked applied") {
			t.Fatalf("resolve --mark-applied: exit %d:\n%s", code, r.output())
		}
		next := start(t, "next", d.args("migrate", dir))
		if code := next.wait(t, time.Minute); code != 0 {
			t.Fatalf("the next migrator exited %d:\n%s", code, next.output())
		}
		if n := d.int(t, "SELECT count(*) FROM goose_db_version WHERE version_id IN (2, 3)"); n != 2 {
			t.Errorf("versions 2 and 3: %d rows", n)
		}
		if strings.Contains(next.output(), "applying 00002_b.sql") {
			t.Error("the migration marked applied ran again")
		}
	})
	t.Run("nothing to resolve", func(t *testing.T) {
		d := newDB(t)
		dir := writeMigrations(t, migrationSet{N: 1})
		r := start(t, "ops", d.args("resolve", dir, "--migration", "00001_step_1.sql", "--allow-rerun", "--reason", "x"))
		if code := r.wait(t, time.Minute); code != 2 || !strings.Contains(r.output(), "no interrupted migration") {
			t.Errorf("exit %d:\n%s", code, r.output())
		}
	})
}

// TestAbort: abort cancels the running migrator's statement (its transactional migration rolls
// back and the run fails), journaled with who and why.
func TestAbort(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3, Slow: map[int]float64{2: 60}})
	m := start(t, "web-0", d.args("migrate", dir))
	d.activeStatement(t, time.Minute, "pg_sleep(60)")
	r := start(t, "ops", d.args("abort", dir, "--by", "bob", "--reason", "locks the orders table"))
	if code := r.wait(t, 30*time.Second); code != 0 || !strings.Contains(r.Stdout.String(), "cancelled the statement of replica web-0") {
		t.Fatalf("abort: exit %d:\n%s", code, r.output())
	}
	if code := m.wait(t, 30*time.Second); code != 3 {
		t.Errorf("the aborted migrator exited %d, want 3:\n%s", code, m.output())
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE tablename = 't_2'"); n != 0 {
		t.Error("the aborted migration did not roll back")
	}
	if n := d.int(t, `SELECT count(*) FROM schemagate_journal WHERE kind = 'abort' AND replica = 'bob'
		AND error LIKE '%locks the orders table%'`); n != 1 {
		t.Error("the journal does not record the abort")
	}
	idle := start(t, "ops-2", d.args("abort", dir, "--reason", "again"))
	if code := idle.wait(t, 30*time.Second); code != 0 || !strings.Contains(idle.Stdout.String(), "nothing to abort") {
		t.Errorf("abort with no migrator: exit %d:\n%s", code, idle.output())
	}
}

// TestRunHoldsTheLock: run holds the election while its command runs, so that a migrator that
// starts meanwhile waits for it; the command's sessions are tagged, its exit code is run's, and
// it is journaled.
func TestRunHoldsTheLock(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	marker := t.TempDir() + "/done"
	admin := start(t, "ops", d.args("run", dir, "--reason", "manual fix", "--",
		"sh", "-c", `psql -X -q -c "SELECT pg_sleep(3) AS admin_sleeps" "$DB" && touch `+marker+` && exit 7`),
		"DB="+d.url)
	d.activeStatement(t, 30*time.Second, "admin_sleeps")
	if n := d.int(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'schemagate/ops/command'"); n != 1 {
		t.Errorf("the admin command's session is not tagged")
	}
	m := start(t, "web-0", d.args("migrate", dir))
	if code := admin.wait(t, 30*time.Second); code != 7 {
		t.Fatalf("run exited %d, want the command's 7:\n%s", code, admin.output())
	}
	if code := m.wait(t, time.Minute); code != 0 {
		t.Fatalf("the migrator exited %d", code)
	}
	var applied time.Time
	d.conn.QueryRow(t.Context(), "SELECT min(at) FROM applied_log").Scan(&applied)
	var ran time.Time
	d.conn.QueryRow(t.Context(), "SELECT finished_at FROM schemagate_journal WHERE kind = 'admin'").Scan(&ran)
	if !applied.After(ran) {
		t.Errorf("the migrator applied at %s, before the admin command ended at %s", applied, ran)
	}
	if n := d.int(t, `SELECT count(*) FROM schemagate_journal WHERE kind = 'admin' AND outcome = 'failed'
		AND error LIKE 'manual fix: %exited 7%'`); n != 1 {
		t.Error("the journal does not record the admin command and how it ended")
	}
}

// TestRunWithTheCommandEngine: run takes the same election under --engine command as the
// replicas that use it, without a --migrate-command of its own (it applies nothing itself), and
// journals who ran it even where $USER is unset, as in a container's shell.
func TestRunWithTheCommandEngine(t *testing.T) {
	d := newDB(t)
	if _, err := d.conn.Exec(t.Context(), "CREATE TABLE versions (v int)"); err != nil {
		t.Fatal(err)
	}
	engine := []string{"--engine", "command", "--version-source", "sql",
		"--version-query", "SELECT coalesce(max(v), 0) FROM versions", "--target-version", "1"}
	marker := t.TempDir() + "/ran"
	admin := start(t, "ops", append(append([]string{"run", "--database-url", d.url}, engine...),
		"--reason", "backfill", "--", "sh", "-c", `psql -X -q -c "SELECT pg_sleep(2) AS admin_sleeps" "$DB" && touch `+marker),
		"DB="+d.url, "USER=")
	d.activeStatement(t, 30*time.Second, "admin_sleeps")
	m := start(t, "web-0", append(append([]string{"migrate", "--database-url", d.url}, engine...),
		"--migrate-command", `test -e `+marker+` && psql -X -q -c "INSERT INTO versions VALUES (1)" "$DB"`), "DB="+d.url)
	if code := admin.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("run exited %d:\n%s", code, admin.output())
	}
	if code := m.wait(t, time.Minute); code != 0 {
		t.Fatalf("the migrator exited %d (it ran before the admin command ended?):\n%s", code, m.output())
	}
	if n := d.int(t, `SELECT count(*) FROM schemagate_journal WHERE kind = 'admin' AND outcome = 'succeeded'
		AND replica NOT LIKE '@%' AND replica LIKE '%@%'`); n != 1 {
		t.Error("the journal does not record the admin command with who ran it")
	}
}
