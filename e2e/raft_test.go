package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

const raftSecret = "f397180c6c66b926e387164208c32f5e4f32481f0fb07ff582d480c4c61c3082"

// wrongRaftSecret is the secret of a replica that is not a member.
const wrongRaftSecret = "975cadf66df54ed0ead038e42b78612a7394a4f3d97c07ff8cc7c69106429ee5"

// raftCluster is n replicas' Raft settings: replica i listens on its own loopback address,
// 127.0.0.(20+i), so that iptables can cut one member's Raft traffic while its database
// connection (from 127.0.0.1) stays up.
type raftCluster struct {
	names []string
	ips   []string
	port  int
}

func newRaftCluster(t *testing.T, prefix string, n int) *raftCluster {
	c := &raftCluster{port: pgtest.FreePort(t)}
	for i := range n {
		c.names = append(c.names, fmt.Sprintf("%s-%d", prefix, i))
		c.ips = append(c.ips, fmt.Sprintf("127.0.0.%d", 20+i))
	}
	return c
}

// peers lists the members with the given indexes (all when none).
func (c *raftCluster) peers(members ...int) string {
	if len(members) == 0 {
		for i := range c.names {
			members = append(members, i)
		}
	}
	var parts []string
	for _, i := range members {
		parts = append(parts, fmt.Sprintf("%s=%s:%d", c.names[i], c.ips[i], c.port))
	}
	return strings.Join(parts, ",")
}

func (c *raftCluster) args(i int, peers string) []string {
	return []string{"--lock", "raft", "--raft-peers", peers, "--raft-listen", fmt.Sprintf("%s:%d", c.ips[i], c.port)}
}

// start starts member i with the cluster's peer list, running command on d with migrations dir.
func (c *raftCluster) start(t *testing.T, d *db, i int, command, dir string, extra ...string) *replica {
	return c.startWith(t, d, i, c.peers(), command, dir, extra...)
}

func (c *raftCluster) startWith(t *testing.T, d *db, i int, peers, command, dir string, extra ...string) *replica {
	args := append(d.args(command, dir, c.args(i, peers)...), extra...)
	return start(t, c.names[i], args, "SCHEMAGATE_RAFT_SECRET="+raftSecret)
}

func (c *raftCluster) startAll(t *testing.T, d *db, command, dir string, extra ...string) []*replica {
	rs := make([]*replica, len(c.names))
	for i := range rs {
		rs[i] = c.start(t, d, i, command, dir, extra...)
	}
	return rs
}

// cut drops every packet to or from member i's address: its Raft links go dark while its
// database connection, from 127.0.0.1, is untouched. The rules go when heal is called or the
// test ends.
func (c *raftCluster) cut(t *testing.T, i int) (heal func()) {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables is not installed")
	}
	rules := [][]string{
		{"INPUT", "-i", "lo", "-s", c.ips[i], "-j", "DROP"},
		{"INPUT", "-i", "lo", "-d", c.ips[i], "-j", "DROP"},
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			t.Skipf("iptables -I %s: %v: %s", strings.Join(r, " "), err, out)
		}
	}
	healed := false
	heal = func() {
		if healed {
			return
		}
		healed = true
		for _, r := range rules {
			exec.Command("iptables", append([]string{"-D"}, r...)...).Run()
		}
	}
	t.Cleanup(heal)
	return heal
}

// schemagateSessions counts the database sessions of schemagate replicas.
func (d *db) schemagateSessions(t *testing.T) int64 {
	return d.int(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'schemagate/%'", d.name)
}

// TestRaftHerd: 3 and then 5 replicas elect one leader among themselves; it migrates; every
// replica exits 0; and while the migration runs, the leader's is the only database connection.
func TestRaftHerd(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			d := newDB(t)
			dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 4}})
			c := newRaftCluster(t, "raft", n)
			rs := c.startAll(t, d, "migrate", dir)
			leader, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
			await(t, 3*time.Second, "the waiters' start-up connections to close", func() bool {
				return d.schemagateSessions(t) == 1
			})
			for range 10 {
				if n := d.schemagateSessions(t); n != 1 {
					t.Fatalf("%d schemagate sessions while %s migrates; waiters must hold none", n, leader)
				}
				time.Sleep(100 * time.Millisecond)
			}
			waitAll(t, rs, time.Minute, 0)
			d.assertAppliedOnce(t, 6)
			if got := d.int(t, "SELECT count(DISTINCT replica) FROM applied_log"); got != 1 {
				t.Errorf("%d replicas applied migrations, want 1", got)
			}
		})
	}
}

// TestRaftLeaderKilled: SIGKILL of the leader during its migration; a new leader is elected and
// finishes; nothing is applied twice.
func TestRaftLeaderKilled(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 6, FirstSlow: map[int]float64{3: 60}})
	c := newRaftCluster(t, "raft", 3)
	rs := c.startAll(t, d, "migrate", dir)
	leader, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, leader)
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	survivors := except(rs, victim)
	waitAll(t, survivors, time.Minute, 0)
	d.assertAppliedOnce(t, 6)
	if n := d.int(t, "SELECT count(DISTINCT epoch) FROM schemagate_fence"); n != 1 {
		t.Errorf("fence rows: %d", n)
	}
	if n := d.int(t, "SELECT epoch FROM schemagate_fence"); n != 2 {
		t.Errorf("fencing epoch %d, want 2 (two leaders migrated)", n)
	}
}

// TestRaftLeaderPartitioned cuts the leader off from its peers, not from the database, in the
// middle of its migration. The other two elect a new leader, which takes a newer fencing epoch
// and migrates; the old leader's migration cannot commit; once healed, it ends ready like the
// others.
func TestRaftLeaderPartitioned(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 8}})
	c := newRaftCluster(t, "raft", 3)
	rs := c.startAll(t, d, "migrate", dir)
	leader, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, leader)
	idx := indexOf(c.names, leader)
	heal := c.cut(t, idx)

	survivors := except(rs, victim)
	waitAll(t, survivors, time.Minute, 0)
	d.assertAppliedOnce(t, 5)
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE replica = $1 AND version = 3", "schemagate/"+leader); n != 0 {
		t.Errorf("the cut-off leader committed the migration it was applying")
	}
	heal()
	if code := victim.wait(t, time.Minute); code != 0 {
		t.Errorf("the old leader exited %d after the partition healed:\n%s", code, victim.output())
	}
	if out := victim.output(); !strings.Contains(out, "lost the election while migrating") {
		t.Errorf("the old leader does not say it lost its role:\n%s", out)
	}
	d.assertAppliedOnce(t, 5)
}

// TestRaftLeaderPaused freezes the leader (SIGSTOP) past the election timeout during its
// migration: a new leader is elected and migrates once the frozen one's transaction is gone;
// the frozen leader, resumed, finds itself deposed and commits nothing.
func TestRaftLeaderPaused(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 2}})
	c := newRaftCluster(t, "raft", 3)
	rs := c.startAll(t, d, "migrate", dir)
	leader, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := byName(t, rs, leader)
	victim.signal(t, syscall.SIGSTOP)
	// Another member becomes leader and starts migrating, which bumps the fencing epoch.
	await(t, 30*time.Second, "a new leader to take a fencing epoch", func() bool {
		return d.int(t, "SELECT coalesce(max(epoch), 0) FROM schemagate_fence") >= 2
	})
	victim.signal(t, syscall.SIGCONT)
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 5)
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE replica = $1 AND version >= 3", "schemagate/"+leader); n != 0 {
		t.Errorf("the paused leader committed %d migrations after being deposed", n)
	}
}

// TestRaftMinorityNeverElects: of 5 members, the leader and one follower are cut off from the
// other 3 during the migration. The 3 elect a new leader and finish; the 2 never elect one of
// their own; healed, they end ready.
func TestRaftMinorityNeverElects(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 6}})
	c := newRaftCluster(t, "raft", 5)
	rs := c.startAll(t, d, "migrate", dir)
	leader, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	l := indexOf(c.names, leader)
	f := (l + 1) % 5
	// Cut the pair {leader, f} off from the others: drop packets between the two groups only.
	var rules [][]string
	for _, a := range []int{l, f} {
		for b := range 5 {
			if b == l || b == f {
				continue
			}
			rules = append(rules, []string{"INPUT", "-i", "lo", "-s", c.ips[a], "-d", c.ips[b], "-j", "DROP"},
				[]string{"INPUT", "-i", "lo", "-s", c.ips[b], "-d", c.ips[a], "-j", "DROP"})
		}
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			t.Skipf("iptables: %v: %s", err, out)
		}
	}
	cutAt := time.Now()
	heal := func() {
		for _, r := range rules {
			exec.Command("iptables", append([]string{"-D"}, r...)...).Run()
		}
	}
	t.Cleanup(heal)
	minority := []*replica{rs[l], rs[f]}
	majority := except(rs, minority...)
	waitAll(t, majority, time.Minute, 0)
	healedAt := time.Now()
	for _, r := range minority {
		if leaderAfter(r.output(), cutAt, healedAt) {
			t.Errorf("%s, in the minority, became leader while cut off:\n%s", r.name, r.output())
		}
	}
	heal()
	waitAll(t, minority, time.Minute, 0)
	d.assertAppliedOnce(t, 5)
}

// leaderAfter reports whether a replica's log says it became the Raft leader between from and to.
func leaderAfter(output string, from, to time.Time) bool {
	for _, line := range strings.Split(output, "\n") {
		if !strings.Contains(line, "this replica is the raft leader") {
			continue
		}
		i := strings.Index(line, `"time":"`)
		if i < 0 {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", line[i+8:i+8+24])
		if err == nil && at.After(from) && at.Before(to) {
			return true
		}
	}
	return false
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// TestRaftQuorumLost: one member of three alone never forms a cluster: it never migrates, and
// at its deadline it exits 4 saying why.
func TestRaftQuorumLost(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	c := newRaftCluster(t, "raft", 3)
	alone := c.start(t, d, 0, "migrate", dir, "--timeout", "4s")
	if code := alone.wait(t, 30*time.Second); code != 4 {
		t.Fatalf("exit %d, want 4:\n%s", code, alone.output())
	}
	if out := alone.output(); !strings.Contains(out, "raft cluster has not formed: 1 of its 3 voters answer") {
		t.Errorf("the timeout does not say the cluster did not form:\n%s", out)
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("a lone member migrated: %d tables", n)
	}
}

// TestRaftDisagreeingPeerLists: three members list {0,1,2}, two more list {2,3,4}. Only one
// cluster forms, {0,1,2}; 3 and 4 never bootstrap their own (they would be a majority of their
// list), follow the formed cluster, and end ready without migrating.
func TestRaftDisagreeingPeerLists(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 4, Slow: map[int]float64{2: 1}})
	c := newRaftCluster(t, "raft", 5)
	first, second := c.peers(0, 1, 2), c.peers(2, 3, 4)
	var rs []*replica
	for i := range 5 {
		peers := first
		if i >= 3 {
			peers = second
		}
		rs = append(rs, c.startWith(t, d, i, peers, "migrate", dir))
	}
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 4)
	for _, r := range rs[3:] {
		if out := r.output(); strings.Contains(out, "raft cluster bootstrapped") || strings.Contains(out, "raft cluster joined") ||
			strings.Contains(out, "this replica is the raft leader") {
			t.Errorf("%s formed or led a cluster of its own:\n%s", r.name, r.output())
		}
	}
	if n := d.int(t, "SELECT epoch FROM schemagate_fence"); n != 1 {
		t.Errorf("fencing epoch %d: more than one leader migrated", n)
	}
}

// TestRaftWrongSecret: a replica with another secret is refused by the members; the three
// members migrate; the intruder never learns of their cluster (while the migration runs, and
// so the database is not ready, it can only time out), and no secret is printed.
func TestRaftWrongSecret(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2, Slow: map[int]float64{2: 8}})
	c := newRaftCluster(t, "raft", 4)
	members := c.peers(0, 1, 2)
	var rs []*replica
	for i := range 3 {
		rs = append(rs, c.startWith(t, d, i, members, "migrate", dir))
	}
	const wrong = wrongRaftSecret
	intruder := start(t, c.names[3], append(d.args("migrate", dir, c.args(3, c.peers(0, 1, 2, 3))...), "--timeout", "5s"),
		"SCHEMAGATE_RAFT_SECRET="+wrong)
	waitAll(t, rs, time.Minute, 0)
	if code := intruder.wait(t, 30*time.Second); code != 4 {
		t.Errorf("the intruder exited %d, want 4 (it cannot join):\n%s", code, intruder.output())
	}
	if out := intruder.output(); strings.Contains(out, "this replica is the migrator") || !strings.Contains(out, "raft cluster has not formed") {
		t.Errorf("the intruder migrated, or does not say it could not join:\n%s", out)
	}
	refused := false
	for _, r := range append(rs, intruder) {
		out := r.output()
		if strings.Contains(out, raftSecret) || strings.Contains(out, wrong) {
			t.Errorf("%s printed a secret", r.name)
		}
		refused = refused || strings.Contains(out, "refused a Raft connection")
	}
	if !refused {
		t.Error("no member logged refusing the intruder")
	}
}

// TestRaftSQLite: three replicas on one SQLite file elect with Raft; the fence lives in SQLite.
func TestRaftSQLite(t *testing.T) {
	s := newSQLite(t)
	dir := writeMigrations(t, migrationSet{N: 5, SQLite: true, Slow: map[int]float64{2: 1}})
	c := newRaftCluster(t, "raft", 3)
	var rs []*replica
	for i := range 3 {
		rs = append(rs, start(t, c.names[i], append(s.args("migrate", dir), c.args(i, c.peers())...),
			"SCHEMAGATE_RAFT_SECRET="+raftSecret))
	}
	waitAll(t, rs, time.Minute, 0)
	s.assertAppliedOnce(t, 5)
	if n := s.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run'"); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
}

// TestRaftLeaderSigterm: SIGTERM stops the leader in the middle of its migration. With its
// peers up, it hands leadership on before it leaves, and the others finish. With its peers
// frozen (none can take over, and a handshake with them never completes), it still exits within
// the bound docs/raft.md gives, and the peers, resumed, elect a leader of their own and finish.
// Nothing is applied twice.
func TestRaftLeaderSigterm(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		t.Run(fmt.Sprintf("peers frozen=%v", frozen), func(t *testing.T) {
			d := newDB(t)
			dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 60}})
			c := newRaftCluster(t, "raft", 3)
			rs := c.startAll(t, d, "migrate", dir)
			leader, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
			victim := byName(t, rs, leader)
			peers := except(rs, victim)
			if frozen {
				for _, r := range peers {
					r.signal(t, syscall.SIGSTOP)
				}
			}
			sent := time.Now()
			victim.signal(t, syscall.SIGTERM)
			if code := victim.wait(t, time.Minute); code != 4 {
				t.Errorf("the leader exited %d after SIGTERM, want 4:\n%s", code, victim.output())
			}
			if took := time.Since(sent); took > 10*time.Second { // documented: about 7 s at most
				t.Errorf("the leader took %s to stop", took)
			}
			// Frozen peers cost the leader its leadership within the lease timeout: there is
			// nobody to hand it to then.
			handed := strings.Contains(victim.output(), "handing Raft leadership to another voter")
			if !frozen && !handed {
				t.Errorf("the leader did not try to hand leadership on:\n%s", victim.output())
			}
			if frozen {
				for _, r := range peers {
					r.signal(t, syscall.SIGCONT)
				}
			}
			waitAll(t, peers, time.Minute, 0)
			d.assertAppliedOnce(t, 5)
			if n := d.int(t, "SELECT count(*) FROM applied_log WHERE replica = $1 AND version >= 3", "schemagate/"+leader); n != 0 {
				t.Errorf("the stopped leader committed %d migrations from the slow one on", n)
			}
		})
	}
}

// TestRaftVoterRestarted: a voter that is not the leader crashes in the middle of the
// migration and is started again, as a pod would be. It comes back with no state, finds its
// fellow voters in a cluster of exactly its configuration, joins it at once, and ends ready
// with the others. Nothing is applied twice.
func TestRaftVoterRestarted(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 4}})
	c := newRaftCluster(t, "raft", 3)
	rs := c.startAll(t, d, "migrate", dir)
	leader, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim := (indexOf(c.names, leader) + 1) % 3
	rs[victim].signal(t, syscall.SIGKILL)
	rs[victim].wait(t, 10*time.Second)
	again := c.start(t, d, victim, "migrate", dir)
	waitAll(t, append(except(rs, rs[victim]), again), time.Minute, 0)
	d.assertAppliedOnce(t, 5)
	if !strings.Contains(again.output(), "raft cluster joined") {
		t.Errorf("the restarted voter did not join the cluster its fellows formed:\n%s", again.output())
	}
}
