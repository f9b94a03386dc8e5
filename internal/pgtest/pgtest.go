// Package pgtest gives tests a PostgreSQL database of their own: a fresh database on the shared
// server (dropped when the test ends), or a throwaway cluster in a temporary directory for
// tests that restart or break the server.
//
// The shared server is found through SCHEMAGATE_TEST_DATABASE_URL, by default
// postgres://postgres@127.0.0.1:5432/postgres. A test that needs it is skipped when nothing
// answers there, or failed when CI is set (RequireServer).
package pgtest

import (
	"context"
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemagate/schemagate/internal/pgscratch"
)

// AdminURL is the URL of the shared server's maintenance database.
func AdminURL() string {
	if u := os.Getenv("SCHEMAGATE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database on the shared server and returns its URL. The
// database is dropped when the test ends, connections and all. When nothing answers at the
// shared server, the test is skipped (failed with CI set): see RequireServer.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, RequireServer(t))
}

func createDatabase(t testing.TB, adminURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := pgscratch.CreateDatabase(ctx, adminURL, "sgtest_")
	if err != nil {
		t.Fatalf("test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgscratch.DropDatabase(ctx, adminURL, name); err != nil {
			t.Log(err)
		}
	})
	return WithDatabase(adminURL, name)
}

// WithDatabase returns rawURL pointing at database name.
func WithDatabase(rawURL, name string) string { return pgscratch.WithDatabase(rawURL, name) }

// Connect opens a plain pgx connection for a test's own queries and closes it when the test ends.
// A connection to the shared server's maintenance database needs that server (RequireServer).
func Connect(t testing.TB, rawURL string) *pgx.Conn {
	t.Helper()
	if rawURL == AdminURL() {
		RequireServer(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", pgscratch.Redact(rawURL), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs a statement for a test and fails the test on error.
func Exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// QueryInt runs a query returning one integer.
func QueryInt(t testing.TB, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// WithPort returns rawURL pointing at 127.0.0.1:port instead of its own host and port: the same
// database through a proxy or a pooler listening there, or at a port where nothing listens. It
// works whatever port the shared server has (a throwaway one's, under make test).
func WithPort(t testing.TB, rawURL string, port int) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("cannot point %s at port %d: not a URL with a host", pgscratch.Redact(rawURL), port)
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return u.String()
}

// ServerAddress returns the host and port of the shared server, for a pooler or a proxy to
// forward to.
func ServerAddress(t testing.TB) (host string, port uint16) {
	t.Helper()
	cfg, err := pgconn.ParseConfig(RequireServer(t))
	if err != nil {
		t.Fatalf("parse SCHEMAGATE_TEST_DATABASE_URL: %v", err)
	}
	return cfg.Host, cfg.Port
}
