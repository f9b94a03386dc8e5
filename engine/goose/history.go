package goose

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pressly/goose/v3/database"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/tablename"
)

var _ engine.Historian = (*Engine)(nil)

// Applied lists what goose's version table records as applied, oldest first, with when.
func (e *Engine) Applied(ctx context.Context) ([]engine.Applied, error) {
	return applied(ctx, e.db, e.opts.Table)
}

func applied(ctx context.Context, db *sql.DB, table string) ([]engine.Applied, error) {
	rows, err := db.QueryContext(ctx, lock.Internal("SELECT version_id, tstamp FROM "+table+
		" WHERE version_id > 0 AND is_applied ORDER BY id"))
	if err != nil {
		if tablename.Missing(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var out []engine.Applied
	seen := map[int64]int{}
	for rows.Next() {
		var a engine.Applied
		var at sql.NullTime
		if err := rows.Scan(&a.Version, &at); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		a.At = at.Time
		if i, ok := seen[a.Version]; ok {
			out[i] = a // applied again after a rollback: the last time counts
			continue
		}
		seen[a.Version] = len(out)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Reader reads goose's version table without the migration files: what `status` can tell
// without --dir. It implements the engine a coordinator needs, but migrates nothing.
type Reader struct {
	db    *sql.DB
	table string
}

var _ engine.Historian = (*Reader)(nil)

// NewReader returns a Reader of table (default goose_db_version) on db.
func NewReader(db *sql.DB, table string) (*Reader, error) {
	if table == "" {
		table = DefaultTable
	}
	if err := tablename.Check(table); err != nil {
		return nil, &InputError{Err: fmt.Errorf("table: %w", err)}
	}
	return &Reader{db: db, table: table}, nil
}

// Plan is empty: the files are not known.
func (r *Reader) Plan() engine.Plan { return engine.Plan{} }

// Status reads the highest applied version.
func (r *Reader) Status(ctx context.Context) (engine.Status, error) {
	as, err := applied(ctx, r.db, r.table)
	if err != nil {
		return engine.Status{}, err
	}
	st := engine.Status{NoFiles: true, TableExists: as != nil}
	for _, a := range as {
		st.Current = max(st.Current, a.Version)
	}
	if as == nil {
		// An empty table and a missing one read alike here; tell them apart.
		var n int
		st.TableExists = r.db.QueryRowContext(ctx, lock.Internal("SELECT count(*) FROM "+r.table)).Scan(&n) == nil
	}
	return st, nil
}

// Applied lists what the version table records as applied.
func (r *Reader) Applied(ctx context.Context) ([]engine.Applied, error) {
	return applied(ctx, r.db, r.table)
}

// Migrate refuses: without the files there is nothing to apply.
func (r *Reader) Migrate(context.Context, engine.Status, engine.Hooks) error {
	return errors.New("no migration files: give --dir")
}

// MarkApplied records version as applied in goose's version table, without running its
// migration (a person applied it by hand: schemagate resolve). inTx runs first on the same
// transaction, where the caller fences the lock and journals the decision.
func (e *Engine) MarkApplied(ctx context.Context, version int64, inTx func(ctx context.Context, tx lock.Execer) error) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := inTx(ctx, tx); err != nil {
		return err
	}
	if err := e.store.Store.Insert(ctx, tx, database.InsertRequest{Version: version}); err != nil {
		return fmt.Errorf("record version %d in %s: %w", version, e.opts.Table, err)
	}
	return tx.Commit()
}
