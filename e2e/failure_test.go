package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestFailingMigration: the migrator exits 3 naming the file and the database error; every
// replica that waited on it exits 3 naming the migration and the replica that ran it; the
// failed transactional migration left nothing behind.
func TestFailingMigration(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 6, Slow: map[int]float64{4: 1}, Fail: map[int]bool{5: true}})
	rs := startAll(t, 6, "fail", d.args("migrate", dir))
	waitAll(t, rs, time.Minute, 3)

	migrator := d.int(t, "SELECT count(DISTINCT replica) FROM applied_log")
	if migrator != 1 {
		t.Fatalf("%d replicas applied migrations, want 1", migrator)
	}
	var holder string
	if err := d.conn.QueryRow(t.Context(), "SELECT replica FROM schemagate_journal WHERE kind = 'run'").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		out := r.output()
		if !strings.Contains(out, "00005_step_5.sql") || !strings.Contains(out, "division by zero") {
			t.Errorf("%s does not name the failed migration and its error:\n%s", r.name, out)
		}
		if r.name != holder && !strings.Contains(out, "on replica "+holder) {
			t.Errorf("%s does not name the replica that ran the migration (%s):\n%s", r.name, holder, out)
		}
		if lines := strings.Count(strings.TrimSpace(r.Stderr.String()), "\n"); r.name != holder && lines > 20 {
			t.Errorf("%s printed %d lines; a waiter should report, not retry", r.name, lines)
		}
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE tablename = 't_5'"); n != 0 {
		t.Error("the failed migration's table exists: the transaction did not roll back")
	}
	if n := d.int(t, "SELECT max(version_id) FROM goose_db_version"); n != 4 {
		t.Errorf("version table at %d, want 4", n)
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'failed' AND name = '00005_step_5.sql'"); n != 1 {
		t.Errorf("journal has %d failed runs naming the migration, want 1", n)
	}

	// A later start retries (the orchestrator's restart), and fails the same way: one more run.
	again := start(t, "fail-restart", d.args("migrate", dir))
	if code := again.wait(t, time.Minute); code != 3 {
		t.Fatalf("restarted replica exited %d, want 3:\n%s", code, again.output())
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'failed'"); n != 2 {
		t.Errorf("journal has %d failed runs after the retry, want 2", n)
	}

	// A fixed release (a different migration set: 5 no longer fails) is not stopped by the old
	// failure.
	fixed := writeMigrations(t, migrationSet{N: 6, Slow: map[int]float64{4: 1}})
	rs = startAll(t, 3, "fixed", d.args("migrate", fixed))
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 6)
}

// TestInterruptedNonTransactional kills the migrator in the middle of a migration that runs
// without a transaction. Its first statements stay applied, so the next migrator must not run it
// blindly: everyone exits 3 naming it, until a run with --rerun-interrupted.
func TestInterruptedNonTransactional(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 4, FirstSlow: map[int]float64{3: 60}, NoTx: map[int]bool{3: true}})
	rs := startAll(t, 3, "notx", d.args("migrate", dir))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, holder)
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)

	for _, r := range rs {
		if r == victim {
			continue
		}
		if code := r.wait(t, time.Minute); code != 3 {
			t.Errorf("%s exited %d, want 3:\n%s", r.name, code, r.output())
		}
		if out := r.output(); !strings.Contains(out, "00003_step_3.sql") || !strings.Contains(out, "schemagate resolve --migration 00003_step_3.sql") {
			t.Errorf("%s does not name the interrupted migration and the way out:\n%s", r.name, out)
		}
	}
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE version = 3"); n != 0 {
		t.Fatalf("the interrupted migration ran again without --rerun-interrupted")
	}

	// The interrupted migration's sleep came before its change, so running it again is safe.
	rerun := start(t, "notx-rerun", d.args("migrate", dir, "--rerun-interrupted"))
	if code := rerun.wait(t, time.Minute); code != 0 {
		t.Fatalf("--rerun-interrupted exited %d:\n%s", code, rerun.output())
	}
	d.assertAppliedOnce(t, 4)
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'migration' AND outcome = 'rerun'"); n != 1 {
		t.Errorf("journal has %d reruns, want 1", n)
	}
}

// TestWaitAfterFailure: a replica that never migrates (wait, serve --never-migrate) and starts
// after the last run of its migration set failed cannot retry: it reads the failure from the
// journal and exits 3 at once, naming the migrator, the migration and the error, instead of
// waiting unready until its deadline. check and status put the failure into their verdict, and
// serve says phase failed.
func TestWaitAfterFailure(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3, Fail: map[int]bool{3: true}})
	job := start(t, "job", d.args("migrate", dir))
	if code := job.wait(t, time.Minute); code != 3 {
		t.Fatalf("the migrating job exited %d, want 3:\n%s", code, job.output())
	}
	w := start(t, "web-0", d.args("wait", dir, "--timeout", "1h"))
	if code := w.wait(t, 30*time.Second); code != 3 {
		t.Fatalf("wait exited %d, want 3 at once:\n%s", code, w.output())
	}
	if out := w.output(); !containsAll(out, "00003_step_3.sql", "division by zero", "on replica job") {
		t.Errorf("wait does not report the failure:\n%s", out)
	}
	check := start(t, "check", d.args("check", dir))
	if code := check.wait(t, time.Minute); code != 1 {
		t.Errorf("check exited %d, want 1", code)
	}
	status := start(t, "status", d.args("status", dir))
	status.wait(t, time.Minute)
	for _, r := range []*replica{check, status} {
		if out := r.output(); !containsAll(out, "the last migration run failed", "00003_step_3.sql", "division by zero", "job") {
			t.Errorf("%s does not put the failure into its verdict:\n%s", r.name, out)
		}
	}
	addr, ep := listenAddr(t)
	start(t, "web-1", d.args("serve", dir, "--listen", addr, "--never-migrate"))
	await(t, 30*time.Second, "serve to report the failure", func() bool {
		_, body := ep.get("/status")
		return strings.Contains(body, `"phase": "failed"`) && strings.Contains(body, "00003_step_3.sql")
	})
}

// TestSignalDuringNonTransactional: SIGTERM or SIGINT (a rollout, Ctrl-C) stops a migrator in
// the middle of a migration that runs without a transaction, after its first statement had
// committed. The run is journaled as stopped, not "rolled back"; the migration is recorded as
// interrupted, naming the statement that stays applied; the replica exits 4 with exit_reason
// "stopped", saying what it interrupted and where the database stays. The next migrator refuses
// to run the migration again (not "relation already exists" on every start from then on), until
// a person has checked and runs it with --rerun-interrupted.
func TestSignalDuringNonTransactional(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			d := newDB(t)
			dir := writeMigrations(t, migrationSet{N: 2})
			writeFile(t, dir, "00003_split.sql", "-- +goose NO TRANSACTION\n-- +goose Up\n"+
				"CREATE TABLE split_first (id int);\nSELECT pg_sleep(CASE WHEN nextval('attempts') = 1 THEN 60 ELSE 0 END) AS split_sleeps;\n"+
				"CREATE TABLE split_second (id int);\n")
			r := start(t, "nt-0", d.args("migrate", dir))
			d.activeStatement(t, time.Minute, "split_sleeps")
			r.signal(t, sig)
			if code := r.wait(t, 10*time.Second); code != 4 {
				t.Fatalf("exit %d after %s, want 4:\n%s", code, sig, r.output())
			}
			name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT"}[sig]
			if out := r.output(); !containsAll(out, "stopped by "+name+" before the schema was ready", "00003_split.sql",
				"statements 1 to 1 of 3 had completed", "CREATE TABLE split_first", "recorded as interrupted",
				"the database is at version 2", `"exit_reason":"stopped"`) || strings.Contains(out, "rolled back") {
				t.Errorf("the stopped migrator does not say what it interrupted:\n%s", out)
			}
			if n := d.int(t, `SELECT count(*) FROM schemagate_journal WHERE kind = 'migration' AND outcome = 'interrupted'
				AND error LIKE '%statements 1 to 1 of 3%'`); n != 1 {
				t.Errorf("the journal does not record the migration as interrupted after its first statement")
			}
			if n := d.int(t, `SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'cancelled'
				AND error NOT LIKE '%rolled back%'`); n != 1 {
				t.Errorf("the journal does not record the run as stopped")
			}

			next := start(t, "nt-1", d.args("migrate", dir))
			if code := next.wait(t, time.Minute); code != 3 {
				t.Fatalf("the next migrator exited %d, want 3 (refused):\n%s", code, next.output())
			}
			if out := next.output(); !containsAll(out, "00003_split.sql", "schemagate resolve --migration 00003_split.sql") || strings.Contains(out, "already exists") {
				t.Errorf("the next migrator does not refuse the interrupted migration:\n%s", out)
			}
			pgtest.Exec(t, d.conn, "DROP TABLE split_first") // a person finished the check
			rerun := start(t, "nt-2", d.args("migrate", dir, "--rerun-interrupted"))
			if code := rerun.wait(t, 2*time.Minute); code != 0 {
				t.Fatalf("--rerun-interrupted exited %d:\n%s", code, rerun.output())
			}
		})
	}
}

// TestSignalBeforeFirstStatement: a non-transactional migration stopped before its first
// statement completed left nothing behind: it is not recorded as interrupted, and the next
// migrator runs it without asking.
func TestSignalBeforeFirstStatement(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	writeFile(t, dir, "00003_slow_start.sql", "-- +goose NO TRANSACTION\n-- +goose Up\n"+
		"SELECT pg_sleep(CASE WHEN nextval('attempts') = 1 THEN 60 ELSE 0 END) AS slow_start_sleeps;\nCREATE TABLE slow_start (id int);\n")
	r := start(t, "nt-0", d.args("migrate", dir))
	d.activeStatement(t, time.Minute, "slow_start_sleeps")
	r.signal(t, syscall.SIGTERM)
	if code := r.wait(t, 10*time.Second); code != 4 {
		t.Fatalf("exit %d, want 4:\n%s", code, r.output())
	}
	if out := r.output(); !strings.Contains(out, "before its first statement completed; nothing of it was applied") {
		t.Errorf("the migrator does not say that nothing was applied:\n%s", r.output())
	}
	next := start(t, "nt-1", d.args("migrate", dir))
	if code := next.wait(t, time.Minute); code != 0 {
		t.Fatalf("the next migrator exited %d, want 0:\n%s", code, next.output())
	}
}
