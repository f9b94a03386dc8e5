package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemagate/schemagate/lock"
)

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

func (c *connector) Driver() driver.Driver { return c.inner.Driver() }

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
