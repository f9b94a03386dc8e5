package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// blackhole drops every packet of one loopback TCP connection, both ways, at the network
// layer: the kernels on both ends stop hearing from each other, as when a node vanishes. (A
// user-space proxy that stops forwarding would not do: its kernel keeps acknowledging.) The
// rules go when the test ends, or earlier through the returned function.
func blackhole(t *testing.T, clientPort int) (heal func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dropping packets with iptables needs root")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables is not installed")
	}
	rules := [][]string{
		{"INPUT", "-i", "lo", "-p", "tcp", "--sport", fmt.Sprint(clientPort), "-j", "DROP"},
		{"INPUT", "-i", "lo", "-p", "tcp", "--dport", fmt.Sprint(clientPort), "-j", "DROP"},
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables -I %s: %v\n%s", strings.Join(r, " "), err, out)
		}
	}
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		for _, r := range rules {
			if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables -D %s: %v\n%s", strings.Join(r, " "), err, out)
			}
		}
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
	dir := writeMigrations(t, migrationSet{n: 6, firstSlow: map[int]float64{3: 300}})
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
