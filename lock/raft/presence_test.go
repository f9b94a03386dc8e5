package raft

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/lock"
)

// presenceOf is the entry replica shows in phase, with a fingerprint that must never be logged.
func presenceOf(replica, phase string) lock.Member {
	return lock.Member{Replica: replica, Host: "host-" + replica, MigrationSet: "set-1", Phase: phase,
		Since: time.Now().UTC().Truncate(time.Millisecond), Fingerprints: map[string]string{"SECRET_KEY": "fp-of-" + replica}}
}

// awaitFleet waits, at most within, until n's fleet is exactly want (by replica, with what each
// showed), and returns how long that took.
func awaitFleet(t *testing.T, n *Node, within time.Duration, want map[string]lock.Member) time.Duration {
	t.Helper()
	began := time.Now()
	var got []lock.Member
	var err error
	for time.Since(began) < within {
		if got, err = n.Fleet(context.Background()); err == nil && sameFleet(got, want) {
			return time.Since(began)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: the fleet is %v (%v) after %s; want %v", n.cfg.Replica, phases(got), err, within, slices.Sorted(maps.Keys(want)))
	return 0
}

func sameFleet(got []lock.Member, want map[string]lock.Member) bool {
	if len(got) != len(want) {
		return false
	}
	for _, m := range got {
		w, ok := want[m.Replica]
		if !ok || m.Phase != w.Phase || m.Host != w.Host || !m.Since.Equal(w.Since) || !maps.Equal(m.Fingerprints, w.Fingerprints) {
			return false
		}
	}
	return true
}

func phases(ms []lock.Member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Replica+":"+m.Phase)
	}
	return out
}

// TestPresenceFleet: in a cluster of 3 voters and 4 followers, every member shows itself as it
// starts, before the cluster has formed; every member, voter or follower, then lists all 7
// with the phase each showed. A second Show replaces the first everywhere, and the entries
// never reach the log.
func TestPresenceFleet(t *testing.T) {
	logs := &logLines{}
	c := newTestClusterWith(t, 7, func(_ int, cfg *Config) { cfg.Voters = 3 }, zerolog.New(logs))
	want := map[string]lock.Member{}
	for id, n := range c.nodes {
		want[id] = presenceOf(id, "waiting")
		if err := n.Show(context.Background(), want[id]); err != nil {
			t.Fatalf("%s: Show before the cluster formed: %v", id, err)
		}
	}
	for _, n := range c.nodes {
		awaitFleet(t, n, 20*time.Second, want)
	}

	want["replica-5"] = presenceOf("replica-5", "ready") // a follower
	want["replica-1"] = presenceOf("replica-1", "migrating")
	for _, id := range []string{"replica-5", "replica-1"} {
		if err := c.nodes[id].Show(context.Background(), want[id]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		awaitFleet(t, n, 10*time.Second, want)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if strings.Contains(logs.text.String(), "fp-of-") {
		t.Error("a fingerprint of the fleet's entries was logged")
	}
}

// TestPresenceExpires: entries go with their members, and nobody cleans up. A follower that
// closes and one that crashes (killed: its connections drop without a goodbye) leave every
// member's fleet at once; a voter that closes takes its own entry along, and the follower that
// watched it shows itself on the voter it moves to, without calling Show again.
func TestPresenceExpires(t *testing.T) {
	c := newTestCluster(t, 6, func(_ int, cfg *Config) { cfg.Voters = 3 })
	want := map[string]lock.Member{}
	for id, n := range c.nodes {
		want[id] = presenceOf(id, "waiting")
		if err := n.Show(context.Background(), want[id]); err != nil {
			t.Fatal(err)
		}
	}
	awaitFleet(t, c.nodes["replica-2"], 20*time.Second, want)

	alive := maps.Clone(c.nodes)
	leave := func(id string, how func(*Node)) {
		t.Helper()
		how(alive[id])
		delete(alive, id)
		delete(want, id)
		for _, other := range alive {
			took := awaitFleet(t, other, 10*time.Second, want)
			t.Logf("%s left %s's fleet %s after it went", id, other.cfg.Replica, took.Round(time.Millisecond))
		}
	}
	leave("replica-4", func(n *Node) { n.Close() })
	leave("replica-5", func(n *Node) { n.kill() }) // closed again at cleanup, as a crash leaves it
	// The voter that holds the remaining follower's entry, as the one it watches.
	var holder string
	for _, id := range []string{"replica-0", "replica-1", "replica-2"} {
		for _, e := range alive[id].stream.roster.entries() {
			if e.Member.Replica == "replica-3" {
				holder = id
			}
		}
	}
	if holder == "" {
		t.Fatal("no voter holds the entry of follower replica-3")
	}
	leave(holder, func(n *Node) { n.Close() })
}

// TestPresenceOfACutOffFollower: a follower cut off from every peer (its packets dropped, as
// when its node vanishes: no connection closes) leaves the fleet within watchSilence, once its
// voter has heard no acknowledgement for that long; healed, it is listed again without
// showing itself again. Needs root and iptables.
func TestPresenceOfACutOffFollower(t *testing.T) {
	t.Parallel() // it waits out watchSilence
	// The follower's own loopback address, so that iptables can cut it off alone.
	const ip = "127.0.0.66"
	if os.Geteuid() != 0 {
		t.Skip("cutting a member off needs root (iptables)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("cutting a member off needs iptables, which is not installed")
	}
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newTestCluster(t, 4, func(_ int, cfg *Config) {
		cfg.Voters = 3
		cfg.Peers = slices.Clone(cfg.Peers)
		cfg.Peers[3].Address = addr // replica-3, the follower
		if cfg.Replica == "replica-3" {
			cfg.Listen = addr
		}
	})
	want := map[string]lock.Member{}
	for id, n := range c.nodes {
		want[id] = presenceOf(id, "waiting")
		if err := n.Show(context.Background(), want[id]); err != nil {
			t.Fatal(err)
		}
	}
	voter := c.nodes["replica-1"]
	awaitFleet(t, voter, 20*time.Second, want)

	heal := cutOff(t, ip)
	cut := time.Now()
	gone := maps.Clone(want)
	delete(gone, "replica-3")
	awaitFleet(t, voter, watchSilence+5*time.Second, gone)
	t.Logf("the cut-off follower left the fleet %s after it was cut off (watchSilence %s)", time.Since(cut).Round(time.Millisecond), watchSilence)
	heal()
	took := awaitFleet(t, voter, 30*time.Second, want)
	t.Logf("healed, the follower was listed again %s later", took.Round(time.Millisecond))
}

// cutOff drops every packet to or from ip on the loopback interface, until heal is called or
// the test ends.
func cutOff(t *testing.T, ip string) (heal func()) {
	t.Helper()
	rules := [][]string{
		{"INPUT", "-i", "lo", "-s", ip, "-j", "DROP"},
		{"INPUT", "-i", "lo", "-d", ip, "-j", "DROP"},
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
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			t.Skipf("iptables -I %s: %v: %s", strings.Join(r, " "), err, out)
		}
	}
	return heal
}

// TestPresenceAfterClose: a closed node neither shows nor lists.
func TestPresenceAfterClose(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.nodes["replica-0"]
	c.mu.Lock()
	delete(c.nodes, "replica-0")
	c.mu.Unlock()
	n.Close()
	if err := n.Show(context.Background(), presenceOf("replica-0", "ready")); err == nil {
		t.Error("Show after Close succeeded")
	}
	if _, err := n.Fleet(context.Background()); err == nil {
		t.Error("Fleet after Close succeeded")
	}
}

// TestFleetMergesNewest: where two entries of one replica meet (a watch that moved, a replica
// restarted), the newer one is listed, once.
func TestFleetMergesNewest(t *testing.T) {
	old := shown{Member: lock.Member{Replica: "a", Phase: "waiting"}, Seq: 1}
	newer := shown{Member: lock.Member{Replica: "a", Phase: "ready"}, Seq: 2}
	other := shown{Member: lock.Member{Replica: "b", Phase: "waiting"}, Seq: 1}
	got := merge([]shown{newer, other}, []shown{old})
	if want := []string{"a:ready", "b:waiting"}; !slices.Equal(phases(got), want) {
		t.Errorf("merged %v, want %v", phases(got), want)
	}
}

// TestPresenceOfASilentWatcher: a watcher that shows itself and then acknowledges nothing (a
// frozen process: its kernel still answers) is dropped with its entry after watchSilence; one
// that sends a line longer than maxWatchLine is dropped at once, holding nothing.
func TestPresenceOfASilentWatcher(t *testing.T) {
	t.Parallel() // it waits out watchSilence
	c := newTestCluster(t, 1, nil)
	n := c.nodes["replica-0"]
	awaitLeader(t, n)
	creds, err := deriveCredentials(testSecret, "test/fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	client := testStream(t, creds, zerolog.Nop())
	show := func(replica string, pad int) (net.Conn, time.Time) {
		t.Helper()
		conn, err := client.dial(context.Background(), n.self.Address, kindWatch, handshakeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		m := presenceOf(replica, strings.Repeat("x", pad))
		if err := json.NewEncoder(conn).Encode(upLine{Show: &shown{Member: m, Seq: 1}}); err != nil {
			t.Fatal(err)
		}
		return conn, time.Now()
	}
	listed := func(replica string) bool {
		for _, e := range n.stream.roster.entries() {
			if e.Member.Replica == replica {
				return true
			}
		}
		return false
	}
	await := func(what string, within time.Duration, cond func() bool) time.Duration {
		t.Helper()
		began := time.Now()
		for !cond() {
			if time.Since(began) > within {
				t.Fatalf("%s: not after %s", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(began)
	}

	_, shownAt := show("silent", 0)
	await("the silent watcher is held", 5*time.Second, func() bool { return listed("silent") })
	await("the silent watcher is dropped", watchSilence+5*time.Second, func() bool { return !listed("silent") })
	if took := time.Since(shownAt); took < watchSilence-time.Second {
		t.Errorf("a watcher silent for %s was dropped: before watchSilence (%s)", took, watchSilence)
	} else {
		t.Logf("the silent watcher was dropped %s after its last line", took.Round(time.Millisecond))
	}

	conn, _ := show("long", maxWatchLine)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("the watch with a line too long did not end: %v", err)
	}
	if listed("long") {
		t.Error("a line too long was held")
	}
}
