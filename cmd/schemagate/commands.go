package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine/goose"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock/postgres"
)

func (a *app) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Elect one migrator; it applies the pending migrations; everyone exits 0 when the schema is ready",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withGate(cmd, coordinator.ModeMigrate, func(ctx context.Context, g *gate) error {
				return g.coordinator.Run(ctx)
			})
		},
	}
	addGateFlags(cmd.Flags())
	addWaitFlags(cmd.Flags())
	cmd.Flags().Bool("rerun-interrupted", false, "run again a non-transactional migration that was interrupted midway "+
		"(check what it left behind first)")
	return cmd
}

func (a *app) waitCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Wait until the schema is ready for this replica; never migrate",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withGate(cmd, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
				return g.coordinator.Run(ctx)
			})
		},
	}
	addGateFlags(cmd.Flags())
	addWaitFlags(cmd.Flags())
	return cmd
}

func (a *app) checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Read the schema once: exit 0 if ready for this replica, 1 if not",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withGate(cmd, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
				st, err := g.coordinator.Check(ctx)
				if err == nil || errors.Is(err, coordinator.ErrNotReady) {
					verdict := "ready"
					if err != nil {
						verdict = "not ready"
					}
					fmt.Fprintf(a.stdout, "%s: %s\n", verdict, st.Describe())
				}
				return err
			})
		},
	}
	addGateFlags(cmd.Flags())
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show target, database version, pending migrations, the lock holder and the journal",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := newLoader(cmd.Flags())
			if err != nil {
				return &coordinator.InputError{Err: err}
			}
			output, err := l.oneOf("output", "text", "json")
			if err != nil {
				return &coordinator.InputError{Err: err}
			}
			entries, err := l.int("journal-entries")
			if err != nil || entries < 0 {
				return &coordinator.InputError{Err: fmt.Errorf("journal-entries: must be a whole number, 0 or more")}
			}
			return a.withGate(cmd, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
				r, err := g.coordinator.Report(ctx, g.identity(), int(entries))
				if err != nil {
					return err
				}
				if output == "json" {
					enc := json.NewEncoder(a.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(r)
				}
				writeReport(a.stdout, r)
				return nil
			})
		},
	}
	addGateFlags(cmd.Flags())
	cmd.Flags().StringP("output", "o", "text", "text or json")
	cmd.Flags().Int("journal-entries", 10, "how many journal entries to show")
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(a.stdout, "schemagate %s (%s, %s/%s)\n", schemagate.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Errorf("unexpected argument %q (settings are flags, such as --dir)", args[0])}
	}
	return nil
}

// gate is the set of parts a gate command drives, built from its settings.
type gate struct {
	session     *postgres.Session
	locker      *postgres.Locker
	coordinator *coordinator.Coordinator
	namespace   string
	replica     string
	fingerprint string
}

// identity names the replica and what it gates, for reports.
func (g *gate) identity() coordinator.Identity {
	return coordinator.Identity{Replica: g.replica, Database: g.session.Target(), Namespace: g.namespace,
		LockKey: g.locker.Key(), MigrationSet: g.fingerprint}
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
	defer g.session.Close()
	log.Debug().Str("database", g.session.Target()).Str("lock_namespace", g.namespace).
		Int64("lock_key", g.locker.Key()).Int64("lock_classid", g.locker.Key()>>32).
		Int64("lock_objid", g.locker.Key()&0xffffffff).Str("command", cmd.Name()).Msg("starting")
	return fn(cmd.Context(), g)
}

// build makes the session, lock, engine, journal and coordinator. It does no I/O.
func build(s *gateSettings, log zerolog.Logger, observer func(coordinator.Identity) coordinator.Observer) (*gate, error) {
	session, err := postgres.NewSession(s.dsn, s.postgres, log)
	if err != nil {
		return nil, err
	}
	eng, err := goose.New(session.DB(), goose.Options{
		FS:              os.DirFS(s.dir),
		Table:           s.table,
		TargetVersion:   s.targetVersion,
		AllowOutOfOrder: s.allowOutOfOrder,
	})
	if err != nil {
		session.Close()
		return nil, err
	}
	g := &gate{session: session, namespace: s.namespaceFor(session.Database()),
		replica: s.coordinator.ReplicaID, fingerprint: eng.Plan().Fingerprint}
	g.locker = postgres.NewLocker(session, g.namespace)
	var obs coordinator.Observer
	if observer != nil {
		obs = observer(g.identity())
	}
	g.coordinator, err = coordinator.New(s.coordinator, coordinator.Deps{
		Observer:  obs,
		Locker:    g.locker,
		Engine:    eng,
		Journal:   journal.New(session.DB(), s.journalTable, g.namespace),
		Retryable: postgres.Retryable,
		Refused:   postgres.Refused,
		Target:    session.Target(),
		Log:       log,
	})
	if err != nil {
		session.Close()
		return nil, err
	}
	return g, nil
}
