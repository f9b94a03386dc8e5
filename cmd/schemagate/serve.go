package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/health"
)

func (a *app) serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Gate like migrate, then keep watching the schema and serve /livez, /readyz, /status and /metrics",
		Long: `serve runs as a sidecar beside the app (in Kubernetes: a native sidecar, an init container
with restartPolicy: Always). It takes part in the election like migrate, then keeps
watching: it re-reads the schema whenever a migrator announces progress and every
--watch-interval, and its readiness follows.

/livez never touches the database. /readyz answers from memory: 200 when the schema
satisfies this replica, 503 otherwise; ?verbose says why. /status is the status document;
/metrics is Prometheus.

A failed migration does not stop serve: /readyz stays 503 and says why (phase failed in
/status), until the schema is fixed or the sidecar restarts (which retries the migration
once); with --exit-on-failure it exits 3 instead, for a fast CrashLoopBackOff. SIGTERM stops
it cleanly: a migration under way is cancelled and rolled back, the lock released, and it
exits 0. Every change of its verdict (ready, unready, behind, ahead, failed) is logged.`,
		Example: examples(
			"# A native sidecar beside the app: probes on :9090, no deadline (the startupProbe is one)",
			"schemagate serve --dir /migrations --listen :9090",
			"# Beside a Job that migrates: only wait, and exit 3 on a failed run for a fast CrashLoopBackOff",
			"schemagate serve --dir /migrations --never-migrate --exit-on-failure",
			"# Probes reachable from outside the pod: no error texts or statements in /status",
			"schemagate serve --dir /migrations --serve-detail summary"),
		Args: noArgs,
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "stopped by SIGTERM or SIGINT (a migration under way is rolled back first)"},
		exit{schemagate.ExitInvalidInput, "invalid input: a flag, the config file, the database URL or the migration files; " +
			"or --listen is taken"},
		exit{schemagate.ExitMigrationFailed, "the migration run failed, with --exit-on-failure (without it, serve stays up, unready)"},
		exit{schemagate.ExitTimeout, "the schema was not ready within --timeout (none by default)"},
		exit{schemagate.ExitUnreachable, "the database was unreachable until --timeout"},
		exit{schemagate.ExitAhead, "the database holds migrations this replica does not know, and --when-ahead is exit"})
	a.does(cmd, abilities{migrates: true, waits: true, serves: true}, a.serve)
	addServeFlags(cmd)
	return cmd
}

// addServeFlags adds the flags of the long-running command.
func addServeFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.String("listen", ":9090", "address of the probe and metrics server (its own port, apart from the app's)")
	fs.Duration("watch-interval", 10*time.Second, "once ready, how often to re-read the schema when no migrator announces anything (jittered ±25%)")
	fs.Duration("shutdown-timeout", 10*time.Second, "on SIGTERM, how long to let the probe server finish requests")
	fs.String("serve-detail", string(health.DetailFull), "what /status and /readyz?verbose reveal to whoever reaches --listen: "+
		"full (error texts, the lock holder's statement and address) or summary (phases, versions and reasons only)")
	fs.Bool("never-migrate", false, "wait for another replica to migrate; never become the migrator")
	fs.Bool("exit-on-failure", false, "exit 3 when the migration run fails, instead of serving unready until the schema "+
		"is fixed: a fast CrashLoopBackOff for the pod")
}

type serveSettings struct {
	listen          string
	watchInterval   time.Duration
	shutdownTimeout time.Duration
	detail          health.Detail
	exitOnFailure   bool
}

func loadServe(l *loader) (serveSettings, error) {
	var s serveSettings
	var err error
	s.listen = l.string("listen")
	if s.watchInterval, err = l.duration("watch-interval"); err != nil {
		return s, err
	}
	if s.watchInterval <= 0 {
		return s, errors.New("watch-interval: must be positive")
	}
	if s.shutdownTimeout, err = l.duration("shutdown-timeout"); err != nil {
		return s, err
	}
	if s.shutdownTimeout <= 0 {
		return s, errors.New("shutdown-timeout: must be positive")
	}
	if s.exitOnFailure, err = l.bool("exit-on-failure"); err != nil {
		return s, err
	}
	s.detail, err = health.ParseDetail(l.string("serve-detail"))
	return s, err
}

// modeOf reads --never-migrate.
func modeOf(l *loader) (coordinator.Mode, error) {
	never, err := l.bool("never-migrate")
	if never {
		return coordinator.ModeWait, err
	}
	return coordinator.ModeMigrate, err
}

func (a *app) serve(c *call) error {
	l := c.settings
	ss, err := loadServe(l)
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	mode, err := modeOf(l)
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var monitor *health.Monitor
	observe := func(id coordinator.Identity) coordinator.Observer {
		monitor = health.NewMonitor(id, reg, health.Options{Detail: ss.detail, Redact: a.redactor.String})
		return monitor
	}
	return a.withObservedGate(c, mode, observe, func(ctx context.Context, g *gate) error {
		srv, err := health.Listen(ss.listen, health.Handler(monitor, reg), *a.log)
		if err != nil {
			return &coordinator.InputError{Err: err}
		}
		ctx, stop := context.WithCancel(ctx)
		defer stop()
		group, gctx := errgroup.WithContext(ctx)
		group.Go(func() error { return srv.Serve(gctx, ss.shutdownTimeout) })
		group.Go(func() error {
			defer stop()
			return a.gateAndWatch(gctx, g, ss)
		})
		err = group.Wait()
		if c.cmd.Context().Err() != nil {
			a.log.Info().Msg("stopped: signal received")
		}
		return err
	})
}

// gateAndWatch runs the gate, then watches until ctx ends. A failed migration run does not end
// it: the replica stays unready, and keeps watching in case the schema is fixed elsewhere. A stop
// (SIGTERM) is a clean end.
func (a *app) gateAndWatch(ctx context.Context, g *gate, ss serveSettings) error {
	err := g.coordinator.Run(ctx)
	var failed *coordinator.MigrationFailedError
	var disagrees *coordinator.DisagreeError
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.As(err, &failed) && ss.exitOnFailure:
		return err // --exit-on-failure: the orchestrator restarts the pod, which retries once
	case errors.As(err, &failed):
		a.log.Error().Err(err).Msg("the migration run failed; serving unready until the schema is fixed or this process restarts")
	case errors.As(err, &disagrees):
		// The watch checks the fleet again on every read: the replica becomes ready when the
		// fleet comes to agree (the replicas with the other value are gone, or this one's
		// value is theirs).
		a.log.Error().Err(err).Msg("the fleet disagrees; serving unready until it agrees")
	case err != nil:
		return err
	}
	return g.coordinator.Watch(ctx, ss.watchInterval)
}
