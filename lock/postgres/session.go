// Package postgres elects the migrator with a PostgreSQL session-level advisory lock.
//
// Each replica keeps exactly one connection, the Session. It tries the lock on it, listens for
// the migrator's announcements on it, reads the schema version on it, and, once it is the
// migrator, applies every migration on it. The lock and the work share fate: if the session ends,
// PostgreSQL releases the lock and nothing more can commit on that session. The Session's
// *sql.DB never replaces its connection while the lock is held; it fails instead.
//
// Inside every migration transaction the lease checks pg_locks that this very backend still
// holds the lock (the fence), so that even a connection swapped underneath cannot commit.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/lock"
)

// ErrSessionEnded is returned when the connection that held the lock is gone. It wraps
// lock.ErrLost.
var ErrSessionEnded = fmt.Errorf("the session holding the lock ended: %w", lock.ErrLost)

// Session is a replica's single connection to PostgreSQL, shared by the lock, the waits and
// the migrations. Its zero value is not usable; build one with NewSession.
type Session struct {
	cfg    Config
	pgcfg  *pgx.ConnConfig
	db     *sql.DB
	log    zerolog.Logger
	target string // host:port/database as a person would name it; never the password

	mu      sync.Mutex
	listen  string // channel every new connection LISTENs on, if any
	pinned  bool   // a lease holds the lock on the current connection
	onLost  func() // called once when the pinned connection is found gone
	opened  atomic.Int64
	backend atomic.Int32
	current atomic.Pointer[pgconn.PgConn] // the open connection, for cancel requests
	// endedLost: since the last pin, the lost connection's backend was asked to end.
	endedLost bool
	// statements records what completes on the session.
	statements *StatementLog
	proxyMsg   sync.Once
	// waitReport is what the last wait for the lock holder reported (Locker.waitForRelease), and
	// holderReport what receives its reports on the way.
	waitReport   atomic.Pointer[string]
	holderReport func(string)
}

// NewSession parses dsn (a postgres:// URL or key=value string) and prepares the session. It
// does no I/O: the connection opens on first use or on Connect. Errors never contain the
// password.
func NewSession(dsn string, cfg Config, log zerolog.Logger) (*Session, error) {
	pgcfg, err := parseURL(dsn, cfg)
	if err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg, pgcfg: pgcfg, log: log, target: describeTarget(pgcfg), statements: &StatementLog{}}
	pgcfg.Tracer = s.statements
	pgcfg.OnNotice = s.onNotice
	// One round trip per statement, no server-side statement cache that a migration changing
	// a table's shape could invalidate.
	pgcfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	pgcfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &cancelHandler{s: s, pc: pc}
	}

	inner := stdlib.GetConnector(*pgcfg,
		stdlib.OptionAfterConnect(s.setUp),
		// Every statement on a dead connection fails by itself; an extra ping per use only
		// adds a round trip.
		stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false }),
	)
	s.db = sql.OpenDB(&connector{inner: inner, s: s})
	s.db.SetMaxOpenConns(1)
	s.db.SetMaxIdleConns(1)
	s.db.SetConnMaxLifetime(0)
	s.db.SetConnMaxIdleTime(0)
	return s, nil
}

// onNotice keeps the report a wait for the lock holder sends as a notice. Other notices (a
// migration's "table does not exist, skipping") are not schemagate's to show.
func (s *Session) onNotice(_ *pgconn.PgConn, n *pgconn.Notice) {
	if report, ok := strings.CutPrefix(n.Message, waitReportPrefix); ok {
		s.waitReport.Store(&report)
	}
	if report, ok := strings.CutPrefix(n.Message, holderReportPrefix); ok {
		s.mu.Lock()
		f := s.holderReport
		s.mu.Unlock()
		if f != nil {
			f(report)
		}
	}
}

// setHolderReport sets what receives a wait's reports on the holder (nil: nobody).
func (s *Session) setHolderReport(f func(string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holderReport = f
}

// DB returns the session as a *sql.DB that never holds more than one connection. While a lease
// holds the lock, it refuses to open a replacement connection.
func (s *Session) DB() *sql.DB { return s.db }

// Statements is the log of the statements that completed on the session.
func (s *Session) Statements() *StatementLog { return s.statements }

// Target names the database the session connects to, without the password.
func (s *Session) Target() string { return s.target }

// Database is the name of the database the session connects to.
func (s *Session) Database() string { return s.pgcfg.Database }

// ConnectionsOpened counts the physical connections this session has opened so far.
func (s *Session) ConnectionsOpened() int64 { return s.opened.Load() }

// BackendPID is the server process id of the current connection, or 0 before the first.
func (s *Session) BackendPID() int { return int(s.backend.Load()) }

// interrupt asks the server to cancel the statement running on the session, if any, the way
// pg_cancel_backend does: the statement fails with query_canceled, its transaction rolls back,
// and the connection, with the lock it holds, stays usable.
func (s *Session) interrupt(ctx context.Context) error {
	pc := s.current.Load()
	if pc == nil {
		return nil
	}
	if err := pc.CancelRequest(ctx); err != nil {
		return fmt.Errorf("cancel the running statement: %w", err)
	}
	return nil
}

// sever closes the session's connection at the socket, without a word to the server: a
// statement stuck on it fails at once, the server ends the backend (and its lock) as soon as
// it notices, and the pinned session refuses to reconnect.
func (s *Session) sever() {
	if pc := s.current.Load(); pc != nil {
		pc.Conn().Close()
	}
}

// Connect opens the connection now, if it is not open, and checks it with one round trip.
func (s *Session) Connect(ctx context.Context) error {
	return s.db.PingContext(ctx)
}

// Close closes the connection. A lock held on it is released by the server.
func (s *Session) Close() error { return s.db.Close() }

// Listen makes every connection of the session LISTEN on channel from its first round trip on.
// Call it before the session is first used.
func (s *Session) Listen(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listen = channel
}

// pin marks the current connection as the lock holder: from now on a replacement connection
// is refused and onLost is called instead.
func (s *Session) pin(onLost func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pinned, s.onLost = true, onLost
	s.endedLost = false
}

// unpin ends pin: the session may reconnect again.
func (s *Session) unpin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pinned, s.onLost = false, nil
}

func (s *Session) isPinned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pinned
}

// endLostBackend ends, on the server, the backend of the pinned connection this replica found
// gone, once per pin. The client gives up a connection it hears nothing from, but the server
// may keep the backend, and with it the lock and the open transaction, until its own keepalives
// or writes time out; a cancel request would even make it write and wait out
// tcp_user_timeout. Terminating it through a new connection releases the lock at once.
func (s *Session) endLostBackend() {
	s.mu.Lock()
	if s.endedLost {
		s.mu.Unlock()
		return
	}
	s.endedLost = true
	s.mu.Unlock()
	pid := s.backend.Load()
	if pid == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectTimeout+5*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, s.pgcfg.Copy())
		if err != nil {
			s.log.Debug().Err(err).Int32("backend_pid", pid).Msg("could not reach the server to end the lost session")
			return
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var ended bool
		err = conn.QueryRow(ctx, lock.Internal(`SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
			WHERE pid = $1 AND application_name = $2`), pid, s.pgcfg.RuntimeParams["application_name"]).Scan(&ended)
		if err == nil && ended {
			s.log.Info().Int32("backend_pid", pid).
				Msg("ended this replica's lost session on the server, so that its lock and transaction go now")
		}
	}()
}

// cancelHandler decides what a cancelled context does to a running statement. While the lock
// is held it asks the server to cancel the statement and keeps the connection, so that the
// transaction rolls back and the migrator can still record what happened and release the lock
// cleanly. Otherwise it interrupts the socket read at once; a waiter can reconnect freely, and a
// timed-out LISTEN wait leaves the connection intact.
type cancelHandler struct {
	s      *Session
	pc     *pgconn.PgConn
	active ctxwatch.Handler
}

func (h *cancelHandler) HandleCancel(ctx context.Context) {
	if h.s.isPinned() {
		h.active = &pgconn.CancelRequestContextWatcherHandler{Conn: h.pc, DeadlineDelay: 5 * time.Second}
	} else {
		h.active = &pgconn.DeadlineContextWatcherHandler{Conn: h.pc.Conn()}
	}
	h.active.HandleCancel(ctx)
}

func (h *cancelHandler) HandleUnwatchAfterCancel() {
	if h.active != nil {
		h.active.HandleUnwatchAfterCancel()
	}
}
