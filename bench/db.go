package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/schemagate/schemagate/internal/pgscratch"
)

// database is a scratch database for one measurement.
type database struct {
	url   string
	name  string
	admin string
	conn  *pgx.Conn
}

// newDatabase creates a scratch database; drop removes it.
func newDatabase(ctx context.Context, adminURL string) (*database, error) {
	name, err := pgscratch.CreateDatabase(ctx, adminURL, "sgbench_")
	if err != nil {
		return nil, err
	}
	d := &database{url: pgscratch.WithDatabase(adminURL, name), name: name, admin: adminURL}
	if d.conn, err = pgx.Connect(ctx, d.url); err != nil {
		d.drop(ctx)
		return nil, err
	}
	return d, nil
}

func (d *database) drop(ctx context.Context) {
	if d.conn != nil {
		d.conn.Close(ctx)
	}
	_ = pgscratch.DropDatabase(ctx, d.admin, d.name)
}

func (d *database) int(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := d.conn.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

func serverVersion(ctx context.Context, adminURL string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", adminURL, err)
	}
	defer conn.Close(ctx)
	var v, maxConns string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('max_connections')").Scan(&v, &maxConns); err != nil {
		return "", err
	}
	return "PostgreSQL " + v + " (max_connections " + maxConns + ")", nil
}
