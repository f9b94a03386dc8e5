package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Retryable reports whether err means the database cannot be used right now but may be soon:
// the server is down, starting, shutting down, out of connection slots, or the connection broke.
// A replica that is not the migrator backs off and tries again until its deadline. Errors that
// waiting does not fix (a wrong password, a missing database, a transaction pooler, a lost
// lock) are not retryable.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrTransactionPooler) || errors.Is(err, ErrSessionEnded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return retryableCode(pgErr.Code)
	}
	return connectionError(err)
}

// Refused reports whether err is the server refusing this client for good: wrong credentials, a
// role or database that does not exist, a client not allowed by pg_hba.conf.
func Refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "28000", "28P01", "3D000":
		return true
	}
	return false
}

func retryableCode(code string) bool {
	switch code {
	case "53300", // too_many_connections
		"53000", // insufficient_resources
		"57P01", // admin_shutdown (also pg_terminate_backend)
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now (starting up, recovery)
		"57P05": // idle_session_timeout
		return true
	}
	return len(code) == 5 && code[:2] == "08" // connection_exception
}

// connectionError reports whether err says the connection itself failed (rather than a
// statement on a healthy connection).
func connectionError(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) {
		return true
	}
	// pgx's error for a statement on a connection it has closed (after a failed write or
	// keepalive) loses its type when a migration tool formats it into its own message.
	return strings.Contains(err.Error(), "conn closed")
}

// connectionGone reports whether err means the session's connection is dead. Server errors that
// end the session (pg_terminate_backend, shutdown) count.
func (s *Session) connectionGone(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return retryableCode(pgErr.Code) && pgErr.Code != "53300" && pgErr.Code != "53000"
	}
	return connectionError(err)
}

// BadSetting reports whether err is the server rejecting a setting the database URL asked for
// (an unknown parameter such as a misspelt sslmode, or a value it does not accept): the URL
// must change.
func BadSetting(err error) bool {
	var ce *ConnectError
	var pgErr *pgconn.PgError
	if !errors.As(err, &ce) || !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42602", // invalid_name: "invalid configuration parameter name"
		"42704", // undefined_object: "unrecognized configuration parameter"
		"22023": // invalid_parameter_value
		return true
	}
	return false
}
