package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestHerd starts 20 replicas at the same instant on a fresh database with 20 migrations, one
// slow: all exit 0, each migration is applied exactly once, by one replica.
func TestHerd(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 20, Slow: map[int]float64{10: 2}})
	rs := startAll(t, 20, "herd", d.args("migrate", dir))
	waitAll(t, rs, 2*time.Minute, 0)
	d.assertAppliedOnce(t, 20)
	if n := d.int(t, "SELECT count(DISTINCT replica) FROM applied_log"); n != 1 {
		t.Errorf("migrations applied by %d replicas, want 1", n)
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'succeeded'"); n != 1 {
		t.Errorf("journal has %d successful runs, want 1", n)
	}
}

// TestMigratorKilled SIGKILLs the migrator during its slow migration: the others take over and
// all of them exit 0; nothing is applied twice.
func TestMigratorKilled(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 60}})
	rs := startAll(t, 5, "kill", d.args("migrate", dir))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, holder)
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)

	// The survivor re-runs the slow migration from the start.
	survivors := except(rs, victim)
	waitAll(t, survivors, 2*time.Minute, 0)
	d.assertAppliedOnce(t, 6)
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE replica = $1", "schemagate/"+holder); n != 2 {
		t.Errorf("the killed migrator applied %d migrations, want 2 (those before the slow one)", n)
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'abandoned'"); n != 1 {
		t.Errorf("journal has %d abandoned runs, want 1 (the killed migrator's)", n)
	}
}

// TestHolderSessionTerminated ends the migrator's session with pg_terminate_backend: its
// transaction rolls back, another replica finishes, and every replica, the old migrator
// included, exits 0.
func TestHolderSessionTerminated(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 60}})
	rs := startAll(t, 5, "term", d.args("migrate", dir))
	holder, pid, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	if d.int(t, "SELECT count(*) FROM (SELECT pg_terminate_backend($1, 10000)) x", pid) != 1 {
		t.Fatal("pg_terminate_backend did not run")
	}
	waitAll(t, rs, 2*time.Minute, 0)
	d.assertAppliedOnce(t, 6)
	if !containsAll(byName(t, rs, holder).output(), "lost the election while migrating", "could not commit without the lock") {
		t.Errorf("the terminated migrator did not say it lost the lock:\n%s", byName(t, rs, holder).output())
	}
}

// TestWokenWaiterReadsInItsWait: a waiter queued on the migrator learns the schema in the same
// statement that the migrator's release ends, without a read of its own after waking.
func TestWokenWaiterReadsInItsWait(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3, Slow: map[int]float64{2: 2}})
	migrator := start(t, "first", d.args("migrate", dir))
	d.activeStatement(t, time.Minute, "pg_sleep")
	waiter := start(t, "woken", append(d.args("migrate", dir), "--log-level", "debug", "--log-format", "json"))
	waitAll(t, []*replica{migrator, waiter}, time.Minute, 0)
	out := waiter.output()
	if !strings.Contains(out, `"released":true`) {
		t.Fatalf("the waiter was not woken by the release:\n%s", out)
	}
	if !strings.Contains(out, "read the schema in the wait that the migrator's release ended") {
		t.Errorf("the woken waiter read the schema on its own, not in its wait:\n%s", out)
	}
}

// TestHerdAsAnOrdinaryRole: replicas that connect as a role with no privilege beyond its own
// tables (as on a managed server) read the lock and its holder, show themselves to the fleet,
// fence their migrations and take over from a killed migrator: every lock query runs for such
// a role, not only for the superuser the other tests use.
func TestHerdAsAnOrdinaryRole(t *testing.T) {
	d := newDB(t)
	role, roleURL := newRole(t, d)
	pgtest.Exec(t, d.conn, "GRANT CREATE ON SCHEMA public TO "+role)
	dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 60}})
	rs := startAll(t, 4, "role", []string{"migrate", "--database-url", roleURL, "--dir", dir, "--progress-interval", "200ms"})
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	await(t, time.Minute, "the waiters to name the holder", func() bool {
		for _, r := range rs {
			if r.name != holder && !strings.Contains(r.output(), `"holder":"`+holder+`"`) {
				return false
			}
		}
		return true
	})
	victim := byName(t, rs, holder)
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	waitAll(t, except(rs, victim), 2*time.Minute, 0)
	d.assertAppliedOnce(t, 6)
	if n := d.int(t, "SELECT count(*) FROM schemagate_presence WHERE replica LIKE 'role-%'"); n == 0 {
		t.Error("no replica of the role showed itself to the fleet")
	}
	// The replicas ran as the role: the tables they created are its.
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE tablename IN ('schemagate_journal', 'schemagate_presence') AND tableowner = $1", role); n != 2 {
		t.Errorf("the role owns %d of the journal and presence tables, want 2", n)
	}
}
