package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
	"github.com/schemagate/schemagate/lock/postgres"
)

// newSession opens a session for replica on dbURL, closed when the test ends.
func newSession(t *testing.T, dbURL, replica string) *postgres.Session {
	t.Helper()
	cfg := postgres.DefaultConfig()
	cfg.ReplicaID = replica
	s, err := postgres.NewSession(dbURL, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	locktest.Run(t, backend(t))
}

// backend builds lockers on one fresh database per subtest, each with its own session.
func backend(t *testing.T) locktest.Backend {
	sessions := map[lock.Locker]*postgres.Session{}
	dbs := map[*testing.T]string{}
	return locktest.Backend{
		New: func(t *testing.T, replica string) lock.Locker {
			db, ok := dbs[t]
			if !ok {
				db = pgtest.NewDatabase(t)
				dbs[t] = db
			}
			s := newSession(t, db, replica)
			l := postgres.NewLocker(s, "conformance")
			sessions[l] = s
			return l
		},
		Kill: func(t *testing.T, l lock.Locker) {
			s := sessions[l]
			admin := pgtest.Connect(t, pgtest.AdminURL())
			if n := pgtest.QueryInt(t, admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", s.BackendPID()); n != 1 {
				t.Fatalf("backend %d of the holder not found", s.BackendPID())
			}
			pgtest.Exec(t, admin, "SELECT pg_terminate_backend($1, 10000)", s.BackendPID())
		},
		Work: func(t *testing.T, l lock.Locker) lock.Execer { return sessions[l].DB() },
	}
}

func TestKeyIsStableAndNotGoosesDefault(t *testing.T) {
	const gooseDefault = 4097083626
	k := postgres.Key("app/goose_db_version")
	if k != postgres.Key("app/goose_db_version") {
		t.Fatal("Key is not deterministic")
	}
	if k < 0 || k == gooseDefault {
		t.Fatalf("Key = %d; want a non-negative key other than goose's default", k)
	}
	if k == postgres.Key("other/goose_db_version") {
		t.Fatal("different namespaces share a key")
	}
}

// TestSessionParameters checks that every connection carries the settings that bound how long
// a vanished migrator keeps the lock, and names its replica.
func TestSessionParameters(t *testing.T) {
	db := pgtest.NewDatabase(t)
	s := newSession(t, db, "web-7")
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"application_name":                 "schemagate/web-7",
		"tcp_keepalives_idle":              "2",
		"tcp_keepalives_interval":          "1",
		"tcp_keepalives_count":             "3",
		"tcp_user_timeout":                 "5000",
		"client_connection_check_interval": "1s",
		"idle_session_timeout":             "0",
	}
	for name, value := range want {
		var got string
		if err := s.DB().QueryRowContext(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
}

// TestNoReconnectWhileHolding checks that once the lock is held, the session refuses to open a
// replacement connection: work never silently continues on a session without the lock.
func TestNoReconnectWhileHolding(t *testing.T) {
	db := pgtest.NewDatabase(t)
	s := newSession(t, db, "web-1")
	l := postgres.NewLocker(s, "reconnect")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lease, err := l.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin := pgtest.Connect(t, pgtest.AdminURL())
	pgtest.Exec(t, admin, "SELECT pg_terminate_backend($1, 10000)", s.BackendPID())

	opened := s.ConnectionsOpened()
	for range 3 {
		if err := s.DB().PingContext(ctx); err == nil {
			t.Fatal("the session answered after its connection was terminated while holding the lock")
		}
	}
	if s.ConnectionsOpened() != opened {
		t.Fatalf("the session opened %d new connections while holding the lock", s.ConnectionsOpened()-opened)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatal("Lost() not closed")
	}
	// After Release, the session may reconnect.
	if err := lease.Release(ctx); err == nil {
		t.Fatal("Release of a lost lease succeeded")
	}
	if err := s.DB().PingContext(ctx); err != nil {
		t.Fatalf("the session did not reconnect after the lease ended: %v", err)
	}
}

// TestWaitEndsOnAnnouncement checks that a waiter with nobody holding the lock wakes on a
// migrator's announcement, not at its timeout.
func TestWaitEndsOnAnnouncement(t *testing.T) {
	db := pgtest.NewDatabase(t)
	waiter := postgres.NewLocker(newSession(t, db, "waiter"), "announce")
	migrator := postgres.NewLocker(newSession(t, db, "migrator"), "announce")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	done := make(chan time.Duration, 1)
	go func() {
		begin := time.Now()
		if err := waiter.Wait(ctx, 20*time.Second); err != nil {
			t.Errorf("Wait: %v", err)
		}
		done <- time.Since(begin)
	}()
	// Wait until the waiter's session sits idle in its LISTEN wait.
	admin := pgtest.Connect(t, pgtest.AdminURL())
	for {
		n := pgtest.QueryInt(t, admin, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'schemagate/waiter' AND state = 'idle' AND query LIKE '%pg_try_advisory_xact_lock_shared%'`)
		if n == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the waiter never started waiting")
		case <-time.After(10 * time.Millisecond):
		}
	}
	lease, err := migrator.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Announce(ctx, nil, lock.Event{Kind: lock.EventStarted, Replica: "migrator"}); err != nil {
		t.Fatal(err)
	}
	if took := <-done; took > 10*time.Second {
		t.Fatalf("Wait took %v; want it to end on the announcement", took)
	}
}

// TestPoolReleaseIdle: a Raft member's pool closes its idle connections as soon as the member
// starts waiting, not up to two seconds later when database/sql next looks for expired ones.
func TestPoolReleaseIdle(t *testing.T) {
	cfg := postgres.DefaultConfig()
	cfg.ReplicaID = "web-3"
	p, err := postgres.OpenPool(pgtest.NewDatabase(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.DB.Close()
	ctx := context.Background()
	if _, err := p.DB.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if n := p.DB.Stats().OpenConnections; n != 1 {
		t.Fatalf("%d connections open after a query, want 1", n)
	}
	p.ReleaseIdle()
	if n := p.DB.Stats().OpenConnections; n != 0 {
		t.Fatalf("%d connections open after ReleaseIdle, want 0", n)
	}
	if _, err := p.DB.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatalf("the pool does not work after ReleaseIdle: %v", err)
	}
	if n := p.DB.Stats().Idle; n != 1 {
		t.Fatalf("%d idle connections after the next query, want 1: ReleaseIdle must not stop pooling", n)
	}
}

// TestApplicationNames: a replica's names fit PostgreSQL's 63 bytes; a long replica id is cut
// with a hash of the whole, so that two long ids stay apart and the command suffix survives.
func TestApplicationNames(t *testing.T) {
	if got := postgres.ApplicationName("web-1"); got != "schemagate/web-1" {
		t.Errorf("postgres.ApplicationName(web-1) = %q", got)
	}
	if got := postgres.CommandTag("web-1"); got != "schemagate/web-1/command" {
		t.Errorf("postgres.CommandTag(web-1) = %q", got)
	}
	long1, long2 := strings.Repeat("r", 62)+"1", strings.Repeat("r", 62)+"2"
	for _, name := range []func(string) string{postgres.ApplicationName, postgres.CommandTag} {
		a, b := name(long1), name(long2)
		if len(a) > 63 || len(b) > 63 || a == b || !strings.HasPrefix(a, "schemagate/rrr") {
			t.Errorf("long ids: %q and %q", a, b)
		}
	}
	if tag := postgres.CommandTag(long1); !strings.HasSuffix(tag, "/command") {
		t.Errorf("CommandTag lost its suffix: %q", tag)
	}
}

// TestCanonical: a SQLAlchemy URL names the same database as the plain URL.
func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql+psycopg2://app:pw@db:5432/app?sslmode=require": "postgresql://app:pw@db:5432/app?sslmode=require",
		"postgresql+psycopg://app@db/app":                          "postgresql://app@db/app",
		"postgresql+asyncpg://app@db/app?ssl=require":              "postgresql://app@db/app?sslmode=require",
		"postgresql+asyncpg://app@db/app?ssl=true":                 "postgresql://app@db/app?sslmode=require",
		"postgres://app@db/app":                                    "postgres://app@db/app",
		"host=db user=app":                                         "host=db user=app",
	} {
		if got := postgres.Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWaitLeavesNoLockBehind hammers Wait with lock timeouts that expire as the holder lets go.
// PostgreSQL may grant a queued lock in the very instant its lock_timeout fires: the waiter
// gets the timeout error and keeps the lock. A session-level shared lock kept that way stays
// for the session's life, and then no replica can ever take the lock again while none shows as
// its holder: the rollout stalls. Every wait must leave the session holding nothing.
func TestWaitLeavesNoLockBehind(t *testing.T) {
	db := pgtest.NewDatabase(t)
	holder := postgres.NewLocker(newSession(t, db, "holder"), "leak")
	const waiters = 10
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, waiters)
	for i := range waiters {
		l := postgres.NewLocker(newSession(t, db, fmt.Sprintf("waiter-%d", i)), "leak")
		go func() {
			for ctx.Err() == nil {
				if _, err := l.Holder(ctx); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
				if err := l.Wait(ctx, time.Duration(1+rand.IntN(3))*time.Millisecond); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for ctx.Err() == nil {
		lease, err := holder.TryAcquire(ctx)
		if err != nil {
			continue // a waiter's probe held the shared mode for an instant
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := lease.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for range waiters {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	conn := pgtest.Connect(t, db)
	held := pgtest.QueryInt(t, conn, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
		  AND a.application_name LIKE 'schemagate/waiter-%'`)
	if held != 0 {
		t.Fatalf("%d waiter sessions still hold the lock after their waits ended", held)
	}
}

// TestLockQueriesSeeThisDatabaseOnly: the same namespace in two databases of one server is two
// locks. Holding it in one, a replica of the other sees no holder and no waiter, cannot stop the
// holder, and takes its own lock; the holder's fence holds.
func TestLockQueriesSeeThisDatabaseOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	here, there := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	holder := postgres.NewLocker(newSession(t, there, "holder"), "shared-name")
	lease, err := holder.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(context.WithoutCancel(ctx))
	if err := lease.Check(ctx); err != nil {
		t.Fatalf("the holder's fence: %v", err)
	}
	// A waiter queued on the holder's database, which only the other database's queries must miss.
	queued := newSession(t, there, "queued")
	waitDone := make(chan error, 1)
	go func() {
		_, err := queued.DB().ExecContext(ctx, "SELECT pg_advisory_lock_shared($1)", holder.Key())
		waitDone <- err
	}()
	watcher := postgres.NewLocker(newSession(t, there, "watcher"), "shared-name")
	await(t, "the queued session in the waiters list", func() bool {
		w, err := watcher.Waiters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(w) == 1
	})
	if h, err := watcher.Holder(ctx); err != nil || h == nil || h.Replica != "holder" {
		t.Fatalf("in the holder's database: holder %+v, %v", h, err)
	}

	other := postgres.NewLocker(newSession(t, here, "other"), "shared-name")
	if h, err := other.Holder(ctx); err != nil || h != nil {
		t.Errorf("another database's holder seen: %+v, %v", h, err)
	}
	if w, err := other.Waiters(ctx); err != nil || len(w) != 0 {
		t.Errorf("another database's waiters seen: %v, %v", w, err)
	}
	h, _ := watcher.Holder(ctx)
	if err := other.StopHolder(ctx, h, true); err == nil {
		t.Error("a replica of another database ended the holder")
	}
	mine, err := other.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("the lock of this database: %v", err)
	}
	if err := mine.Check(ctx); err != nil {
		t.Errorf("this database's fence: %v", err)
	}
	mine.Release(ctx)
	if err := lease.Check(ctx); err != nil {
		t.Errorf("the holder's fence after all that: %v", err)
	}
	lease.Release(ctx)
	if err := <-waitDone; err != nil {
		t.Fatal(err)
	}
}
