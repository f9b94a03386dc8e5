package locktest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/schemagate/schemagate/lock"
)

// TestPresence runs the presence part of the contract (lock.Presence) against b: a replica's
// entry is listed once it shows itself, with what it showed; a second Show replaces the first;
// a replica that never showed itself is not listed; and the entry of a replica that dies
// (b.Kill) disappears without anyone cleaning up. Every locker b makes must implement
// lock.Presence. b.Work is not used.
//
// Backends that replicate entries may list a change a moment after it was made: each
// expectation is awaited for up to 10 s (30 s for a death), never assumed at once.
func TestPresence(t *testing.T, b Backend) {
	t.Run("EmptyBeforeAnyShow", func(t *testing.T) { testFleetEmpty(t, b) })
	t.Run("ShowIsListed", func(t *testing.T) { testShowListed(t, b) })
	t.Run("ShowReplaces", func(t *testing.T) { testShowReplaces(t, b) })
	t.Run("DeathExpires", func(t *testing.T) { testDeathExpires(t, b) })
}

// presences returns ls as lock.Presence, failing the test for a locker without it.
func presences(t *testing.T, ls []lock.Locker) []lock.Presence {
	t.Helper()
	ps := make([]lock.Presence, len(ls))
	for i, l := range ls {
		p, ok := l.(lock.Presence)
		if !ok {
			t.Fatalf("%T does not implement lock.Presence", l)
		}
		ps[i] = p
	}
	return ps
}

// member is the entry replica shows in phase, with a fingerprint of one variable.
func member(replica, phase string, since time.Time) lock.Member {
	return lock.Member{Replica: replica, Host: "host-of-" + replica, MigrationSet: "set-1", Phase: phase,
		Since: since, Fingerprints: map[string]string{"SECRET_KEY": "v1:" + replica}}
}

// awaitFleet waits until p's fleet is want (in any order), and fails the test with what it
// last listed after within.
func awaitFleet(t *testing.T, ctx context.Context, p lock.Presence, within time.Duration, want []lock.Member) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := p.Fleet(ctx)
		if err != nil {
			t.Fatalf("Fleet: %v", err)
		}
		if sameMembers(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Fleet lists %v; want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameMembers compares two fleets by replica, whatever their order. Times are compared to the
// millisecond: a backend may store them with less precision than Go's.
func sameMembers(got, want []lock.Member) bool {
	if len(got) != len(want) {
		return false
	}
	byReplica := map[string]lock.Member{}
	for _, m := range got {
		byReplica[m.Replica] = m
	}
	for _, w := range want {
		g, ok := byReplica[w.Replica]
		if !ok || g.Host != w.Host || g.MigrationSet != w.MigrationSet || g.Phase != w.Phase ||
			!g.Since.Truncate(time.Millisecond).Equal(w.Since.Truncate(time.Millisecond)) ||
			!maps.Equal(g.Fingerprints, w.Fingerprints) {
			return false
		}
	}
	return true
}

// since is a time for a Member, to the millisecond, in UTC.
func since() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func testFleetEmpty(t *testing.T, b Backend) {
	ctx := context60s(t)
	ps := presences(t, newLockers(t, b, 2))
	got, err := ps[0].Fleet(ctx)
	if err != nil {
		t.Fatalf("Fleet before anyone showed itself: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("Fleet before anyone showed itself lists %v", got)
	}
}

func testShowListed(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	ps := presences(t, ls)
	var want []lock.Member
	for i, p := range ps[:2] {
		m := member(fmt.Sprintf("replica-%d", i), "waiting", since())
		if err := p.Show(ctx, m); err != nil {
			t.Fatalf("Show: %v", err)
		}
		want = append(want, m)
	}
	// Every replica sees the same fleet, whether it showed itself or not; replica-2 never did.
	for _, p := range ps {
		awaitFleet(t, ctx, p, 10*time.Second, want)
	}
}

func testShowReplaces(t *testing.T, b Backend) {
	ctx := context60s(t)
	ps := presences(t, newLockers(t, b, 2))
	first := member("replica-0", "waiting", since().Add(-time.Second))
	if err := ps[0].Show(ctx, first); err != nil {
		t.Fatalf("Show: %v", err)
	}
	awaitFleet(t, ctx, ps[1], 10*time.Second, []lock.Member{first})
	next := member("replica-0", "ready", since())
	next.MigrationSet, next.Fingerprints = "set-2", map[string]string{"SECRET_KEY": "v1:other", "JWT_SECRET": "v1:jwt"}
	if err := ps[0].Show(ctx, next); err != nil {
		t.Fatalf("Show again: %v", err)
	}
	awaitFleet(t, ctx, ps[1], 10*time.Second, []lock.Member{next})
	none := member("replica-1", "ready", since())
	none.Fingerprints = nil
	if err := ps[1].Show(ctx, none); err != nil {
		t.Fatalf("Show without fingerprints: %v", err)
	}
	awaitFleet(t, ctx, ps[0], 10*time.Second, []lock.Member{next, none})
}

func testDeathExpires(t *testing.T, b Backend) {
	ctx := context60s(t)
	ls := newLockers(t, b, 3)
	ps := presences(t, ls)
	var want []lock.Member
	for i, p := range ps {
		m := member(fmt.Sprintf("replica-%d", i), "ready", since())
		if err := p.Show(ctx, m); err != nil {
			t.Fatalf("Show: %v", err)
		}
		want = append(want, m)
	}
	awaitFleet(t, ctx, ps[0], 10*time.Second, want)
	b.Kill(t, ls[1])
	// Nobody cleans up: the survivors only read.
	awaitFleet(t, ctx, ps[0], 30*time.Second, slices.Delete(slices.Clone(want), 1, 2))
	awaitFleet(t, ctx, ps[2], 30*time.Second, slices.Delete(slices.Clone(want), 1, 2))
	// A survivor that shows itself again is still listed, and the dead one stays gone.
	again := member("replica-2", "serving", since())
	if err := ps[2].Show(ctx, again); err != nil {
		t.Fatalf("Show after a death: %v", err)
	}
	awaitFleet(t, ctx, ps[0], 10*time.Second, []lock.Member{want[0], again})
}
