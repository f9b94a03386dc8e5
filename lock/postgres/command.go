package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/schemagate/schemagate/lock"
)

// commandSuffix ends the application_name of a migrate command's sessions.
const commandSuffix = "/command"

// CommandTag is the application_name that the sessions of a replica's migrate command carry:
// the migrator puts it into the command's environment as PGAPPNAME, which libpq (psql,
// psycopg2, SQLAlchemy, Rails), pgx and lib/pq read. It names the replica, so that a later
// migrator can find and end the sessions of an earlier one's command.
func CommandTag(replica string) string { return tagName(replica, commandSuffix) }

// EndedSession is a migrate command's session that EndCommandSessions ended.
type EndedSession struct {
	PID         int    `json:"pid"`
	Application string `json:"application_name"`
	State       string `json:"state"`
}

// Queryer runs a query: *sql.DB, *sql.Conn and *sql.Tx are.
type Queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// EndCommandSessions ends, on the server, every session in this database tagged (CommandTag)
// with the command of one of replicas: migrators before this one, whose commands may still run,
// frozen or cut off with their migrator, and must not commit beside this migrator's. Their open
// transactions roll back, and the locks they held are released. It returns the sessions it
// ended. Sessions in other databases are left alone: another app on the same server may have
// replicas of the same names (StatefulSets named alike in staging and production).
func EndCommandSessions(ctx context.Context, db Queryer, replicas []string) ([]EndedSession, error) {
	if len(replicas) == 0 {
		return nil, nil
	}
	tags := make([]string, len(replicas))
	for i, r := range replicas {
		tags[i] = CommandTag(r)
	}
	// OFFSET 0 keeps the filter apart from the termination: the planner may not evaluate
	// pg_terminate_backend on a row the filter would have dropped.
	rows, err := db.QueryContext(ctx, lock.Internal(`SELECT pid, application_name, state FROM (
		SELECT pid, application_name, coalesce(state, '') AS state FROM pg_stat_activity
		 WHERE application_name = ANY($1) AND datname = current_database() AND pid <> pg_backend_pid()
		OFFSET 0) tagged
		WHERE pg_terminate_backend(pid)`), tags)
	if err != nil {
		return nil, fmt.Errorf("end the sessions of earlier migrators' commands: %w", err)
	}
	defer rows.Close()
	var out []EndedSession
	for rows.Next() {
		var s EndedSession
		if err := rows.Scan(&s.PID, &s.Application, &s.State); err != nil {
			return nil, fmt.Errorf("end the sessions of earlier migrators' commands: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("end the sessions of earlier migrators' commands: %w", err)
	}
	return out, nil
}
