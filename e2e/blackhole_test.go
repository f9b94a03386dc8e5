package e2e

import (
	"errors"
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
	undo, err := fleet.Blackhole(clientPort)
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

	var survivors []*replica
	for _, r := range rs {
		if r != victim {
			survivors = append(survivors, r)
		}
	}
	// Keepalives 5 s idle + 3 probes 2 s apart: the server drops the session after about 11 s.
	waitAll(t, survivors, 40*time.Second, 0)
	t.Logf("survivors ready %s after the migrator was cut off", time.Since(cut).Round(100*time.Millisecond))
	d.assertAppliedOnce(t, 6)

	heal()
	victim.signal(t, syscall.SIGCONT)
	if code := victim.wait(t, time.Minute); code != 0 {
		t.Errorf("the old migrator exited %d, want 0; output:\n%s", code, victim.output())
	}
	d.assertAppliedOnce(t, 6)
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE replica = $1", "schemagate/"+holder); n != 2 {
		t.Errorf("the cut-off migrator applied %d migrations, want only the 2 before it was cut off", n)
	}
}
