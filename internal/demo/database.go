package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/schemagate/schemagate/sqlite"
)

// database is where the replicas migrate: a SQLite file or a throwaway PostgreSQL database.
type database struct {
	// url is the replicas' --database-url.
	url string
	// label names it for people, without any secret.
	label string
	// sqlite says the replicas elect with the file lock beside the file.
	sqlite bool
	// name is the throwaway PostgreSQL database's name, or the SQLite file's path.
	name string
	// drop removes the database, if anything has to be done beyond removing the temporary
	// directory; nil when nothing has.
	drop func(context.Context) error
}

// newSQLite is a SQLite database file in dir, which does not exist yet.
func newSQLite(dir string) *database {
	path := filepath.Join(dir, "app.db")
	return &database{url: "sqlite:///" + path, label: "SQLite file " + path, sqlite: true, name: path}
}

// postgresURL parses rawURL as a PostgreSQL URL.
func postgresURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return nil, errors.New("must be a PostgreSQL URL, postgres://user@host:port/db")
	}
	return u, nil
}

// newPostgres creates a throwaway database on the server adminURL reaches. Its drop
// disconnects everyone from it and drops it; nothing else on the server is touched.
func newPostgres(ctx context.Context, adminURL string) (*database, error) {
	u, err := postgresURL(adminURL)
	if err != nil {
		return nil, err
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	defer admin.Close()
	name := "sgdemo_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s on %s: %w", name, u.Host, err)
	}
	u.Path = "/" + name
	return &database{
		url:   u.String(),
		label: fmt.Sprintf("PostgreSQL database %s on %s (created for the demo, dropped at the end)", name, u.Host),
		name:  name,
		drop:  func(ctx context.Context) error { return dropPostgres(ctx, adminURL, name) },
	}, nil
}

func dropPostgres(ctx context.Context, adminURL, name string) error {
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	// DROP DATABASE … WITH (FORCE) needs PostgreSQL 13; this works from 12 on.
	for try := 0; ; try++ {
		_, err = admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
		if err == nil {
			_, err = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
		}
		if err == nil || try == 4 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// open opens a connection pool for the demo's own reads.
func (d *database) open() (*sql.DB, error) {
	if d.sqlite {
		db, _, err := sqlite.Open(d.url)
		return db, err
	}
	return sql.Open("pgx", d.url)
}

// appliedLog returns, for each version in the migrations' applied_log, who applied it, once per
// application (the migration set's log has no unique key: a migration applied twice shows up
// twice). On SQLite the log does not know who applied it: the names are empty.
func (d *database) appliedLog(ctx context.Context) (map[int64][]string, error) {
	query := "SELECT version, replica FROM applied_log ORDER BY at"
	if d.sqlite {
		query = "SELECT version, '' FROM applied_log ORDER BY at"
	}
	log := map[int64][]string{}
	err := d.query(ctx, query, func(rows *sql.Rows) error {
		var v int64
		var who string
		if err := rows.Scan(&v, &who); err != nil {
			return err
		}
		log[v] = append(log[v], strings.TrimPrefix(who, "schemagate/"))
		return nil
	})
	return log, err
}

// journalRun is one migrator run in schemagate's journal.
type journalRun struct {
	Replica  string
	Outcome  string
	From, To int64
}

// runs reads the journal's migrator runs, oldest first.
func (d *database) runs(ctx context.Context) ([]journalRun, error) {
	var runs []journalRun
	err := d.query(ctx, "SELECT replica, outcome, from_version, to_version FROM schemagate_journal WHERE kind = 'run' ORDER BY id",
		func(rows *sql.Rows) error {
			var r journalRun
			if err := rows.Scan(&r.Replica, &r.Outcome, &r.From, &r.To); err != nil {
				return err
			}
			runs = append(runs, r)
			return nil
		})
	return runs, err
}

func (d *database) query(ctx context.Context, query string, scan func(*sql.Rows) error) error {
	db, err := d.open()
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
