package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// joinInterval is how often a node first looks again at its peers until it is in a cluster; the
// pause doubles up to maxJoinInterval while the cluster does not form, so that a hundred members
// waiting for a missing one do not spend the machine on hellos.
const (
	joinInterval    = 250 * time.Millisecond
	maxJoinInterval = 2 * time.Second
)

// startWindow is how long a rollout's members take to start, as join assumes: within it a
// voter looks again every joinInterval and a follower asks only the voters; after it a voter
// backs off and a follower asks every member.
const startWindow = 3 * time.Second

// helloConcurrency bounds the hellos one node has in flight: each is a TLS handshake.
const helloConcurrency = 8

// join forms or finds the cluster. A node bootstraps only when it sees exactly the expected
// members, itself among them, and every other member answers a hello with the identical set and
// no state yet: then every bootstrapping node passes the same configuration, and no two
// clusters can form. A node that finds a member with state joins nothing itself: the leader
// reaches it if it is in the configuration. A node outside the configuration follows the
// cluster through a watch on a voter.
func (n *Node) join(ctx context.Context) {
	var lastSay time.Time
	saidFollower := false
	pause := joinInterval
	started := time.Now()
	for {
		if n.hasState() && n.member() {
			return
		}
		set, hellos, err := n.discover(ctx)
		n.mu.Lock()
		n.peers = set
		n.mu.Unlock()
		reason := ""
		switch {
		case err != nil:
			reason = err.Error()
		case !n.hasState() && n.follower(set):
			reason = followerReason
		case !n.hasState():
			reason = n.tryBootstrap(ctx, set, hellos)
		default:
			reason = "this replica is not in the cluster's configuration; following it"
		}
		if reason == "" {
			continue
		}
		n.follow(ctx, set, reason == followerReason || n.hasState(), time.Since(started) > startWindow)
		n.mu.Lock()
		following := n.remote != nil
		n.mu.Unlock()
		switch {
		case reason == followerReason && !saidFollower:
			saidFollower = true
			n.log.Info().Int("voters", n.voterCount()).Msg("this replica does not vote: it follows the cluster's state from the voters")
		case reason != followerReason && time.Since(lastSay) > 5*time.Second:
			lastSay = time.Now()
			n.log.Info().Strs("sees", addresses(set)).Int("expect", n.expect()).Msg("raft cluster not formed yet: " + reason)
		}
		if following {
			continue // the watch ended (its voter left): find another at once
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		// A follower looks again quickly (a round costs it a watch on a voter or a few refused
		// dials); a voter waiting for the other voters backs off, after the first seconds of a
		// rollout's start.
		if reason == followerReason || time.Since(started) < startWindow {
			pause = joinInterval
		} else {
			pause = min(2*pause, maxJoinInterval)
		}
	}
}

// followerReason is join's reason for a member that does not vote.
const followerReason = "this replica does not vote; it follows the voters"

// voterCount is how many members vote.
func (n *Node) voterCount() int { return min(n.expect(), n.cfg.Voters) }

// follower reports whether this node, in the full member set, is not among the voters (the
// first voterCount members by id).
func (n *Node) follower(set []Peer) bool {
	voters := n.votersOf(set)
	return voters != nil && !slices.Contains(voters, n.self)
}

func (n *Node) expect() int {
	if len(n.cfg.Peers) > 0 {
		return len(n.cfg.Peers)
	}
	return n.cfg.Expect
}

// discover returns the member set this node sees, sorted by id. A static list is taken as it
// is. A DNS name lists every pod behind it, which during a rollout includes the previous
// revision's replicas and pods not yet started: the set is this node plus the addresses that
// answer a hello, which only members of the same cluster can (another migration set derives
// another key, see credentials). Their answers are returned for tryBootstrap.
func (n *Node) discover(ctx context.Context) ([]Peer, map[string]hello, error) {
	if len(n.cfg.Peers) > 0 {
		return sorted(n.cfg.Peers), nil, nil
	}
	resolve := n.cfg.Resolve
	if resolve == nil {
		resolve = net.DefaultResolver.LookupHost
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	hosts, err := resolve(rctx, n.cfg.Discover)
	if err != nil {
		return nil, nil, fmt.Errorf("look up %s: %w", n.cfg.Discover, err)
	}
	_, port, _ := net.SplitHostPort(n.self.Address)
	var others []Peer
	for _, h := range hosts {
		addr := net.JoinHostPort(h, port)
		if addr != n.self.Address {
			others = append(others, Peer{ID: addr, Address: addr})
		}
	}
	hellos := n.askAll(ctx, others)
	set := []Peer{n.self}
	for _, p := range others {
		if _, ok := hellos[p.Address]; ok {
			set = append(set, p)
		}
	}
	if len(set) < n.expect() && len(hosts) > len(set) {
		return sorted(set), hellos, fmt.Errorf("%s lists %d addresses; %d of them, this replica included, answer as members of this rollout, and %d are expected",
			n.cfg.Discover, len(hosts), len(set), n.expect())
	}
	return sorted(set), hellos, nil
}

// askAll asks every peer for a hello (a few at a time) and returns the answers by address.
func (n *Node) askAll(ctx context.Context, peers []Peer) map[string]hello {
	hellos := map[string]hello{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, helloConcurrency)
	for _, p := range peers {
		if p == n.self {
			continue
		}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			answer, err := n.stream.askHello(ctx, p.Address)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			hellos[p.Address] = answer
		})
	}
	wg.Wait()
	return hellos
}

func sorted(set []Peer) []Peer {
	out := slices.Clone(set)
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func addresses(set []Peer) []string {
	out := make([]string, len(set))
	for i, p := range set {
		out[i] = p.ID + "=" + p.Address
	}
	return out
}

// votersOf is the configuration a node that sees set would bootstrap: its first voterCount
// members by id, once it sees every expected member (nil before).
func (n *Node) votersOf(set []Peer) []Peer {
	if len(set) != n.expect() {
		return nil
	}
	return set[:n.voterCount()]
}

// tryBootstrap bootstraps when every voter agrees, and returns why not otherwise ("" when it
// bootstrapped, or found the cluster already formed).
//
// Only voters bootstrap, so only they must agree: each that bootstraps passes the same
// configuration, and the followers, who never bootstrap, need not even be up. A voter whose
// peers already formed the cluster with exactly that configuration bootstraps too: its log is
// then the cluster's first entry, a prefix of every member's, so it is safe, and it can vote
// and stand at once instead of waiting idle until the leader reaches it. With only the first
// voter to bootstrap holding a configuration, the first election would wait on that one
// voter's timer.
func (n *Node) tryBootstrap(ctx context.Context, set []Peer, hellos map[string]hello) string {
	if len(set) != n.expect() {
		return fmt.Sprintf("sees %d members, expects %d", len(set), n.expect())
	}
	if !slices.Contains(set, n.self) {
		return "this replica is not among the members it sees"
	}
	voters := n.votersOf(set)
	if hellos == nil {
		hellos = n.askAll(ctx, voters)
	}
	answered := 1
	for _, p := range voters {
		if _, ok := hellos[p.Address]; ok && p != n.self {
			answered++
		}
	}
	n.mu.Lock()
	n.answering = answered
	n.mu.Unlock()
	formed := false
	for _, p := range voters {
		if p == n.self {
			continue
		}
		h, ok := hellos[p.Address]
		switch {
		case !ok:
			return fmt.Sprintf("member %s (%s) does not answer", p.ID, p.Address)
		case h.HasState && !slices.Equal(h.Voters, voters):
			return fmt.Sprintf("member %s is already in a cluster of other voters (%s); waiting for its leader",
				p.ID, strings.Join(addresses(h.Voters), ","))
		case h.HasState:
			formed = true // with this very configuration: see above
		case !slices.Equal(sorted(h.Peers), set):
			return fmt.Sprintf("voter %s sees other members (%s); not bootstrapping until every voter sees the same",
				p.ID, strings.Join(addresses(h.Peers), ","))
		case !slices.Equal(h.Voters, voters):
			return fmt.Sprintf("voter %s would choose other voters (%s); every replica needs the same --raft-voters",
				p.ID, strings.Join(addresses(h.Voters), ","))
		}
	}
	servers := make([]hraft.Server, len(voters))
	for i, p := range voters {
		servers[i] = hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(p.ID), Address: hraft.ServerAddress(p.Address)}
	}
	err := n.raft.BootstrapCluster(hraft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
		return "bootstrap failed: " + err.Error()
	}
	msg := "raft cluster bootstrapped"
	if formed {
		msg = "raft cluster joined: its voters had formed it already, with the same voters"
	}
	n.log.Info().Strs("voters", addresses(voters)).Int("members", len(set)).Msg(msg)
	return ""
}

// follow learns the cluster's state, for a node outside the configuration (or not yet in it),
// from a watch: a stream of views that a member sends at once and again each time its state or
// leader moves; the watch also carries this node's presence entry (presence.go). It asks the
// member it followed last first, then the voters of the set it sees, and everyone else only
// when wide (a rollout slow to form, or lists that disagree). When hold, it waits on a voter
// that has no state yet (a cluster about to form) for up to watchTimeout; a voter waiting to
// bootstrap does not hold, it only looks. follow returns when the watch ends. When no member
// answers with a state any more (the cluster's members exited), the view is dropped: the node
// then has no leader, and the gate asks the database.
func (n *Node) follow(ctx context.Context, set []Peer, hold, wide bool) {
	n.mu.Lock()
	var peers []Peer
	if n.remote != nil {
		peers = append(peers, Peer{ID: n.remote.ID, Address: n.remote.Address})
		hold = true
	}
	n.mu.Unlock()
	voters := set[:min(len(set), n.voterCount())]
	peers = append(peers, voters...)
	if wide {
		peers = append(peers, set...)
	}
	tried := map[string]bool{n.self.Address: true}
	for _, p := range peers {
		if tried[p.Address] || ctx.Err() != nil {
			continue
		}
		tried[p.Address] = true
		waitOn := hold && slices.ContainsFunc(voters, func(v Peer) bool { return v.Address == p.Address })
		began := time.Now()
		learned := false
		n.stream.watchViews(ctx, p.Address, n.attach, func(h hello) bool {
			if n.hasState() && n.member() {
				return false // a voter the leader reached late: it has the state itself now
			}
			if !h.HasState {
				return waitOn && time.Since(began) < watchTimeout
			}
			learned = true
			n.mu.Lock()
			changed := n.remote == nil || n.remote.State != h.State || n.remote.Leader != h.Leader
			n.remote = &h
			if changed {
				n.wakeLocked()
			}
			n.mu.Unlock()
			return hold
		})
		n.detach()
		if learned {
			return
		}
	}
	n.mu.Lock()
	if n.remote != nil {
		n.remote = nil
		n.wakeLocked()
	}
	n.mu.Unlock()
}
