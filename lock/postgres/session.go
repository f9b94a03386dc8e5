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
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
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

var (
	// ErrTransactionPooler is returned when the database URL leads to a pooler in transaction
	// (or statement) mode, such as PgBouncer with pool_mode=transaction. Session advisory locks
	// and LISTEN do not work through it.
	ErrTransactionPooler = errors.New("the database URL leads to a connection pooler in transaction mode " +
		"(such as PgBouncer with pool_mode=transaction): session advisory locks and LISTEN do not work through it; " +
		"point the database URL at PostgreSQL itself or at a session-mode pool")

	// ErrSessionEnded is returned when the connection that held the lock is gone. It wraps
	// lock.ErrLost.
	ErrSessionEnded = fmt.Errorf("the session holding the lock ended: %w", lock.ErrLost)
)

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

// sqlalchemyScheme matches the scheme of a SQLAlchemy URL for PostgreSQL: postgresql+DRIVER
// (psycopg2, psycopg, asyncpg, pg8000…).
var sqlalchemyScheme = regexp.MustCompile(`^(postgres(?:ql)?)\+([A-Za-z0-9_]+)://`)

// Canonical turns a SQLAlchemy URL for PostgreSQL (postgresql+psycopg2://…, the form Open WebUI
// and most Python apps keep in DATABASE_URL) into the plain postgresql:// URL that names the same
// database; asyncpg's ssl= parameter becomes sslmode=. Any other dsn is returned as it is.
func Canonical(dsn string) string {
	m := sqlalchemyScheme.FindStringSubmatch(dsn)
	if m == nil {
		return dsn
	}
	rest := dsn[len(m[0]):]
	if m[2] == "asyncpg" {
		if base, query, ok := strings.Cut(rest, "?"); ok {
			if q, err := url.ParseQuery(query); err == nil && q.Has("ssl") && !q.Has("sslmode") {
				mode := q.Get("ssl")
				switch strings.ToLower(mode) {
				case "true":
					mode = "require"
				case "false":
					mode = "disable"
				}
				q.Del("ssl")
				q.Set("sslmode", mode)
				rest = base + "?" + q.Encode()
			}
		}
	}
	return "postgresql://" + rest
}

// parseURL parses dsn and applies what every schemagate connection carries: the replica's
// application_name, the connect timeout, and a dialer with keepalives.
func parseURL(dsn string, cfg Config) (*pgx.ConnConfig, error) {
	dsn = Canonical(dsn)
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && scheme != "postgres" && scheme != "postgresql" {
		return nil, fmt.Errorf("database URL is not valid: scheme %q is not postgres:// or postgresql://", scheme)
	}
	pgcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, parseError(err, dsn)
	}
	pgcfg.RuntimeParams["application_name"] = ApplicationName(cfg.ReplicaID)
	if pgcfg.ConnectTimeout == 0 {
		pgcfg.ConnectTimeout = cfg.ConnectTimeout
	}
	pgcfg.DialFunc = dialer(cfg)
	return pgcfg, nil
}

// Pool is a small connection pool for an election that keeps no state in a session (Raft): it
// works through a transaction-mode pooler, sets no session parameters (through such a pooler
// they would leak to other clients), and closes idle connections after a second, or at once
// by ReleaseIdle, so that a waiting replica holds none.
type Pool struct {
	DB       *sql.DB
	Target   string
	Database string
	// Statements records what completes on the pool's connections.
	Statements *StatementLog
}

// OpenPool parses dsn and prepares the pool; it does no I/O.
func OpenPool(dsn string, cfg Config) (*Pool, error) {
	pgcfg, err := parseURL(dsn, cfg)
	if err != nil {
		return nil, err
	}
	// The simple protocol: no prepared statement that a transaction pooler could lose between
	// two statements.
	pgcfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	statements := &StatementLog{}
	pgcfg.Tracer = statements
	db := sql.OpenDB(stdlib.GetConnector(*pgcfg))
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(poolIdleConns)
	db.SetConnMaxIdleTime(time.Second)
	return &Pool{DB: db, Target: describeTarget(pgcfg), Database: pgcfg.Database, Statements: statements}, nil
}

// poolIdleConns is how many idle connections a Pool keeps (for at most a second).
const poolIdleConns = 2

// ReleaseIdle closes the pool's idle connections now, rather than up to two seconds later
// (database/sql looks for expired ones once a second). Connections in use are not touched.
func (p *Pool) ReleaseIdle() {
	p.DB.SetMaxIdleConns(0)
	p.DB.SetMaxIdleConns(poolIdleConns)
}

// parseError turns pgx's parse error into one line that names the problem but never repeats
// the connection string, which may hold a password.
func parseError(err error, dsn string) error {
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return errors.New("database URL is not valid")
	}
	// pgx formats "cannot parse `<dsn, password redacted>`: <reason>[ (<cause>)]". Keep the
	// reason, and the cause when it cannot be quoting the string (net/url's errors do: take
	// their inner reason).
	full := pce.Error()
	reason := full
	if i := strings.LastIndex(full, "`: "); i >= 0 {
		reason = full[i+3:]
	}
	if cause := pce.Unwrap(); cause != nil {
		reason = strings.TrimSuffix(reason, " ("+cause.Error()+")")
		var ue *url.Error
		if errors.As(cause, &ue) {
			cause = ue.Err
		}
		if c := cause.Error(); !strings.Contains(c, dsn) && !strings.Contains(dsn, c) && !strings.Contains(c, "@") {
			reason += ": " + c
		}
	}
	return fmt.Errorf("database URL is not valid: %s", reason)
}

// describeTarget names where the session connects, for logs and errors: "db.example:5432/app
// as app_user". It never includes the password.
func describeTarget(c *pgx.ConnConfig) string {
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "socket " + host
	}
	return fmt.Sprintf("%s/%s as %s", net.JoinHostPort(host, strconv.Itoa(int(c.Port))), c.Database, c.User)
}

// ApplicationName is the application_name a replica's session carries, so that the lock holder
// is visible in pg_stat_activity: "schemagate/<replica>".
func ApplicationName(replica string) string { return tagName(replica, "") }

// maxApplicationName is the longest application_name PostgreSQL keeps (NAMEDATALEN - 1).
const maxApplicationName = 63

// tagName is "schemagate/<replica><suffix>" within maxApplicationName bytes. A replica id too
// long for it is cut, and its last 9 bytes become "~" and 8 hex digits of its hash: two long
// ids never share a name, and a suffix is never lost.
func tagName(replica, suffix string) string {
	const prefix = "schemagate/"
	name := prefix + replica + suffix
	if len(name) <= maxApplicationName {
		return name
	}
	sum := sha256.Sum256([]byte(replica))
	keep := maxApplicationName - len(prefix) - len(suffix) - 9
	return prefix + replica[:keep] + "~" + hex.EncodeToString(sum[:4]) + suffix
}

// replicaFromApplicationName recovers the replica id from a session's application_name, or ""
// when the session is not a schemagate one.
func replicaFromApplicationName(name string) string {
	replica, ok := strings.CutPrefix(name, "schemagate/")
	if !ok {
		return ""
	}
	return replica
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

// connector opens the session's connections, and refuses to while the lock is pinned to the
// connection that was lost.
type connector struct {
	inner driver.Connector
	s     *Session
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	c.s.mu.Lock()
	pinned, onLost := c.s.pinned, c.s.onLost
	c.s.mu.Unlock()
	if pinned {
		if onLost != nil {
			onLost()
		}
		c.s.endLostBackend()
		return nil, ErrSessionEnded
	}
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, &ConnectError{Target: c.s.target, Err: err}
	}
	return conn, nil
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

// ConnectError is a failed connection attempt. Its message names the target and the most
// telling cause in one line; Unwrap gives the full chain.
type ConnectError struct {
	Target string
	Err    error
}

func (e *ConnectError) Error() string { return "connect to " + e.Target + ": " + rootCause(e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// rootCause picks the part of a pgx connect error a person acts on: the server's message, or the
// network error.
func rootCause(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Error()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (c *connector) Driver() driver.Driver { return c.inner.Driver() }

// setUp runs on every new connection: refuse a transaction pooler, set the session parameters
// that bound failover.
func (s *Session) setUp(ctx context.Context, conn *pgx.Conn) (err error) {
	s.opened.Add(1)
	defer func() {
		if err != nil {
			// database/sql never sees this connection; close it here or it leaks.
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	major := serverMajor(conn.PgConn().ParameterStatus("server_version"))
	pid, err := s.configure(ctx, conn, major)
	if err != nil {
		return err
	}
	if err := s.checkPooler(ctx, conn, pid); err != nil {
		return err
	}
	s.backend.Store(pid)
	s.current.Store(conn.PgConn())
	s.log.Debug().Str("database", s.target).Int32("backend_pid", pid).Int("server_major", major).
		Msg("connected to PostgreSQL")
	return nil
}

// configure sets the failover-bounding parameters, starts LISTENing if asked to, and reads the
// backend pid, all in one round trip: a herd of replicas connects at once, and every round trip
// counts. The simple protocol is used, as through a transaction pooler a prepared statement may
// not survive to be executed, and the pooler check must get its answer. The values are integers
// from the Config and a channel name made from hex digits, inlined safely. A server that refuses
// a parameter (some managed services pin them) gets a warning naming it: failover then takes
// longer, but works.
func (s *Session) configure(ctx context.Context, conn *pgx.Conn, major int) (int32, error) {
	settings := s.cfg.settings(major)
	sets := make([]string, len(settings))
	for i, kv := range settings {
		sets[i] = fmt.Sprintf("set_config('%s', '%s', false)", kv[0], kv[1])
	}
	s.mu.Lock()
	listen := s.listen
	s.mu.Unlock()
	query := lock.Internal("SELECT pg_backend_pid()::text, concat_ws(',', " + strings.Join(sets, ", ") + ")")
	if listen != "" {
		query = "LISTEN " + listen + "; " + query
	}
	results, err := conn.PgConn().Exec(ctx, query).ReadAll()
	var pgErr *pgconn.PgError
	if err == nil {
		last := results[len(results)-1]
		pid, perr := strconv.ParseInt(string(last.Rows[0][0]), 10, 32)
		return int32(pid), perr
	}
	if !errors.As(err, &pgErr) {
		return 0, fmt.Errorf("set up the session: %w", err)
	}
	for _, kv := range settings {
		q := fmt.Sprintf("SELECT set_config('%s', '%s', false)", kv[0], kv[1])
		if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			s.log.Warn().Err(err).Str("parameter", kv[0]).Str("value", kv[1]).
				Msg("the server refused a session parameter; a vanished migrator may keep the lock longer")
		}
	}
	if listen != "" {
		if _, err := conn.Exec(ctx, "LISTEN "+listen, pgx.QueryExecModeSimpleProtocol); err != nil {
			return 0, fmt.Errorf("listen on %s: %w", listen, err)
		}
	}
	return backendPID(ctx, conn)
}

// serverMajor reads the major version from a server_version such as "15.4 (Debian 15.4-1)".
func serverMajor(version string) int {
	end := strings.IndexFunc(version, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(version)
	}
	n, _ := strconv.Atoi(version[:end])
	return n
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
