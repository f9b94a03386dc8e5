package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/lock/postgres"
)

// taggedSession opens a session on dbURL that carries the migrate-command tag of replica, as a
// migrate command's psql would (PGAPPNAME).
func taggedSession(t *testing.T, dbURL, replica string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = postgres.CommandTag(replica)
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestEndCommandSessionsStaysInItsDatabase: a migrator ends the tagged sessions of earlier
// migrators' commands in its own database only. Another app on the same server may have a
// replica of the same name (StatefulSets named alike in staging and production), whose command
// must not be cut off.
func TestEndCommandSessionsStaysInItsDatabase(t *testing.T) {
	mine, other := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	stale := taggedSession(t, mine, "web-0")
	neighbour := taggedSession(t, other, "web-0")
	db, err := sql.Open("pgx", mine)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ended, err := postgres.EndCommandSessions(t.Context(), db, []string{"web-0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ended) != 1 || ended[0].PID != int(stale.PgConn().PID()) {
		t.Errorf("ended %+v; want only the session in this database (pid %d)", ended, stale.PgConn().PID())
	}
	if err := neighbour.Ping(t.Context()); err != nil {
		t.Errorf("the same replica name's command session in another database was ended: %v", err)
	}
}
