// Package journal records what migrators did, in a table beside the schema: one row per
// migrator run (who, when, from which version to which, how it ended, the error) and one per
// non-transactional migration started, so that one interrupted midway is known to the next
// migrator. Waiting replicas read it to report a failure instead of waiting silently, and
// `schemagate status` shows its tail.
//
// Only the migrator writes, while it holds the lock; everyone else only reads, and a journal
// that does not exist yet reads as empty.
package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/tablename"
)

// DefaultTable is the journal's default table name.
const DefaultTable = "schemagate_journal"

// Kind says what a journal row is about.
type Kind string

const (
	// KindRun is one migrator run: election won to lock released.
	KindRun Kind = "run"
	// KindMigration is one non-transactional migration, written before it starts.
	KindMigration Kind = "migration"
	// KindApplied is one migration applied, written with it (in its transaction, where it has
	// one): when it started and ended, by whom, in which run, and its file's checksum (kept in
	// the fingerprint column).
	KindApplied Kind = "applied"
	// KindResolution is a person's decision on an interrupted migration (schemagate resolve):
	// marked applied, or allowed to run once more; the reason is in the error column.
	KindResolution Kind = "resolution"
	// KindAbort is a person stopping the running migrator (schemagate abort).
	KindAbort Kind = "abort"
	// KindAdmin is a command a person ran while holding the election (schemagate run).
	KindAdmin Kind = "admin"
)

// Outcome is how a run or migration ended, or that it has not.
type Outcome string

const (
	Running   Outcome = "running"
	Succeeded Outcome = "succeeded"
	// Failed: a migration returned an error, or the run refused to start (an interrupted
	// migration, migrations out of order). Replicas waiting on the run give up.
	Failed Outcome = "failed"
	// Cancelled: the migrator was asked to stop (SIGTERM, deadline) and rolled back.
	Cancelled Outcome = "cancelled"
	// Abandoned: the migrator vanished; the next migrator found its run still "running".
	Abandoned Outcome = "abandoned"
	// Lost: the migrator lost the election while its work ran (its session ended, leadership
	// moved, or it could not tell in time) and said so itself.
	Lost Outcome = "lost"
	// Interrupted: a non-transactional migration whose migrator vanished midway.
	Interrupted Outcome = "interrupted"
	// Rerun: an interrupted migration that a later migrator was told to run again.
	Rerun Outcome = "rerun"
	// Resolved: an interrupted migration a person finished by hand and marked applied.
	Resolved Outcome = "resolved"
)

// Entry is one journal row.
type Entry struct {
	ID          int64  `json:"id"`
	Kind        Kind   `json:"kind"`
	RunID       int64  `json:"run_id,omitempty"`
	Replica     string `json:"replica"`
	Fingerprint string `json:"migration_set"`
	FromVersion int64  `json:"from_version"`
	ToVersion   int64  `json:"to_version"`
	Version     int64  `json:"version,omitempty"`
	Name        string `json:"migration,omitempty"`
	// CurrentSince is when the run started the migration it names (runs only).
	CurrentSince *time.Time `json:"migration_since,omitempty"`
	Outcome      Outcome    `json:"outcome"`
	Error        string     `json:"error,omitempty"`
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
}

// Dialect is the SQL dialect of the journal's database, named as goose names them.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite3"
)

// Journal reads and writes one namespace's rows of the journal table.
type Journal struct {
	db        *sql.DB
	table     string
	namespace string
	dialect   Dialect
	// fence, when set, runs inside the transaction of every write, before it.
	fence func(ctx context.Context, tx lock.Execer) error
}

// Fenced returns the journal with its writes fenced: each runs in a transaction that first
// calls fence (a lease's Fence), so that a migrator that lost the election without knowing
// (a deposed Raft leader that still reaches the database) writes nothing, as it commits no
// migration.
func (j *Journal) Fenced(fence func(ctx context.Context, tx lock.Execer) error) *Journal {
	fenced := *j
	fenced.fence = fence
	return &fenced
}

// exec runs one writing statement, fenced when the journal is.
func (j *Journal) exec(ctx context.Context, query string, args ...any) error {
	return j.write(ctx, func(db lock.Execer) error {
		_, err := db.ExecContext(ctx, query, args...)
		return err
	})
}

// write runs w, in a fenced transaction when the journal is fenced.
func (j *Journal) write(ctx context.Context, w func(db lock.Execer) error) error {
	if j.fence == nil {
		return w(j.db)
	}
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := j.fence(ctx, tx); err != nil {
		return err
	}
	if err := w(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// ValidateTable checks a journal table name, optionally schema-qualified.
func ValidateTable(name string) error {
	if err := tablename.Check(name); err != nil {
		return fmt.Errorf("journal-table: %w", err)
	}
	return nil
}

// New returns the journal of namespace in table on db, written in dialect. table must pass
// ValidateTable.
func New(db *sql.DB, dialect Dialect, table, namespace string) *Journal {
	return &Journal{db: db, table: table, namespace: namespace, dialect: dialect}
}

// Table returns the journal's table name.
func (j *Journal) Table() string { return j.table }

// q fills the table name and the dialect's spelling of the current time into query.
func (j *Journal) q(query string) string {
	// {now} is the transaction's time, {clock} the moment of the statement: inside a migration's
	// transaction they differ by as long as the migration took.
	now, clock := "now()", "clock_timestamp()"
	if j.dialect == SQLite {
		now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
		clock = now
	}
	return lock.Internal(strings.NewReplacer("{table}", j.table, "{now}", now, "{clock}", clock).Replace(query))
}

// Ensure creates the table if it does not exist. Only the migrator calls it. A table that
// exists is left alone, so a role with only SELECT, INSERT and UPDATE on a journal made for
// it (no CREATE on the schema) can migrate.
func (j *Journal) Ensure(ctx context.Context) error {
	if _, err := j.db.ExecContext(ctx, j.q(`SELECT 1 FROM {table} LIMIT 0`)); err == nil {
		return nil
	}
	create := j.q(`CREATE TABLE IF NOT EXISTS {table} (
  id           {id},
  namespace    text NOT NULL,
  kind         text NOT NULL,
  run_id       bigint,
  replica      text NOT NULL,
  fingerprint  text NOT NULL DEFAULT '',
  from_version bigint NOT NULL DEFAULT 0,
  to_version   bigint NOT NULL DEFAULT 0,
  version      bigint NOT NULL DEFAULT 0,
  name         text NOT NULL DEFAULT '',
  current_since {timestamp},
  outcome      text NOT NULL,
  error        text NOT NULL DEFAULT '',
  started_at   {timestamp} NOT NULL DEFAULT ({now}),
  finished_at  {timestamp}
)`)
	if j.dialect == SQLite {
		create = strings.NewReplacer("{id}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{timestamp}", "TIMESTAMP").Replace(create)
	} else {
		create = strings.NewReplacer("{id}", "bigserial PRIMARY KEY", "{timestamp}", "timestamptz").Replace(create)
	}
	var err error
	for range 3 {
		// Two namespaces sharing the table may create it at once; PostgreSQL then fails one
		// CREATE TABLE IF NOT EXISTS with a duplicate key, and trying again sees the table.
		if _, err = j.db.ExecContext(ctx, create); err == nil || !tablename.CreateRace(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create journal table %s: %w", j.table, err)
	}
	return nil
}

// StartRun records that replica became the migrator and will move the schema from one version
// to another. It returns the run's id.
func (j *Journal) StartRun(ctx context.Context, replica, fingerprint string, from, to int64) (int64, error) {
	var id int64
	err := j.write(ctx, func(db lock.Execer) error {
		return db.QueryRowContext(ctx, j.q(`INSERT INTO {table}
			(namespace, kind, replica, fingerprint, from_version, to_version, outcome)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`),
			j.namespace, KindRun, replica, fingerprint, from, to, Running).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("journal the start of the run: %w", err)
	}
	return id, nil
}

// SetCurrent records which migration the run is applying, for waiters and `status` to show.
func (j *Journal) SetCurrent(ctx context.Context, runID int64, m engine.Migration) error {
	err := j.exec(ctx, j.q(`UPDATE {table} SET version = $2, name = $3, current_since = {now} WHERE id = $1`),
		runID, m.Version, m.Name)
	if err != nil {
		return fmt.Errorf("journal the current migration: %w", err)
	}
	return nil
}

// FinishRun records how a run ended. failed names the migration that failed, if one did.
func (j *Journal) FinishRun(ctx context.Context, runID int64, outcome Outcome, failed *engine.Migration, cause string) error {
	return j.FinishRunAnd(ctx, runID, outcome, failed, cause, nil)
}

// FinishRunAnd is FinishRun, with also run after the update in the same transaction when the
// journal is fenced (the migrator announces the end of its run there: one commit, one round
// trip fewer on the way to the release that wakes its fleet). also may be nil.
func (j *Journal) FinishRunAnd(ctx context.Context, runID int64, outcome Outcome, failed *engine.Migration, cause string,
	also func(ctx context.Context, tx lock.Execer) error) error {
	query, args := `UPDATE {table} SET outcome = $2, error = $3, finished_at = {now} WHERE id = $1`,
		[]any{runID, outcome, cause}
	if failed != nil {
		query = `UPDATE {table} SET outcome = $2, error = $3, finished_at = {now}, version = $4, name = $5 WHERE id = $1`
		args = append(args, failed.Version, failed.Name)
	}
	err := j.write(ctx, func(db lock.Execer) error {
		if _, err := db.ExecContext(ctx, j.q(query), args...); err != nil {
			return err
		}
		if also != nil {
			return also(ctx, db)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal the end of the run: %w", err)
	}
	return nil
}

// FinishLost records, if nobody has closed the run yet, that its migrator lost the election
// while the run went on, and why. The migrator writes it after letting go of the lock, on a
// new connection, so a successor may have marked the run abandoned already; that stands.
func (j *Journal) FinishLost(ctx context.Context, runID int64, cause string) error {
	err := j.exec(ctx, j.q(`UPDATE {table} SET outcome = $2, error = $3, finished_at = {now}
		WHERE id = $1 AND outcome = 'running'`), runID, Lost, cause)
	if err != nil {
		return fmt.Errorf("journal the lost run: %w", err)
	}
	return nil
}

// RecordApplied records, on tx (the migration's own transaction, where it has one), that
// replica applied m in run runID, having started it at since.
func (j *Journal) RecordApplied(ctx context.Context, tx lock.Execer, runID int64, replica string, m engine.Migration,
	since time.Time) error {
	_, err := tx.ExecContext(ctx, j.q(`INSERT INTO {table}
		(namespace, kind, run_id, replica, fingerprint, version, name, outcome, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, {clock})`),
		j.namespace, KindApplied, runID, replica, m.Checksum, m.Version, m.Name, Succeeded, j.timestamp(since))
	if err != nil {
		return fmt.Errorf("journal %s as applied: %w", m.Name, err)
	}
	return nil
}

// timestamp is t as the dialect's timestamp column takes it.
func (j *Journal) timestamp(t time.Time) any {
	if j.dialect == SQLite {
		return t.UTC().Format("2006-01-02 15:04:05.000")
	}
	return t
}

// Record writes a row of a person's act (a resolution, an abort, an admin command): kind,
// who, the migration or command it concerns, how it ended, and the reason or error. It returns
// the row's id.
func (j *Journal) Record(ctx context.Context, kind Kind, by string, m engine.Migration, outcome Outcome,
	detail string) (int64, error) {
	var id int64
	err := j.write(ctx, func(db lock.Execer) error {
		return db.QueryRowContext(ctx, j.q(`INSERT INTO {table}
			(namespace, kind, replica, version, name, outcome, error, finished_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, {clock}) RETURNING id`),
			j.namespace, kind, by, m.Version, m.Name, outcome, detail).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("journal the %s: %w", kind, err)
	}
	return id, nil
}

// SetOutcome changes how row id ended (a resolution of an interrupted migration), on tx when
// given (a transaction the change must commit with).
func (j *Journal) SetOutcome(ctx context.Context, tx lock.Execer, id int64, outcome Outcome) error {
	query := j.q(`UPDATE {table} SET outcome = $2 WHERE id = $1`)
	var err error
	if tx != nil {
		_, err = tx.ExecContext(ctx, query, id, outcome)
	} else {
		err = j.exec(ctx, query, id, outcome)
	}
	if err != nil {
		return fmt.Errorf("journal the resolution: %w", err)
	}
	return nil
}

// Applied lists the namespace's applied-migration records, oldest first.
func (j *Journal) Applied(ctx context.Context) ([]Entry, error) {
	return j.list(ctx, `WHERE namespace = $1 AND kind = 'applied' ORDER BY id`, j.namespace)
}

// StartMigration records, before it runs, a non-transactional migration: if its migrator
// vanishes midway, the row stays "running" and the next migrator knows.
func (j *Journal) StartMigration(ctx context.Context, runID int64, replica string, m engine.Migration) (int64, error) {
	var id int64
	err := j.write(ctx, func(db lock.Execer) error {
		return db.QueryRowContext(ctx, j.q(`INSERT INTO {table}
			(namespace, kind, run_id, replica, version, name, outcome)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`),
			j.namespace, KindMigration, runID, replica, m.Version, m.Name, Running).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("journal the start of %s: %w", m.Name, err)
	}
	return id, nil
}

// FinishMigration records how a non-transactional migration ended.
func (j *Journal) FinishMigration(ctx context.Context, id int64, outcome Outcome, cause string) error {
	err := j.exec(ctx, j.q(`UPDATE {table} SET outcome = $2, error = $3, finished_at = {now} WHERE id = $1`),
		id, outcome, cause)
	if err != nil {
		return fmt.Errorf("journal the end of a migration: %w", err)
	}
	return nil
}

// Abandon marks the rows of migrators that vanished: runs still "running" become "abandoned"
// and their non-transactional migrations still "running" become "interrupted". Only a migrator
// holding the lock calls it, so no live run is among them. It returns how many of the
// abandoned runs were running a migrate command: such a command may still be running, until
// its migrator notices that it lost the election.
func (j *Journal) Abandon(ctx context.Context) (commands int, err error) {
	err = j.write(ctx, func(db lock.Execer) error {
		if err := db.QueryRowContext(ctx, j.q(`SELECT count(*) FROM {table}
			WHERE namespace = $1 AND outcome = 'running' AND kind = 'run' AND name = $2`),
			j.namespace, engine.CommandStep).Scan(&commands); err != nil {
			return err
		}
		_, err := db.ExecContext(ctx, j.q(`UPDATE {table}
			SET outcome = CASE kind WHEN 'run' THEN 'abandoned' ELSE 'interrupted' END, finished_at = {now},
			    error = CASE WHEN kind <> 'run' THEN 'the migrator vanished while this migration ran'
			                 WHEN name = $2 THEN 'the migrator vanished or lost the election while its migrate command ran; '
			                      || 'the command''s own transactions are not fenced: what it committed before it was '
			                      || 'stopped stays'
			                 ELSE 'the migrator vanished before finishing' END
			WHERE namespace = $1 AND outcome = 'running'`), j.namespace, engine.CommandStep)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("journal abandoned runs: %w", err)
	}
	return commands, nil
}

// Interrupted lists non-transactional migrations that were interrupted and not run again since.
func (j *Journal) Interrupted(ctx context.Context) ([]Entry, error) {
	return j.list(ctx, `WHERE namespace = $1 AND kind = 'migration' AND outcome = 'interrupted' ORDER BY id`, j.namespace)
}

// MarkRerun records that the interrupted migration of entry id is being run again.
func (j *Journal) MarkRerun(ctx context.Context, id int64) error {
	err := j.exec(ctx, j.q(`UPDATE {table} SET outcome = 'rerun' WHERE id = $1`), id)
	if err != nil {
		return fmt.Errorf("journal a rerun: %w", err)
	}
	return nil
}

// Migrators lists the replicas that have migrated the namespace, or tried to, other than
// except: those whose work may still be running somewhere.
func (j *Journal) Migrators(ctx context.Context, except string) ([]string, error) {
	rows, err := j.db.QueryContext(ctx, j.q(`SELECT DISTINCT replica FROM {table}
		WHERE namespace = $1 AND kind = 'run' AND replica <> $2 ORDER BY replica`), j.namespace, except)
	if err != nil {
		if tablename.Missing(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read journal %s: %w", j.table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("read journal %s: %w", j.table, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CurrentQuery is a read-only PostgreSQL query, run by a waiter inside its wait for the
// migrator (lock.QuietWaiter.WatchHolder), that returns run's current migration as JSON
// ({"name": …, "since": …}), for its progress lines. ParseCurrent reads its answer.
func (j *Journal) CurrentQuery(run int64) string {
	return j.q(fmt.Sprintf(`SELECT json_build_object('name', name, 'since', current_since)::text FROM {table} WHERE id = %d`, run))
}

// ParseCurrent reads an answer of CurrentQuery: the migration's name and since when it runs.
func ParseCurrent(answer string) (name string, since *time.Time, ok bool) {
	var c struct {
		Name  string     `json:"name"`
		Since *time.Time `json:"since"`
	}
	if err := json.Unmarshal([]byte(answer), &c); err != nil {
		return "", nil, false
	}
	return c.Name, c.Since, true
}

// LastRun returns the namespace's most recent run, or nil when there is none (or no journal).
func (j *Journal) LastRun(ctx context.Context) (*Entry, error) {
	es, err := j.list(ctx, `WHERE namespace = $1 AND kind = 'run' ORDER BY id DESC LIMIT 1`, j.namespace)
	if err != nil || len(es) == 0 {
		return nil, err
	}
	return &es[0], nil
}

// Tail returns the namespace's last n runs and non-transactional migrations (not the applied
// records, which Applied lists), newest first.
func (j *Journal) Tail(ctx context.Context, n int) ([]Entry, error) {
	return j.list(ctx, `WHERE namespace = $1 AND kind <> 'applied' ORDER BY id DESC LIMIT $2`, j.namespace, n)
}

func (j *Journal) list(ctx context.Context, where string, args ...any) ([]Entry, error) {
	rows, err := j.db.QueryContext(ctx, j.q(`SELECT id, kind, coalesce(run_id, 0), replica, fingerprint,
		from_version, to_version, version, name, current_since, outcome, error, started_at, finished_at FROM {table} `)+where, args...)
	if err != nil {
		if tablename.Missing(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read journal %s: %w", j.table, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var current, finished sql.NullTime
		if err := rows.Scan(&e.ID, &e.Kind, &e.RunID, &e.Replica, &e.Fingerprint, &e.FromVersion, &e.ToVersion,
			&e.Version, &e.Name, &current, &e.Outcome, &e.Error, &e.StartedAt, &finished); err != nil {
			return nil, fmt.Errorf("read journal %s: %w", j.table, err)
		}
		if current.Valid {
			e.CurrentSince = &current.Time
		}
		if finished.Valid {
			e.FinishedAt = &finished.Time
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read journal %s: %w", j.table, err)
	}
	return out, nil
}
