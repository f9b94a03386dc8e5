package main

import (
	"context"
	"os"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/engine/alembic"
	"github.com/schemagate/schemagate/engine/command"
	"github.com/schemagate/schemagate/engine/goose"
	"github.com/schemagate/schemagate/engine/sqlversion"
	"github.com/schemagate/schemagate/journal"
)

// gate is the set of parts a gate command drives, built from its settings.
type gate struct {
	*backend
	coordinator *coordinator.Coordinator
	replica     string
	fingerprint string
}

// identity names the replica and what it gates, for reports.
func (g *gate) identity() coordinator.Identity {
	return coordinator.Identity{Replica: g.replica, Database: g.target, Namespace: g.namespace,
		Lock: g.lockName, MigrationSet: g.fingerprint}
}

// withGate loads the settings of cmd, builds the parts, and runs fn with them. Every problem
// found before fn runs is invalid input: nothing has touched the database yet.
func (a *app) withGate(cmd *cobra.Command, mode coordinator.Mode, fn func(context.Context, *gate) error) error {
	return a.withObservedGate(cmd, mode, nil, fn)
}

// withObservedGate is withGate with an observer for the coordinator, made once the replica's
// identity is known.
func (a *app) withObservedGate(cmd *cobra.Command, mode coordinator.Mode,
	observer func(coordinator.Identity) coordinator.Observer, fn func(context.Context, *gate) error) error {
	l, err := newLoader(cmd.Flags())
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	allowUnready := cmd.Name() == "check" || cmd.Name() == "status" || cmd.Name() == "serve"
	s, err := loadGate(l, mode, allowUnready)
	if s != nil {
		a.stdout.hide(s.secrets...)
		a.stderr.hide(s.secrets...)
	}
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	log := newLogger(a.stderr, s.logFormat, s.logLevel, s.coordinator.ReplicaID)
	a.log = &log
	g, err := build(s, log, observer)
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	defer g.close()
	log.Debug().Str("database", g.target).Str("lock_namespace", g.namespace).Str("lock", g.lockName).
		Str("command", cmd.Name()).Msg("starting")
	return fn(cmd.Context(), g)
}

// raftSecretEnv holds the Raft secret; neither the app nor a migrate command gets it.
const raftSecretEnv = "SCHEMAGATE_RAFT_SECRET"

// newEngine makes what reads the versions and applies the migrations: goose, or a command
// verified by a version source.
func newEngine(s *gateSettings, b *backend, log zerolog.Logger) (coordinator.Engine, error) {
	var src command.Source
	switch s.source {
	case "goose":
		g, err := goose.New(b.db, goose.Options{
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
	self, _ := os.Executable() // without it, the command runs without a reaper
	return command.New(src, command.Options{
		Self:    self,
		Command: s.migrateCommand,
		Env:     s.migrateEnv,
		Drop:    []string{raftSecretEnv},
		Log:     log.With().Str("component", "migrate-command").Logger(),
	})
}

// build makes the database handle, lock, engine, journal and coordinator. It does no I/O.
func build(s *gateSettings, log zerolog.Logger, observer func(coordinator.Identity) coordinator.Observer) (*gate, error) {
	b, err := openBackend(s, log)
	if err != nil {
		return nil, err
	}
	eng, err := newEngine(s, b, log)
	if err != nil {
		b.close()
		return nil, err
	}
	g := &gate{backend: b, replica: s.coordinator.ReplicaID, fingerprint: eng.Plan().Fingerprint}
	if err := b.elect(s, eng.Plan().Fingerprint, log); err != nil {
		b.close()
		return nil, err
	}
	var obs coordinator.Observer
	if observer != nil {
		obs = observer(g.identity())
	}
	g.coordinator, err = coordinator.New(s.coordinator, coordinator.Deps{
		Observer:  obs,
		Locker:    b.locker,
		Engine:    eng,
		Journal:   journal.New(b.db, journal.Dialect(b.dialect), s.journalTable, b.namespace),
		Retryable: b.retryable,
		Refused:   b.refused,
		Target:    b.target,
		Log:       log,
	})
	if err != nil {
		b.close()
		return nil, err
	}
	return g, nil
}
