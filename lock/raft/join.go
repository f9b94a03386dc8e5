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

// joinInterval is how often a node looks again at its peers until it is in a cluster.
const joinInterval = 250 * time.Millisecond

// join forms or finds the cluster. A node bootstraps only when it sees exactly the expected
// members, itself among them, and every other member answers a hello with the identical set and
// no state yet: then every bootstrapping node passes the same configuration, and no two
// clusters can form. A node that finds a member with state joins nothing itself: the leader
// reaches it if it is in the configuration. A node outside the configuration follows the
// cluster through hellos.
func (n *Node) join(ctx context.Context) {
	var lastSay time.Time
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
		case !n.hasState():
			reason = n.tryBootstrap(ctx, set, hellos)
		default:
			reason = "this replica is not in the cluster's configuration; following it"
		}
		if reason == "" {
			continue
		}
		n.follow(ctx, set)
		if time.Since(lastSay) > 5*time.Second {
			lastSay = time.Now()
			n.log.Info().Strs("sees", addresses(set)).Int("expect", n.expect()).Msg("raft cluster not formed yet: " + reason)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(joinInterval):
		}
	}
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

// askAll asks every peer for a hello at once and returns the answers by address, and records
// how many members answer (this one included) for Outcome.
func (n *Node) askAll(ctx context.Context, peers []Peer) map[string]hello {
	hellos := map[string]hello{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range peers {
		if p == n.self {
			continue
		}
		wg.Go(func() {
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
	n.mu.Lock()
	n.answering = 1 + len(hellos)
	n.mu.Unlock()
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

// tryBootstrap bootstraps when every member agrees, and returns why not otherwise ("" when it
// bootstrapped, or found the cluster already formed).
func (n *Node) tryBootstrap(ctx context.Context, set []Peer, hellos map[string]hello) string {
	if hellos == nil {
		hellos = n.askAll(ctx, set)
	}
	if len(set) != n.expect() {
		return fmt.Sprintf("sees %d members, expects %d", len(set), n.expect())
	}
	if !slices.Contains(set, n.self) {
		return "this replica is not among the members it sees"
	}
	for _, p := range set {
		if p == n.self {
			continue
		}
		h, ok := hellos[p.Address]
		switch {
		case !ok:
			return fmt.Sprintf("member %s (%s) does not answer", p.ID, p.Address)
		case h.HasState:
			return "member " + p.ID + " is already in a cluster; waiting for its leader"
		case !slices.Equal(sorted(h.Peers), set):
			return fmt.Sprintf("member %s sees other members (%s); not bootstrapping until every member sees the same",
				p.ID, strings.Join(addresses(h.Peers), ","))
		}
	}
	servers := make([]hraft.Server, len(set))
	for i, p := range set {
		servers[i] = hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(p.ID), Address: hraft.ServerAddress(p.Address)}
	}
	err := n.raft.BootstrapCluster(hraft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, hraft.ErrCantBootstrap) {
		return "bootstrap failed: " + err.Error()
	}
	n.log.Info().Strs("members", addresses(set)).Msg("raft cluster bootstrapped")
	return ""
}

// follow learns the cluster's state from a member that has it, for a node outside the
// configuration (or not yet in it). When no member answers with a state any more (the cluster's
// members exited), the view is dropped: the node then has no leader, and the gate asks the
// database.
func (n *Node) follow(ctx context.Context, set []Peer) {
	for _, p := range set {
		if p == n.self {
			continue
		}
		h, err := n.stream.askHello(ctx, p.Address)
		if err != nil || !h.HasState {
			continue
		}
		n.mu.Lock()
		changed := n.remote == nil || n.remote.State != h.State || n.remote.Leader != h.Leader
		n.remote = &h
		if changed {
			n.wakeLocked()
		}
		n.mu.Unlock()
		return
	}
	n.mu.Lock()
	if n.remote != nil {
		n.remote = nil
		n.wakeLocked()
	}
	n.mu.Unlock()
}
