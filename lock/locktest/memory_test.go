package locktest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
)

// TestMemoryConformance holds the in-memory election to the contract every backend keeps, so
// that what tests with it show holds for the real backends too.
func TestMemoryConformance(t *testing.T) { locktest.Run(t, memoryBackend(plainLocker, killPlain)) }

// TestMemoryReplicatedConformance: the replicated lockers keep the contract too.
func TestMemoryReplicatedConformance(t *testing.T) {
	locktest.Run(t, memoryBackend(
		func(m *locktest.Memory, replica string) lock.Locker { return m.ReplicatedLocker(replica) },
		func(l lock.Locker) { l.(*locktest.ReplicatedLocker).Kill() }))
}

// TestMemoryReplicatedView: a claim and the migrator's announcements move the view as the Raft
// log would, a test's SetOutcome moves it too, and each move ends a replicated locker's Wait.
func TestMemoryReplicatedView(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m := locktest.NewMemory("set-1")
	a, b := m.ReplicatedLocker("a"), m.ReplicatedLocker("b")
	lease, err := a.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o := b.Outcome(); o.Phase != lock.PhaseMigrating || o.Replica != "a" || o.Fingerprint != "set-1" || o.Seq != 1 {
		t.Fatalf("after the claim: %+v", o)
	}
	if err := lease.Announce(ctx, nil, lock.Event{Kind: lock.EventFailed, Replica: "a", Migration: "2_b.sql", Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	if o := b.Outcome(); o.Phase != lock.PhaseFailed || o.Migration != "2_b.sql" || o.Error != "boom" || o.Seq != 2 {
		t.Fatalf("after the failure: %+v", o)
	}
	if _, err := b.Holder(ctx); err != nil {
		t.Fatal(err)
	}
	// The failure's announcement is queued for b; a wait consumes it at once.
	if err := b.WaitForAnnouncement(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// b has seen the holder, the view and the announcements: only a move of the view ends its
	// wait now.
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx, time.Minute) }()
	if err := m.AwaitWaiting(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Fatal("Wait ended before the view moved")
	default:
	}
	m.SetOutcome(func(o *lock.Outcome) { o.Leaderless = true })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not end when the view moved")
	}
	if o := a.Outcome(); !o.Leaderless || o.Seq != 3 {
		t.Fatalf("after SetOutcome: %+v", o)
	}
}

// TestMemoryKill: Kill frees the election at once and the lost lease can neither fence nor
// release; a released lease is not reported lost.
func TestMemoryKill(t *testing.T) {
	ctx := t.Context()
	m := locktest.NewMemory("set")
	a, b := m.Locker("a"), m.Locker("b")
	lease, err := a.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Holder() != "a" {
		t.Fatalf("holder %q, want a", m.Holder())
	}
	if !m.Kill() || m.Holder() != "" {
		t.Fatal("Kill did not end the holder's lease")
	}
	<-lease.Lost()
	if err := lease.Fence(ctx, nil); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Fence after Kill: %v", err)
	}
	next, err := b.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next.Lost():
		t.Fatal("a released lease reports itself lost")
	default:
	}
	if m.Kill() {
		t.Fatal("Kill found a holder after the release")
	}
}

// TestMemoryAwaitWaiting: AwaitWaiting gives up with the context.
func TestMemoryAwaitWaiting(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := locktest.NewMemory("set").AwaitWaiting(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitWaiting with nobody waiting: %v", err)
	}
}

// TestMemoryPresence holds the in-memory election's presence to the contract too.
func TestMemoryPresence(t *testing.T) {
	locktest.TestPresence(t, memoryBackend(plainLocker, killPlain))
}

// memoryBackend builds lockers with newLocker on one in-memory election per test; kill ends
// one as a crash would.
func memoryBackend(newLocker func(m *locktest.Memory, replica string) lock.Locker, kill func(lock.Locker)) locktest.Backend {
	elections := map[*testing.T]*locktest.Memory{}
	return locktest.Backend{
		New: func(t *testing.T, replica string) lock.Locker {
			m, ok := elections[t]
			if !ok {
				m = locktest.NewMemory("set")
				elections[t] = m
			}
			return newLocker(m, replica)
		},
		Kill: func(_ *testing.T, l lock.Locker) { kill(l) },
		Work: func(*testing.T, lock.Locker) lock.Execer { return nil },
	}
}

func plainLocker(m *locktest.Memory, replica string) lock.Locker { return m.Locker(replica) }
func killPlain(l lock.Locker)                                    { l.(*locktest.Locker).Kill() }
