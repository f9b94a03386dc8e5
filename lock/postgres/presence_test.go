package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
	"github.com/schemagate/schemagate/lock/postgres"
)

func TestPresenceConformance(t *testing.T) {
	locktest.TestPresence(t, backend(t))
}

func member(replica, phase string) lock.Member {
	return lock.Member{Replica: replica, Host: "h", MigrationSet: "set-1", Phase: phase, Since: time.Now().UTC(),
		Fingerprints: map[string]string{"SECRET_KEY": "v1:00"}}
}

func ctx30s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestFleetCreatesNothing: Fleet only reads (status calls it): before any replica showed
// itself, the table does not exist, Fleet lists nobody, and it still does not exist after.
func TestFleetCreatesNothing(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	l := postgres.NewLocker(newSession(t, db, "ops"), "app")
	got, err := l.Fleet(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Fleet on a database without the table: %v, %v", got, err)
	}
	conn := pgtest.Connect(t, db)
	if n := pgtest.QueryInt(t, conn, "SELECT count(*) FROM pg_class WHERE relname = 'schemagate_presence'"); n != 0 {
		t.Fatal("Fleet created the presence table")
	}
}

// TestShowOnTheSession: a replica shows itself on its one session, with no connection of its
// own, and its row names that session's backend.
func TestShowOnTheSession(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	s := newSession(t, db, "web-0")
	l := postgres.NewLocker(s, "app")
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Show(ctx, member("web-0", "waiting")); err != nil {
		t.Fatal(err)
	}
	if err := l.Show(ctx, member("web-0", "ready")); err != nil {
		t.Fatal(err)
	}
	if n := s.ConnectionsOpened(); n != 1 {
		t.Errorf("the session opened %d connections to show itself, want 1", n)
	}
	conn := pgtest.Connect(t, db)
	if pid := pgtest.QueryInt(t, conn, "SELECT backend_pid FROM schemagate_presence WHERE replica = 'web-0'"); pid != int64(s.BackendPID()) {
		t.Errorf("the row names backend %d, the session is %d", pid, s.BackendPID())
	}
}

// TestDeadRowsDeleted: rows of ended sessions are invisible at once, and the next replica to
// join deletes them, of any namespace; a replica's own row is replaced, not duplicated.
func TestDeadRowsDeleted(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	var dead []*postgres.Session
	for i, ns := range []string{"app", "other"} {
		s := newSession(t, db, fmt.Sprintf("old-%d", i))
		if err := postgres.NewLocker(s, ns).Show(ctx, member(fmt.Sprintf("old-%d", i), "ready")); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, s)
	}
	for _, s := range dead {
		s.Close()
	}
	conn := pgtest.Connect(t, db)
	await(t, "the closed sessions to end", func() bool {
		return pgtest.QueryInt(t, conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'schemagate/old-%'") == 0
	})
	l := postgres.NewLocker(newSession(t, db, "web-1"), "app")
	if got, err := l.Fleet(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Fleet lists ended sessions: %v, %v", got, err)
	}
	if n := pgtest.QueryInt(t, conn, "SELECT count(*) FROM schemagate_presence"); n != 2 {
		t.Fatalf("%d rows before the next Show, want the 2 dead ones: Fleet must not write", n)
	}
	for range 2 {
		if err := l.Show(ctx, member("web-1", "ready")); err != nil {
			t.Fatal(err)
		}
	}
	if n := pgtest.QueryInt(t, conn, "SELECT count(*) FROM schemagate_presence"); n != 1 {
		t.Fatalf("%d rows after the next Show, want web-1's alone", n)
	}
}

// TestPhaseChangeInPlace: a replica's later phase changes on the session that joined update its
// own row and nothing else (a waking fleet's ready rows cost the server one indexed update
// each, not a cleanup that reads pg_stat_activity); a row that another replica with the same id
// took over is shown again in full.
func TestPhaseChangeInPlace(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	s := newSession(t, db, "web-0")
	l := postgres.NewLocker(s, "app")
	if err := l.Show(ctx, member("web-0", "waiting")); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, db)
	// A row whose session is gone (pid 0 never names a backend): only a join deletes it.
	pgtest.Exec(t, conn, "INSERT INTO schemagate_presence (namespace, replica, backend_pid) VALUES ('app', 'gone', 0)")
	if err := l.Show(ctx, member("web-0", "ready")); err != nil {
		t.Fatal(err)
	}
	if n := pgtest.QueryInt(t, conn, "SELECT count(*) FROM schemagate_presence WHERE replica = 'web-0' AND phase = 'ready'"); n != 1 {
		t.Errorf("web-0's row does not say ready after the phase change")
	}
	if n := pgtest.QueryInt(t, conn, "SELECT count(*) FROM schemagate_presence WHERE replica = 'gone'"); n != 1 {
		t.Errorf("the phase change deleted the dead row: it cleaned up instead of updating in place")
	}

	// Another session takes the id over; the first one's next change shows it in full again.
	other := postgres.NewLocker(newSession(t, db, "web-0b"), "app")
	if err := other.Show(ctx, member("web-0", "waiting")); err != nil {
		t.Fatal(err)
	}
	if err := l.Show(ctx, member("web-0", "serving")); err != nil {
		t.Fatal(err)
	}
	if pid := pgtest.QueryInt(t, conn, "SELECT backend_pid FROM schemagate_presence WHERE replica = 'web-0'"); pid != int64(s.BackendPID()) {
		t.Errorf("the row names backend %d after the phase change, want the session's %d", pid, s.BackendPID())
	}
	if n := pgtest.QueryInt(t, conn, "SELECT count(*) FROM schemagate_presence WHERE replica = 'web-0' AND phase = 'serving'"); n != 1 {
		t.Errorf("web-0's row does not say serving after the phase change")
	}
}

// TestReshowAfterReconnect: a waiter whose session was ended reconnects, and its next wait shows
// it again on the new session, without a change of phase.
func TestReshowAfterReconnect(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	s := newSession(t, db, "web-2")
	l := postgres.NewLocker(s, "app")
	ops := postgres.NewLocker(newSession(t, db, "ops"), "app")
	if err := l.Show(ctx, member("web-2", "waiting")); err != nil {
		t.Fatal(err)
	}
	admin := pgtest.Connect(t, pgtest.AdminURL())
	pgtest.Exec(t, admin, "SELECT pg_terminate_backend($1, 10000)", s.BackendPID())
	if got, err := ops.Fleet(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Fleet after the session ended: %v, %v", got, err)
	}
	// The first statement after the end fails or reconnects; either way the session comes back.
	await(t, "the session to reconnect", func() bool { return s.DB().PingContext(ctx) == nil })
	if err := l.WaitForAnnouncement(ctx, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got, err := ops.Fleet(ctx); err != nil || len(got) != 1 || got[0].Phase != "waiting" {
		t.Fatalf("Fleet after the waiter reconnected and waited: %v, %v", got, err)
	}
}

// TestPresenceCreateRace: a herd showing itself on a fresh database creates the table once;
// every replica's Show succeeds.
func TestPresenceCreateRace(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	const n = 8
	var ls []*postgres.Locker
	for i := range n {
		s := newSession(t, db, fmt.Sprintf("herd-%d", i))
		if err := s.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, postgres.NewLocker(s, "app"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i, l := range ls {
		wg.Go(func() {
			<-start
			errs <- l.Show(ctx, member(fmt.Sprintf("herd-%d", i), "waiting"))
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got, err := ls[0].Fleet(ctx); err != nil || len(got) != n {
		t.Fatalf("Fleet after the herd showed itself: %d members, %v", len(got), err)
	}
}

// TestPresenceTableAndNamespace: the table can be named (schema-qualified), and a namespace
// sees only its own replicas.
func TestPresenceTableAndNamespace(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	pgtest.Exec(t, pgtest.Connect(t, db), "CREATE SCHEMA ops")
	a := postgres.NewLocker(newSession(t, db, "a"), "app").WithPresenceTable("ops.fleet")
	b := postgres.NewLocker(newSession(t, db, "b"), "other").WithPresenceTable("ops.fleet")
	if err := a.Show(ctx, member("a", "ready")); err != nil {
		t.Fatal(err)
	}
	if err := b.Show(ctx, member("b", "ready")); err != nil {
		t.Fatal(err)
	}
	for l, want := range map[*postgres.Locker]string{a: "a", b: "b"} {
		if got, err := l.Fleet(ctx); err != nil || len(got) != 1 || got[0].Replica != want {
			t.Errorf("Fleet of %s's namespace: %v, %v", want, got, err)
		}
	}
	if n := pgtest.QueryInt(t, pgtest.Connect(t, db), "SELECT count(*) FROM ops.fleet"); n != 2 {
		t.Errorf("ops.fleet holds %d rows, want 2", n)
	}
}

// await polls cond until it holds, for up to 10 s.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
