package main

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/pressly/goose/v3/database"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/file"
	"github.com/schemagate/schemagate/lock/postgres"
	"github.com/schemagate/schemagate/sqlite"
)

// backend is the database a replica migrates and the election it takes part in.
type backend struct {
	db        *sql.DB
	dialect   database.Dialect
	target    string // the database, named without secrets
	namespace string
	locker    lock.Locker
	lockName  string // the lock, as status shows it
	retryable func(error) bool
	refused   func(error) bool
	close     func() error

	session  *postgres.Session // PostgreSQL only
	sqlPath  string            // SQLite only
	database string            // what the default lock namespace is named after
}

// openBackend opens (lazily: no I/O) the database the URL names. The election is chosen by
// elect, once the migration set is known.
func openBackend(s *gateSettings, log zerolog.Logger) (*backend, error) {
	if sqlite.IsURL(s.dsn) {
		db, path, err := sqlite.Open(s.dsn)
		if err != nil {
			return nil, err
		}
		return &backend{db: db, dialect: database.DialectSQLite3, target: "sqlite " + path, sqlPath: path,
			database: filepath.Base(path), retryable: sqlite.Retryable, refused: sqlite.Refused, close: db.Close}, nil
	}
	session, err := postgres.NewSession(s.dsn, s.postgres, log)
	if err != nil {
		return nil, err
	}
	return &backend{db: session.DB(), dialect: database.DialectPostgres, target: session.Target(), session: session,
		database: session.Database(), retryable: postgres.Retryable, refused: postgres.Refused, close: session.Close}, nil
}

// elect sets up the election chosen by --lock (default: postgres for PostgreSQL, file for SQLite).
func (b *backend) elect(s *gateSettings, fingerprint string) error {
	b.namespace = s.namespaceFor(b.database)
	kind := s.lock
	if kind == "" {
		kind = "postgres"
		if b.session == nil {
			kind = "file"
		}
	}
	switch kind {
	case "postgres":
		if b.session == nil {
			return errors.New("lock: postgres needs a PostgreSQL database; for SQLite use file or raft")
		}
		l := postgres.NewLocker(b.session, b.namespace)
		b.locker, b.lockName = l, fmt.Sprintf("postgres advisory lock %d (namespace %q)", l.Key(), b.namespace)
	case "file":
		path := s.lockFile
		if path == "" {
			if b.sqlPath == "" {
				return errors.New("lock-file: the file lock needs --lock-file with a PostgreSQL database")
			}
			path = file.DefaultPath(b.sqlPath)
		}
		b.locker, b.lockName = file.New(path, s.coordinator.ReplicaID), "file lock "+path
	default:
		return fmt.Errorf("lock: %q must be postgres, file or raft", kind)
	}
	return nil
}
