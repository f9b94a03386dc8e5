package raft

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/tablename"
)

// DefaultFenceTable holds the fencing epochs.
const DefaultFenceTable = "schemagate_fence"

// fence is the database's fencing token: an epoch per namespace, bumped by each new leader and
// checked under a row lock inside every migration transaction. Raft guarantees one leader per
// term, not one process that believes it leads; a deposed or paused leader that still reaches
// the database finds a newer epoch there and cannot commit. The token comes from the database,
// so it also orders leaders of different Raft clusters (a new rollout's cluster starts at term 1).
type fence struct {
	db        *sql.DB
	postgres  bool
	table     string
	namespace string
}

func newFence(db *sql.DB, dialect, table, namespace string) (*fence, error) {
	if err := tablename.Check(table); err != nil {
		return nil, fmt.Errorf("fence-table: %w", err)
	}
	return &fence{db: db, postgres: dialect == "postgres", table: table, namespace: namespace}, nil
}

// bump takes the next epoch for holder, creating the table and row if needed.
func (f *fence) bump(ctx context.Context, holder string) (int64, error) {
	ts := "timestamptz NOT NULL DEFAULT now()"
	if !f.postgres {
		ts = "TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))"
	}
	create := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (namespace text PRIMARY KEY, epoch bigint NOT NULL,
		holder text NOT NULL, updated_at %s)`, f.table, ts)
	if _, err := f.db.ExecContext(ctx, lock.Internal(create)); err != nil && !f.exists(ctx) {
		return 0, fmt.Errorf("create fence table %s: %w", f.table, err)
	}
	var epoch int64
	err := f.db.QueryRowContext(ctx, lock.Internal(fmt.Sprintf(`INSERT INTO %[1]s (namespace, epoch, holder) VALUES ($1, 1, $2)
		ON CONFLICT (namespace) DO UPDATE SET epoch = %[1]s.epoch + 1, holder = excluded.holder
		RETURNING epoch`, f.table)), f.namespace, holder).Scan(&epoch)
	if err != nil {
		return 0, fmt.Errorf("take a fencing epoch: %w", err)
	}
	return epoch, nil
}

// exists reports whether the table exists (two first leaders may race to create it).
func (f *fence) exists(ctx context.Context) bool {
	var n int
	return f.db.QueryRowContext(ctx, lock.Internal("SELECT count(*) FROM "+f.table)).Scan(&n) == nil
}

// check fails unless epoch is still the newest, inside tx. On PostgreSQL the row lock makes a
// concurrent bump wait for this transaction; on SQLite the migration's writes already hold the
// database's write lock.
func (f *fence) check(ctx context.Context, tx lock.Execer, epoch int64) error {
	query := fmt.Sprintf("SELECT epoch FROM %s WHERE namespace = $1", f.table)
	if f.postgres {
		query += " FOR UPDATE"
	}
	var current int64
	err := tx.QueryRowContext(ctx, lock.Internal(query), f.namespace).Scan(&current)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("fence row for %q is missing: %w", f.namespace, lock.ErrLost)
	}
	if err != nil {
		return fmt.Errorf("check the fencing epoch: %w", err)
	}
	if current != epoch {
		return fmt.Errorf("fencing epoch is %d, this leader holds %d: a newer leader took over: %w", current, epoch, lock.ErrLost)
	}
	return nil
}
