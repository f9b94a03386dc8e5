// Package goose applies pressly/goose SQL migrations from a directory.
//
// goose's own locking is not used: the coordinator holds the election and hands this engine a
// *sql.DB that only ever reaches the migrator's session. goose's version table and ordering
// rules are kept, so `goose status` and schemagate agree. Migrations are applied one at a time
// (Provider.ApplyVersion), so that the coordinator can journal and announce each, and a hook runs
// inside every migration transaction, where the lock is fenced.
package goose

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/tablename"
)

// DefaultTable is goose's default version table.
const DefaultTable = "goose_db_version"

// Options configure an Engine.
type Options struct {
	// FS holds the migration files, at its root.
	FS fs.FS
	// Table is the version table, optionally schema-qualified ("app.goose_db_version").
	Table string
	// Dialect is the goose dialect of the database.
	Dialect database.Dialect
	// TargetVersion is the version this replica needs; 0 means the highest it carries.
	TargetVersion int64
	// AllowOutOfOrder lets pending migrations older than the newest applied one be applied.
	AllowOutOfOrder bool
	// DDLLockTimeout, when positive, bounds how long a migration's statement waits for a table
	// lock (PostgreSQL's lock_timeout, set on the migrator's session for each migration): a
	// DDL statement queued behind a long transaction otherwise blocks every query on that
	// table while it waits. A transactional migration that times out is rolled back and
	// retried, up to DDLLockRetries times, with a growing pause; a non-transactional one fails.
	DDLLockTimeout time.Duration
	DDLLockRetries int
	// OnLockTimeout is told of each retry: the migration, the attempt that timed out (1-based),
	// the pause before the next, and the transactions most likely in the way.
	OnLockTimeout func(m engine.Migration, attempt int, pause time.Duration, blockers []Blocker)
	// Statements, when set, tells which statements completed on the database handle: a
	// non-transactional migration that fails or is stopped midway then says which of its
	// statements stay applied. Nil where the database cannot tell (SQLite).
	Statements StatementLog
}

// StatementLog tells which statements completed on a database handle (lock/postgres records
// them for its sessions and pools).
type StatementLog interface {
	// Mark returns a position to ask Since about.
	Mark() uint64
	// Since returns the statements that completed after mark, oldest first; complete is
	// false when it lost count.
	Since(mark uint64) (statements []string, complete bool)
	// FailedSince returns the last statement that failed after mark.
	FailedSince(mark uint64) (string, bool)
}

// Blocker is a transaction open for a while in the database: a likely reason a migration's
// statement could not get its lock.
type Blocker struct {
	PID         int           `json:"pid"`
	Application string        `json:"application_name"`
	State       string        `json:"state"`
	Query       string        `json:"query"`
	Open        time.Duration `json:"open"`
}

// InputError is a problem with the migration files or options; nothing was read from or
// written to the database.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErrorf(format string, args ...any) error {
	return &InputError{Err: fmt.Errorf(format, args...)}
}

// Engine applies goose migrations over one *sql.DB.
type Engine struct {
	db       *sql.DB
	opts     Options
	provider *goose.Provider
	store    *hookStore
	plan     engine.Plan
	// statements are the statements of each non-transactional migration.
	statements map[int64][]string
}

// New reads and checks the migrations and prepares the engine over db. It does no database I/O,
// so bad input is reported before anything is touched.
func New(db *sql.DB, opts Options) (*Engine, error) {
	if opts.Table == "" {
		opts.Table = DefaultTable
	}
	if err := tablename.Check(opts.Table); err != nil {
		return nil, inputErrorf("table: %w", err)
	}
	if opts.Dialect == "" {
		opts.Dialect = database.DialectPostgres
	}
	if opts.FS == nil {
		return nil, inputErrorf("no migrations directory")
	}
	if findings := Lint(opts.FS); len(findings) > 0 {
		return nil, inputErrorf("migration file %s", findings[0])
	}
	if err := checkFiles(opts.FS); err != nil {
		return nil, err
	}
	inner, err := database.NewStore(opts.Dialect, opts.Table)
	if err != nil {
		return nil, &InputError{Err: err}
	}
	e := &Engine{db: db, opts: opts, store: &hookStore{Store: inner}}
	e.provider, err = newProvider(db, goose.DialectCustom, opts, goose.WithStore(e.store))
	if err != nil {
		return nil, &InputError{Err: describeProviderError(err)}
	}
	if e.plan, e.statements, err = buildPlan(opts, e.provider.ListSources()); err != nil {
		return nil, err
	}
	return e, nil
}

func newProvider(db *sql.DB, d goose.Dialect, opts Options, extra ...goose.ProviderOption) (*goose.Provider, error) {
	popts := append([]goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithAllowOutofOrder(opts.AllowOutOfOrder),
	}, extra...)
	return goose.NewProvider(d, db, opts.FS, popts...)
}

// checkFiles rejects Go migration files, which only a program they are compiled into can run
// (Lint checks the .sql files).
func checkFiles(fsys fs.FS) error {
	goFiles, err := fs.Glob(fsys, "*.go")
	if err != nil {
		return &InputError{Err: err}
	}
	for _, f := range goFiles {
		if _, err := goose.NumericComponent(path.Base(f)); err != nil || strings.HasSuffix(f, "_test.go") {
			continue
		}
		return inputErrorf("migration file %s: Go migrations run only when compiled into a program; "+
			"schemagate applies .sql files", f)
	}
	return nil
}

// describeProviderError turns goose's construction errors into one line.
func describeProviderError(err error) error {
	if errors.Is(err, goose.ErrNoMigrations) {
		return errors.New("no migrations found: the directory holds no VERSION_description.sql files")
	}
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// buildPlan lists the migrations, learns from goose's own parser which run in a transaction, and
// fingerprints the set.
func buildPlan(opts Options, sources []*goose.Source) (engine.Plan, map[int64][]string, error) {
	modes, statements, err := transactionModes(opts)
	if err != nil {
		return engine.Plan{}, nil, err
	}
	h := sha256.New()
	var p engine.Plan
	for _, src := range sources {
		m := engine.Migration{Version: src.Version, Name: path.Base(src.Path), Transactional: modes[src.Version]}
		fmt.Fprintf(h, "%d\x00%s\x00", m.Version, m.Name)
		if src.Path != "" && opts.FS != nil {
			content, err := fs.ReadFile(opts.FS, src.Path)
			if err != nil {
				return engine.Plan{}, nil, &InputError{Err: err}
			}
			h.Write(content)
			sum := sha256.Sum256(content)
			m.Checksum = hex.EncodeToString(sum[:8])
		}
		p.All = append(p.All, m)
	}
	p.Target = opts.TargetVersion
	if p.Target == 0 {
		p.Target = p.All[len(p.All)-1].Version
	}
	if !slices.ContainsFunc(p.All, func(m engine.Migration) bool { return m.Version == p.Target }) {
		return engine.Plan{}, nil, inputErrorf("target-version: %d is not a migration in the directory (highest is %d)",
			p.Target, p.All[len(p.All)-1].Version)
	}
	for _, m := range p.All {
		if m.Version <= p.Target {
			p.Migrations = append(p.Migrations, m)
		}
	}
	p.Fingerprint = hex.EncodeToString(h.Sum(nil))[:16]
	return p, statements, nil
}

// Plan returns the replica's migrations and target.
func (e *Engine) Plan() engine.Plan { return e.plan }

// Table returns the version table.
func (e *Engine) Table() string { return e.opts.Table }

// Status reads the applied versions, without creating or locking anything.
func (e *Engine) Status(ctx context.Context) (engine.Status, error) {
	var answer string
	err := e.db.QueryRowContext(ctx, lock.Internal(e.StatusQuery())).Scan(&answer)
	if tablename.Missing(err) {
		return e.StatusFrom("", true)
	}
	if err != nil {
		return engine.Status{}, fmt.Errorf("read %s: %w", e.opts.Table, err)
	}
	return e.StatusFrom(answer, false)
}

// StatusQuery lists the applied versions in one value, comma-separated: what Status reads,
// for a wait that reads it on the engine's behalf (engine.StatusQuerier).
func (e *Engine) StatusQuery() string {
	agg := "string_agg(version_id::text, ',')"
	if e.opts.Dialect != database.DialectPostgres {
		agg = "group_concat(version_id, ',')" // SQLite
	}
	return "SELECT coalesce(" + agg + ", '') FROM " + e.opts.Table + " WHERE version_id > 0"
}

// StatusFrom reads the answer to StatusQuery; missing says the version table does not exist.
func (e *Engine) StatusFrom(answer string, missing bool) (engine.Status, error) {
	if missing {
		return engine.Assess(e.plan, false, nil), nil
	}
	var applied []int64
	if answer != "" {
		for _, f := range strings.Split(answer, ",") {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return engine.Status{}, fmt.Errorf("read %s: version %q: %w", e.opts.Table, f, err)
			}
			applied = append(applied, v)
		}
	}
	st := engine.Assess(e.plan, true, applied)
	if e.opts.AllowOutOfOrder {
		st.OutOfOrder = nil // merely pending
	}
	return st, nil
}

// Migrate applies st's pending migrations in order, one at a time, calling h around each.
func (e *Engine) Migrate(ctx context.Context, st engine.Status, h engine.Hooks) error {
	if err := st.OrderError(); err != nil {
		return err
	}
	defer func() { e.store.inTx = nil }()
	for _, m := range st.Pending {
		if h.Before != nil {
			if err := h.Before(ctx, m); err != nil {
				return err
			}
		}
		e.store.inTx = func(ctx context.Context, tx lock.Execer) error {
			if h.InTx == nil {
				return nil
			}
			return h.InTx(ctx, tx, m)
		}
		start := time.Now()
		var mark uint64
		if e.opts.Statements != nil {
			mark = e.opts.Statements.Mark()
		}
		if err := e.apply(ctx, m, h); err != nil {
			me := &engine.MigrationError{Migration: m, Err: unwrapPartial(err)}
			if !m.Transactional {
				me.Progress = e.progress(m, mark)
			}
			e.failedStatement(me, mark)
			return me
		}
		if h.After != nil {
			if err := h.After(ctx, m, time.Since(start)); err != nil {
				return err
			}
		}
	}
	return nil
}

// progress says which of non-transactional migration m's statements completed since mark: the
// longest run of them, from the first, found in order among the statements that completed
// (other statements may come between: the engine's own, a lease's checks).
func (e *Engine) progress(m engine.Migration, mark uint64) *engine.Progress {
	all := e.statements[m.Version]
	p := &engine.Progress{Total: len(all)}
	if e.opts.Statements == nil {
		return p
	}
	done, complete := e.opts.Statements.Since(mark)
	if !complete {
		return p
	}
	p.Known = true
	next := 0
	for _, s := range done {
		if next < len(all) && s == all[next] {
			next++
		}
	}
	p.Completed = all[:next]
	return p
}

// failedStatement names, in me, the statement of me's migration that failed since mark, and its
// line in the file.
func (e *Engine) failedStatement(me *engine.MigrationError, mark uint64) {
	if e.opts.Statements == nil {
		return
	}
	stmt, ok := e.opts.Statements.FailedSince(mark)
	if !ok || lock.IsInternal(stmt) {
		return
	}
	me.Statement = strings.TrimSpace(stmt)
	body, err := fs.ReadFile(e.opts.FS, me.Migration.Name)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(me.Statement, "\n")
	if i := strings.Index(string(body), strings.TrimSpace(first)); i >= 0 {
		me.Line = strings.Count(string(body[:i]), "\n") + 1
	}
}

// apply applies m, under the DDL lock timeout when one is set, retrying a transactional
// migration whose statement timed out waiting for a lock.
func (e *Engine) apply(ctx context.Context, m engine.Migration, h engine.Hooks) error {
	if e.opts.DDLLockTimeout <= 0 || e.opts.Dialect != database.DialectPostgres {
		_, err := e.provider.ApplyVersion(ctx, m.Version, true)
		return err
	}
	timeout := fmt.Sprintf("SET lock_timeout = %d", e.opts.DDLLockTimeout.Milliseconds())
	defer e.db.ExecContext(context.WithoutCancel(ctx), "RESET lock_timeout")
	pause := time.Second
	for attempt := 1; ; attempt++ {
		if _, err := e.db.ExecContext(ctx, timeout); err != nil {
			return fmt.Errorf("set lock_timeout: %w", err)
		}
		_, err := e.provider.ApplyVersion(ctx, m.Version, true)
		if err == nil || !lockTimedOut(err) || !m.Transactional || attempt > e.opts.DDLLockRetries {
			if err != nil && lockTimedOut(err) {
				err = fmt.Errorf("%w (waited %s for a lock %d times; raise --ddl-lock-timeout or end the transaction in the way)",
					unwrapPartial(err), e.opts.DDLLockTimeout, attempt)
			}
			return err
		}
		if e.opts.OnLockTimeout != nil {
			e.opts.OnLockTimeout(m, attempt, pause, e.blockers(ctx))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.Stop:
			return errors.New("stopped while waiting to retry after a lock timeout")
		case <-h.Lost:
			return fmt.Errorf("stopped while waiting to retry after a lock timeout: %w", lock.ErrLost)
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// lockTimedOut reports PostgreSQL's lock_not_available (55P03): lock_timeout expired.
func lockTimedOut(err error) bool {
	var coded interface{ SQLState() string }
	return errors.As(err, &coded) && coded.SQLState() == "55P03"
}

// blockers lists the oldest open transactions of other sessions in the database.
func (e *Engine) blockers(ctx context.Context) []Blocker {
	rows, err := e.db.QueryContext(ctx, lock.Internal(`SELECT pid, application_name, state, left(query, 120),
			extract(epoch FROM now() - xact_start)
		FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
		ORDER BY xact_start LIMIT 3`))
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []Blocker
	for rows.Next() {
		var b Blocker
		var open float64
		if rows.Scan(&b.PID, &b.Application, &b.State, &b.Query, &open) == nil {
			b.Open = time.Duration(open * float64(time.Second)).Round(time.Second)
			out = append(out, b)
		}
	}
	return out
}

// unwrapPartial drops goose's "partial migration error (type:sql,version:3):" wrapper: the
// caller names the migration itself.
func unwrapPartial(err error) error {
	var pe *goose.PartialError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
