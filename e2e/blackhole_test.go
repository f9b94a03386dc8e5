package e2e

import (
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// blackhole cuts one loopback connection off (see fleet.Blackhole) until heal is called or the
// test ends, and skips the test where that cannot be done.
func blackhole(t *testing.T, clientPort int) (heal func()) {
	t.Helper()
	return blackholeOneWay(t, clientPort, fleet.BothWays)
}

func blackholeOneWay(t *testing.T, clientPort int, dir fleet.Direction) (heal func()) {
	t.Helper()
	undo, err := fleet.BlackholeOneWay(clientPort, dir)
	if errors.Is(err, fleet.ErrNoBlackhole) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	heal = func() {
		once.Do(func() {
			if err := undo(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(heal)
	return heal
}

// TestMigratorBlackholed cuts the migrator off from the database at the network layer and
// freezes it (SIGSTOP) during its slow migration. PostgreSQL's keepalives (set per session by
// schemagate) end its session within seconds, which releases the lock: a survivor takes over and
// all survivors exit 0. When the old migrator comes back it finds its session gone, commits
// nothing, and ends ready too.
func TestMigratorBlackholed(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 300}})
	rs := startAll(t, 4, "hole", d.args("migrate", dir))
	holder, _, port := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, holder)

	heal := blackhole(t, port)
	victim.signal(t, syscall.SIGSTOP)
	cut := time.Now()

	survivors := except(rs, victim)
	// Keepalives 2 s idle + 3 probes 1 s apart: the server drops the session after about 5 s.
	waitAll(t, survivors, 40*time.Second, 0)
	t.Logf("survivors ready %s after the migrator was cut off", time.Since(cut).Round(100*time.Millisecond))
	d.assertAppliedOnce(t, 6)

	heal()
	d.assertResumedCommittedNothing(t, victim, 6, 2)
}

// TestMigratorBlackholedOneWay cuts one direction of the migrator's connection, or both, while
// the migrator keeps running. Either way the server ends the session (its keepalives go
// unanswered, or the client's stop coming once the client gave up), which releases the lock and
// rolls the migration back; the old migrator's keepalives fail too, and it gives up that
// session. Whoever wins the next election (a survivor, or the old migrator on a new connection)
// finishes: nothing is applied twice, and the journal shows one successful run.
func TestMigratorBlackholedOneWay(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  fleet.Direction
	}{{"to-server", fleet.ToServer}, {"to-client", fleet.ToClient}, {"both", fleet.BothWays}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDB(t)
			dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 300}})
			rs := startAll(t, 3, "hole", d.args("migrate", dir))
			holder, _, port := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
			victim := byName(t, rs, holder)
			blackholeOneWay(t, port, tc.dir)
			cut := time.Now()
			survivors := except(rs, victim)
			waitAll(t, survivors, 40*time.Second, 0)
			t.Logf("survivors ready %s after the cut", time.Since(cut).Round(100*time.Millisecond))
			if code := victim.wait(t, time.Minute); code != 0 {
				t.Errorf("the cut-off migrator exited %d, want 0:\n%s", code, victim.output())
			}
			// Only the server's packets dropped: the client's keepalives still reach the server and
			// keep the backend (and the lock) alive there. The client, hearing nothing, gives up and
			// ends that backend through a new connection, instead of leaving the server to find out
			// about 10 s later.
			if tc.dir == fleet.ToClient && !strings.Contains(victim.output(), "ended this replica's lost session") {
				t.Errorf("the cut-off migrator did not end its lost session on the server:\n%s", victim.output())
			}
			d.assertAppliedOnce(t, 6)
			if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'succeeded'"); n != 1 {
				t.Errorf("%d successful runs in the journal, want 1", n)
			}
			if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'running'"); n != 0 {
				t.Errorf("%d runs still marked running", n)
			}
		})
	}
}
