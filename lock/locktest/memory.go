package locktest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/schemagate/schemagate/lock"
)

// Memory is an election held in memory, for tests of what drives a lock.Locker (the
// coordinator) without a server. The lockers it hands out stand for the replicas of one lock
// namespace. It passes the conformance suite (memory_test.go).
//
// Beside the election, Memory keeps a replicated view of the current run, as the Raft backend
// does: a claim sets it migrating, the migrator's announcements move it (applied, done, failed),
// and a test sets it directly (SetOutcome) to play a cluster that moved on, lost its leader or
// ended a run this process never saw. Lockers from ReplicatedLocker expose it (lock.Replicated);
// those from Locker do not.
//
// A test sees what happened through Events, Holder and AwaitWaiting, and breaks things with Kill.
type Memory struct {
	fingerprint string

	mu     sync.Mutex
	holder *memoryLease
	events []lock.Event
	view   lock.Outcome
	// changed is closed, and replaced, at every change a Wait may end on.
	changed chan struct{}
	// waiting counts the lockers blocked in Wait or WaitForAnnouncement; waitersMoved is
	// closed, and replaced, when it changes.
	waiting      int
	waitersMoved chan struct{}
	// members are the replicas' presence entries, by replica; shows every entry shown, in
	// order (memory_presence.go).
	members map[string]lock.Member
	shows   []lock.Member
}

// NewMemory returns an empty election. fingerprint is the migration set its replicated view
// names in claims, as a Raft cluster is formed for one migration set.
func NewMemory(fingerprint string) *Memory {
	return &Memory{fingerprint: fingerprint, changed: make(chan struct{}), waitersMoved: make(chan struct{})}
}

// Locker returns a locker for replica: a plain election (lock.Locker), as PostgreSQL's or the
// file lock.
func (m *Memory) Locker(replica string) *Locker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &Locker{m: m, replica: replica, seenEvents: len(m.events)}
}

// ReplicatedLocker returns a locker for replica that also shows the replicated view
// (lock.Replicated), as the Raft backend: its Wait also ends when the view moves on from what
// Outcome last showed.
func (m *Memory) ReplicatedLocker(replica string) *ReplicatedLocker {
	l := m.Locker(replica)
	l.replicated = true
	return &ReplicatedLocker{Locker: l}
}

// broadcast wakes every Wait. The caller holds m.mu.
func (m *Memory) broadcast() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Holder names the replica that holds the election now, or "" when none does.
func (m *Memory) Holder() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holder == nil {
		return ""
	}
	return m.holder.replica
}

// Events returns every announcement made so far, oldest first.
func (m *Memory) Events() []lock.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]lock.Event(nil), m.events...)
}

// Kill ends the current holder's lease as a crash would: the lease is lost, the election is
// free, its presence entry goes, and waiters wake. It reports whether anyone held the election.
func (m *Memory) Kill() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holder == nil {
		return false
	}
	delete(m.members, m.holder.owner.replica)
	m.holder.MarkLost()
	m.holder.owner.lease = nil
	m.holder = nil
	m.broadcast()
	return true
}

// Outcome is the replicated view as it stands.
func (m *Memory) Outcome() lock.Outcome {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// SetOutcome changes the replicated view with set, as the cluster would replicate a change:
// Seq grows by one and every Wait ends.
func (m *Memory) SetOutcome(set func(o *lock.Outcome)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setOutcome(set)
}

// setOutcome is SetOutcome; the caller holds m.mu.
func (m *Memory) setOutcome(set func(o *lock.Outcome)) {
	seq := m.view.Seq
	set(&m.view)
	m.view.Seq = seq + 1
	m.broadcast()
}

// AwaitWaiting blocks until at least n lockers are blocked in Wait or WaitForAnnouncement, so
// that a test acts while a replica waits rather than before it started to.
func (m *Memory) AwaitWaiting(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		waiting, moved := m.waiting, m.waitersMoved
		m.mu.Unlock()
		if waiting >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d lockers waiting: %w", waiting, n, ctx.Err())
		case <-moved:
		}
	}
}

// Locker is one replica's view of a Memory election. As every Locker, it is driven from one
// goroutine.
type Locker struct {
	m       *Memory
	replica string
	// lease is the one this locker holds, if any.
	lease *memoryLease
	// seenHolder is the holder Holder last reported; seenEvents how many announcements this
	// locker's waits have consumed.
	seenHolder *memoryLease
	seenEvents int
	// replicated: the locker shows the replicated view, and seenSeq is its Seq as Outcome last
	// showed it.
	replicated bool
	seenSeq    uint64
}

var _ lock.Locker = (*Locker)(nil)

// TryAcquire takes the election when nobody holds it, and records the claim in the replicated
// view.
func (l *Locker) TryAcquire(ctx context.Context) (lock.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.lease != nil && m.holder == l.lease {
		return nil, errors.New("this replica already holds the lock")
	}
	if m.holder != nil {
		return nil, lock.ErrHeld
	}
	ls := &memoryLease{m: m, owner: l, replica: l.replica, since: time.Now()}
	m.holder, l.lease = ls, ls
	m.setOutcome(func(o *lock.Outcome) {
		*o = lock.Outcome{Phase: lock.PhaseMigrating, Fingerprint: m.fingerprint, Replica: l.replica, Cluster: o.Cluster,
			Leaderless: o.Leaderless}
	})
	return ls, nil
}

// Holder describes the replica holding the election, or returns nil when none does.
func (l *Locker) Holder(ctx context.Context) (*lock.Holder, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	l.seenHolder = m.holder
	if m.holder == nil {
		return nil, nil
	}
	return &lock.Holder{Replica: m.holder.replica, Name: "memory " + m.holder.replica, SessionStart: m.holder.since}, nil
}

// Wait blocks until the holder Holder last reported goes, someone else takes the free election,
// a migrator announces progress, the replicated view moves on from what Outcome last showed
// (ReplicatedLocker), or d passes.
func (l *Locker) Wait(ctx context.Context, d time.Duration) error {
	return l.wait(ctx, d, func(m *Memory) bool {
		return m.holder != l.seenHolder || (l.replicated && m.view.Seq != l.seenSeq)
	})
}

// WaitForAnnouncement blocks until a migrator announces progress or d passes.
func (l *Locker) WaitForAnnouncement(ctx context.Context, d time.Duration) error {
	return l.wait(ctx, d, func(*Memory) bool { return false })
}

// wait blocks until changed says so, an announcement this locker has not consumed is made, or
// d passes. Announcements made since the last wait end the next at once, as PostgreSQL queues
// notifications for a listening session.
func (l *Locker) wait(ctx context.Context, d time.Duration, changed func(m *Memory) bool) error {
	m := l.m
	timer := time.NewTimer(d)
	defer timer.Stop()
	m.mu.Lock()
	m.waiting++
	m.moveWaiters()
	defer func() {
		m.waiting--
		m.moveWaiters()
		m.mu.Unlock()
	}()
	for {
		if len(m.events) > l.seenEvents || changed(m) {
			l.seenEvents = len(m.events)
			return nil
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			m.mu.Lock()
			return ctx.Err()
		case <-timer.C:
			m.mu.Lock()
			return nil
		case <-ch:
		}
		m.mu.Lock()
	}
}

// moveWaiters tells AwaitWaiting that the number of waiters changed. The caller holds m.mu.
func (m *Memory) moveWaiters() {
	close(m.waitersMoved)
	m.waitersMoved = make(chan struct{})
}

// Kill ends this locker's lease, if it holds one, and takes its presence entry away, as a
// crash of its replica would.
func (l *Locker) Kill() {
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, l.replica)
	if l.lease == nil || m.holder != l.lease {
		return
	}
	l.lease.MarkLost()
	m.holder, l.lease = nil, nil
	m.broadcast()
}

// Close releases a lease still held.
func (l *Locker) Close() error {
	l.m.mu.Lock()
	ls := l.lease
	l.m.mu.Unlock()
	if ls == nil {
		return nil
	}
	if err := ls.Release(context.Background()); err != nil && !errors.Is(err, lock.ErrLost) {
		return err
	}
	return nil
}

// ReplicatedLocker is a Locker that shows the Memory's replicated view, as the Raft backend.
type ReplicatedLocker struct {
	*Locker
}

var _ lock.Replicated = (*ReplicatedLocker)(nil)

// Outcome is the replicated view; the next Wait ends when it moves on from it.
func (l *ReplicatedLocker) Outcome() lock.Outcome {
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	l.seenSeq = m.view.Seq
	return m.view
}

// memoryLease is a Memory election held by one replica.
type memoryLease struct {
	m       *Memory
	owner   *Locker
	replica string
	since   time.Time
	// released: Release gave the election up (guarded by m.mu).
	released bool
	lock.Loss
}

var _ lock.Lease = (*memoryLease)(nil)

// holds reports whether the lease still holds the election, marking it lost when it went
// without Release. The caller holds m.mu.
func (ls *memoryLease) holds() bool {
	if ls.m.holder == ls {
		return true
	}
	if !ls.released {
		ls.MarkLost()
	}
	return false
}

// Fence passes while the lease holds the election. It does not look at tx.
func (ls *memoryLease) Fence(context.Context, lock.Execer) error {
	ls.m.mu.Lock()
	defer ls.m.mu.Unlock()
	if !ls.holds() {
		return fmt.Errorf("memory election of %s: %w", ls.replica, lock.ErrLost)
	}
	return nil
}

// Check is Fence.
func (ls *memoryLease) Check(ctx context.Context) error { return ls.Fence(ctx, nil) }

// Announce records ev, wakes every waiter, and moves the replicated view as the Raft backend's
// log would. Unlike PostgreSQL's NOTIFY, an announcement made with a transaction is delivered at
// once, whether or not the transaction commits: waiters treat it as a hint either way.
func (ls *memoryLease) Announce(_ context.Context, _ lock.Execer, ev lock.Event) error {
	m := ls.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if !ls.holds() {
		return fmt.Errorf("announce %s: %w", ev.Kind, lock.ErrLost)
	}
	m.events = append(m.events, ev)
	m.broadcast()
	switch ev.Kind {
	case lock.EventApplied:
		m.setOutcome(func(o *lock.Outcome) { o.Migration = ev.Migration })
	case lock.EventDone:
		m.setOutcome(func(o *lock.Outcome) { o.Phase, o.Migration = lock.PhaseDone, "" })
	case lock.EventFailed:
		m.setOutcome(func(o *lock.Outcome) { o.Phase, o.Migration, o.Error = lock.PhaseFailed, ev.Migration, ev.Error })
	}
	return nil
}

// Release gives the election up. It returns an error wrapping ErrLost when the lease was lost.
func (ls *memoryLease) Release(context.Context) error {
	m := ls.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if ls.owner.lease == ls {
		ls.owner.lease = nil
	}
	if ls.released {
		return nil
	}
	if !ls.holds() {
		return fmt.Errorf("release the memory election of %s: %w", ls.replica, lock.ErrLost)
	}
	ls.released = true
	m.holder = nil
	m.broadcast()
	return nil
}
