package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/postgres"
)

// leaseNamespace is the election the lease tests hold.
const leaseNamespace = "lease"

// shortLease is the shortest lease Config accepts, to keep the tests short.
const shortLease = 3 * postgres.RenewEvery

// waiter opens a locker for replica whose session has the short lease, and logs into log.
func waiter(t *testing.T, db, replica string, log *strings.Builder) *postgres.Locker {
	t.Helper()
	cfg := postgres.DefaultConfig()
	cfg.ReplicaID, cfg.Lease = replica, shortLease
	s, err := postgres.NewSession(db, cfg, zerolog.New(&syncWriter{b: log}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return postgres.NewLocker(s, leaseNamespace)
}

// sessionWaiter is a waiter with the default lease whose session the test reads too (the
// statements it sent).
func sessionWaiter(t *testing.T, db, replica string) (*postgres.Session, *postgres.Locker) {
	t.Helper()
	s := newSession(t, db, replica)
	return s, postgres.NewLocker(s, leaseNamespace)
}

// foreignHolder takes the namespace's lock on a plain connection named like replica's session,
// the way a migrator of replica holds it, and then does nothing, as a frozen migrator does.
func foreignHolder(t *testing.T, db, replica string) (*pgx.Conn, int) {
	t.Helper()
	cfg, err := pgx.ParseConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = postgres.ApplicationName(replica)
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var pid int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid() FROM pg_advisory_lock($1) x",
		postgres.Key(leaseNamespace)).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return conn, pid
}

// holderSeen has l read the holder, as the gate does before it waits.
func holderSeen(t *testing.T, l *postgres.Locker) *lock.Holder {
	t.Helper()
	h, err := l.Holder(ctx30s(t))
	if err != nil || h == nil {
		t.Fatalf("Holder = %v, %v; want the holder", h, err)
	}
	return h
}

func backendAlive(t *testing.T, admin *pgx.Conn, pid int) bool {
	return pgtest.QueryInt(t, admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) == 1
}

// TestWaitEndsAFrozenHolder: a holder whose session sits idle with the lock for longer than the
// lease is ended by the waiting deputy, with its migrate command's sessions, and no sooner than
// the lease; another replica's command session is left alone.
func TestWaitEndsAFrozenHolder(t *testing.T) {
	db := pgtest.NewDatabase(t)
	admin := pgtest.Connect(t, db)
	_, pid := foreignHolder(t, db, "frozen")
	command := taggedSession(t, db, "frozen")
	other := taggedSession(t, db, "other")
	var log strings.Builder
	l := waiter(t, db, "deputy", &log)
	holderSeen(t, l)
	begin := time.Now()
	if err := l.Wait(ctx30s(t), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if _, quiet := l.HeldThroughout(); quiet {
		t.Fatal("the wait says the frozen holder held the lock throughout")
	}
	if took < shortLease {
		t.Errorf("the holder was ended after %s, before its lease of %s ran out", took, shortLease)
	}
	if backendAlive(t, admin, pid) {
		t.Errorf("the frozen holder's session (pid %d) is still there after %s", pid, took)
	}
	if backendAlive(t, admin, int(command.PgConn().PID())) {
		t.Error("the frozen holder's migrate command session survived")
	}
	if !backendAlive(t, admin, int(other.PgConn().PID())) {
		t.Error("another replica's migrate command session was ended")
	}
	if !strings.Contains(log.String(), "ended the migrator frozen") || !strings.Contains(log.String(), "1 session(s) of its migrate command") {
		t.Errorf("the deputy did not say whom it ended:\n%s", log.String())
	}
}

// TestWaitLeavesABusyHolder: a holder running a statement longer than the lease is active,
// not idle, and is never ended; the wait reports on the way (with the answer to the caller's
// sample query), and at its end, that it held the lock throughout, with the statement it runs.
func TestWaitLeavesABusyHolder(t *testing.T) {
	db := pgtest.NewDatabase(t)
	holder, pid := foreignHolder(t, db, "busy")
	var log strings.Builder
	l := waiter(t, db, "deputy", &log)
	slept := make(chan error, 1)
	go func() {
		_, err := holder.Exec(context.Background(), "SELECT pg_sleep(8)")
		slept <- err
	}()
	admin := pgtest.Connect(t, db)
	await(t, "the holder runs its statement", func() bool {
		return pgtest.QueryInt(t, admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid) == 1
	})
	holderSeen(t, l)
	var seen []lock.Holder
	var answers []string
	l.WatchHolder("SELECT 'sampled ' || current_database()", func(h *lock.Holder, answer string) {
		seen, answers = append(seen, *h), append(answers, answer)
	})
	if err := l.Wait(ctx30s(t), 6*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 || seen[0].State != "active" || !strings.Contains(seen[0].Query, "pg_sleep") {
		t.Errorf("the wait reported the holder on the way as %+v, want it active in pg_sleep", seen)
	}
	if len(answers) == 0 || !strings.HasPrefix(answers[0], "sampled sg") {
		t.Errorf("the wait answered the sample query with %q", answers)
	}
	h, quiet := l.HeldThroughout()
	if !quiet {
		t.Fatalf("the wait did not report the busy holder held the lock throughout:\n%s", log.String())
	}
	if h.State != "active" || !strings.Contains(h.Query, "pg_sleep") || h.QueryStart.IsZero() {
		t.Errorf("the holder as the wait saw it: state %q, query %q since %s", h.State, h.Query, h.QueryStart)
	}
	if err := <-slept; err != nil {
		t.Errorf("the busy holder's statement failed: %v", err)
	}
}

// TestLeaseKeepsTheSessionBusy: a migrator that holds the lock and has nothing to run keeps its
// session from sitting idle, so that a waiter's deputy never ends it, however long it holds.
func TestLeaseKeepsTheSessionBusy(t *testing.T) {
	db := pgtest.NewDatabase(t)
	var holderLog, waiterLog strings.Builder
	holder := waiter(t, db, "holder", &holderLog)
	lease, err := holder.TryAcquire(ctx30s(t))
	if err != nil {
		t.Fatal(err)
	}
	l := waiter(t, db, "deputy", &waiterLog)
	holderSeen(t, l)
	if err := l.Wait(ctx30s(t), 2*shortLease); err != nil {
		t.Fatal(err)
	}
	if _, quiet := l.HeldThroughout(); !quiet {
		t.Fatalf("the waiter did not wait out the idle but healthy holder:\n%s", waiterLog.String())
	}
	if err := lease.Check(ctx30s(t)); err != nil {
		t.Errorf("the holder lost its lease: %v", err)
	}
	if err := lease.Release(ctx30s(t)); err != nil {
		t.Error(err)
	}
}

// TestWaitIsOneStatement: however long a waiter waits for the holder, it sends one statement,
// and so costs the database one transaction.
func TestWaitIsOneStatement(t *testing.T) {
	db := pgtest.NewDatabase(t)
	foreignHolder(t, db, "holder")
	s, l := sessionWaiter(t, db, "counted")
	holderSeen(t, l)
	mark := s.Statements().Mark()
	if err := l.Wait(ctx30s(t), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if ran, _ := s.Statements().Since(mark); len(ran) != 1 {
		t.Errorf("a 3 s wait sent %d statements, want 1:\n%s", len(ran), strings.Join(ran, "\n---\n"))
	}
}

// syncWriter lets the session's goroutines log into one builder that the test reads.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestWaitReadsOnRelease: a wait that ends with the holder's release answers the caller's
// ReadOnRelease query in its own statement, after the holder's last commit; a table that does
// not exist is told apart; a wait that ends with the holder still there answers nothing.
func TestWaitReadsOnRelease(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	holder, _ := foreignHolder(t, db, "holder")
	pgtest.Exec(t, holder, "CREATE TABLE versions (v int)")
	s, l := sessionWaiter(t, db, "woken")
	holderSeen(t, l)
	l.ReadOnRelease("SELECT coalesce(string_agg(v::text, ',' ORDER BY v), '') FROM versions")

	// Still held: nothing to use.
	if err := l.Wait(ctx, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if answer, _, ok := l.ReleaseAnswer(); ok {
		t.Fatalf("a wait that timed out with the holder there answered %q", answer)
	}

	holderSeen(t, l)
	mark := s.Statements().Mark()
	released := releaseWhenQueued(ctx, holder, "INSERT INTO versions VALUES (1), (2)")
	if err := l.Wait(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	answer, missing, ok := l.ReleaseAnswer()
	if !ok || missing || answer != "1,2" {
		t.Fatalf("ReleaseAnswer = %q, missing %v, ok %v; want the holder's last commit, 1,2", answer, missing, ok)
	}
	if _, _, again := l.ReleaseAnswer(); again {
		t.Error("ReleaseAnswer answered twice for one wait")
	}
	if ran, _ := s.Statements().Since(mark); len(ran) != 1 {
		t.Errorf("the wait and its read took %d statements, want 1:\n%s", len(ran), strings.Join(ran, "\n---\n"))
	}

	// A table that does not exist.
	pgtest.Exec(t, holder, "SELECT pg_advisory_lock($1)", postgres.Key(leaseNamespace))
	holderSeen(t, l)
	l.ReadOnRelease("SELECT v::text FROM no_such_table")
	released = releaseWhenQueued(ctx, holder)
	if err := l.Wait(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if _, missing, ok := l.ReleaseAnswer(); !ok || !missing {
		t.Errorf("ReleaseAnswer: missing %v, ok %v; want a missing table told", missing, ok)
	}
}

// TestWaitReadsNothingUnderRepeatableRead: where the role or the database makes transactions
// repeatable read, the wait's snapshot is the one its transaction began with, from before the
// holder's last commits; the wait answers nothing then, and the caller reads for itself.
func TestWaitReadsNothingUnderRepeatableRead(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := ctx30s(t)
	holder, _ := foreignHolder(t, db, "holder")
	pgtest.Exec(t, holder, "CREATE TABLE versions (v int)")
	pgtest.Exec(t, holder, `DO $$BEGIN
		EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L', current_database(), 'repeatable read');
	END$$`)
	_, l := sessionWaiter(t, db, "strict")
	holderSeen(t, l)
	l.ReadOnRelease("SELECT coalesce(string_agg(v::text, ','), '') FROM versions")
	released := releaseWhenQueued(ctx, holder, "INSERT INTO versions VALUES (1)")
	if err := l.Wait(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if answer, _, ok := l.ReleaseAnswer(); ok {
		t.Errorf("under repeatable read the wait answered %q from its first snapshot; want no answer", answer)
	}
}

// releaseWhenQueued has holder, once a session queues for the namespace's lock in its database,
// run statements and then let go of the lock. The channel says how that went.
func releaseWhenQueued(ctx context.Context, holder *pgx.Conn, statements ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			var queued bool
			err := holder.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&queued)
			if err != nil {
				done <- fmt.Errorf("look for the queued waiter: %w", err)
				return
			}
			if queued {
				break
			}
			time.Sleep(10 * time.Millisecond) // the next look at the server's lock table
		}
		for _, q := range append(statements, "SELECT pg_advisory_unlock("+fmt.Sprint(postgres.Key(leaseNamespace))+")") {
			if _, err := holder.Exec(ctx, q); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}
