package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/tablename"
)

// DefaultPresenceTable is the presence table's default name.
const DefaultPresenceTable = "schemagate_presence"

// The presence table holds one row per replica and namespace, written on the replica's own
// session: the row names that session's backend (pid and start), so that it counts only while
// the session lives. A replica killed, cut off or stopped loses its session, and with it its
// entry, at once: Fleet joins the rows with pg_stat_activity and lists only those of live
// sessions. Dead rows are deleted when a replica next joins (its first Show on a session), in
// the same statement; a replica's later Shows on that session change its own row in place.
//
// pg_stat_activity hides backend_start of other roles' sessions from a role without
// pg_read_all_stats; a row of such a session is then matched by its pid alone.
const presenceColumns = `namespace, replica, host, migration_set, phase, since, fingerprints, backend_pid, backend_start`

// alive is true for a presence row (aliased p) whose session is alive.
// (pg_stat_get_activity, the function behind the view, for the session's pid alone: the view's
// rewrite and joins cost a replica's new backend several milliseconds.)
const alive = `EXISTS (SELECT 1 FROM pg_stat_get_activity(p.backend_pid) a WHERE a.pid = p.backend_pid
	AND (a.backend_start = p.backend_start OR a.backend_start IS NULL))`

// showQuery upserts this session's row and deletes the rows of dead sessions (of any namespace,
// but for this replica's own row, which the upsert replaces). Rows another Show is deleting are
// skipped, so that two replicas cleaning up at once never wait on each other.
const showQuery = `WITH me AS (
  SELECT pid, backend_start FROM pg_stat_get_activity(pg_backend_pid())
), gone AS (
  DELETE FROM {table} WHERE (namespace, replica) IN (
    SELECT p.namespace, p.replica FROM {table} p
     WHERE NOT (p.namespace = $1 AND p.replica = $2) AND NOT ` + alive + `
       FOR UPDATE SKIP LOCKED)
)
INSERT INTO {table} (` + presenceColumns + `)
SELECT $1, $2, $3, $4, $5, $6, $7, me.pid, me.backend_start FROM me
ON CONFLICT (namespace, replica) DO UPDATE SET host = EXCLUDED.host, migration_set = EXCLUDED.migration_set,
  phase = EXCLUDED.phase, since = EXCLUDED.since, fingerprints = EXCLUDED.fingerprints,
  backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start
RETURNING backend_pid`

// updateQuery changes this session's own row in place, when the session showed it: one row,
// found by its key, without reading pg_stat_activity or cleaning up. It changes nothing when
// the row is no longer this session's (another replica with the same id replaced it).
const updateQuery = `UPDATE {table} SET host = $3, migration_set = $4, phase = $5, since = $6, fingerprints = $7
 WHERE namespace = $1 AND replica = $2 AND backend_pid = pg_backend_pid()`

// fleetQuery lists the rows of live sessions in a namespace.
const fleetQuery = `SELECT p.replica, p.host, p.migration_set, p.phase, p.since, p.fingerprints
  FROM {table} p WHERE p.namespace = $1 AND ` + alive + ` ORDER BY p.replica`

const createPresence = `CREATE TABLE IF NOT EXISTS {table} (
  namespace     text NOT NULL,
  replica       text NOT NULL,
  host          text NOT NULL DEFAULT '',
  migration_set text NOT NULL DEFAULT '',
  phase         text NOT NULL DEFAULT '',
  since         timestamptz NOT NULL DEFAULT now(),
  fingerprints  text NOT NULL DEFAULT '{}',
  backend_pid   integer NOT NULL,
  backend_start timestamptz,
  PRIMARY KEY (namespace, replica)
)`

var _ lock.Presence = (*Locker)(nil)

// WithPresenceTable names the table the replicas' presence entries are kept in (default
// DefaultPresenceTable), optionally schema-qualified. The name must pass tablename.Check: it is
// put into SQL as it is.
func (l *Locker) WithPresenceTable(table string) *Locker {
	l.presence = table
	return l
}

// q fills the presence table's name into query, and marks it as schemagate's own.
func (l *Locker) q(query string) string {
	return lock.Internal(strings.ReplaceAll(query, "{table}", l.presence))
}

// Show publishes this replica's entry on its session, replacing the one it showed before, and
// deletes the entries of sessions that ended (when it joins: later Shows on the same session
// change its row in place). It creates the table when it is missing. It is one statement (two
// when the table is created): no connection of its own, no periodic write.
// When the session later reconnects (a restarted server), the next Wait or
// WaitForAnnouncement shows the entry again on the new session.
func (l *Locker) Show(ctx context.Context, m lock.Member) error {
	fingerprints, err := json.Marshal(m.Fingerprints)
	if err != nil {
		return err
	}
	if m.Fingerprints == nil {
		fingerprints = []byte("{}")
	}
	if l.shownOnThisSession() && l.shown.Replica == m.Replica {
		// A phase change on the session that joined: the cheap statement, on the path of a
		// replica that just became ready while its fleet wakes with it.
		res, err := l.s.db.ExecContext(ctx, l.q(updateQuery), l.namespace, m.Replica, m.Host, m.MigrationSet,
			m.Phase, m.Since, string(fingerprints))
		if err != nil {
			return fmt.Errorf("show this replica in %s: %w", l.presence, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			l.shown = &m
			return nil
		}
	}
	show := func() (pid int32, err error) {
		err = l.s.db.QueryRowContext(ctx, l.q(showQuery), l.namespace, m.Replica, m.Host, m.MigrationSet, m.Phase,
			m.Since, string(fingerprints)).Scan(&pid)
		return pid, err
	}
	pid, err := show()
	if tablename.Missing(err) {
		if err = l.createPresence(ctx); err == nil {
			pid, err = show()
		}
	}
	if err != nil {
		return fmt.Errorf("show this replica in %s: %w", l.presence, err)
	}
	l.shown, l.shownOn = &m, pid
	return nil
}

// createPresence creates the presence table. Replicas starting together race to create it:
// PostgreSQL then fails some CREATE TABLE IF NOT EXISTS with a duplicate, and trying again sees
// the table.
func (l *Locker) createPresence(ctx context.Context) error {
	var err error
	for range 3 {
		if _, err = l.s.db.ExecContext(ctx, l.q(createPresence)); err == nil || !tablename.CreateRace(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", l.presence, err)
	}
	return nil
}

// Fleet lists the entries of the replicas of this namespace whose sessions are alive now. It
// only reads: a table that does not exist yet lists nobody.
func (l *Locker) Fleet(ctx context.Context) ([]lock.Member, error) {
	rows, err := l.s.db.QueryContext(ctx, l.q(fleetQuery), l.namespace)
	if tablename.Missing(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the fleet in %s: %w", l.presence, err)
	}
	defer rows.Close()
	var out []lock.Member
	for rows.Next() {
		var m lock.Member
		var fingerprints string
		if err := rows.Scan(&m.Replica, &m.Host, &m.MigrationSet, &m.Phase, &m.Since, &fingerprints); err != nil {
			return nil, fmt.Errorf("list the fleet in %s: %w", l.presence, err)
		}
		if err := json.Unmarshal([]byte(fingerprints), &m.Fingerprints); err != nil {
			return nil, fmt.Errorf("list the fleet in %s: replica %s's fingerprints: %w", l.presence, m.Replica, err)
		}
		if len(m.Fingerprints) == 0 {
			m.Fingerprints = nil
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the fleet in %s: %w", l.presence, err)
	}
	return out, nil
}

// reshow shows the last entry again when the session reconnected since: the entry names the
// ended session's backend, so it no longer counts. A failure is left to the next call: the
// statement that follows on the session reports what is wrong with it.
func (l *Locker) reshow(ctx context.Context) {
	if l.shown == nil || l.s.BackendPID() == 0 || l.shownOnThisSession() {
		return
	}
	if err := l.Show(ctx, *l.shown); err != nil {
		l.s.log.Debug().Err(err).Msg("could not show this replica to the fleet again after reconnecting")
	}
}

// shownOnThisSession reports whether the entry last shown names the session's backend as it is
// now: no reconnect since.
func (l *Locker) shownOnThisSession() bool {
	return l.shown != nil && l.shownOn != 0 && int(l.shownOn) == l.s.BackendPID()
}
