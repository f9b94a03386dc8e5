// Package raft elects the migrator among the replicas themselves with hashicorp/raft: for a
// database reached only through a transaction-mode pooler, or not PostgreSQL, and to keep a
// large rollout's waiting replicas off the database entirely.
//
// The replicas of one rollout form one cluster: same migration set, same lock namespace, same
// shared secret. Its leader is the migrator; the replicated state says how the run stands, and
// waiters learn from it, not from the database, when the run ended. Raft cannot stop a deposed
// leader that still reaches the database, so the database fences: an epoch row, bumped by each
// new leader and checked under a row lock inside every migration transaction.
package raft

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/lock"
)

// hello is what a node tells a peer that asks: its view of the cluster. Bootstrap compares
// views; a node that is not a member follows the cluster through hellos.
type hello struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Peers    []Peer `json:"peers"`
	HasState bool   `json:"has_state"`
	// Voters is the configuration: the one this node is in, or, with no state yet, the one it
	// would bootstrap (empty while it does not see every member). Bootstrap compares them.
	Voters []Peer `json:"voters,omitempty"`
	State  State  `json:"state"`
	Leader string `json:"leader,omitempty"`
}

// Node is one replica's Raft member, and its lock.Locker.
type Node struct {
	cfg   Config
	log   zerolog.Logger
	self  Peer
	fsm   *fsm
	fence *fence

	stream *stream
	trans  *hraft.NetworkTransport
	raft   *hraft.Raft

	stop  context.CancelFunc
	loops sync.WaitGroup
	mu    sync.Mutex
	peers []Peer // the member set this node sees
	// answering is how many members answered the last round of hellos, this one included.
	answering int
	remote    *hello // the cluster's view while this node is not a member
	// started is set once raft is: the transport answers hellos before that.
	started atomic.Bool
	notify  chan struct{} // closed on leadership changes and remote views
	lease   *lease
	// up is the watch this node holds on a voter while it follows, which carries its
	// presence entry (nil when it holds none).
	up *upstream
	// sawHolder: the last Holder call found another replica leading.
	sawHolder bool
}

var _ lock.Replicated = (*Node)(nil)

// Start starts the node: it listens, and bootstraps the cluster in the background once every
// member sees the same member set. db is the database the fence lives in.
func Start(cfg Config, db *sql.DB, dialect, fenceTable, namespace string, log zerolog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log.With().Str("component", "raft").Logger(), notify: make(chan struct{})}
	n.fsm = newFSM(n.wake)
	var err error
	if n.fence, err = newFence(db, dialect, fenceTable, namespace); err != nil {
		return nil, err
	}
	if n.self, err = n.identity(); err != nil {
		return nil, err
	}
	advertise, err := net.ResolveTCPAddr("tcp", n.self.Address)
	if err != nil {
		return nil, fmt.Errorf("raft-advertise: %q: %w", n.self.Address, err)
	}
	creds, err := deriveCredentials(cfg.Secret, cfg.Cluster)
	if err != nil {
		return nil, err
	}
	if n.stream, err = newStream(cfg.Listen, advertise, creds, n.hello, n.nextView, n.log); err != nil {
		return nil, err
	}
	n.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream: n.stream, MaxPool: 3, Timeout: 2 * time.Second, Logger: newHCLogger(n.log, "raft-net"),
	})
	store := hraft.NewInmemStore()
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(n.self.ID)
	rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.HeartbeatTimeout, cfg.ElectionTimeout
	rc.LeaderLeaseTimeout, rc.CommitTimeout = cfg.LeaderLeaseTimeout, cfg.CommitTimeout
	rc.Logger = newHCLogger(n.log, "raft")
	if n.raft, err = hraft.NewRaft(rc, n.fsm, store, store, hraft.NewInmemSnapshotStore(), n.trans); err != nil {
		n.stream.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.started.Store(true) // after n.raft is set: hello may read it from now on
	ctx, stop := context.WithCancel(context.Background())
	n.stop = stop
	n.watchLeadership(ctx)
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		n.join(ctx)
	}()
	return n, nil
}

// identity is this node's member entry: from the static list, or its advertise address.
func (n *Node) identity() (Peer, error) {
	if len(n.cfg.Peers) > 0 {
		return n.cfg.self()
	}
	return Peer{ID: n.cfg.Advertise, Address: n.cfg.Advertise}, nil
}

// Self is this node's member entry.
func (n *Node) Self() Peer { return n.self }

// watchLeadership turns Raft's state and leader changes into wake-ups for waiters and into
// loss of the lease for a leader that steps down.
func (n *Node) watchLeadership(ctx context.Context) {
	ch := make(chan hraft.Observation, 16)
	obs := hraft.NewObserver(ch, false, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.RaftState, hraft.LeaderObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		defer n.raft.DeregisterObserver(obs)
		for {
			var o hraft.Observation
			select {
			case <-ctx.Done():
				return
			case o = <-ch:
			}
			if lo, ok := o.Data.(hraft.LeaderObservation); ok {
				switch {
				case lo.LeaderID == "":
					n.log.Info().Msg("raft cluster has no leader")
				case string(lo.LeaderID) == n.self.ID:
					n.log.Info().Msg("this replica is the raft leader")
				default:
					n.log.Info().Str("leader", string(lo.LeaderID)).Msg("raft leader elected")
				}
			}
			n.mu.Lock()
			if n.lease != nil && n.raft.State() != hraft.Leader {
				n.lease.MarkLost()
			}
			n.wakeLocked()
			n.mu.Unlock()
		}
	}()
}

// wake tells waiters that something changed.
func (n *Node) wake() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.wakeLocked()
}

func (n *Node) wakeLocked() {
	close(n.notify)
	n.notify = make(chan struct{})
}

// hasState reports whether this node is part of a cluster (bootstrapped or joined).
func (n *Node) hasState() bool { return n.raft.LastIndex() > 0 }

// member reports whether this node is in the cluster's configuration.
func (n *Node) member() bool {
	return slices.ContainsFunc(n.configuration(), func(p Peer) bool { return p.ID == n.self.ID })
}

// configuration is the members of the Raft configuration, sorted by id (none before bootstrap,
// or when it cannot be read).
func (n *Node) configuration() []Peer {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []Peer
	for _, s := range f.Configuration().Servers {
		out = append(out, Peer{ID: string(s.ID), Address: string(s.Address)})
	}
	return sorted(out)
}

// hello answers a peer's question: this node's view. A peer may ask before Raft has started
// here; the node then has no state yet.
func (n *Node) hello() hello {
	n.mu.Lock()
	peers := slices.Clone(n.peers)
	n.mu.Unlock()
	if !n.started.Load() {
		return hello{ID: n.self.ID, Address: n.self.Address, Peers: peers, Voters: n.votersOf(peers)}
	}
	st := n.fsm.state()
	_, leader := n.raft.LeaderWithID()
	h := hello{ID: n.self.ID, Address: n.self.Address, Peers: peers, HasState: n.hasState(), State: st, Leader: string(leader)}
	if h.HasState {
		h.Voters = n.configuration()
	} else {
		h.Voters = n.votersOf(peers)
	}
	return h
}

// Close shuts down, bounded even when peers are unreachable. A leader leaving a run that has
// not ended gives up leadership first, so that a voter takes over at once instead of after an
// election timeout. Once the run has ended nobody needs a leader: every member is leaving too,
// and handing leadership on would only make each voter in turn wait for the next.
func (n *Node) Close() error {
	if n.lease != nil {
		n.lease.Release(context.Background())
	}
	if n.raft.State() == hraft.Leader && n.ended() {
		n.awaitFollowers(time.Second)
	}
	n.lingerForPollers()
	if n.raft.State() == hraft.Leader && !n.ended() {
		n.log.Info().Msg("leaving before the run ended: handing Raft leadership to another voter")
		if err := wait(n.raft.LeadershipTransfer(), 2*time.Second); err != nil {
			n.log.Warn().Err(err).Msg("could not hand Raft leadership on; the other voters elect a leader after the election timeout")
		}
	}
	n.stop()
	err := wait(n.raft.Shutdown(), 5*time.Second)
	n.trans.Close()
	n.stream.Close()
	n.loops.Wait()
	return err
}

// awaitFollowers waits, at most d, until every member that answers has applied what this leader
// has. Without it, a leader that exits right after recording the end of a run can leave a slow
// follower without the entry and without a quorum to learn it from (it then asks the
// database, but seconds later).
func (n *Node) awaitFollowers(d time.Duration) {
	want := n.fsm.state().Index
	pending := map[string]string{}
	for _, p := range n.configuration() {
		if p.ID != n.self.ID {
			pending[p.ID] = p.Address
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for len(pending) > 0 && ctx.Err() == nil {
		for id, addr := range pending {
			h, err := n.stream.askProgress(ctx, addr)
			if err != nil || h.State.Index >= want {
				delete(pending, id) // gone, or caught up
			}
		}
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// nextView is the next view a watch sends: at once when it sent none yet (last is nil), else
// once this node's state, leader or membership differs from last, or at watchTimeout. more is
// false when the watch should end after this view: the watcher left, the node is closing, or
// Raft has not started here yet (the watcher then looks again later).
func (n *Node) nextView(last *hello, gone <-chan struct{}) (h hello, more bool) {
	if !n.started.Load() {
		return n.hello(), false
	}
	if last == nil {
		return n.hello(), true
	}
	timeout := time.NewTimer(watchTimeout)
	defer timeout.Stop()
	for {
		_, _, changed := n.state() // before the view: a change after it closes this channel
		h := n.hello()
		if h.State.Index != last.State.Index || h.Leader != last.Leader || h.HasState != last.HasState {
			return h, true
		}
		select {
		case <-changed:
		case <-timeout.C:
			return h, true
		case <-gone:
			return h, false
		case <-n.stream.closed:
			return h, false
		}
	}
}

// lingerForPollers keeps a member that knows how the run ended answering hellos while members
// outside the configuration still poll it (at most 1.5 s): were every voter to exit at once, a
// follower that had not polled since would have no one to learn the end from.
func (n *Node) lingerForPollers() {
	if !n.ended() {
		return
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		last := time.Unix(0, n.stream.lastHello.Load())
		if n.stream.watching.Load() == 0 && time.Since(last) > 2*joinInterval {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ended reports whether this node knows that the run ended, done or failed.
func (n *Node) ended() bool {
	if !n.started.Load() {
		return false
	}
	phase := n.fsm.state().Phase
	return phase == lock.PhaseDone || phase == lock.PhaseFailed
}

// wait waits for f at most d.
func wait(f hraft.Future, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return errors.New("timed out")
	}
}
