package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/schemagate/schemagate/lock"
)

// Key derives the advisory lock key from a namespace: the first 8 bytes of
// SHA-256("schemagate/v1:" + namespace), sign bit cleared so that pg_locks shows it as
// (classid, objid) = (key>>32, key&0xffffffff) without surprises. It never equals goose's own
// default key, so a goose CLI run by hand does not contend with schemagate by accident.
func Key(namespace string) int64 {
	sum := sha256.Sum256([]byte("schemagate/v1:" + namespace))
	return int64(binary.BigEndian.Uint64(sum[:8]) &^ (1 << 63))
}

// Locker is the advisory-lock backend. It uses its Session for everything: the lock, the
// holder query, the waits.
type Locker struct {
	s       *Session
	key     int64
	channel string
	replica string
	lease   *lease
	// sawHolder: the last Holder call found another session holding the lock.
	sawHolder bool

	// namespace is the election's name; presence the table of the replicas' entries
	// (presence.go).
	namespace string
	presence  string
	// shown is the entry this replica last showed, and shownOn the backend pid it names.
	shown   *lock.Member
	shownOn int32
}

var _ lock.Locker = (*Locker)(nil)

// NewLocker returns a locker for namespace on s. Every connection of s LISTENs on the
// namespace's channel from its first round trip on, so create the locker before s is used.
func NewLocker(s *Session, namespace string) *Locker {
	key := Key(namespace)
	l := &Locker{s: s, key: key, channel: fmt.Sprintf("schemagate_%016x", key), replica: s.cfg.ReplicaID,
		namespace: namespace, presence: DefaultPresenceTable}
	s.Listen(l.channel)
	return l
}

// Key returns the advisory lock key.
func (l *Locker) Key() int64 { return l.key }

// TryAcquire takes the lock if it is free. The lock is session-level: it stays until Release or
// until the session ends, whatever happens to transactions in between.
func (l *Locker) TryAcquire(ctx context.Context) (lock.Lease, error) {
	if l.lease != nil {
		return nil, errors.New("this replica already holds the lock")
	}
	conn, err := l.s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var ok bool
	var pid int32
	err = conn.QueryRowContext(ctx, lock.Internal("SELECT pg_try_advisory_lock($1), pg_backend_pid()"), l.key).Scan(&ok, &pid)
	if err != nil {
		return nil, fmt.Errorf("try advisory lock %d: %w", l.key, err)
	}
	if !ok {
		return nil, lock.ErrHeld
	}
	ls := &lease{l: l, pid: pid}
	l.s.pin(ls.MarkLost)
	l.lease = ls
	return ls, nil
}

// holderQuery finds the session holding the namespace's lock in this database, and what it does.
const holderQuery = `
SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''),
       a.backend_start, coalesce(a.state, ''), coalesce(left(a.query, 300), ''), a.query_start
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1`

// Holder describes the session that holds the lock, or returns nil when nobody does.
func (l *Locker) Holder(ctx context.Context) (*lock.Holder, error) {
	var h lock.Holder
	var sessionStart, queryStart sql.NullTime
	err := l.s.db.QueryRowContext(ctx, lock.Internal(holderQuery), l.key>>32, l.key&0xffffffff).Scan(
		&h.PID, &h.Name, &h.Address, &sessionStart, &h.State, &h.Query, &queryStart)
	if errors.Is(err, sql.ErrNoRows) {
		l.sawHolder = false
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find lock holder: %w", err)
	}
	l.sawHolder = h.PID != l.s.BackendPID()
	h.Replica = replicaFromApplicationName(h.Name)
	h.SessionStart, h.QueryStart = sessionStart.Time, queryStart.Time
	return &h, nil
}

// waitersQuery lists the sessions queued on the namespace's lock in this database: the
// replicas waiting for the migrator (each queues for the lock's shared mode while it waits).
const waitersQuery = `
SELECT coalesce(a.application_name, '')
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND NOT l.granted
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1
 ORDER BY a.backend_start`

// Waiters lists the replicas queued on the lock now. A waiter is queued for most of its wait,
// but not for the moment between two of its polls: the list is a close estimate.
func (l *Locker) Waiters(ctx context.Context) ([]string, error) {
	rows, err := l.s.db.QueryContext(ctx, lock.Internal(waitersQuery), l.key>>32, l.key&0xffffffff)
	if err != nil {
		return nil, fmt.Errorf("list the waiting replicas: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list the waiting replicas: %w", err)
		}
		if r := replicaFromApplicationName(name); r != "" {
			name = r
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// StopHolder cancels the statement of the session holding the lock (pg_cancel_backend), or
// with end, ends that session (pg_terminate_backend), which releases the lock. It checks first
// that h still holds it, so that a session that let go and was reused is left alone.
func (l *Locker) StopHolder(ctx context.Context, h *lock.Holder, end bool) error {
	fn := "pg_cancel_backend"
	if end {
		fn = "pg_terminate_backend"
	}
	var done bool
	err := l.s.db.QueryRowContext(ctx, lock.Internal(`SELECT coalesce(bool_or(`+fn+`(l.pid)), false)
		FROM pg_locks l WHERE l.pid = $3 AND l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1`),
		l.key>>32, l.key&0xffffffff, h.PID).Scan(&done)
	if err != nil {
		return fmt.Errorf("%s(%d): %w", fn, h.PID, err)
	}
	if !done {
		return fmt.Errorf("%s(%d): the session no longer holds the lock, or may not be signalled by this role", fn, h.PID)
	}
	return nil
}

// Wait blocks until the holder last reported by Holder releases the lock or dies, a migrator
// announces progress, or d passes.
//
// While another session holds the lock, Wait queues for the lock's shared mode with
// lock_timeout d: PostgreSQL grants it to every queued waiter the instant the holder releases
// the lock or its session ends, so a dead migrator is noticed at once, not at the next poll.
// While nobody holds it, Wait listens for an announcement instead, unless the caller last saw a
// holder: then the holder is already gone and Wait returns at once.
func (l *Locker) Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	l.reshow(ctx)
	var free bool
	err := l.s.db.QueryRowContext(ctx,
		lock.Internal("SELECT pg_try_advisory_xact_lock_shared($1)"),
		l.key).Scan(&free)
	if err != nil {
		return fmt.Errorf("probe the lock: %w", err)
	}
	begin := time.Now()
	switch {
	case !free:
		err = l.waitForRelease(ctx, d)
		l.s.log.Debug().Err(err).Str("for", d.String()).Str("took", time.Since(begin).String()).Msg("waited for the lock holder")
	case l.sawHolder:
		l.sawHolder = false
	default:
		err = l.WaitForAnnouncement(ctx, d)
	}
	return err
}

// waitForRelease queues for the shared lock, which the statement's transaction lets go of as it
// ends. lock_timeout is set for that transaction only, so the session's setting is untouched
// afterwards.
//
// The shared lock must be transaction-level. PostgreSQL may grant a queued lock in the instant
// its lock_timeout fires: the waiter gets the timeout error and keeps the lock. A session-level
// lock kept that way would stay until the session ends, and while it stays no replica can take
// the lock, although none shows as its holder; a transaction-level one goes with the
// transaction, whatever ended it.
func (l *Locker) waitForRelease(ctx context.Context, d time.Duration) error {
	ms := max(d.Milliseconds(), 1)
	stmt := lock.Internal(`DO $$
BEGIN
  PERFORM set_config('lock_timeout', '%d', true);
  PERFORM pg_advisory_xact_lock_shared(%d);
EXCEPTION WHEN lock_not_available THEN
  NULL;
END $$`)
	stmt = fmt.Sprintf(stmt, ms, l.key)
	if _, err := l.s.db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("wait for the lock holder: %w", err)
	}
	return nil
}

// WaitForAnnouncement waits up to d for a NOTIFY on the namespace's channel (every connection
// of the session LISTENs on it). Announcements that arrived while other statements ran are
// already buffered; any of them ends the wait at once.
func (l *Locker) WaitForAnnouncement(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	l.reshow(ctx)
	begin := time.Now()
	defer func() {
		l.s.log.Debug().Str("for", d.String()).Str("took", time.Since(begin).String()).Msg("waited for an announcement")
	}()
	conn, err := l.s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		if drainBuffered(pc) > 0 {
			return nil // one wake-up for everything announced meanwhile
		}
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		_, err := pc.WaitForNotification(wctx)
		if err != nil && ctx.Err() == nil && wctx.Err() != nil {
			return nil // d passed
		}
		if err != nil {
			return fmt.Errorf("wait for an announcement: %w", err)
		}
		return nil
	})
}

// drainBuffered consumes the notifications pgx buffered while other statements ran, without
// touching the network, and says how many there were.
func drainBuffered(pc *pgx.Conn) int {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	for {
		if _, err := pc.WaitForNotification(done); err != nil {
			return n
		}
		n++
	}
}

// Close releases a lease still held. It does not close the session, which the caller owns.
func (l *Locker) Close() error {
	if l.lease == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.lease.Release(ctx)
}

// lease is the lock held by this replica's session.
type lease struct {
	l   *Locker
	pid int32
	lock.Loss
}

var _ lock.Lease = (*lease)(nil)

// fenceQuery is true when the backend running it holds the namespace's lock.
const fenceQuery = `
SELECT EXISTS (
  SELECT 1 FROM pg_locks
   WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock' AND pid = pg_backend_pid()
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1)`

// Fence checks, inside the caller's transaction, that this very backend still holds the lock.
func (ls *lease) Fence(ctx context.Context, tx lock.Execer) error {
	var held bool
	if err := tx.QueryRowContext(ctx, lock.Internal(fenceQuery), ls.l.key>>32, ls.l.key&0xffffffff).Scan(&held); err != nil {
		return ls.sessionError("check the lock inside the migration transaction", err)
	}
	if !held {
		ls.MarkLost()
		return fmt.Errorf("advisory lock %d is not held by this session (pid %d): %w", ls.l.key, ls.pid, lock.ErrLost)
	}
	return nil
}

// checkTimeout bounds Check: a session that does not answer in this time counts as lost. A
// migrator starved of CPU for a few seconds still answers in time; a cut-off one does not.
const checkTimeout = lock.CheckDeadline

// Check verifies on the session, outside any transaction, that this backend still holds the
// lock. An answer that does not come within checkTimeout counts as loss: the lease is marked
// lost and the session's connection cut, so that the server lets go of the lock as soon as it
// hears of it, and the session cannot carry on as the holder behind the migrator's back.
func (ls *lease) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	answer := make(chan error, 1)
	go func() { answer <- ls.Fence(ctx, ls.l.s.db) }()
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
	}
	// A process that was paused sees its deadline and its answer arrive together.
	select {
	case err := <-answer:
		return err
	case <-time.After(250 * time.Millisecond):
	}
	ls.MarkLost()
	ls.l.s.sever()
	return fmt.Errorf("advisory lock %d: the session (pid %d) did not answer within %s: %w",
		ls.l.key, ls.pid, checkTimeout, ErrSessionEnded)
}

// Announce sends ev on the namespace's channel. Inside a transaction, PostgreSQL delivers it on
// commit.
func (ls *lease) Announce(ctx context.Context, tx lock.Execer, ev lock.Event) error {
	if tx == nil {
		tx = ls.l.s.db
	}
	// NOTIFY payloads must stay under 8000 bytes; the journal has the whole error.
	if len(ev.Error) > 1000 {
		ev.Error = ev.Error[:1000] + "…"
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, lock.Internal("SELECT pg_notify($1, $2)"), ls.l.channel, string(payload)); err != nil {
		return ls.sessionError("announce "+string(ev.Kind), err)
	}
	return nil
}

// Interrupt cancels the statement the lease's session is running, keeping the session and the
// lock: a transactional migration rolls back, and the migrator can still journal and release.
func (ls *lease) Interrupt(ctx context.Context) error { return ls.l.s.interrupt(ctx) }

// Release unlocks. If the unlock finds the lock not held, the lease had been lost.
func (ls *lease) Release(ctx context.Context) error {
	l := ls.l
	defer func() {
		l.s.unpin()
		l.lease = nil
	}()
	select {
	case <-ls.Lost():
		return ErrSessionEnded
	default:
	}
	var ok bool
	if err := l.s.db.QueryRowContext(ctx, lock.Internal("SELECT pg_advisory_unlock($1)"), l.key).Scan(&ok); err != nil {
		return ls.sessionError("release advisory lock", err)
	}
	if !ok {
		ls.MarkLost()
		return fmt.Errorf("release advisory lock %d: it was not held: %w", l.key, lock.ErrLost)
	}
	return nil
}

// sessionError wraps err; when the lease's session has ended it marks the lease lost and says so.
func (ls *lease) sessionError(what string, err error) error {
	select {
	case <-ls.Lost():
		return fmt.Errorf("%s: %w (%w)", what, ErrSessionEnded, err)
	default:
	}
	if errors.Is(err, ErrSessionEnded) || ls.l.s.connectionGone(err) {
		ls.MarkLost()
		return fmt.Errorf("%s: %w (%w)", what, ErrSessionEnded, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
