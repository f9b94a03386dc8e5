package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/schemagate/schemagate/lock"
)

// Key derives the advisory lock key from a namespace: the first 8 bytes of
// SHA-256("schemagate/v1:" + namespace), sign bit cleared so that pg_locks shows it as
// (classid, objid) = (key>>32, key&0xffffffff) without surprises. It never equals goose's own
// default key, so a goose CLI run by hand does not contend with schemagate by accident.
func Key(namespace string) int64 { return keyOf("schemagate/v1:" + namespace) }

// deputyKey derives the key of the deputy's lock (Locker.waitForRelease) from a namespace, the
// way Key does, from another prefix: it never equals any namespace's Key.
func deputyKey(namespace string) int64 { return keyOf("schemagate/v1/deputy:" + namespace) }

// keyOf is an advisory lock key made from name: the first 8 bytes of its SHA-256, sign bit
// cleared.
func keyOf(name string) int64 {
	sum := sha256.Sum256([]byte(name))
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

	// lastHolder is the holder the last Holder call found, if another session.
	lastHolder *lock.Holder
	// deputyKey is the advisory lock that makes one waiter the deputy (waitForRelease).
	deputyKey int64
	// heldThroughout: the last Wait ended with the holder still holding the lock.
	heldThroughout bool
	// warnedBlind: the deputy said once that it cannot judge or end the holder.
	warnedBlind bool
	// watchHolder is called with the holder as it stands during a wait, and the answer to
	// sample (WatchHolder).
	watchHolder func(*lock.Holder, string)
	sample      string
	// onRelease is the query a wait runs when the holder lets go (ReadOnRelease), and
	// released its answer from the last wait, until taken (ReleaseAnswer).
	onRelease string
	released  *releaseAnswer

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
		namespace: namespace, presence: DefaultPresenceTable, deputyKey: deputyKey(namespace)}
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
	ls := &lease{l: l, pid: pid, stop: make(chan struct{})}
	l.s.pin(ls.MarkLost)
	l.lease = ls
	go ls.renew()
	return ls, nil
}

// The lock queries read pg_lock_status() and pg_stat_get_activity(), the functions behind the
// pg_locks and pg_stat_activity views, and take this database's oid from this session's own
// activity row rather than from pg_database. Every waiting replica runs them on a backend that
// has just started, whose catalog caches are empty: through the views (their rewrite, the
// joins with pg_database and pg_authid) the holder query cost about 10 ms there, through the
// functions 5 (docs/performance.md).

// thisDatabase is this database's oid, as an expression.
const thisDatabase = `(SELECT me.datid FROM pg_stat_get_activity(pg_backend_pid()) me)`

// namespaceLock is true for a row l of pg_lock_status() that is the namespace's lock in this
// database, whose key halves are $1 and $2; the caller adds the mode and whether it is granted.
const namespaceLock = `l.locktype = 'advisory' AND l.database = ` + thisDatabase + `
   AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1`

// holderQuery finds the session holding the namespace's lock in this database, and what it
// does. (a.pid = l.pid drops a lock of a prepared transaction: its pid is null, for which
// pg_stat_get_activity lists every session.)
const holderQuery = `
SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''),
       a.backend_start, coalesce(a.state, ''), coalesce(left(a.query, 300), ''), a.query_start
  FROM pg_lock_status() l, pg_stat_get_activity(l.pid) a
 WHERE a.pid = l.pid AND l.granted AND l.mode = 'ExclusiveLock' AND ` + namespaceLock

// Holder describes the session that holds the lock, or returns nil when nobody does.
func (l *Locker) Holder(ctx context.Context) (*lock.Holder, error) {
	var h lock.Holder
	var sessionStart, queryStart sql.NullTime
	err := l.s.db.QueryRowContext(ctx, lock.Internal(holderQuery), l.key>>32, l.key&0xffffffff).Scan(
		&h.PID, &h.Name, &h.Address, &sessionStart, &h.State, &h.Query, &queryStart)
	if errors.Is(err, sql.ErrNoRows) {
		l.sawHolder, l.lastHolder = false, nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find lock holder: %w", err)
	}
	l.sawHolder = h.PID != l.s.BackendPID()
	l.lastHolder = nil
	if l.sawHolder {
		l.lastHolder = &h
	}
	h.Replica = replicaFromApplicationName(h.Name)
	h.SessionStart, h.QueryStart = sessionStart.Time, queryStart.Time
	return &h, nil
}

// waitersQuery lists the sessions queued on the namespace's lock in this database: the
// replicas waiting for the migrator (each queues for the lock's shared mode while it waits).
const waitersQuery = `
SELECT coalesce(a.application_name, '')
  FROM pg_lock_status() l, pg_stat_get_activity(l.pid) a
 WHERE a.pid = l.pid AND NOT l.granted AND ` + namespaceLock + `
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
		FROM pg_lock_status() l WHERE l.pid = $3 AND l.granted AND l.mode = 'ExclusiveLock' AND `+namespaceLock),
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
// While another session holds the lock, Wait queues for the lock's shared mode, in one
// statement and one transaction however long d is: PostgreSQL grants it to every queued waiter
// the instant the holder releases the lock or its session ends, so a dead migrator is noticed
// at once, not at the next poll, and a waiting replica costs the database one transaction per
// Wait. One of the waiters, the deputy, also watches the holder's session meanwhile and ends it
// when it sat idle with the lock held for longer than the lease (see waitForRelease). While
// nobody holds the lock, Wait listens for an announcement instead, unless the caller last saw
// a holder: then the holder is already gone and Wait returns at once.
//
// HeldThroughout tells afterwards whether anything changed.
func (l *Locker) Wait(ctx context.Context, d time.Duration) error {
	l.heldThroughout, l.released = false, nil
	if d <= 0 {
		return nil
	}
	l.reshow(ctx)
	if l.sawHolder {
		// Granted at once if the holder let go since Holder looked.
		return l.waitForRelease(ctx, d, l.lastHolder)
	}
	var free bool
	err := l.s.db.QueryRowContext(ctx,
		lock.Internal("SELECT pg_try_advisory_xact_lock_shared($1)"),
		l.key).Scan(&free)
	if err != nil {
		return fmt.Errorf("probe the lock: %w", err)
	}
	if !free {
		return l.waitForRelease(ctx, d, nil)
	}
	return l.WaitForAnnouncement(ctx, d)
}

// HeldThroughout reports whether the last Wait ended with the holder it waited for still
// holding the lock, and no announcement heard, and returns that holder as it stood at the end
// of the wait (what its session does now): nothing the caller reads changed, except by the
// holder's work in its own transactions, which it would have announced.
func (l *Locker) HeldThroughout() (*lock.Holder, bool) {
	if !l.heldThroughout || l.lastHolder == nil {
		return nil, false
	}
	return l.lastHolder, true
}

// waitReportPrefix starts the notice in which a wait for the holder reports how it ended, and
// holderReportPrefix the ones in which it reports, on the way, what the holder does.
const (
	waitReportPrefix   = "schemagate wait: "
	holderReportPrefix = "schemagate holder: "
)

// Steps of a wait: the deputy looks at the holder's session every deputyStep (under the
// server's default deadlock_timeout of 1 s, past which a lock wait runs a deadlock check). The
// other waiters end a step (and try to become the deputy) only to report the holder, after
// waiterStep, then at doubling intervals up to a minute, or every waiterStep when there is no
// holder to report: each step that times out costs the server about a millisecond, and one
// longer than deadlock_timeout a deadlock check, so that a waiter costs a few of them a
// minute. A deputy that dies is replaced at the next step of another waiter.
const (
	deputyStep = 900 * time.Millisecond
	waiterStep = 5 * time.Second
)

// waiterConnectionCheck is client_connection_check_interval while a replica waits: a waiter
// killed in its wait leaves its backend, and that backend's connection slot, for at most this
// long.
const waiterConnectionCheck = 10 * time.Second

// WatchHolder sets a function that Wait calls, while it waits for a holder, with the holder as
// it stands (what its session does now): waiterStep into the wait, then at doubling intervals
// up to a minute. It runs on the goroutine that called Wait. The coordinator logs its progress
// lines from it.
func (l *Locker) WatchHolder(sample string, f func(*lock.Holder, string)) {
	l.watchHolder, l.sample = f, sample
}

// ReadOnRelease sets the query a wait for the holder runs the moment the holder lets go, in
// the same statement: a fresh snapshot, taken after the lock was granted, so after the
// holder's last commit. The coordinator passes the engine's status query: a waiter woken by
// the migrator's release knows the schema without a round trip of its own.
func (l *Locker) ReadOnRelease(query string) { l.onRelease = query }

// ReleaseAnswer returns, once, what the ReadOnRelease query answered at the end of the last
// Wait, when that Wait ended with the holder's release.
func (l *Locker) ReleaseAnswer() (answer string, missing, ok bool) {
	r := l.released
	l.released = nil
	if r == nil {
		return "", false, false
	}
	return r.answer, r.missing, true
}

// releaseAnswer is the answer to the ReadOnRelease query.
type releaseAnswer struct {
	answer  string
	missing bool
}

// waitForReleaseStatement queues for the shared lock in steps until the holder lets go or the
// deadline passes, all in one transaction. Each step is a subtransaction with a lock_timeout
// of its own: PostgreSQL may grant a queued lock in the instant its lock_timeout fires, and the
// subtransaction's end lets go of such a lock at once. Between steps each waiter tries to become
// the deputy (a transaction-level advisory lock on the deputy key, so the role ends with the
// wait). The deputy reads the holder's session from pg_stat_activity (after clearing the
// transaction's snapshot of it) and, when the session has sat idle for longer than the lease
// while still holding the lock, ends it and the sessions of its migrate command. The last line
// is a notice that says how the wait ended. Placeholders: 1 deadline ms, 2 deputy key, 3 and 4
// the deputy's and the others' steps in ms, 5 lock key, 6 holder pid (0: unknown, no deputy
// duty), 7 lease ms, 8 and 9 the lock key as pg_locks shows it, 10 the final notice's prefix,
// 11 how often the holder's state is reported meanwhile (ms), 12 that notice's prefix, 13 the
// caller's sample query, run at each report ("" for none), 14 client_connection_check_interval
// while waiting (ms), 15 the query run once the holder let go ("" for none; its answer, or
// that its table is missing, goes into the final notice). The notices are waitReports in JSON;
// the ones on the way reach the client as they are raised.
const waitForReleaseStatement = `DO $wait$
DECLARE
  deadline timestamptz := clock_timestamp() + interval '1 millisecond' * %[1]d;
  deputy boolean := false;
  released boolean := false;
  st text;
  idle interval;
  app text;
  ended boolean;
  ended_ms bigint;
  commands int;
  blind boolean := false;
  forbidden boolean := false;
  qstart timestamptz;
  q text;
  next_report timestamptz := clock_timestamp() + interval '1 millisecond' * %[11]d;
  report_every interval := interval '1 millisecond' * %[11]d;
  answer text;
  status text;
  status_missing boolean := false;
BEGIN
  PERFORM set_config('client_min_messages', 'notice', true);
  -- A waiter's session checks that its client is still there every %[14]d ms, not every
  -- second: every check is a timer signal and a wake-up, the most a waiting backend spends.
  BEGIN
    PERFORM set_config('client_connection_check_interval', '%[14]d', true);
  EXCEPTION WHEN undefined_object THEN
    NULL; -- before PostgreSQL 14
  END;
  LOOP
    IF NOT deputy AND %[6]d <> 0 THEN
      deputy := pg_try_advisory_xact_lock(%[2]d);
    END IF;
    BEGIN
      -- The deputy steps every %[3]d ms; the others until the next report, or %[4]d ms when
      -- they have no holder to report on.
      PERFORM set_config('lock_timeout', greatest(1, least(
        CASE WHEN deputy THEN %[3]d WHEN %[6]d <> 0 THEN ceil(extract(epoch FROM next_report - clock_timestamp()) * 1000) ELSE %[4]d END,
        ceil(extract(epoch FROM deadline - clock_timestamp()) * 1000)))::bigint::text, true);
      PERFORM pg_advisory_xact_lock_shared(%[5]d);
      released := true;
    EXCEPTION WHEN lock_not_available THEN
      NULL;
    END;
    EXIT WHEN released;
    IF deputy THEN
      PERFORM pg_stat_clear_snapshot();
      SELECT a.state, clock_timestamp() - a.state_change, a.application_name INTO st, idle, app
        FROM pg_stat_get_activity(%[6]d) a;
      IF FOUND AND st IS NULL THEN
        blind := true;
      ELSIF st LIKE 'idle%%' AND idle > interval '1 millisecond' * %[7]d THEN
        BEGIN
          SELECT coalesce(bool_or(pg_terminate_backend(l.pid)), false) INTO ended FROM pg_locks l
           WHERE l.pid = %[6]d AND l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND l.classid = %[8]d::bigint::oid AND l.objid = %[9]d::bigint::oid AND l.objsubid = 1;
          IF ended THEN
            -- FILTER, not WHERE: the planner may not end a session the WHERE would drop.
            SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid)) INTO commands FROM pg_stat_activity a
             WHERE a.datname = current_database() AND a.application_name = app || '/command'
               AND a.pid <> pg_backend_pid();
            ended_ms := (extract(epoch FROM idle) * 1000)::bigint;
          END IF;
        EXCEPTION WHEN insufficient_privilege THEN
          forbidden := true;
        END;
      END IF;
    END IF;
    EXIT WHEN clock_timestamp() >= deadline;
    IF clock_timestamp() >= next_report AND %[6]d <> 0 THEN
      -- Where the holder stands, for the waiter's progress line: a notice reaches the client at
      -- once, in the middle of the statement.
      report_every := least(report_every * 2, interval '1 minute');
      next_report := clock_timestamp() + report_every;
      PERFORM pg_stat_clear_snapshot();
      SELECT a.state, a.query_start, left(a.query, 300) INTO st, qstart, q FROM pg_stat_get_activity(%[6]d) a;
      answer := NULL;
      IF length($sample$%[13]s$sample$) > 0 THEN
        BEGIN
          EXECUTE $sample$%[13]s$sample$ INTO answer;
        EXCEPTION WHEN OTHERS THEN
          answer := NULL; -- the report goes without it
        END;
      END IF;
      RAISE NOTICE '%[12]s%%', json_build_object('state', st, 'query', q, 'query_start', qstart, 'sample', answer)::text;
    END IF;
  END LOOP;
  IF released AND length($status$%[15]s$status$) > 0
     AND current_setting('transaction_isolation') = 'read committed' THEN
    -- What the caller reads next, now: the holder's commits are all visible to this fresh
    -- snapshot, since it let go of the lock only after them. (Under a stricter isolation, set
    -- for the role or the database, the snapshot is the transaction's first: the caller reads
    -- for itself.)
    BEGIN
      EXECUTE $status$%[15]s$status$ INTO status;
    EXCEPTION WHEN undefined_table THEN
      status_missing := true;
    WHEN OTHERS THEN
      status := NULL; -- the caller reads for itself
    END;
  END IF;
  IF NOT released AND %[6]d <> 0 THEN
    PERFORM pg_stat_clear_snapshot();
    SELECT a.state, a.query_start, left(a.query, 300) INTO st, qstart, q FROM pg_stat_get_activity(%[6]d) a;
  END IF;
  RAISE NOTICE '%[10]s%%', json_build_object('released', released, 'deputy', deputy, 'ended_idle_ms', ended_ms,
    'command_sessions', commands, 'blind', blind, 'forbidden', forbidden,
    'state', st, 'query', q, 'query_start', qstart, 'status', status, 'status_missing', status_missing)::text;
END $wait$`

// dollarQuotable returns query when it can stand between $tag$ quotes in the wait's statement,
// or "" (nothing to run) when it holds the quote itself.
func dollarQuotable(query, tag string) string {
	if strings.Contains(query, "$"+tag+"$") {
		return ""
	}
	return query
}

// waitForRelease waits, in one statement, until the holder lets go of the lock or d passes;
// with h known, the replica may be the deputy that ends h's session when it sits idle past the
// lease. The session's own settings are untouched afterwards (every set_config is local).
func (l *Locker) waitForRelease(ctx context.Context, d time.Duration, h *lock.Holder) error {
	pid := 0
	if h != nil {
		pid = h.PID
	}
	sample := ""
	if h != nil && l.watchHolder != nil {
		sample = dollarQuotable(l.sample, "sample")
	}
	onRelease := dollarQuotable(l.onRelease, "status")
	stmt := lock.Internal(fmt.Sprintf(waitForReleaseStatement, max(d.Milliseconds(), 1), l.deputyKey,
		deputyStep.Milliseconds(), waiterStep.Milliseconds(), l.key, pid, l.s.cfg.Lease.Milliseconds(),
		l.key>>32, l.key&0xffffffff, waitReportPrefix, waiterStep.Milliseconds(), holderReportPrefix,
		sample, waiterConnectionCheck.Milliseconds(), onRelease))
	l.s.waitReport.Store(nil)
	if h != nil && l.watchHolder != nil {
		l.s.setHolderReport(func(report string) {
			var r waitReport
			if json.Unmarshal([]byte(report), &r) == nil && r.State != nil {
				r.applyTo(h)
				answer := ""
				if r.Sample != nil {
					answer = *r.Sample
				}
				l.watchHolder(h, answer)
			}
		})
		defer l.s.setHolderReport(nil)
	}
	begin := time.Now()
	conn, err := l.s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var heard int
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		if _, err := pc.Exec(ctx, stmt); err != nil {
			return err
		}
		heard = drainBuffered(pc)
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for the lock holder: %w", err)
	}
	var report waitReport
	if r := l.s.waitReport.Load(); r != nil {
		if err := json.Unmarshal([]byte(*r), &report); err != nil {
			l.s.log.Debug().Err(err).Msg("unreadable report of a wait for the lock holder")
		}
	}
	l.s.log.Debug().Str("for", d.String()).Str("took", time.Since(begin).String()).Bool("released", report.Released).
		Bool("deputy", report.Deputy).Int("announcements", heard).Msg("waited for the lock holder")
	if report.Released && onRelease != "" && (report.Status != nil || report.StatusMissing) {
		l.released = &releaseAnswer{missing: report.StatusMissing}
		if report.Status != nil {
			l.released.answer = *report.Status
		}
	}
	if h == nil {
		return nil
	}
	l.deputyReport(report, h)
	if !report.Released && heard == 0 && report.State != nil {
		report.applyTo(h)
		l.heldThroughout = true
	}
	return nil
}

// applyTo sets what h's session does now from the report.
func (r waitReport) applyTo(h *lock.Holder) {
	h.State, h.Query, h.QueryStart = *r.State, "", time.Time{}
	if r.Query != nil {
		h.Query = *r.Query
	}
	if r.QueryStart != nil {
		h.QueryStart = *r.QueryStart
	}
}

// waitReport is what a wait for the holder says about itself (waitForReleaseStatement). The
// holder's session fields are null when the session is gone or not visible to this role.
type waitReport struct {
	Released        bool       `json:"released"`
	Sample          *string    `json:"sample"`
	Deputy          bool       `json:"deputy"`
	EndedIdleMS     *int64     `json:"ended_idle_ms"`
	CommandSessions *int64     `json:"command_sessions"`
	Blind           bool       `json:"blind"`
	Forbidden       bool       `json:"forbidden"`
	State           *string    `json:"state"`
	Query           *string    `json:"query"`
	QueryStart      *time.Time `json:"query_start"`
	Status          *string    `json:"status"`
	StatusMissing   bool       `json:"status_missing"`
}

// deputyReport logs what the deputy did to the holder h, or could not do.
func (l *Locker) deputyReport(r waitReport, h *lock.Holder) {
	switch {
	case r.EndedIdleMS != nil:
		idle := time.Duration(*r.EndedIdleMS) * time.Millisecond
		ev := l.s.log.Warn().Str("holder", h.Replica).Int("holder_pid", h.PID).Int64("idle_ms", *r.EndedIdleMS).
			Str("migrator_lease", l.s.cfg.Lease.String())
		msg := fmt.Sprintf("ended the migrator %s: its session sat idle for %s with the lock held, longer than the "+
			"migrator lease (%s), so its process is frozen or cut off; the lock is free for the next migrator",
			h, idle.Round(100*time.Millisecond), l.s.cfg.Lease)
		if r.CommandSessions != nil && *r.CommandSessions > 0 {
			ev = ev.Int64("command_sessions", *r.CommandSessions)
			msg += fmt.Sprintf("; also ended %d session(s) of its migrate command", *r.CommandSessions)
		}
		ev.Msg(msg)
	case r.Blind && !l.warnedBlind:
		l.warnedBlind = true
		l.s.log.Warn().Str("holder", h.Replica).Int("holder_pid", h.PID).
			Msg("cannot see the migrator's session state (it runs as another role; grant pg_read_all_stats to this one): " +
				"a frozen migrator is ended only by the server's keepalives")
	case r.Forbidden && !l.warnedBlind:
		l.warnedBlind = true
		l.s.log.Warn().Str("holder", h.Replica).Int("holder_pid", h.PID).
			Msg("the migrator's session sat idle past the migrator lease, but this role may not end it " +
				"(use the same role for every replica, or grant pg_signal_backend)")
	}
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
	// stop ends renew.
	stop     chan struct{}
	stopOnce sync.Once
}

// renew keeps the session from sitting idle while the lease is held: whenever no statement has
// run on it for RenewEvery, it runs a trivial one. The waiters' deputy ends a holder whose
// session sits idle for longer than the lease (Locker.waitForRelease); a session in a
// statement is active, and one that runs this at least every second is never idle for long,
// so only a migrator that cannot run (frozen, cut off, starved for longer than the lease less
// a second) is ended. It returns when the lease is released or lost.
func (ls *lease) renew() {
	s := ls.l.s
	tick := time.NewTicker(RenewEvery / 4)
	defer tick.Stop()
	for {
		select {
		case <-ls.stop:
			return
		case <-ls.Lost():
			return
		case <-tick.C:
		}
		since, quiet := s.statements.quietSince()
		if !quiet || time.Since(since) < RenewEvery || s.db.Stats().InUse > 0 {
			continue // the session is in use: it is not idle
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Lease)
		_, err := s.db.ExecContext(ctx, lock.Internal("SELECT 'schemagate: the migrator is alive'"))
		cancel()
		if err != nil {
			// The lease's other checks (the fence, Check, the connection) act on a broken session.
			s.log.Debug().Err(err).Msg("could not renew the migrator lease")
		}
	}
}

// stopRenewing ends renew.
func (ls *lease) stopRenewing() { ls.stopOnce.Do(func() { close(ls.stop) }) }

var _ lock.Lease = (*lease)(nil)

// fenceQuery is true when the backend running it holds the namespace's lock.
const fenceQuery = `
SELECT EXISTS (
  SELECT 1 FROM pg_lock_status() l
   WHERE l.pid = pg_backend_pid() AND l.granted AND l.mode = 'ExclusiveLock' AND ` + namespaceLock + `)`

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
	ls.stopRenewing()
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
