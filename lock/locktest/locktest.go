// Package locktest is the conformance suite every election backend must pass: mutual exclusion,
// release, re-acquisition, loss notification, and waits that end when the holder goes or
// announces.
//
// A backend's test calls Run with a Backend that builds lockers, each standing for one replica
// with its own connection or node, and that can kill a holder the way a crash would. The suite
// does not assume that any given locker can take a free lock: with a leader-based backend
// (Raft) only the leader can. It asks that some locker can, and that never two hold it at once.
package locktest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/schemagate/lock"
)

// Backend is what the suite needs from a backend under test.
type Backend struct {
	// New returns a locker for one replica named replica. Lockers made in one subtest share one
	// namespace (one database, one lock file, one cluster). The suite closes them.
	New func(t *testing.T, replica string) lock.Locker
	// Group, when set, returns a subtest's n lockers at once, named replica-0 … replica-(n-1):
	// for backends whose members must all be known together (a Raft cluster). New is then unused.
	Group func(t *testing.T, n int) []lock.Locker
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

func context60s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newLockers(t *testing.T, b Backend, n int) []lock.Locker {
	var ls []lock.Locker
	if b.Group != nil {
		ls = b.Group(t, n)
	} else {
		ls = make([]lock.Locker, n)
		for i := range ls {
			ls[i] = b.New(t, fmt.Sprintf("replica-%d", i))
		}
	}
	t.Cleanup(func() {
		for _, l := range ls {
			l.Close()
		}
	})
	return ls
}

// acquireAny waits, through Wait, until one of ls takes the lock, and returns its index and lease.
func acquireAny(t *testing.T, ctx context.Context, ls []lock.Locker) (int, lock.Lease) {
	t.Helper()
	for {
		for i, l := range ls {
			lease, err := l.TryAcquire(ctx)
			if err == nil {
				return i, lease
			}
			if !errors.Is(err, lock.ErrHeld) {
				t.Fatalf("TryAcquire: %v", err)
			}
		}
		if _, err := ls[0].Holder(ctx); err != nil {
			t.Fatalf("Holder: %v", err)
		}
		if err := ls[0].Wait(ctx, 100*time.Millisecond); err != nil {
			t.Fatalf("Wait: %v (no locker could take the lock)", err)
		}
	}
}

// awaitHolder checks that l names want as the holder. A backend that replicates the election
// (Raft) may take a moment to tell every member who won: l gets 5 s. A backend that asks the
// database answers at once.
func awaitHolder(t *testing.T, ctx context.Context, l lock.Locker, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, err := l.Holder(ctx)
		if err != nil {
			t.Fatalf("Holder: %v", err)
		}
		if h != nil && h.Replica == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Holder: got %+v, want %s", h, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// others returns ls without ls[i].
func others(ls []lock.Locker, i int) []lock.Locker {
	return slices.Delete(slices.Clone(ls), i, i+1)
}

func testMutualExclusion(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	i, lease := acquireAny(t, ctx, ls)
	for _, l := range others(ls, i) {
		if _, err := l.TryAcquire(ctx); !errors.Is(err, lock.ErrHeld) {
			t.Fatalf("a second TryAcquire: got %v, want ErrHeld", err)
		}
		awaitHolder(t, ctx, l, fmt.Sprintf("replica-%d", i))
	}
	if err := lease.Fence(ctx, b.Work(t, ls[i])); err != nil {
		t.Fatalf("Fence while holding: %v", err)
	}
	if err := lease.Check(ctx); err != nil {
		t.Fatalf("Check while holding: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func testReleaseHandsOver(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	_, lease := acquireAny(t, ctx, ls)
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	_, again := acquireAny(t, ctx, ls)
	if err := again.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func testReacquire(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	for round := range 3 {
		_, lease := acquireAny(t, ctx, ls)
		if err := lease.Release(ctx); err != nil {
			t.Fatalf("Release %d: %v", round, err)
		}
	}
}

func testLossIsNoticed(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	i, lease := acquireAny(t, ctx, ls)
	b.Kill(t, ls[i])

	if err := lease.Check(ctx); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Check after the holder was killed: got %v, want ErrLost", err)
	}
	err := lease.Fence(ctx, b.Work(t, ls[i]))
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
	_, next := acquireAny(t, ctx, others(ls, i))
	if err := next.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// testWaitEnds checks that a Wait with a long timeout returns soon after the holder ends its run
// (announces it done and releases) or dies: the waiter learns of it from the backend, not from
// its timeout.
func testWaitEnds(t *testing.T, b Backend, kill bool) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	i, lease := acquireAny(t, ctx, ls)
	waiter := others(ls, i)[0]
	awaitHolder(t, ctx, waiter, fmt.Sprintf("replica-%d", i))

	const long = 20 * time.Second
	done := make(chan time.Duration, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		begin := time.Now()
		if err := waiter.Wait(ctx, long); err != nil {
			t.Errorf("Wait: %v", err)
		}
		done <- time.Since(begin)
	}()
	<-started
	// The waiter may not be blocked yet when the holder goes; either way Wait must return long
	// before its timeout.
	if kill {
		b.Kill(t, ls[i])
	} else {
		if err := lease.Announce(ctx, nil, lock.Event{Kind: lock.EventDone, Replica: "replica"}); err != nil {
			t.Fatalf("Announce: %v", err)
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatalf("Release: %v", err)
		}
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

// testConcurrentCandidates has 8 lockers try at the same instant, round after round: never more
// than one gets the lock, and eventually one does.
func testConcurrentCandidates(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 8)
	for {
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			leases []lock.Lease
			start  = make(chan struct{})
		)
		for _, l := range ls {
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
		if len(leases) > 1 {
			t.Fatalf("%d of %d concurrent candidates got the lock; want at most 1", len(leases), len(ls))
		}
		if len(leases) == 1 {
			if err := leases[0].Release(ctx); err != nil {
				t.Fatalf("Release: %v", err)
			}
			return
		}
		if err := ls[0].Wait(ctx, 100*time.Millisecond); err != nil {
			t.Fatalf("no candidate ever got the lock: %v", err)
		}
	}
}

// testAnnouncement checks that a replica watching for announcements wakes when the migrator
// announces progress, also while the migrator holds the lock.
func testAnnouncement(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	i, lease := acquireAny(t, ctx, ls)
	watcher := others(ls, i)[0]
	// The watcher's first waits may return at once for earlier events; drain until one blocks.
	for {
		begin := time.Now()
		if err := watcher.WaitForAnnouncement(ctx, 200*time.Millisecond); err != nil {
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
		if err := watcher.WaitForAnnouncement(ctx, long); err != nil {
			t.Errorf("WaitForAnnouncement: %v", err)
		}
		done <- time.Since(begin)
	}()
	// Announce until the watcher wakes: it may not be blocked yet when the first one goes out,
	// but an announcement made while it waits must end the wait.
	for version := int64(1); ; version++ {
		if err := lease.Announce(ctx, nil, lock.Event{Kind: lock.EventApplied, Replica: "replica", Version: version}); err != nil {
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
