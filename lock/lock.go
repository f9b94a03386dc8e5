// Package lock defines how the replicas that share a database elect the one replica that
// migrates it: the migrator.
//
// A backend (lock/postgres, …) implements Locker. The coordinator never sees which backend it
// has. The contract has three parts: try to become the migrator (TryAcquire), learn when that
// role is gone (Lease.Lost), and give it up (Lease.Release). Two more make waiting cheap and
// visible: Holder says who migrates now, and Wait blocks until the holder may have changed or
// announced progress.
//
// Every backend must pass the conformance suite in lock/locktest.
package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

var (
	// ErrHeld is returned by TryAcquire when another replica is the migrator.
	ErrHeld = errors.New("lock is held by another replica")

	// ErrLost is returned by a lease's methods once the lock is no longer held by it: the
	// session that held it ended, or leadership moved. Whatever the lease was protecting must
	// stop.
	ErrLost = errors.New("lock lost")
)

// Locker elects one migrator among replicas. Its methods are not safe for concurrent use: one
// replica drives one Locker from one goroutine.
type Locker interface {
	// TryAcquire tries once, without waiting, to become the migrator. It returns ErrHeld when
	// another replica is the migrator.
	TryAcquire(ctx context.Context) (Lease, error)

	// Holder describes the current migrator, or returns nil when there is none. A backend that
	// replicates the election (Raft) may name a new migrator a moment after it took the role.
	Holder(ctx context.Context) (*Holder, error)

	// Wait blocks until the holder last reported by Holder releases the lock or dies, a
	// migrator announces progress, or d passes, whichever comes first. It returns nil in all
	// three cases: callers re-read the state they care about after every Wait.
	Wait(ctx context.Context, d time.Duration) error

	// WaitForAnnouncement blocks until a migrator announces progress or d passes, whoever holds
	// the lock. A replica that is already ready watches this way, to learn of every migration a
	// newer release commits as it commits.
	WaitForAnnouncement(ctx context.Context, d time.Duration) error

	// Close releases the locker's resources. A lease still held is released as a side effect.
	Close() error
}

// Lease is the migrator role, held from a successful TryAcquire until Release or loss.
type Lease interface {
	// Lost is closed when the lease is gone without Release: the session holding it ended or
	// leadership moved. Work done under the lease must stop.
	Lost() <-chan struct{}

	// Fence is called inside every migration transaction before it commits. It returns an
	// error wrapping ErrLost when this lease no longer holds the lock, so that the transaction
	// rolls back instead of committing without the lock.
	Fence(ctx context.Context, tx Execer) error

	// Check verifies, now and outside any migration transaction, that this lease still holds
	// the lock, on the lease's own connection where it has one (so the check also proves that
	// connection alive). It returns an error wrapping ErrLost when the lock is gone or the
	// answer does not come in a bounded time, and the lease is then lost. The migrator calls it
	// at least every second while work outside its session (a migrate command) runs.
	Check(ctx context.Context) error

	// Announce tells waiting replicas about progress. With a transaction, waiters learn of the
	// event when the transaction commits, and not at all if it rolls back; with a nil tx, at
	// once.
	Announce(ctx context.Context, tx Execer, ev Event) error

	// Release gives up the role. It returns an error wrapping ErrLost when the lock turned out
	// to be lost before the release.
	Release(ctx context.Context) error
}

// CheckDeadline bounds Lease.Check: a lease that cannot confirm it holds the lock within it
// counts as lost. A migrator that runs work outside its session checks at least every second,
// so it notices a loss within a second plus CheckDeadline (see engine.Hooks.Settle).
const CheckDeadline = 5 * time.Second

// WaiterLister is a Locker that can tell which replicas wait for the lock now (the PostgreSQL
// lock: the sessions queued on it).
type WaiterLister interface {
	Waiters(ctx context.Context) ([]string, error)
}

// QuietWaiter is a Locker whose Wait, while another replica holds the lock, wakes by itself on
// every change that matters (the holder lets go, fails, dies or is ended), so that the caller
// need not poll; and which can tell afterwards that nothing changed (the PostgreSQL lock: the
// waiters queue on it). A waiter of such a backend re-reads the database only when woken by a
// change, and costs the database next to nothing while it waits.
type QuietWaiter interface {
	// HeldThroughout reports whether the last Wait ended with the holder it waited for still
	// holding the lock, and no announcement heard; if so it returns that holder as it stood at
	// the end of the wait.
	HeldThroughout() (*Holder, bool)

	// WatchHolder sets a function that Wait calls every few seconds while it waits for a
	// holder, on the caller's goroutine, with the holder as it stands then and the answer to
	// sample, a read-only query returning one text value run inside the wait ("" for none, or
	// when it failed).
	WatchHolder(sample string, f func(h *Holder, answer string))

	// ReadOnRelease sets a read-only query (one row of one text value) that a Wait for a
	// holder runs, in the same statement, the moment the holder lets go: after its commits, so
	// that the answer is what the caller would read next, without a round trip of its own. ""
	// runs nothing.
	ReadOnRelease(query string)

	// ReleaseAnswer returns, once, the answer of the ReadOnRelease query from the last Wait,
	// when that Wait ended with the release; missing says the query's table does not exist.
	// ok is false when there is no answer to use: the caller reads for itself.
	ReleaseAnswer() (answer string, missing, ok bool)
}

// HolderStopper is a Locker that can stop another replica's migrator from outside (the
// PostgreSQL lock: cancel its statement, end its session).
type HolderStopper interface {
	// StopHolder cancels the statement the holder's session runs, or with end, ends the
	// session, which releases the lock.
	StopHolder(ctx context.Context, h *Holder, end bool) error
}

// Interrupter is a Lease that can stop the work running under it without giving up the lock:
// PostgreSQL's lease cancels the running statement on the server, so the session survives to
// journal the outcome and unlock. Leases without it have their work's context cancelled instead.
type Interrupter interface {
	Interrupt(ctx context.Context) error
}

// Execer is what a lease needs from a transaction or session: *sql.Tx, *sql.Conn and *sql.DB
// all satisfy it.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Holder describes the replica that holds the lock, as far as the backend can see it.
type Holder struct {
	// Replica is the holder's replica id, when it announced one (schemagate sets it); else empty.
	Replica string `json:"replica,omitempty"`
	// Name is how the backend names the holder: for PostgreSQL the session's application_name.
	Name string `json:"name"`
	// PID is the holder's server process id, when the backend has one.
	PID int `json:"pid,omitempty"`
	// Address is where the holder connects from, when known.
	Address string `json:"address,omitempty"`
	// SessionStart is when the holder's session began.
	SessionStart time.Time `json:"session_start,omitzero"`
	// State is what the holder's session is doing ("active", "idle", "idle in transaction").
	State string `json:"state,omitempty"`
	// Query is the statement the holder runs now or ran last, shortened.
	Query string `json:"query,omitempty"`
	// QueryStart is when that statement started.
	QueryStart time.Time `json:"query_start,omitzero"`
}

// String names the holder in one phrase for logs: "web-7 (pid 4242)".
func (h *Holder) String() string {
	name := h.Replica
	if name == "" {
		name = h.Name
	}
	if name == "" {
		name = "an unnamed session"
	}
	if h.PID != 0 {
		return fmt.Sprintf("%s (pid %d)", name, h.PID)
	}
	return name
}

// EventKind says what a migrator announced.
type EventKind string

const (
	// EventStarted: a replica became the migrator and is about to apply migrations.
	EventStarted EventKind = "started"
	// EventApplied: one migration committed.
	EventApplied EventKind = "applied"
	// EventDone: the migrator finished; the schema is at its target.
	EventDone EventKind = "done"
	// EventFailed: a migration failed; the journal holds the error.
	EventFailed EventKind = "failed"
)

// Event is a migrator's progress announcement. Waiters treat it as a hint to re-read the
// database; it is never the source of truth.
type Event struct {
	Kind    EventKind `json:"kind"`
	Replica string    `json:"replica"`
	Version int64     `json:"version,omitempty"`
	// Migration names the migration applied, or the one that failed.
	Migration string `json:"migration,omitempty"`
	// Error is why a run failed.
	Error string `json:"error,omitempty"`
	// Fingerprint names the migration set of a started run.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Replicated is a Locker whose backend replicates, among the replicas themselves, how the
// current migration run stands (Raft). A waiter then needs the database only twice: to read
// the schema at start, and to check it when the replicated state says the run ended.
type Replicated interface {
	Locker
	// Outcome is how the current run stands, as the replicas agree.
	Outcome() Outcome
}

// Phase is where a migration run stands, as a Replicated backend knows it. The zero Phase means
// no run yet.
type Phase string

const (
	// PhaseMigrating: a migrator claimed the run and applies migrations.
	PhaseMigrating Phase = "migrating"
	// PhaseDone: the run applied every migration.
	PhaseDone Phase = "done"
	// PhaseFailed: the run stopped at a migration that failed.
	PhaseFailed Phase = "failed"
)

// Outcome is how a migration run stands, as a Replicated backend knows it.
type Outcome struct {
	// Seq grows with every change; equal Seqs mean nothing changed.
	Seq uint64
	// Phase is where the run stands; "" before the first run.
	Phase Phase
	// Fingerprint is the migration set of the run.
	Fingerprint string
	// Replica is the migrator.
	Replica string
	// Migration is the migration under way, or the one that failed.
	Migration string
	// Error is why the run failed.
	Error string
	// Cluster says how the cluster stands, for a waiter's log.
	Cluster string
	// Leaderless is true while this replica sees no leader: the replicated state may then be
	// stale, and only the database can say whether the run ended.
	Leaderless bool
}

// internalMarker opens every statement schemagate itself runs on a database session, so that a
// session's current statement, as pg_stat_activity shows it, tells a migration's statement from
// schemagate's own bookkeeping (a lock check, a journal row), which no person needs to see.
const internalMarker = "/* schemagate */ "

// Internal marks query as one of schemagate's own.
func Internal(query string) string { return internalMarker + query }

// IsInternal reports whether query is one of schemagate's own (marked by Internal).
func IsInternal(query string) bool {
	return strings.HasPrefix(strings.TrimSpace(query), strings.TrimSpace(internalMarker))
}

// Loss is a lease's loss signal, for backends to embed in their leases: it gives the lease its
// Lost method, and MarkLost closes that channel, once, however often the loss is found.
type Loss struct {
	make  sync.Once
	close sync.Once
	ch    chan struct{}
}

func (l *Loss) channel() chan struct{} {
	l.make.Do(func() { l.ch = make(chan struct{}) })
	return l.ch
}

// Lost is closed once the lease is found lost.
func (l *Loss) Lost() <-chan struct{} { return l.channel() }

// MarkLost records that the lease is lost.
func (l *Loss) MarkLost() {
	ch := l.channel()
	l.close.Do(func() { close(ch) })
}
