package raft

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schemagate/schemagate/lock"
)

// Presence lives where the members already meet, in memory, and never in the Raft log: a voter
// holds its own entry, and a member that follows sends its entry over the watch it already
// holds on a voter, which holds the entry for as long as that watch lasts. An entry thus goes
// with its member: at once when the member closes or its process ends (its connections close),
// within watchSilence when it is cut off or frozen (it acknowledges no view), and with the
// voter that held it (the member then shows itself again on the voter it watches next). Fleet
// asks every voter for what it holds.

var _ lock.Presence = (*Node)(nil)

// fleetTimeout bounds how long Fleet waits for one voter: a frozen voter holds a status up no
// longer, and is left out.
const fleetTimeout = 2 * time.Second

// errClosed is what presence calls return once the node is closed.
var errClosed = errors.New("the raft node is closed")

// shown is a presence entry as it travels and is held.
type shown struct {
	Member lock.Member `json:"member"`
	// Seq orders one replica's entries: when it showed this one, in nanoseconds, increasing
	// within its process. Wherever two of a replica's entries meet (a watch that moved, a
	// replica restarted), the one with the higher Seq is the newer.
	Seq int64 `json:"seq"`
}

// roster is the presence entries a member holds: its own, once it showed one, and those of
// the members watching it, each for as long as its watch lasts.
type roster struct {
	mu      sync.Mutex
	own     *shown
	watches uint64           // watch ids handed out
	held    map[uint64]shown // by watch
}

// show makes m this member's own entry and returns it.
func (r *roster) show(m lock.Member) shown {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq := time.Now().UnixNano()
	if r.own != nil {
		seq = max(seq, r.own.Seq+1)
	}
	m.Fingerprints = maps.Clone(m.Fingerprints)
	r.own = &shown{Member: m, Seq: seq}
	return *r.own
}

// mine is this member's own entry, nil before it showed one.
func (r *roster) mine() *shown {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.own == nil {
		return nil
	}
	e := *r.own
	return &e
}

// open returns the id of a new watch.
func (r *roster) open() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watches++
	return r.watches
}

// hold keeps e as watch id's entry, unless it already holds a newer one.
func (r *roster) hold(id uint64, e shown) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.held[id]; ok && cur.Seq > e.Seq {
		return
	}
	if r.held == nil {
		r.held = map[uint64]shown{}
	}
	r.held[id] = e
}

// drop forgets watch id's entry: the watch ended.
func (r *roster) drop(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.held, id)
}

// entries is every entry the member holds, its own first.
func (r *roster) entries() []shown {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]shown, 0, len(r.held)+1)
	if r.own != nil {
		out = append(out, *r.own)
	}
	for _, e := range r.held {
		out = append(out, e)
	}
	return out
}

// merge keeps the newest entry of each replica, sorted by replica.
func merge(lists ...[]shown) []lock.Member {
	newest := map[string]shown{}
	for _, l := range lists {
		for _, e := range l {
			if cur, ok := newest[e.Member.Replica]; !ok || e.Seq > cur.Seq {
				newest[e.Member.Replica] = e
			}
		}
	}
	out := make([]lock.Member, 0, len(newest))
	for _, e := range newest {
		m := e.Member
		m.Fingerprints = maps.Clone(m.Fingerprints)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b lock.Member) int { return strings.Compare(a.Replica, b.Replica) })
	return out
}

// Show publishes this replica's entry, replacing the one it showed before; an empty Replica is
// this node's. It never waits for the cluster: a voter holds its entry itself, and a member
// that follows sends it over the watch it holds on a voter, at once when it holds one, else as
// soon as it opens the next one (and again on every watch after). Show fails only once the
// node is closed.
func (n *Node) Show(ctx context.Context, m lock.Member) error {
	if n.closed() {
		return fmt.Errorf("show this replica: %w", errClosed)
	}
	if m.Replica == "" {
		m.Replica = n.cfg.Replica
	}
	e := n.stream.roster.show(m)
	n.mu.Lock()
	up := n.up
	n.mu.Unlock()
	if up != nil && up.send(upLine{Show: &e}, within(ctx, handshakeTimeout)) != nil {
		// The entry is kept: closing the watch makes this node open another, which sends it.
		up.conn.Close()
	}
	return nil
}

// attach is follow's hook for each watch it opens: the watch carries this node's presence
// entry while it lasts, starting with the entry shown so far. Show reads n.up after it
// records an entry and attach records n.up before it reads the entry, so that whichever runs
// second sends the newest entry.
func (n *Node) attach(up *upstream) error {
	n.mu.Lock()
	n.up = up
	n.mu.Unlock()
	if e := n.stream.roster.mine(); e != nil {
		return up.send(upLine{Show: e}, time.Now().Add(handshakeTimeout))
	}
	return nil
}

// detach ends what attach began, once a watch ended.
func (n *Node) detach() {
	n.mu.Lock()
	n.up = nil
	n.mu.Unlock()
}

// Fleet lists the entries of the members alive now: what every voter holds (its own entry and
// those of the members watching it), and this node's own, keeping each replica's newest. It
// asks the voters at once, each for at most fleetTimeout, and leaves out those that do not
// answer; it fails when none does. It never touches the database or the Raft log.
func (n *Node) Fleet(ctx context.Context) ([]lock.Member, error) {
	if n.closed() {
		return nil, fmt.Errorf("list the fleet: %w", errClosed)
	}
	voters := n.holders()
	lists := [][]shown{n.stream.roster.entries()}
	answered := 0
	if slices.ContainsFunc(voters, func(p Peer) bool { return p.ID == n.self.ID }) {
		answered++ // a voter: what it holds is its roster's, above
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range voters {
		if p.ID == n.self.ID {
			continue
		}
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, fleetTimeout)
			defer cancel()
			entries, err := n.stream.askFleet(actx, p.Address)
			if err != nil {
				return // left out: gone, cut off or frozen
			}
			mu.Lock()
			defer mu.Unlock()
			lists = append(lists, entries)
			answered++
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list the fleet: %w", err)
	}
	if answered == 0 && len(voters) > 0 {
		return nil, fmt.Errorf("list the fleet: none of the %d raft voters answers", len(voters))
	}
	return merge(lists...), nil
}

// holders are the members that hold the fleet's presence entries, the voters, as this node
// knows them: the configuration once it has state, else the one the member it follows
// reported, else the first voters of the members it sees.
func (n *Node) holders() []Peer {
	if n.hasState() {
		if c := n.configuration(); len(c) > 0 {
			return c
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.remote != nil && len(n.remote.Voters) > 0 {
		return slices.Clone(n.remote.Voters)
	}
	return slices.Clone(n.peers[:min(len(n.peers), n.voterCount())])
}

// closed reports whether Close has begun.
func (n *Node) closed() bool {
	select {
	case <-n.stream.closed:
		return true
	default:
		return false
	}
}
