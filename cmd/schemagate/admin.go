package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/engine/command"
	"github.com/schemagate/schemagate/journal"
)

// The verbs a coordinator owns besides the gate. Each is journaled with who (--by) and why
// (--reason), and resolve and run hold the election while they act.

// addActorFlags adds --by and --reason, of the commands that administer.
func addActorFlags(fs *pflag.FlagSet) {
	fs.String("by", "", "who acts, for the journal (default: $USER@host)")
	fs.String("reason", "", "why, for the journal (required)")
}

// actor reads --by and --reason; its error is invalid input.
func actor(l *loader) (by, reason string, err error) {
	by, reason = l.string("by"), l.string("reason")
	if reason == "" {
		return "", "", &coordinator.InputError{Err: errors.New("reason: required: say why, for the journal and whoever reads it next")}
	}
	if by == "" {
		by = whoami()
	}
	return by, reason, nil
}

// whoami names the person at the terminal for the journal: user@host, from $USER or, where it
// is unset (a container's shell), the uid's name, or the uid.
func whoami() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		} else {
			name = fmt.Sprintf("uid %d", os.Getuid())
		}
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func (a *app) resolveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resolve --migration FILE (--mark-applied | --allow-rerun) --reason TEXT",
		Short: "Decide on an interrupted non-transactional migration: mark it applied, or let it run once more",
		Long: `A migration that runs without a transaction (-- +goose NO TRANSACTION) and was cut off midway
(its migrator vanished, or was stopped after a statement had committed) is recorded as
interrupted, and every migrator refuses to go on until a person decides. resolve records the
decision, while holding the election so that no migrator races it:

  --mark-applied  you finished the migration by hand: it is marked applied in the version
                  table, and the next migrator goes on past it;
  --allow-rerun   you undid what it left behind (or it is safe to repeat): the next migrator
                  runs it once more.

Both are journaled with --by and --reason. Never edit schemagate's tables by hand.`,
		Example: examples(
			"# You finished the index by hand: the next migrator goes on past it",
			`schemagate resolve --dir /migrations --migration 00005_add_index.sql --mark-applied --reason "index built by hand"`,
			"# You dropped what it left behind: the next migrator runs it once more",
			`schemagate resolve --dir /migrations --migration 5 --allow-rerun --reason "dropped the invalid index"`),
		Args: noArgs,
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "resolved: the decision is recorded"},
		exit{schemagate.ExitInvalidInput, "no interrupted migration by that name, bad flags, or --lock raft"},
		exit{schemagate.ExitTimeout, "timed out waiting for the lock (a migrator holds it)"},
		exit{schemagate.ExitUnreachable, "the database was unreachable"})
	// resolve waits to take the election, and loads the engine as a migrator does: with
	// --engine command, --migrate-command is required.
	a.does(cmd, abilities{administers: true, waits: true, alsoReads: []string{"migrate-command"}}, a.resolve)
	addActorFlags(cmd.Flags())
	cmd.Flags().String("migration", "", "the interrupted migration: its file name or version (status names it)")
	cmd.Flags().Bool("mark-applied", false, "mark it applied: a person finished it by hand")
	cmd.Flags().Bool("allow-rerun", false, "let the next migrator run it once more")
	return cmd
}

func (a *app) resolve(c *call) error {
	l := c.settings
	by, reason, err := actor(l)
	if err != nil {
		return err
	}
	applied, err := l.bool("mark-applied")
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	rerun, err := l.bool("allow-rerun")
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	migration := l.string("migration")
	switch {
	case migration == "":
		return &coordinator.InputError{Err: errors.New("migration: required: the interrupted migration's file name or version")}
	case applied == rerun:
		return &coordinator.InputError{Err: errors.New("mark-applied, allow-rerun: give exactly one: --mark-applied (finished by hand) or " +
			"--allow-rerun (may run once more)")}
	}
	return a.withGate(c, coordinator.ModeMigrate, func(ctx context.Context, g *gate) error {
		done, err := g.coordinator.Resolve(ctx, coordinator.Resolution{Migration: migration, Applied: applied, By: by,
			Reason: reason})
		if err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "resolved: "+done)
		return nil
	})
}

func (a *app) abortCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "abort --reason TEXT",
		Short: "Stop the running migrator: cancel its statement, then end its session",
		Long: `abort stops the replica that migrates now (PostgreSQL lock): it cancels the statement its
session runs, so that a transactional migration rolls back and the run fails; if the lock is not
released within --grace, it ends the session. The act is journaled with --by and --reason.

The replicas that waited on the run see it fail (exit 3); their next start retries once, so
fix what made you abort first. To let a waiter take over at once instead, end the session
(SELECT pg_terminate_backend(pid), with the pid status shows).`,
		Example: examples(
			`schemagate abort --dir /migrations --reason "the backfill locks the orders table"`,
			"# Give the migrator longer to let go before its session is ended",
			`schemagate abort --dir /migrations --grace 30s --by alice --reason "waits on a lock held by a report"`),
		Args: noArgs,
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "aborted, or nothing to abort (no replica holds the lock)"},
		exit{schemagate.ExitInvalidInput, "bad flags, or a lock without database sessions (raft, file)"},
		exit{schemagate.ExitUnreachable, "the database was unreachable"})
	// abort waits for no lock: it stops the holder.
	a.does(cmd, abilities{administers: true}, a.abort)
	addActorFlags(cmd.Flags())
	cmd.Flags().Duration("grace", 5*time.Second, "how long the migrator has to let go after its statement is cancelled, "+
		"before its session is ended")
	return cmd
}

func (a *app) abort(c *call) error {
	l := c.settings
	by, reason, err := actor(l)
	if err != nil {
		return err
	}
	grace, err := l.duration("grace")
	if err != nil || grace <= 0 {
		return &coordinator.InputError{Err: errors.New("grace: must be a positive duration")}
	}
	return a.withGate(c, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
		done, err := g.coordinator.Abort(ctx, by, reason, grace)
		var nothing *coordinator.NothingToDoError
		if errors.As(err, &nothing) {
			fmt.Fprintln(a.stdout, nothing.What)
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "aborted: "+done)
		return nil
	})
}

func (a *app) runCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [flags] -- COMMAND [ARG...]",
		Short: "Run an admin command (a manual goose down) while holding the election, so that no migrator races it",
		Long: `run waits until it can take the election, then runs COMMAND as the migrator would run a
migrate command: its whole process tree stopped with it, its sessions tagged
(PGAPPNAME=schemagate/<replica>/command), the lease checked every second and the command
killed at once if it is lost. Its output goes to this terminal, and --migrate-env adds to its
environment. No rollout's migrator starts while it runs. It is journaled (kind admin) with
--by, --reason and how it ended.

Give it the rollout's settings (--dir, --table, --lock-namespace, the engine): the election it
takes is named after the database and the version table, or --lock-namespace.`,
		Example: examples(
			"# Roll back the last migration with goose's own command, while no rollout can migrate",
			`schemagate run --dir migrations --reason "roll back 00042 after the failed release" -- goose -dir migrations postgres "$DATABASE_URL" down`,
			"# A backfill by hand",
			`schemagate run --dir migrations --reason "backfill by hand" -- psql "$DATABASE_URL" -f backfill.sql`),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{err: errors.New("run needs a command: schemagate run [flags] -- COMMAND [ARG...]")}
			}
			return nil
		},
	}
	setExitCodes(cmd, "COMMAND's own once it ran (128+N when signal N ended it); before that:",
		exit{schemagate.ExitInvalidInput, "bad flags, COMMAND not found, or --lock raft"},
		exit{schemagate.ExitMigrationFailed, "the election was lost while COMMAND ran, and COMMAND was killed"},
		exit{schemagate.ExitTimeout, "timed out waiting for the lock (a migrator holds it)"},
		exit{schemagate.ExitUnreachable, "the database was unreachable"})
	cmd.Flags().SetInterspersed(false)
	// run waits to take the election; --migrate-env adds to COMMAND's environment.
	a.does(cmd, abilities{administers: true, waits: true, alsoReads: []string{"migrate-env"}}, a.runAdmin)
	addActorFlags(cmd.Flags())
	return cmd
}

// commandExit is the end of an admin command that schemagate ran: run exits with its code.
type commandExit struct{ err *command.ExitError }

func (e *commandExit) Error() string { return e.err.Error() }
func (e *commandExit) Unwrap() error { return e.err }

// ExitCode is the command's exit code, 128+signal when a signal ended it.
func (e *commandExit) ExitCode() schemagate.ExitCode {
	if e.err.Signal != 0 {
		return schemagate.ExitCode(128 + int(e.err.Signal))
	}
	return schemagate.ExitCode(e.err.Code)
}

func (a *app) runAdmin(c *call) error {
	by, reason, err := actor(c.settings)
	if err != nil {
		return err
	}
	args := c.args
	if _, err := exec.LookPath(args[0]); err != nil {
		return &coordinator.InputError{Err: fmt.Errorf("run: %s: command not found or not executable", args[0])}
	}
	// Wait mode: run applies no migration itself, so --engine command needs no --migrate-command.
	return a.withGate(c, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
		opts := commandOptions(g.settings, g.backend, g.journal, g.children, g.log)
		eng, err := command.New(nil, opts)
		if err != nil {
			return &coordinator.InputError{Err: err}
		}
		line := a.redactor.String(strings.Join(args, " "))
		return g.coordinator.Hold(ctx, "run", func(ctx context.Context, h coordinator.Held) error {
			a.log.Info().Str("command", line).Msg("holding the lock; running " + line)
			runErr := eng.RunDirect(ctx, args, h.Hooks)
			outcome, detail := journal.Succeeded, "exited 0"
			if runErr != nil {
				outcome, detail = journal.Failed, runErr.Error()
			}
			if _, err := h.Journal.Record(ctx, journal.KindAdmin, by, engine.Migration{Name: line}, outcome,
				a.redactor.String(reason+": "+detail)); err != nil {
				a.log.Warn().Err(err).Msg("could not journal the admin command")
			}
			var exit *command.ExitError
			if errors.As(runErr, &exit) {
				return &commandExit{err: exit}
			}
			return runErr
		})
	})
}
