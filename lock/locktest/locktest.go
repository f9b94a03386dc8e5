// Package locktest is the conformance suite every election backend must pass: mutual exclusion,
// release, re-acquisition, loss notification, and waits that end when the holder goes.
//
// A backend's test calls Run with a Backend that builds lockers, each standing for one replica
// with its own connection or node, and that can kill a holder the way a crash would.
package locktest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/schemagate/lock"
)

// Backend is what the suite needs from a backend under test.
type Backend struct {
	// New returns a locker for one replica named replica. Lockers made by one call to a test's
	// Backend share one namespace. The suite closes them.
	New func(t *testing.T, replica string) lock.Locker
	// Kill ends the session or node behind l abruptly, as a crash or pg_terminate_backend would.
	Kill func(t *testing.T, l lock.Locker)
	// Work returns where l's lease would run migrations (the Execer passed to Fence).
	Work func(t *testing.T, l lock.Locker) lock.Execer
}

// Run runs the whole suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("MutualExclusion", func(t *testing.T) { testMutualExclusion(t, b) })
	t.Run("ReleaseHandsOver", func(t *testing.T) { testReleaseHandsOver(t, b) })
	t.Run("Reacquire", func(t *testing.T) { testReacquire(t, b) })
	t.Run("LossIsNoticed", func(t *testing.T) { testLossIsNoticed(t, b) })
	t.Run("WaitEndsOnRelease", func(t *testing.T) { testWaitEnds(t, b, false) })
	t.Run("WaitEndsOnDeath", func(t *testing.T) { testWaitEnds(t, b, true) })
	t.Run("ConcurrentCandidates", func(t *testing.T) { testConcurrentCandidates(t, b) })
	t.Run("AnnouncementWakesWatchers", func(t *testing.T) { testAnnouncement(t, b) })
}

// testAnnouncement checks that a replica watching for announcements wakes when the migrator
// announces progress, also while the migrator holds the lock.
func testAnnouncement(t *testing.T, b Backend) {
	ctx := context30s(t)
	a, c := newLocker(t, b, "replica-a"), newLocker(t, b, "replica-b")
	lease := mustAcquire(t, ctx, a)
	// The watcher's first wait may return at once for an earlier event; drain until it blocks.
	for {
		begin := time.Now()
		if err := c.WaitForAnnouncement(ctx, 200*time.Millisecond); err != nil {
			t.Fatalf("WaitForAnnouncement: %v", err)
		}
		if time.Since(begin) >= 150*time.Millisecond {
			break
		}
	}
	const long = 20 * time.Second
	done := make(chan time.Duration, 1)
	go func() {
		begin := time.Now()
		if err := c.WaitForAnnouncement(ctx, long); err != nil {
			t.Errorf("WaitForAnnouncement: %v", err)
		}
		done <- time.Since(begin)
	}()
	// Announce until the watcher wakes: it may not be blocked yet when the first one goes out,
	// but an announcement made while it waits must end the wait.
	for {
		if err := lease.Announce(ctx, nil, lock.Event{Kind: lock.EventApplied, Replica: "replica-a", Version: 1}); err != nil {
			t.Fatalf("Announce: %v", err)
		}
		select {
		case took := <-done:
			if took >= long/2 {
				t.Fatalf("the watcher woke after %v, at its timeout, not on the announcement", took)
			}
			if err := lease.Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the watcher never woke")
		}
	}
}

func context30s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newLocker(t *testing.T, b Backend, replica string) lock.Locker {
	l := b.New(t, replica)
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAcquire(t *testing.T, ctx context.Context, l lock.Locker) lock.Lease {
	t.Helper()
	lease, err := l.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire on a free lock: %v", err)
	}
	return lease
}

func testMutualExclusion(t *testing.T, b Backend) {
	ctx := context30s(t)
	a, c := newLocker(t, b, "replica-a"), newLocker(t, b, "replica-b")
	lease := mustAcquire(t, ctx, a)
	if _, err := c.TryAcquire(ctx); !errors.Is(err, lock.ErrHeld) {
		t.Fatalf("second TryAcquire: got %v, want ErrHeld", err)
	}
	for _, l := range []lock.Locker{a, c} {
		h, err := l.Holder(ctx)
		if err != nil {
			t.Fatalf("Holder: %v", err)
		}
		if h == nil || h.Replica != "replica-a" {
			t.Fatalf("Holder: got %+v, want replica-a", h)
		}
	}
	if err := lease.Fence(ctx, b.Work(t, a)); err != nil {
		t.Fatalf("Fence while holding: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func testReleaseHandsOver(t *testing.T, b Backend) {
	ctx := context30s(t)
	a, c := newLocker(t, b, "replica-a"), newLocker(t, b, "replica-b")
	lease := mustAcquire(t, ctx, a)
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if h, err := c.Holder(ctx); err != nil || h != nil {
		t.Fatalf("Holder after release: got %+v, %v; want none", h, err)
	}
	other := mustAcquire(t, ctx, c)
	if err := other.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func testReacquire(t *testing.T, b Backend) {
	ctx := context30s(t)
	a := newLocker(t, b, "replica-a")
	for i := range 3 {
		lease := mustAcquire(t, ctx, a)
		if err := lease.Release(ctx); err != nil {
			t.Fatalf("Release %d: %v", i, err)
		}
	}
}

func testLossIsNoticed(t *testing.T, b Backend) {
	ctx := context30s(t)
	a, c := newLocker(t, b, "replica-a"), newLocker(t, b, "replica-b")
	lease := mustAcquire(t, ctx, a)
	b.Kill(t, a)

	err := lease.Fence(ctx, b.Work(t, a))
	if !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Fence after the holder was killed: got %v, want ErrLost", err)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatal("Lost() not closed after Fence found the lock gone")
	}
	if err := lease.Release(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Release after loss: got %v, want ErrLost", err)
	}
	other := acquireWithin(t, ctx, c)
	if err := other.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// acquireWithin waits (through Wait, not sleeps) until l gets the lock or ctx ends.
func acquireWithin(t *testing.T, ctx context.Context, l lock.Locker) lock.Lease {
	t.Helper()
	for {
		lease, err := l.TryAcquire(ctx)
		if err == nil {
			return lease
		}
		if !errors.Is(err, lock.ErrHeld) {
			t.Fatalf("TryAcquire: %v", err)
		}
		if _, err := l.Holder(ctx); err != nil {
			t.Fatalf("Holder: %v", err)
		}
		if err := l.Wait(ctx, time.Second); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
}

// testWaitEnds checks that a Wait with a long timeout returns soon after the holder releases or
// dies: the waiter learns of it from the backend, not from its timeout.
func testWaitEnds(t *testing.T, b Backend, kill bool) {
	ctx := context30s(t)
	a, c := newLocker(t, b, "replica-a"), newLocker(t, b, "replica-b")
	lease := mustAcquire(t, ctx, a)
	if h, err := c.Holder(ctx); err != nil || h == nil {
		t.Fatalf("Holder: got %+v, %v; want replica-a", h, err)
	}

	const long = 20 * time.Second
	done := make(chan time.Duration, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		begin := time.Now()
		if err := c.Wait(ctx, long); err != nil {
			t.Errorf("Wait: %v", err)
		}
		done <- time.Since(begin)
	}()
	<-started
	// The waiter may not be blocked yet when the holder goes; either way Wait must return long
	// before its timeout.
	if kill {
		b.Kill(t, a)
	} else if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	select {
	case took := <-done:
		if took >= long/2 {
			t.Fatalf("Wait took %v after the holder went; want it to end well before its %v timeout", took, long)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not return")
	}
}

func testConcurrentCandidates(t *testing.T, b Backend) {
	ctx := context30s(t)
	const n = 8
	lockers := make([]lock.Locker, n)
	for i := range lockers {
		lockers[i] = newLocker(t, b, fmt.Sprintf("replica-%d", i))
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		leases []lock.Lease
		start  = make(chan struct{})
	)
	for _, l := range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			lease, err := l.TryAcquire(ctx)
			if errors.Is(err, lock.ErrHeld) {
				return
			}
			if err != nil {
				t.Errorf("TryAcquire: %v", err)
				return
			}
			mu.Lock()
			leases = append(leases, lease)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if len(leases) != 1 {
		t.Fatalf("%d of %d concurrent candidates got the lock; want exactly 1", len(leases), n)
	}
	if err := leases[0].Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}
