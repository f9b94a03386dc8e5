package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
)

func (a *app) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Elect one migrator; it applies the pending migrations; everyone exits 0 when the schema is ready",
		Long: `migrate runs in front of every replica of an app, before the app starts. It reads the schema;
if it is behind, the replicas elect one migrator, which applies the pending migrations one at a
time, while the others wait for the result and exit 0 the moment the schema is at the version
they need. If the migrator dies, a waiting replica takes over.

The migrations are the goose SQL files in --dir or, with --engine command, what the app's own
tool applies (--migrate-command); either way, ready is read from the version table. The files
are checked as validate checks them before any connection: bad input is exit 2, with nothing
written.`,
		Example: examples(
			"# Before the app starts, in every replica: one migrates, all start once the schema is ready",
			`schemagate migrate --database-url "$DATABASE_URL" --dir ./migrations && exec ./start-my-app`,
			"# A Kubernetes init container or Job: the URL from a mounted secret, a deadline for long migrations",
			"schemagate migrate --database-url-file /run/secrets/database-url --dir /migrations --timeout 30m",
			"# An app that migrates with Alembic: schemagate elects the migrator, alembic applies",
			`schemagate migrate --engine command --version-source alembic:migrations --migrate-command "alembic upgrade head"`),
		Args: noArgs,
	}
	setExitCodes(cmd, "", gateExitCodes("the schema is ready for this replica (migrated here or by another replica)",
		"a migration failed, here or on the replica this one waited for; or an interrupted one awaits schemagate resolve")...)
	return a.does(cmd, abilities{migrates: true, waits: true}, func(c *call) error {
		return a.withGate(c, coordinator.ModeMigrate, func(ctx context.Context, g *gate) error {
			return g.coordinator.Run(ctx)
		})
	})
}

// gateExitCodes are the exit codes of a command that gates: ready, and what can stop it.
func gateExitCodes(ready, failed string) []exit {
	return []exit{
		{schemagate.ExitReady, ready},
		{schemagate.ExitInvalidInput, "invalid input: a flag, the config file, the database URL or the migration files; " +
			"nothing was written"},
		{schemagate.ExitMigrationFailed, failed},
		{schemagate.ExitTimeout, "timed out (--timeout) or stopped (SIGTERM, SIGINT) before the schema was ready"},
		{schemagate.ExitUnreachable, "the database was unreachable until the deadline, or refused this replica"},
		{schemagate.ExitAhead, "the database holds migrations this replica does not know, and --when-ahead is exit"},
		{schemagate.ExitFleetDisagrees, "the schema is ready, but a --same-env variable's value differs from the one on " +
			"the ready replicas of this release"},
	}
}

func (a *app) waitCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wait",
		Short: "Wait until the schema is ready for this replica; never migrate",
		Long: `wait is migrate without the election: it reads the schema and waits until it is at the version
this replica needs, and never applies anything itself. Use it where another process migrates
(a Kubernetes Job running migrate, the app's own tool) and this replica must only wait. A
failed run of the same migrations ends the wait with exit 3: the failure stands until a
migrator succeeds.`,
		Example: examples(
			"# The app's container, while a Job runs migrate: start once the schema is ready",
			"schemagate wait --dir /migrations --timeout 30m && exec ./start-my-app",
			"# Wait for another tool's migrations: alembic_version at the heads of this release's revisions",
			"schemagate wait --engine command --version-source alembic:/app/migrations"),
		Args: noArgs,
	}
	setExitCodes(cmd, "", gateExitCodes("the schema is ready for this replica",
		"the migration failed on the migrator this replica waited for; or an interrupted one awaits schemagate resolve")...)
	return a.does(cmd, abilities{waits: true}, func(c *call) error {
		return a.withGate(c, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
			return g.coordinator.Run(ctx)
		})
	})
}

func (a *app) checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Read the schema once: exit 0 if ready for this replica, 1 if not",
		Long: `Read the schema once: exit 0 if it is ready for this replica, 1 if not. check takes no lock and
never waits for a migrator; it prints one line, "ready: …" or "not ready: …" with the reason (the
pending migrations, a failed run). For health checks, scripts and CI.

A database ahead of this replica is ready under --when-ahead=ready (the default), not ready
under unready, and exit 6 under exit. --timeout bounds the connection (default 15m: give a
health check its own).`,
		Example: examples(
			"# CI, before the deploy step: is the schema ready for this release?",
			`schemagate check --database-url "$DATABASE_URL" --dir ./migrations --timeout 30s`,
			"# A readiness command that keeps a replica out of service while the database is ahead of it",
			"schemagate check --dir /migrations --when-ahead unready --timeout 5s"),
		Args: noArgs,
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "ready: the schema is at the version this replica needs"},
		exit{schemagate.ExitNotReady, "not ready: migrations are pending (or failed), or the database is ahead under --when-ahead=unready"},
		exit{schemagate.ExitInvalidInput, "invalid input: a flag, the config file, the database URL or the migration files"},
		exit{schemagate.ExitUnreachable, "the database could not be read"},
		exit{schemagate.ExitAhead, "the database holds migrations this replica does not know, and --when-ahead is exit"})
	return a.does(cmd, abilities{readOnly: true}, func(c *call) error {
		return a.withGate(c, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
			_, verdict, err := g.coordinator.Check(ctx)
			if err == nil || errors.Is(err, coordinator.ErrNotReady) {
				word := "ready"
				if err != nil {
					word = "not ready"
				}
				fmt.Fprintf(a.stdout, "%s: %s\n", word, verdict)
			}
			return err
		})
	})
}

func (a *app) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say what is happening and what to do: who migrates what and for how long, who waits, the last run, the journal",
		Long: `status answers the questions of a bad day from the database: which migration runs now, on which
replica, for how long and at which statement; which replicas wait; how the last run ended and
why; the journal; and one line of what to do next. It takes no lock.

Without --dir (and no ./migrations) it still shows the holder, the database's version, the
waiters and the journal; the target and the pending migrations need the files. --applied adds
every applied migration: when, by which replica and run, how long it took, and whether its
file changed since. --output json prints the document serve answers at /status.`,
		Example: examples(
			"schemagate status --database-url \"$DATABASE_URL\" --dir ./migrations",
			"# From the sidecar of a running pod, with its settings from the environment",
			"kubectl exec deploy/app -c schemagate -- schemagate status",
			"# Every applied migration, as JSON for a script",
			"schemagate status --dir /migrations --applied --output json"),
		Args: noArgs,
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "the status was printed, whatever the schema's state"},
		exit{schemagate.ExitInvalidInput, "invalid input: a flag, the config file, the database URL or the migration files"},
		exit{schemagate.ExitUnreachable, "the database could not be read"})
	// status shows the migrate command a holder runs, and reads what it can without the files.
	a.does(cmd, abilities{readOnly: true, alsoReads: []string{"migrate-command"}, filesOptional: true}, a.status)
	fs := cmd.Flags()
	fs.StringP("output", "o", "text", "text or json")
	inGroup(fs, outputFlags, "output")
	fs.Int("journal-entries", 10, "how many journal entries to show")
	fs.Bool("applied", false, "also list every applied migration: when, by which replica and run, how long it "+
		"took, and whether its file changed since")
	return cmd
}

func (a *app) status(c *call) error {
	l := c.settings
	output, err := l.oneOf("output", "text", "json")
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	entries, err := l.int("journal-entries")
	if err != nil || entries < 0 {
		return &coordinator.InputError{Err: fmt.Errorf("journal-entries: must be a whole number, 0 or more")}
	}
	applied, err := l.bool("applied")
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	return a.withGate(c, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
		r, err := g.coordinator.Report(ctx, g.identity(), coordinator.ReportOptions{Journal: int(entries), Applied: applied})
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
}

func (a *app) versionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Long: `version prints the release this binary was built from, the Go version that built it, and the
platform: the line schemagate --version prints too.`,
		Example: examples(
			"schemagate version",
			"docker run --rm ghcr.io/schemagate/schemagate version"),
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprint(a.stdout, versionLine(schemagate.Version))
			return nil
		},
	}
	setExitCodes(cmd, "", exit{schemagate.ExitReady, "always"})
	return cmd
}

// versionLine is what version and --version print: schemagate v1.2.3 (go1.26.0, linux/amd64).
func versionLine(version string) string {
	return fmt.Sprintf("schemagate %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("unexpected argument %q (settings are flags, such as --dir)", args[0])}
	}
	return nil
}
