package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// faultPassword is the password of the fault tests' own clusters: every replica's output is
// checked for it (see start).
const faultPassword = "fault-suite-pw-7d41c9e2"

func (d *db) assertOneSuccessfulRun(t *testing.T) {
	t.Helper()
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'succeeded'"); n != 1 {
		t.Errorf("%d successful runs in the journal, want 1", n)
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'running'"); n != 0 {
		t.Errorf("%d runs still marked running after every replica ended", n)
	}
}

// TestPostgresRestartMidMigration restarts the server (a cluster of the test's own, with a
// password) during the slow migration. Every session ends and the migration rolls back; the
// replicas retry until the server is back, elect a migrator again, and all exit 0. Nothing is
// applied twice; the journal records the interrupted run as abandoned and one successful run.
func TestPostgresRestartMidMigration(t *testing.T) {
	c := pgtest.StartClusterWith(t, pgtest.ClusterOptions{Password: faultPassword})
	d := openDB(t, c.NewDatabase(t))
	dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 300}})
	rs := startAll(t, 3, "restart", d.args("migrate", dir))
	d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	d.conn.Close(t.Context())
	c.Restart()
	d = openDB(t, d.url)
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 6)
	d.assertOneSuccessfulRun(t)
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'abandoned'"); n != 1 {
		t.Errorf("%d abandoned runs, want the one the restart interrupted", n)
	}
	retried := false
	for _, r := range rs {
		retried = retried || strings.Contains(r.output(), "database unavailable; retrying")
	}
	if !retried {
		t.Error("no replica logged that it retried while the server was down")
	}
}

// TestMigratorFrozen freezes the migrator (SIGSTOP) with its network intact, for 4 s: less
// than its lease (6 s). Its kernel keeps the session alive, so it keeps the lock, and its
// session sits idle for less than the lease, so nobody ends it: nobody else migrates (safe),
// the others keep waiting and say whom for. Resumed, it finishes, and everyone exits 0.
// TestMigratorFrozenPastTheLease freezes it for longer.
func TestMigratorFrozen(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 1}})
	rs := startAll(t, 3, "frozen", d.args("migrate", dir, "--progress-interval", "500ms"))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, holder)
	victim.signal(t, syscall.SIGSTOP)
	// Frozen for twice the failover time of a blackhole (about 12 s is not needed: the session
	// is healthy). Watch the others while it is.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if n := d.int(t, "SELECT count(DISTINCT replica) FROM applied_log"); n > 1 {
			t.Fatal("a second replica migrated while the migrator was frozen with its session alive")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range rs {
		if r != victim && !strings.Contains(r.output(), "replica "+holder) {
			t.Errorf("%s does not say it waits for %s:\n%s", r.name, holder, r.output())
		}
	}
	victim.signal(t, syscall.SIGCONT)
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 5)
	d.assertOneSuccessfulRun(t)
}

// TestOverlappingRollouts: release 2 is still migrating when release 3's replicas start. They
// wait for the lock instead of running migration 4 a second time, then one of them applies 5
// and 6; release 2's replicas end ready on their version.
func TestOverlappingRollouts(t *testing.T) {
	d := newDB(t)
	v2 := writeMigrations(t, migrationSet{N: 4, FirstSlow: map[int]float64{4: 3}})
	v3 := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{4: 3}})
	old := startAll(t, 3, "v2", d.args("migrate", v2))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	if !strings.HasPrefix(holder, "v2-") {
		t.Fatalf("the migrator is %s", holder)
	}
	next := startAll(t, 3, "v3", d.args("migrate", v3))
	waitAll(t, append(old, next...), time.Minute, 0)
	d.assertAppliedOnce(t, 6)
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE version <= 4 AND replica NOT LIKE 'schemagate/v2-%'"); n != 0 {
		t.Errorf("release 3 applied %d of release 2's migrations", n)
	}
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE version > 4 AND replica LIKE 'schemagate/v3-%'"); n != 2 {
		t.Errorf("release 3 applied %d of its own 2 migrations", n)
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'succeeded'"); n != 2 {
		t.Errorf("%d successful runs, want 2 (one per release)", n)
	}
}

// TestMissedAnnouncement: a waiter gets no announcement and no lock release from a migration
// applied outside its election (here a migrator under another lock namespace, as a
// misconfigured replica or another tool would do it). It sees the schema ready from its own
// poll, within --poll-interval.
func TestMissedAnnouncement(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3})
	waiter := start(t, "waiter", d.args("wait", dir, "--poll-interval", "1s", "--progress-interval", "1h"))
	await(t, 30*time.Second, "the waiter to wait", func() bool { return strings.Contains(waiter.output(), "waiting") })
	other := start(t, "elsewhere", d.args("migrate", dir, "--lock-namespace", "another-election"))
	if code := other.wait(t, time.Minute); code != 0 {
		t.Fatalf("the other migrator exited %d", code)
	}
	done := time.Now()
	if code := waiter.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("the waiter exited %d:\n%s", code, waiter.output())
	}
	if took := waiter.ExitedAt().Sub(done); took > 3*time.Second {
		t.Errorf("the waiter took %s to notice, with a 1 s poll", took)
	}
}

// TestHerdOf100: 100 replicas at once, on a server of the test's own (100 connections at once
// would starve every other test of the shared one). One migrates; all exit 0; nothing is
// applied twice; no replica ever holds more than one connection.
func TestHerdOf100(t *testing.T) {
	if testing.Short() {
		t.Skip("100 processes")
	}
	c := pgtest.StartClusterWith(t, pgtest.ClusterOptions{Password: faultPassword, Settings: []string{"max_connections = 150"}})
	d := openDB(t, c.NewDatabase(t))
	dir := writeMigrations(t, migrationSet{N: 10, Slow: map[int]float64{5: 2}})
	rs := startAll(t, 100, "herd", d.args("migrate", dir))
	peak := 0
	for !allExited(rs) {
		n := int(d.int(t, `SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM pg_stat_activity
			WHERE datname = $1 AND application_name LIKE 'schemagate/%' GROUP BY application_name) x`, d.name))
		peak = max(peak, n)
		time.Sleep(50 * time.Millisecond)
	}
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 10)
	d.assertOneSuccessfulRun(t)
	if peak > 1 {
		t.Errorf("a replica held %d connections at once", peak)
	}
	if n := d.int(t, "SELECT count(DISTINCT replica) FROM applied_log"); n != 1 {
		t.Errorf("%d replicas migrated", n)
	}
}

func allExited(rs []*replica) bool {
	for _, r := range rs {
		if !r.exited() {
			return false
		}
	}
	return true
}
