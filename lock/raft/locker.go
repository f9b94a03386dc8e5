package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/schemagate/schemagate/lock"
)

// applyTimeout bounds one replicated change.
const applyTimeout = 5 * time.Second

// state is the replicated state as this node knows it (its own FSM when it is in the cluster,
// else the last view a member told it), the leader's id, and a channel closed at the next
// change of either.
func (n *Node) state() (State, string, <-chan struct{}) {
	st := n.fsm.state()
	n.mu.Lock()
	defer n.mu.Unlock()
	_, leader := n.raft.LeaderWithID()
	if n.remote != nil && !n.hasState() {
		return n.remote.State, n.remote.Leader, n.notify
	}
	return st, string(leader), n.notify
}

// TryAcquire makes this replica the migrator if it is the Raft leader: it catches up with the
// log, takes a fencing epoch from the database, and records its claim in the log.
func (n *Node) TryAcquire(ctx context.Context) (lock.Lease, error) {
	if n.lease != nil {
		return nil, errors.New("this replica already holds the lock")
	}
	if n.raft.State() != hraft.Leader {
		return nil, lock.ErrHeld
	}
	before := n.fsm.state()
	if err := n.raft.Barrier(applyTimeout).Error(); err != nil {
		return nil, lock.ErrHeld
	}
	// A new leader first applies what its predecessor committed: if that ended a run, the
	// caller must look at it before anyone migrates again.
	if after := n.fsm.state(); after.Index != before.Index && after.Phase != lock.PhaseMigrating {
		return nil, lock.ErrHeld
	}
	epoch, err := n.fence.bump(ctx, n.cfg.Replica)
	if err != nil {
		return nil, err
	}
	ls := &lease{n: n, epoch: epoch}
	n.mu.Lock()
	n.lease = ls
	n.mu.Unlock()
	if err := ls.apply(command{Op: "claim", Replica: n.cfg.Replica, Fingerprint: n.fingerprint(), Epoch: epoch}); err != nil {
		n.mu.Lock()
		n.lease = nil
		n.mu.Unlock()
		return nil, lock.ErrHeld
	}
	if n.raft.State() != hraft.Leader {
		ls.MarkLost()
	}
	return ls, nil
}

// fingerprint is the migration set the cluster was formed for: the last part of its name.
func (n *Node) fingerprint() string {
	return n.cfg.Cluster[strings.LastIndex(n.cfg.Cluster, "/")+1:]
}

// Holder describes the leader, unless it is this replica: the role is then this replica's to
// take, and Holder returns nil.
func (n *Node) Holder(context.Context) (*lock.Holder, error) {
	st, leader, _ := n.state()
	n.sawHolder = leader != "" && leader != n.self.ID
	if !n.sawHolder {
		return nil, nil
	}
	h := &lock.Holder{Replica: leader, Name: "raft leader " + leader, State: string(st.Phase)}
	if st.Phase == lock.PhaseMigrating && st.Migrator != "" {
		h.Replica = st.Migrator
		if st.Migration != "" {
			h.Query = "applying " + st.Migration
		}
	}
	return h, nil
}

// Wait blocks until the replicated state or the leadership changes, or d passes. It never
// touches the database.
func (n *Node) Wait(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	leading := n.lease != nil
	n.mu.Unlock()
	if !leading && n.cfg.ReleaseIdle != nil {
		n.cfg.ReleaseIdle()
	}
	_, _, changed := n.state()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-changed:
	case <-time.After(d):
	}
	return nil
}

// WaitForAnnouncement is Wait: every announcement is a change of the replicated state.
func (n *Node) WaitForAnnouncement(ctx context.Context, d time.Duration) error { return n.Wait(ctx, d) }

// Outcome is how the cluster's migration run stands.
func (n *Node) Outcome() lock.Outcome {
	st, leader, _ := n.state()
	o := lock.Outcome{Seq: st.Index, Phase: st.Phase, Fingerprint: st.Fingerprint, Replica: st.Migrator,
		Migration: st.Migration, Error: st.Error}
	n.mu.Lock()
	seen := max(n.answering, 1)
	n.mu.Unlock()
	o.Leaderless = leader == ""
	switch {
	case leader != "":
		o.Cluster = fmt.Sprintf("raft leader %s (%d members expected, %d voting)", leader, n.expect(), n.voterCount())
	case n.hasState():
		o.Cluster = fmt.Sprintf("the raft cluster has no leader: fewer than %d of its %d voters reach each other",
			n.voterCount()/2+1, n.voterCount())
	default:
		o.Cluster = fmt.Sprintf("the raft cluster has not formed: %d of its %d voters answer, this replica included", seen, n.voterCount())
	}
	return o
}

// lease is the leader's migrator role, fenced by its epoch.
type lease struct {
	n     *Node
	epoch int64
	lock.Loss
}

var _ lock.Lease = (*lease)(nil)

// Fence checks, inside the migration transaction, that this node still leads and that its
// epoch is still the newest in the database.
func (ls *lease) Fence(ctx context.Context, tx lock.Execer) error {
	if ls.n.raft.State() != hraft.Leader {
		ls.MarkLost()
		return fmt.Errorf("no longer the raft leader: %w", lock.ErrLost)
	}
	if err := ls.n.fence.check(ctx, tx, ls.epoch); err != nil {
		if errors.Is(err, lock.ErrLost) {
			ls.MarkLost()
		}
		return err
	}
	return nil
}

// Check is Fence outside any migration transaction, on a connection of the pool.
func (ls *lease) Check(ctx context.Context) error { return ls.Fence(ctx, ls.n.fence.db) }

// Announce records the event in the replicated log, where every member sees it.
func (ls *lease) Announce(_ context.Context, _ lock.Execer, ev lock.Event) error {
	c := command{Replica: ev.Replica, Version: ev.Version, Migration: ev.Migration, Error: ev.Error}
	switch ev.Kind {
	case lock.EventStarted:
		return nil // the claim said so
	case lock.EventApplied:
		c.Op = "progress"
	case lock.EventDone:
		c.Op = "done"
	case lock.EventFailed:
		c.Op = "failed"
	default:
		return nil
	}
	return ls.apply(c)
}

func (ls *lease) apply(c command) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := ls.n.raft.Apply(b, applyTimeout).Error(); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) || errors.Is(err, hraft.ErrLeadershipLost) {
			ls.MarkLost()
			return fmt.Errorf("record %s: %w", c.Op, lock.ErrLost)
		}
		return fmt.Errorf("record %s: %w", c.Op, err)
	}
	return nil
}

// Release ends the lease. The replicated state already says how the run ended.
func (ls *lease) Release(context.Context) error {
	ls.n.mu.Lock()
	if ls.n.lease == ls {
		ls.n.lease = nil
	}
	ls.n.mu.Unlock()
	select {
	case <-ls.Lost():
		return fmt.Errorf("release: %w", lock.ErrLost)
	default:
		return nil
	}
}
