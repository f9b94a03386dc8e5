// Command schemagate makes "N replicas start at once" safe for an app with a database schema:
// exactly one replica migrates per rollout, the others wait for the result.
//
// This package only wires things together: flags, environment, config file, logger, signals.
// The flow is in package coordinator.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine/sqlversion"
	"github.com/schemagate/schemagate/lock/postgres"
)

func main() {
	// Milliseconds: when replicas wait on each other, seconds are too coarse to read a log by.
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is one invocation: its output streams (scrubbed of secrets) and, once configured, its
// logger.
type app struct {
	stdout, stderr *scrubber
	log            *zerolog.Logger
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: newScrubber(stdout), stderr: newScrubber(stderr)}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return int(schemagate.ExitReady)
	}
	if code, ok := probeExitCode(err); ok {
		fmt.Fprintf(a.stderr, "schemagate probe: %s\n", messageLine(err))
		return int(code)
	}
	code := exitCode(err)
	if code != schemagate.ExitNotReady {
		a.report(err, code)
	}
	return int(code)
}

// exitCode maps any error of a command to its exit code.
func exitCode(err error) schemagate.ExitCode {
	var usage *usageError
	switch {
	case errors.As(err, &usage), errors.Is(err, postgres.ErrTransactionPooler), postgres.BadSetting(err),
		errors.As(err, new(*sqlversion.QueryError)):
		return schemagate.ExitInvalidInput
	}
	return coordinator.ExitCode(err)
}

// report prints the error that ends the process: one line, through the logger once there is
// one, so that JSON logs stay JSON.
func (a *app) report(err error, code schemagate.ExitCode) {
	msg := messageLine(err)
	if a.log != nil {
		a.log.Error().Int("exit_code", int(code)).Str("exit_reason", code.String()).Msg(msg)
		return
	}
	fmt.Fprintf(a.stderr, "schemagate: %s (exit %d: %s)\n", msg, code, code)
}

// usageError is a problem with the command line itself (unknown flag, stray argument).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "schemagate",
		Short: "One migrator per rollout; every other replica waits until the schema is ready",
		Long: `schemagate runs in front of every replica of an app. Exactly one replica applies the
pending migrations; the others wait for the result and start only when the schema is at the
version they need. If the migrator dies, another takes over.

Exit codes: 0 ready, 1 not ready (check, probe), 2 invalid input, 3 migration failed,
4 timed out or stopped, 5 database unreachable, 6 database ahead (--when-ahead=exit).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(a.migrateCommand(), a.waitCommand(), a.serveCommand(), a.execCommand(), a.checkCommand(),
		a.statusCommand(), a.probeCommand(), a.installCommand(), a.versionCommand(), a.reapCommand())
	learnKeys(root)
	return root
}
