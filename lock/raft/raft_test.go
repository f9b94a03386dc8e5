package raft

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	_ "modernc.org/sqlite"

	"github.com/schemagate/schemagate/internal/pgscratch"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
)

var testSecret = []byte("7c90baa41fc3ebb7192e8952806076df2c1a17993fe2ccd32f42e3da05ea9930")

// testCluster is n Raft nodes in this process, on loopback, with their fence in a SQLite file.
type testCluster struct {
	nodes map[string]*Node
	db    *sql.DB
	mu    sync.Mutex
}

// freeAddr is an address on 127.0.0.1 for a member to listen on (see pgscratch.FreePort: not
// one an earlier member's dial to a peer can take first).
func freeAddr(t *testing.T) string {
	port, err := pgscratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

func newTestCluster(t *testing.T, n int, mutate func(i int, c *Config)) *testCluster {
	return newTestClusterWith(t, n, mutate, zerolog.Nop())
}

func newTestClusterLog(t *testing.T, n int, log zerolog.Logger) *testCluster {
	return newTestClusterWith(t, n, nil, log)
}

func newTestClusterWith(t *testing.T, n int, mutate func(i int, c *Config), log zerolog.Logger) *testCluster {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "fence.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	peers := make([]Peer, n)
	for i := range peers {
		peers[i] = Peer{ID: fmt.Sprintf("replica-%d", i), Address: freeAddr(t)}
	}
	c := &testCluster{nodes: map[string]*Node{}, db: db}
	for i, p := range peers {
		cfg := DefaultConfig()
		cfg.Replica, cfg.Listen, cfg.Peers, cfg.Secret, cfg.Cluster = p.ID, p.Address, peers, testSecret, "test/fingerprint"
		if mutate != nil {
			mutate(i, &cfg)
		}
		node, err := Start(cfg, db, "sqlite3", DefaultFenceTable, "test", log.With().Str("node", p.ID).Logger())
		if err != nil {
			t.Fatalf("start %s: %v", p.ID, err)
		}
		c.nodes[p.ID] = node
	}
	t.Cleanup(func() {
		for _, node := range c.nodes {
			node.Close()
		}
	})
	return c
}

// kill stops a node as a crash would: no leadership transfer, connections dropped.
func (n *Node) kill() {
	n.stop()
	n.raft.Shutdown().Error()
	n.trans.Close()
	n.stream.Close()
}

func TestConformance(t *testing.T) {
	clusters := map[*testing.T]*testCluster{}
	var mu sync.Mutex
	locktest.Run(t, locktest.Backend{
		Group: func(t *testing.T, n int) []lock.Locker {
			c := newTestCluster(t, n, nil)
			mu.Lock()
			clusters[t] = c
			mu.Unlock()
			ls := make([]lock.Locker, n)
			for i := range ls {
				ls[i] = c.nodes[fmt.Sprintf("replica-%d", i)]
			}
			return ls
		},
		Kill: func(t *testing.T, l lock.Locker) { l.(*Node).kill() },
		Work: func(t *testing.T, l lock.Locker) lock.Execer {
			mu.Lock()
			defer mu.Unlock()
			return clusters[t].db
		},
	})
}

// TestWrongSecretRefused: a node with another secret can neither join the cluster nor learn
// its state. The three members form their cluster and elect; the rogue, listing itself among
// them, never bootstraps (the members do not answer it) and never sees a leader.
func TestWrongSecretRefused(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := awaitLeader(t, c.nodes["replica-0"])

	members := c.nodes["replica-0"].cfg.Peers
	rogue := DefaultConfig()
	rogue.Replica, rogue.Listen = "rogue", freeAddr(t)
	rogue.Peers = append(slices.Clone(members), Peer{ID: "rogue", Address: rogue.Listen})
	rogue.Secret, rogue.Cluster = []byte("c5746fb9e2cceea9f4ebefc9fe0de55699ab93056cfab45ad8ff1af9b24610ad"), "test/fingerprint"
	r, err := Start(rogue, c.db, "sqlite3", DefaultFenceTable, "test", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Give the rogue many rounds of asking (4 a second) before looking.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		learned := r.remote != nil
		r.mu.Unlock()
		if _, l := r.raft.LeaderWithID(); l != "" || r.hasState() || learned {
			t.Fatalf("the rogue node learned of the cluster (leader %q)", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, now := c.nodes["replica-0"].raft.LeaderWithID(); string(now) != leader {
		t.Fatalf("the leader changed from %s to %s while the rogue knocked", leader, now)
	}
}

// awaitLeader waits until n knows a leader and returns its id.
func awaitLeader(t *testing.T, n *Node) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, leader := n.raft.LeaderWithID(); leader != "" {
			return string(leader)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 30s")
	return ""
}

// TestBootstrapNeedsAgreement: nodes that see different member sets never form two clusters.
// Three nodes list {a, b, c}; two more list {c, d, e}. c agrees with the first three only, so
// {a, b, c} forms; d and e, who would be a majority of their own list, never bootstrap.
func TestBootstrapNeedsAgreement(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "fence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	addr := map[string]string{}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		addr[id] = freeAddr(t)
	}
	list := func(ids ...string) []Peer {
		var ps []Peer
		for _, id := range ids {
			ps = append(ps, Peer{ID: id, Address: addr[id]})
		}
		return ps
	}
	nodes := map[string]*Node{}
	for id, peers := range map[string][]Peer{
		"a": list("a", "b", "c"), "b": list("a", "b", "c"), "c": list("a", "b", "c"),
		"d": list("c", "d", "e"), "e": list("c", "d", "e"),
	} {
		cfg := DefaultConfig()
		cfg.Replica, cfg.Listen, cfg.Peers, cfg.Secret, cfg.Cluster = id, addr[id], peers, testSecret, "test/fingerprint"
		n, err := Start(cfg, db, "sqlite3", DefaultFenceTable, "test", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes[id] = n
	}
	awaitLeader(t, nodes["a"])
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range []string{"d", "e"} {
			if nodes[id].hasState() {
				t.Fatalf("node %s bootstrapped a second cluster", id)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLeavingAfterTheRunEnded: once the run has ended every member is leaving, so a leader
// that closes neither hands leadership on (which would make each voter in turn lead, check
// the others and linger before leaving) nor, by checking that the voters applied the end,
// keeps them lingering as if followers still polled them. While the run is still going, a
// closing leader does hand leadership on.
func TestLeavingAfterTheRunEnded(t *testing.T) {
	for _, ended := range []bool{true, false} {
		t.Run(fmt.Sprintf("ended=%v", ended), func(t *testing.T) {
			// A transfer gives up after the election timeout, and a leader that misses its
			// lease steps down: generous timers keep a slow machine (the race detector) from
			// failing the hand-over this test expects while the run goes on.
			logs := &logLines{}
			c := newTestClusterWith(t, 3, func(_ int, cfg *Config) {
				cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = time.Second, 3*time.Second, time.Second
			}, zerolog.New(logs))
			id := awaitLeader(t, c.nodes["replica-0"])
			leader := c.nodes[id]
			lease, err := leader.TryAcquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ev := lock.Event{Kind: lock.EventApplied, Replica: id, Version: 1}
			if ended {
				ev = lock.Event{Kind: lock.EventDone, Replica: id, Version: 1}
			}
			if err := lease.Announce(context.Background(), nil, ev); err != nil {
				t.Fatal(err)
			}
			want := leader.fsm.state().Index
			polled := map[string]int64{}
			for other, n := range c.nodes {
				if other == id {
					continue
				}
				deadline := time.Now().Add(10 * time.Second)
				for n.fsm.state().Index < want {
					if time.Now().After(deadline) {
						t.Fatalf("%s never applied index %d", other, want)
					}
					time.Sleep(10 * time.Millisecond)
				}
				polled[other] = n.stream.lastHello.Load()
			}
			c.mu.Lock()
			delete(c.nodes, id)
			c.mu.Unlock()
			if err := leader.Close(); err != nil {
				t.Fatal(err)
			}
			// Whether the leader hands leadership on is its decision; whether it learns of the
			// new term before it shuts down is a race, so the test reads the decision.
			logs.mu.Lock()
			out := logs.text.String()
			logs.mu.Unlock()
			handedOn := strings.Contains(out, "handing Raft leadership to another voter")
			if handedOn == ended {
				t.Errorf("run ended %v: the closing leader handed leadership on: %v", ended, handedOn)
			}
			if strings.Contains(out, "could not hand Raft leadership on") {
				t.Errorf("the hand-over failed:\n%s", out)
			}
			for other, at := range polled {
				if now := c.nodes[other].stream.lastHello.Load(); now != at {
					t.Errorf("the leader's progress check counted as a follower polling %s", other)
				}
			}
		})
	}
}

// TestBootstrapAgreement: a voter bootstraps when its fellow voters already formed the cluster
// with exactly the configuration it would pass (so that it can vote and stand at once), and
// never when they formed another, or would bootstrap another (a different --raft-voters).
func TestBootstrapAgreement(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "fence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	peers := []Peer{{ID: "a", Address: freeAddr(t)}, {ID: "b", Address: freeAddr(t)}, {ID: "c", Address: freeAddr(t)}}
	others := []Peer{{ID: "a", Address: peers[0].Address}, {ID: "b", Address: peers[1].Address}, {ID: "x", Address: freeAddr(t)}}
	// Only a runs: b and c never answer its own rounds, so nothing but the hellos below can
	// make it bootstrap.
	for _, tc := range []struct {
		name   string
		hello  hello
		formed bool
		reason string
	}{
		{"formed with the same voters", hello{HasState: true, Peers: peers, Voters: peers}, true, ""},
		{"formed with other voters", hello{HasState: true, Peers: peers, Voters: others}, false, "already in a cluster of other voters"},
		{"would choose other voters", hello{Peers: peers, Voters: peers[:2]}, false, "same --raft-voters"},
		{"sees other members", hello{Peers: others, Voters: others}, false, "sees other members"},
		{"all agree, none formed", hello{Peers: peers, Voters: peers}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Replica, cfg.Listen, cfg.Peers, cfg.Secret, cfg.Cluster = "a", peers[0].Address, peers, testSecret, "test/fingerprint"
			n, err := Start(cfg, db, "sqlite3", DefaultFenceTable, "test", zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			hellos := map[string]hello{}
			for _, p := range peers[1:] {
				h := tc.hello
				h.ID, h.Address = p.ID, p.Address
				hellos[p.Address] = h
			}
			reason := n.tryBootstrap(context.Background(), sorted(peers), hellos)
			if !strings.Contains(reason, tc.reason) || (tc.reason == "") != (reason == "") {
				t.Errorf("reason %q, want one containing %q", reason, tc.reason)
			}
			if n.hasState() != tc.formed {
				t.Errorf("bootstrapped: %v, want %v", n.hasState(), tc.formed)
			}
		})
	}
}
