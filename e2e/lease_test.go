package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// The migrator lease (--migrator-lease, lock/postgres): a migrator keeps its session from
// sitting idle, and the waiters' deputy ends a migrator whose session sat idle with the lock
// held for longer than the lease. TestMigratorFrozen (faults_test.go) covers a migrator frozen
// for less than the lease, which keeps its run.

// TestMigratorFrozenPastTheLease freezes the migrator (SIGSTOP, network intact) during its slow
// migration, for longer than its lease. Its kernel keeps its session alive, so only the lease
// can end it: once the statement it ran has ended and the session has sat idle in its
// transaction past the lease, a waiter ends it, the transaction rolls back, and a survivor
// migrates. Thawed, the old migrator finds its session gone, commits nothing, and ends ready.
func TestMigratorFrozenPastTheLease(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 1}})
	rs := startAll(t, 3, "lease", d.args("migrate", dir))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, holder)
	victim.signal(t, syscall.SIGSTOP)
	frozen := time.Now()

	survivors := except(rs, victim)
	waitAll(t, survivors, 30*time.Second, 0)
	t.Logf("survivors ready %s after the migrator froze", time.Since(frozen).Round(100*time.Millisecond))
	ended := false
	for _, r := range survivors {
		ended = ended || strings.Contains(r.output(), "ended the migrator "+holder)
	}
	if !ended {
		t.Errorf("no survivor says it ended the frozen migrator %s", holder)
	}
	d.assertAppliedOnce(t, 5)

	d.assertResumedCommittedNothing(t, victim, 5, 2)
}

// TestMigratorStarved starves the migrator of CPU: for 16 s it runs 100 ms out of every 4.1 s
// (SIGSTOP, SIGCONT), through migrations that each sleep half a second, so that in most pauses
// its session sits idle in a transaction for about 3.5 s. Every pause is shorter than its
// lease (6 s) less the second a healthy session may sit idle, so it keeps its run: nobody else
// migrates, nobody ends it, and everyone ends ready. (With --migrator-lease 3s the same pauses
// get it ended.)
func TestMigratorStarved(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 8, FirstSlow: map[int]float64{2: 0.5},
		Slow: map[int]float64{3: 0.5, 4: 0.5, 5: 0.5, 6: 0.5, 7: 0.5}})
	rs := startAll(t, 3, "starved", d.args("migrate", dir))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, holder)
	for end := time.Now().Add(16 * time.Second); time.Now().Before(end) && victim.ExitedAt().IsZero(); {
		victim.signal(t, syscall.SIGSTOP)
		time.Sleep(4 * time.Second) // the fault itself: a pause of 4 s
		victim.signal(t, syscall.SIGCONT)
		time.Sleep(100 * time.Millisecond) // and 100 ms to run
	}
	waitAll(t, rs, time.Minute, 0)
	if n := d.int(t, "SELECT count(DISTINCT replica) FROM applied_log"); n != 1 {
		t.Errorf("%d replicas applied migrations, want only the starved migrator", n)
	}
	for _, r := range rs {
		if strings.Contains(r.output(), "ended the migrator") {
			t.Errorf("%s ended the starved migrator:\n%s", r.name, r.output())
		}
	}
	d.assertAppliedOnce(t, 8)
	d.assertOneSuccessfulRun(t)
}

// TestCommandMigratorFrozenPastTheLease: with --engine command, the migrator is frozen while its
// migrate command runs. The lease ends its session and its command's sessions (tagged by
// PGAPPNAME), so that the command's transaction cannot commit; the next migrator runs the
// command once more, and the effect is recorded once.
func TestCommandMigratorFrozenPastTheLease(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 6)
	args := app.args("migrate", "--migrator-lease", "3s")
	first := start(t, "cmdlease-a", args, app.env()...)
	app.awaitCommand(t, "cmdlease-a")
	second := start(t, "cmdlease-b", args, app.env()...)
	first.signal(t, syscall.SIGSTOP)
	if code := second.wait(t, time.Minute); code != 0 {
		t.Fatalf("the second replica exited %d:\n%s", code, second.output())
	}
	if !strings.Contains(second.output(), "ended the migrator cmdlease-a") {
		t.Errorf("the second replica does not say it ended the frozen migrator:\n%s", second.output())
	}
	first.signal(t, syscall.SIGCONT)
	first.wait(t, time.Minute)
	app.assertOnce(t)
}
