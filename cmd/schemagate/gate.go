package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/pressly/goose/v3/database"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/engine/alembic"
	"github.com/schemagate/schemagate/engine/command"
	"github.com/schemagate/schemagate/engine/goose"
	"github.com/schemagate/schemagate/engine/sqlversion"
	"github.com/schemagate/schemagate/internal/proctree"
	"github.com/schemagate/schemagate/internal/redact"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock/postgres"
)

// gate is the set of parts a gate command drives, built from its settings.
type gate struct {
	*backend
	coordinator *coordinator.Coordinator
	replica     string
	fingerprint string
	plan        engine.Plan
	command     string // the migrate command, with --engine command
	journal     *journal.Journal
	settings    *gateSettings
	children    *proctree.Reaper
	log         zerolog.Logger
}

// identity names the replica and what it gates, for reports.
func (g *gate) identity() coordinator.Identity {
	return coordinator.Identity{Replica: g.replica, Database: g.target, Namespace: g.namespace,
		Lock: g.lockName, MigrationSet: g.fingerprint, Command: g.command}
}

// withGate loads the settings of the call, builds the parts, and runs fn with them. Every
// problem found before fn runs is invalid input: nothing has touched the database yet.
func (a *app) withGate(c *call, mode coordinator.Mode, fn func(context.Context, *gate) error) error {
	return a.withObservedGate(c, mode, nil, fn)
}

// withObservedGate is withGate with an observer for the coordinator, made once the replica's
// identity is known.
func (a *app) withObservedGate(c *call, mode coordinator.Mode,
	observer func(coordinator.Identity) coordinator.Observer, fn func(context.Context, *gate) error) error {
	g, err := a.openGate(c, mode, observer)
	if err != nil {
		return err
	}
	defer g.close()
	a.warnIgnored(c)
	return settingsRefused(fn(c.cmd.Context(), g))
}

// openGate reads the settings of the call and builds the parts, the logger first. Its errors
// are invalid input.
func (a *app) openGate(c *call, mode coordinator.Mode, observer func(coordinator.Identity) coordinator.Observer) (*gate, error) {
	s, err := loadGate(c.settings, c.can, mode)
	if s != nil {
		a.hide(s.secrets...)
	}
	if err != nil {
		return nil, &coordinator.InputError{Err: err}
	}
	log := newLogger(a.stderr, s.logFormat, s.logLevel, s.coordinator.ReplicaID)
	a.setLogger(log)
	g, err := build(s, log, observer, a.children, a.redactor)
	if err != nil {
		return nil, &coordinator.InputError{Err: err}
	}
	g.logStart(log, c.cmd.Name(), s, mode)
	return g, nil
}

// logStart logs, once, what this process gates: at info for the commands that wait or migrate,
// at debug for the one-shot reads (check, status, validate), whose output is the answer.
func (g *gate) logStart(log zerolog.Logger, command string, s *gateSettings, mode coordinator.Mode) {
	ev := log.Debug()
	if command == "migrate" || command == "wait" || command == "serve" || command == "exec" {
		ev = log.Info()
	}
	plan := g.plan
	target := fmt.Sprint(plan.Target)
	ev.Str("version", schemagate.Version).Str("command", command).Str("database", g.target).Str("lock", g.lockName).
		Str("lock_namespace", g.namespace).Str("source", s.source).Str("dir", s.dir).Str("target", target).
		Str("migration_set", plan.Fingerprint).Str("mode", mode.String()).
		Msgf("schemagate %s %s: gating %s (%s), target %s", schemagate.Version, command, g.target, g.lockName, target)
}

// privateEnv lists the variables that hold schemagate's own secrets or lead to them (a file, the
// config file). Neither the app that exec starts nor a migrate command inherits them: they get
// what their own environment gives them, DATABASE_URL included, and --env or --migrate-env.
func privateEnv() []string {
	return []string{
		"SCHEMAGATE_RAFT_SECRET", "SCHEMAGATE_RAFT_SECRET_FILE",
		"SCHEMAGATE_DATABASE_URL", "SCHEMAGATE_DATABASE_URL_FILE",
		"SCHEMAGATE_CONFIG",
	}
}

// newEngine makes what reads the versions and applies the migrations: goose, or a command
// verified by a version source.
func newEngine(s *gateSettings, b *backend, j *journal.Journal, children *proctree.Reaper,
	log zerolog.Logger) (coordinator.Engine, error) {
	if s.noFiles {
		return goose.NewReader(b.db, s.table)
	}
	var src command.Source
	var statements goose.StatementLog
	if b.statements != nil {
		statements = b.statements
	}
	switch s.source {
	case "goose":
		g, err := goose.New(b.db, goose.Options{
			Statements:      statements,
			FS:              os.DirFS(s.dir),
			Table:           s.table,
			Dialect:         b.dialect,
			TargetVersion:   s.targetVersion,
			AllowOutOfOrder: s.allowOutOfOrder,
			DDLLockTimeout:  s.ddlLockTimeout,
			DDLLockRetries:  s.ddlLockRetries,
			OnLockTimeout: func(m engine.Migration, attempt int, pause time.Duration, blockers []goose.Blocker) {
				ev := log.Warn().Str("migration", m.Name).Int("attempt", attempt).Int("retries", s.ddlLockRetries).
					Str("retry_in", pause.String())
				if len(blockers) > 0 {
					ev = ev.Interface("open_transactions", blockers)
				}
				ev.Msgf("%s waited longer than --ddl-lock-timeout (%s) for a table lock held by another transaction; "+
					"rolled back, retrying", m.Name, s.ddlLockTimeout)
			},
		})
		if err != nil {
			return nil, err
		}
		if s.engine == "goose" {
			return g, nil
		}
		src = g
	case "alembic":
		a, err := alembic.NewSource(s.alembic, b.db, s.table)
		if err != nil {
			return nil, err
		}
		src = a
	default:
		q, err := sqlversion.New(b.db, s.versionQuery, s.target)
		if err != nil {
			return nil, err
		}
		src = q
	}
	return command.New(src, commandOptions(s, b, j, children, log))
}

// commandOptions are how this replica runs a command of the app's (the migrate command, or an
// admin command under schemagate run): under its reaper, without schemagate's secrets, its
// sessions tagged with the replica and earlier migrators' command sessions ended (PostgreSQL).
func commandOptions(s *gateSettings, b *backend, j *journal.Journal, children *proctree.Reaper,
	log zerolog.Logger) command.Options {
	self, _ := os.Executable() // without it, the command cannot run
	log = log.With().Str("component", "migrate-command").Logger()
	opts := command.Options{
		Self:    self,
		Command: s.migrateCommand,
		Env:     s.migrateEnv,
		Drop:    privateEnv(),
		Log:     log,
	}
	if children != nil {
		opts.Spawner = children
	}
	if b.dialect == database.DialectPostgres {
		opts.Tag = postgres.CommandTag(s.coordinator.ReplicaID)
		opts.Evict = evictor(b.db, j, s.coordinator.ReplicaID, log)
	}
	return opts
}

// evictor returns the command engine's Evict for PostgreSQL: it ends the sessions of the
// migrate commands of every replica that migrated this namespace before, as the journal names
// them, read again before each command starts. Then (own), sessions tagged with this replica's
// name end too: an earlier run of it (before it lost the election, or a restarted pod of the
// same name) may still be out there.
func evictor(db *sql.DB, j *journal.Journal, replica string, log zerolog.Logger) func(context.Context, bool) error {
	var others []string
	return func(ctx context.Context, own bool) error {
		targets := others
		if own {
			var err error
			if others, err = j.Migrators(ctx, replica); err != nil {
				return err
			}
			targets = append([]string{replica}, others...)
		}
		ended, err := postgres.EndCommandSessions(ctx, db, targets)
		for _, e := range ended {
			log.Warn().Int("backend_pid", e.PID).Str("application_name", e.Application).Str("state", e.State).
				Msg("ended a database session of an earlier migrator's migrate command, which must not commit beside this one's")
		}
		return err
	}
}

// build makes the database handle, lock, engine, journal and coordinator. It does no I/O.
func build(s *gateSettings, log zerolog.Logger, observer func(coordinator.Identity) coordinator.Observer,
	children *proctree.Reaper, redactor *redact.Redactor) (*gate, error) {
	b, err := openBackend(s, log)
	if err != nil {
		return nil, err
	}
	b.namespace = s.namespaceFor(b.database)
	j := journal.New(b.db, journal.Dialect(b.dialect), s.journalTable, b.namespace)
	eng, err := newEngine(s, b, j, children, log)
	if err != nil {
		b.close()
		return nil, err
	}
	g := &gate{backend: b, replica: s.coordinator.ReplicaID, fingerprint: eng.Plan().Fingerprint, plan: eng.Plan(),
		journal: j, settings: s, children: children, log: log}
	if s.engine == "command" {
		g.command = s.migrateCommand
	}
	if err := b.elect(s, eng.Plan().Fingerprint, log); err != nil {
		b.close()
		return nil, err
	}
	var obs coordinator.Observer
	if observer != nil {
		obs = observer(g.identity())
	}
	cfg := s.coordinator
	cfg.Host, cfg.SameEnv = hostname(), names(s.sameEnv)
	g.coordinator, err = coordinator.New(cfg, coordinator.Deps{
		Fingerprints: fingerprintsInBackground(b.namespace, s.sameEnv),
		Observer:     obs,
		Locker:       b.locker,
		Engine:       eng,
		Journal:      j,
		Retryable:    b.retryable,
		Refused:      b.refused,
		Target:       b.target,
		Log:          log,
		Redact:       redactor.String,
		Running:      running(b.statements),
	})
	if err != nil {
		b.close()
		return nil, err
	}
	return g, nil
}

// running is the coordinator's Running for a statement log, nil without one.
func running(l *postgres.StatementLog) func() (string, time.Time, bool) {
	if l == nil {
		return nil
	}
	return l.Running
}
