package raft

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	_ "modernc.org/sqlite"

	"github.com/schemagate/schemagate/lock"
)

// TestDiscoverBootstrapsOnlyWithTheExpectedSet: with DNS discovery, members appear one by one
// as their pods start, and the name also lists two replicas of the previous rollout (another
// migration set, so another cluster). Nobody bootstraps while fewer than --raft-expect members
// of this rollout answer; once all three do, exactly one cluster of the three forms, without
// the previous rollout's replicas.
func TestDiscoverBootstrapsOnlyWithTheExpectedSet(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "fence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	ips := []string{"127.0.0.41", "127.0.0.42", "127.0.0.43"}
	previous := []string{"127.0.0.44", "127.0.0.45"}
	var visible atomic.Int32 // how many records the name has: pods appear one by one
	visible.Store(2)
	var lookups atomic.Int32
	resolve := func(_ context.Context, host string) ([]string, error) {
		if host != "members.schemagate.test" {
			return nil, fmt.Errorf("unexpected name %q", host)
		}
		lookups.Add(1)
		return append(slices.Clone(previous), ips[:visible.Load()]...), nil
	}
	for i, ip := range previous {
		cfg := DefaultConfig()
		cfg.Replica, cfg.Secret, cfg.Cluster = fmt.Sprintf("old-%d", i), testSecret, "test/previous-fingerprint"
		cfg.Listen = net.JoinHostPort(ip, port)
		cfg.Advertise = cfg.Listen
		cfg.Peers = nil
		cfg.Discover, cfg.Expect, cfg.Resolve = "previous.schemagate.test", 2, func(context.Context, string) ([]string, error) { return previous, nil }
		n, err := Start(cfg, db, "sqlite3", DefaultFenceTable, "test", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
	}
	nodes := make([]*Node, len(ips))
	for i, ip := range ips {
		cfg := DefaultConfig()
		cfg.Replica, cfg.Secret, cfg.Cluster = fmt.Sprintf("pod-%d", i), testSecret, "test/fingerprint"
		cfg.Listen = net.JoinHostPort(ip, port)
		cfg.Advertise = cfg.Listen
		cfg.Discover, cfg.Expect, cfg.Resolve = "members.schemagate.test", 3, resolve
		n, err := Start(cfg, db, "sqlite3", DefaultFenceTable, "test", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes[i] = n
	}
	// Each node looks the name up every joinInterval; let every one of them see the short list
	// several times before the third record appears.
	for lookups.Load() < int32(4*len(nodes)) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, n := range nodes {
		if n.hasState() {
			t.Fatalf("%s bootstrapped while the name listed 2 of 3 members", n.cfg.Replica)
		}
		if out := n.Outcome(); !strings.Contains(out.Cluster, "has not formed") || !out.Leaderless {
			t.Errorf("%s: cluster %q, leaderless %v", n.cfg.Replica, out.Cluster, out.Leaderless)
		}
	}
	visible.Store(3)
	leader := awaitLeader(t, nodes[0])
	for _, n := range nodes {
		if got := awaitLeader(t, n); got != leader {
			t.Errorf("%s follows %s, want %s: two clusters formed", n.cfg.Replica, got, leader)
		}
		// A member can hear from the leader before it has applied the configuration entry.
		deadline := time.Now().Add(10 * time.Second)
		for len(n.raft.GetConfiguration().Configuration().Servers) != 3 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: configuration %v", n.cfg.Replica, n.raft.GetConfiguration().Configuration().Servers)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !strings.HasPrefix(leader, "127.0.0.4") {
		t.Errorf("leader id %q: discovered members are named by address", leader)
	}
}

// TestConfigErrors: every setting that cannot work is refused with the setting's name and,
// for cross-field rules, both values.
func TestConfigErrors(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Replica, c.Secret = "a", testSecret
		c.Peers = []Peer{{ID: "a", Address: "127.0.0.1:9091"}, {ID: "b", Address: "127.0.0.2:9091"}}
		return c
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"no secret", func(c *Config) { c.Secret = nil }, []string{"raft-secret", "not set"}},
		{"short secret", func(c *Config) { c.Secret = []byte("short") }, []string{"raft-secret", "5 characters", "at least 32", "openssl rand -hex 32"}},
		{"weak secret", func(c *Config) { c.Secret = []byte(strings.Repeat("ab", 20)) }, []string{"raft-secret", "2 different characters", "openssl rand -hex 32"}},
		{"no peers", func(c *Config) { c.Peers = nil }, []string{"--raft-peers", "--raft-discover"}},
		{"both", func(c *Config) { c.Discover = "x" }, []string{"both set"}},
		{"expect mismatch", func(c *Config) { c.Expect = 3 }, []string{"raft-expect (3)", "(2)"}},
		{"discover without expect", func(c *Config) { c.Peers, c.Discover, c.Advertise = nil, "x", "1.2.3.4:9091" }, []string{"raft-expect", "0"}},
		{"discover without advertise", func(c *Config) { c.Peers, c.Discover, c.Expect = nil, "x", 3 }, []string{"raft-advertise"}},
		{"not in list", func(c *Config) { c.Replica = "z" }, []string{`"z"`, "not in the list"}},
		{"lease > heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Second }, []string{"lease timeout (1s)", "heartbeat timeout (500ms)"}},
		{"election < heartbeat", func(c *Config) { c.ElectionTimeout = 100 * time.Millisecond }, []string{"election timeout (100ms)", "heartbeat timeout (500ms)"}},
		{"commit > heartbeat", func(c *Config) { c.CommitTimeout = time.Second }, []string{"commit timeout (1s)", "heartbeat timeout (500ms)"}},
		{"tiny timer", func(c *Config) { c.CommitTimeout = time.Millisecond }, []string{"raft-commit-timeout", "at least 5ms"}},
		{"bad listen", func(c *Config) { c.Listen = "9091" }, []string{"raft-listen", `"9091"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), string(testSecret)) {
				t.Errorf("the error shows the secret: %q", err)
			}
		})
	}
	if err := base().Validate(); err != nil {
		t.Errorf("a good config is refused: %v", err)
	}
}

// TestVotersAndFollowers: of 7 members only the first 3 by id vote; the cluster's configuration
// holds those 3, the leader is one of them, and the other 4 follow its state through hellos,
// never lead, and see the run end.
func TestVotersAndFollowers(t *testing.T) {
	c := newTestCluster(t, 7, func(_ int, cfg *Config) { cfg.Voters = 3 })
	var voter *Node
	for id, n := range c.nodes {
		if id <= "replica-2" {
			voter = n
		}
	}
	leader := awaitLeader(t, voter)
	if leader > "replica-2" {
		t.Fatalf("leader %s does not vote", leader)
	}
	servers := c.nodes[leader].raft.GetConfiguration().Configuration().Servers
	if len(servers) != 3 {
		t.Fatalf("configuration: %v", servers)
	}
	lease, err := c.nodes[leader].TryAcquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Announce(context.Background(), nil, lock.Event{Kind: lock.EventDone, Replica: leader, Version: 3}); err != nil {
		t.Fatal(err)
	}
	for id, n := range c.nodes {
		if id <= "replica-2" {
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for n.Outcome().Phase != lock.PhaseDone {
			if time.Now().After(deadline) {
				t.Fatalf("follower %s never saw the run end: %+v", id, n.Outcome())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := n.TryAcquire(context.Background()); !errors.Is(err, lock.ErrHeld) {
			t.Errorf("follower %s: TryAcquire %v, want ErrHeld", id, err)
		}
		if n.hasState() {
			t.Errorf("follower %s joined the Raft configuration", id)
		}
	}
}

// TestFollowersWatchOneStream: a follower learns every step of a run over the one watch it
// holds on a voter, not by a new connection (a TLS handshake) per step, which a hundred
// followers times every migration would spend the machine on.
func TestFollowersWatchOneStream(t *testing.T) {
	c := newTestCluster(t, 6, func(_ int, cfg *Config) { cfg.Voters = 3 })
	leader := awaitLeader(t, c.nodes["replica-0"])
	followers := []*Node{c.nodes["replica-3"], c.nodes["replica-4"], c.nodes["replica-5"]}
	lease, err := c.nodes[leader].TryAcquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	awaitIndex := func(want uint64) {
		t.Helper()
		for _, f := range followers {
			deadline := time.Now().Add(10 * time.Second)
			for f.Outcome().Seq < want {
				if time.Now().After(deadline) {
					t.Fatalf("follower %s stuck at %+v, want index %d", f.self.ID, f.Outcome(), want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	awaitIndex(c.nodes[leader].fsm.state().Index)
	served := func() (n int64) {
		for id, v := range c.nodes {
			if id <= "replica-2" {
				n += v.stream.watches.Load()
			}
		}
		return n
	}
	before := served()
	const steps = 10
	for v := 1; v <= steps; v++ {
		if err := lease.Announce(context.Background(), nil, lock.Event{Kind: lock.EventApplied, Replica: leader, Version: int64(v), Migration: fmt.Sprintf("%05d.sql", v)}); err != nil {
			t.Fatal(err)
		}
		awaitIndex(c.nodes[leader].fsm.state().Index)
	}
	if extra := served() - before; extra >= steps {
		t.Errorf("the followers opened %d watches for %d steps: one per step instead of one stream", extra, steps)
	}
}

// TestWaitingReleasesIdleConnections: a member that waits lets go of its idle database
// connections (so a waiting herd holds none); the migrator does not.
func TestWaitingReleasesIdleConnections(t *testing.T) {
	released := map[string]*atomic.Int64{}
	c := newTestCluster(t, 3, func(i int, cfg *Config) {
		n := &atomic.Int64{}
		released[cfg.Replica] = n
		cfg.ReleaseIdle = func() { n.Add(1) }
	})
	leader := awaitLeader(t, c.nodes["replica-0"])
	if _, err := c.nodes[leader].TryAcquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, n := range c.nodes {
		before := released[id].Load()
		if err := n.Wait(context.Background(), time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if got := released[id].Load() - before; (got == 1) != (id != leader) {
			t.Errorf("%s (leader %s) released its idle connections %d times while waiting once", id, leader, got)
		}
	}
}

// TestAskBoundedByContext: a peer frozen by SIGSTOP still completes the TCP handshake in its
// kernel but never answers TLS; asking it must end when the caller's context does, not after
// the handshake timeout (a leader closing would otherwise wait 5 s per frozen voter).
func TestAskBoundedByContext(t *testing.T) {
	frozen, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: the kernel's backlog does
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	c := newTestCluster(t, 1, nil)
	n := c.nodes["replica-0"]
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := n.stream.askProgress(ctx, frozen.Addr().String()); err == nil {
		t.Fatal("a frozen peer answered")
	}
	if took := time.Since(began); took >= handshakeTimeout {
		t.Errorf("asking a frozen peer took %s: the context (100 ms) did not bound it", took)
	}
}
