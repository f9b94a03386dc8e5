package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pressly/goose/v3/database"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/file"
	"github.com/schemagate/schemagate/lock/postgres"
	"github.com/schemagate/schemagate/lock/raft"
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
	// releaseIdle closes idle connections at once (a Raft pool); nil when there is nothing to do.
	releaseIdle func()

	session  *postgres.Session // PostgreSQL only
	sqlPath  string            // SQLite only
	database string            // what the default lock namespace is named after
	// statements records the statements that complete on db (PostgreSQL only).
	statements *postgres.StatementLog
}

// openBackend opens (lazily: no I/O) the database the URL names. The election is chosen by
// elect, once the migration set is known.
func openBackend(s *gateSettings, log zerolog.Logger) (*backend, error) {
	if sqlite.IsURL(s.dsn) {
		db, loc, err := sqlite.Open(s.dsn)
		if err != nil {
			return nil, err
		}
		if loc.Note != "" {
			log.Info().Str("database", loc.Path).Msg(loc.Note)
		}
		return &backend{db: db, dialect: database.DialectSQLite3, target: "sqlite " + loc.Path, sqlPath: loc.Path,
			database: filepath.Base(loc.Path), retryable: sqlite.Retryable, refused: sqlite.Refused, close: db.Close}, nil
	}
	if s.lock == "raft" {
		// Raft keeps no state in a session: a pool that holds no connection while waiting, and
		// that works through a transaction-mode pooler.
		pool, err := postgres.OpenPool(s.dsn, s.postgres)
		if err != nil {
			return nil, err
		}
		return &backend{db: pool.DB, dialect: database.DialectPostgres, target: pool.Target, database: pool.Database,
			retryable: postgres.Retryable, refused: postgres.Refused, close: pool.DB.Close, releaseIdle: pool.ReleaseIdle,
			statements: pool.Statements}, nil
	}
	session, err := postgres.NewSession(s.dsn, s.postgres, log)
	if err != nil {
		return nil, err
	}
	return &backend{db: session.DB(), dialect: database.DialectPostgres, target: session.Target(), session: session,
		database: session.Database(), retryable: postgres.Retryable, refused: postgres.Refused, close: session.Close,
		statements: session.Statements()}, nil
}

// elect sets up the election chosen by --lock (default: postgres for PostgreSQL, file for SQLite).
// A Raft member starts listening here.
func (b *backend) elect(s *gateSettings, fingerprint string, log zerolog.Logger) error {
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
		l := postgres.NewLocker(b.session, b.namespace).WithPresenceTable(s.presenceTable)
		b.locker, b.lockName = l, fmt.Sprintf("postgres advisory lock %d (namespace %q)", l.Key(), b.namespace)
	case "file":
		if b.sqlPath == "" {
			return errors.New("lock: file needs a SQLite database: flock does not reach replicas on other hosts; " +
				"with PostgreSQL use --lock postgres (the default) or raft")
		}
		path := s.lockFile
		if path == "" {
			path = file.DefaultPath(b.sqlPath)
		}
		if err := file.Check(path); err != nil {
			return fmt.Errorf("lock-file: %w", err)
		}
		l := file.New(path, s.coordinator.ReplicaID).ForDatabase(b.sqlPath)
		if s.writes {
			// A replica on another host is refused before it reads anything, even when the
			// schema is ready: SQLite cannot take its writes (the app's) from several hosts.
			if err := l.Admit(); err != nil {
				return err
			}
		} else {
			l.Reader() // check and status only read; they may run anywhere the file is
		}
		b.locker, b.lockName = l, "file lock "+path
	case "raft":
		if s.raft.Listen == "" {
			// check and status only read the database; they take no part in the cluster.
			b.locker, b.lockName = readOnly{}, "raft (not joined: this command only reads)"
			return nil
		}
		cfg := s.raft
		cfg.Cluster = b.namespace + "/" + fingerprint
		cfg.ReleaseIdle = b.releaseIdle
		node, err := raft.Start(cfg, b.db, string(b.dialect), s.fenceTable, b.namespace, log)
		if err != nil {
			return err
		}
		b.locker = node
		b.lockName = fmt.Sprintf("raft member %s (listening on %s)", node.Self().ID, cfg.Listen)
		closeDB := b.close
		b.close = func() error { return errors.Join(node.Close(), closeDB()) }
	default:
		return fmt.Errorf("lock: %q must be postgres, file or raft", kind)
	}
	return nil
}

// settingsRefused makes an error by which PostgreSQL refused the database URL's settings invalid
// input (exit code 2): a URL that leads to a pooler in transaction mode, or that asks for a
// setting the server rejects. The URL must change; retrying does not help. lock/postgres says
// which errors these are. A migration run that failed stays a failed run (exit code 3).
func settingsRefused(err error) error {
	if err == nil || !errors.Is(err, postgres.ErrTransactionPooler) && !postgres.BadSetting(err) {
		return err
	}
	if _, failed := errors.AsType[*coordinator.MigrationFailedError](err); failed {
		return err
	}
	return &coordinator.InputError{Err: err}
}

// readOnly is the election of a command that only reads: it never holds, and sees no holder.
type readOnly struct{}

func (readOnly) TryAcquire(context.Context) (lock.Lease, error)           { return nil, lock.ErrHeld }
func (readOnly) Holder(context.Context) (*lock.Holder, error)             { return nil, nil }
func (readOnly) Wait(context.Context, time.Duration) error                { return nil }
func (readOnly) WaitForAnnouncement(context.Context, time.Duration) error { return nil }
func (readOnly) Close() error                                             { return nil }
