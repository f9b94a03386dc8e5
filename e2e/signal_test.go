package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestSigtermDuringMigration sends SIGTERM to the migrator in the middle of a migration: it
// stops within a few seconds (well inside Kubernetes' default 30 s grace period), its
// transaction rolls back, it journals the run as cancelled and releases the lock, and a waiter
// finishes the job.
func TestSigtermDuringMigration(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 120}})
	rs := startAll(t, 3, "term", d.args("migrate", dir))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	migrator := byName(t, rs, holder)

	sent := time.Now()
	migrator.signal(t, syscall.SIGTERM)
	if code := migrator.wait(t, 10*time.Second); code != 4 {
		t.Errorf("the migrator exited %d after SIGTERM, want 4:\n%s", code, migrator.output())
	}
	if took := time.Since(sent); took > 8*time.Second {
		t.Errorf("the migrator took %s to stop", took)
	}
	for _, r := range rs {
		if r != migrator {
			if code := r.wait(t, time.Minute); code != 0 {
				t.Errorf("%s exited %d:\n%s", r.name, code, r.output())
			}
		}
	}
	d.assertAppliedOnce(t, 5)
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'cancelled' AND replica = $1", holder); n != 1 {
		t.Errorf("journal has %d cancelled runs by %s, want 1", n, holder)
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'abandoned'"); n != 0 {
		t.Errorf("the stopped migrator's run was left for the next one to mark abandoned; it should have closed it itself")
	}
}
