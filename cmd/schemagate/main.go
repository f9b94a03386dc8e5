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
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine/command"
	"github.com/schemagate/schemagate/internal/proctree"
	"github.com/schemagate/schemagate/internal/redact"
)

func main() {
	// Milliseconds: when replicas wait on each other, seconds are too coarse to read a log by.
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	a := newApp(os.Stdout, os.Stderr)
	ctx, cancel := context.WithCancelCause(context.Background())
	stopSignals := a.onSignals(cancel)
	if os.Getpid() == 1 {
		// The first process of a container: the kernel hands it every orphan to reap.
		a.children = proctree.New()
		go a.children.Run(context.Background())
	}
	code := a.run(ctx, os.Args[1:])
	stopSignals()
	os.Exit(code)
}

// app is one invocation: its output streams (scrubbed of secrets) and, once configured, its
// logger.
type app struct {
	stdout, stderr *scrubber
	log            *zerolog.Logger
	// logged is log, for the signal handler's goroutine.
	logged atomic.Pointer[zerolog.Logger]
	// children starts the processes schemagate waits for itself, when it also reaps orphans
	// (PID 1); nil otherwise.
	children *proctree.Reaper
	// redactor hides every secret the invocation knows in everything it writes or serves.
	redactor *redact.Redactor
	// declared is what each command may do, as it declared (see does).
	declared map[*cobra.Command]abilities
}

// hide adds secrets to what the invocation hides, from now on.
func (a *app) hide(secrets ...string) {
	a.redactor = a.redactor.With(secrets...)
	a.stdout.use(a.redactor)
	a.stderr.use(a.redactor)
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdout: newScrubber(stdout), stderr: newScrubber(stderr)}
}

// setLogger makes log the process's logger, from now on.
func (a *app) setLogger(log zerolog.Logger) {
	a.log = &log
	a.logged.Store(&log)
}

// StoppedError is the end of a process stopped by SIGTERM or SIGINT before it was done; the
// context's cause.
type StoppedError struct{ Signal os.Signal }

func (e *StoppedError) Error() string { return "stopped by " + signalName(e.Signal) }

// onSignals makes SIGTERM and SIGINT stop the process cleanly: the first cancels ctx with a
// *StoppedError (a migration under way is interrupted, the lock released, the outcome
// journaled), a second ends the process at once. Go's handler serves PID 1 too, which the
// kernel gives no default action for these signals. It returns a function that stops listening.
func (a *app) onSignals(cancel context.CancelCauseFunc) (stop func()) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-signals:
			cancel(&StoppedError{Signal: sig})
		case <-done:
			return
		}
		select {
		case sig := <-signals:
			a.exitNow(sig)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(signals)
		close(done)
	}
}

// exitNow ends the process on a second signal, without cleanup: the server ends the session
// and its lock as the process's connection closes, and a migrate command's reaper kills the
// command as the process's end closes its pipe.
func (a *app) exitNow(sig os.Signal) {
	code := schemagate.ExitTimeout
	msg := "second " + signalName(sig) + " received: exiting at once, without waiting for the cleanup"
	if log := a.logged.Load(); log != nil {
		log.Error().Int("exit_code", int(code)).Str("exit_reason", "stopped").Msg(msg)
	} else {
		fmt.Fprintf(a.stderr, "schemagate: %s (exit %d: stopped)\n", msg, code)
	}
	os.Exit(int(code))
}

// signalName names a signal as people write it: SIGTERM.
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if name := unix.SignalName(s); name != "" {
			return name
		}
	}
	return sig.String()
}

// run executes the command line args and returns the exit code: schemagate.ExitCodeOf the
// error the command ended with, which every error that decides a code knows.
func (a *app) run(ctx context.Context, args []string) int {
	err := a.execute(ctx, args)
	code := schemagate.ExitCodeOf(err)
	switch {
	case err == nil:
	case errors.As(err, new(*probeError)):
		fmt.Fprintf(a.stderr, "schemagate probe: %s\n", messageLine(err))
	case code == schemagate.ExitNotReady, errors.As(err, new(*commandExit)):
		// check printed its verdict; an admin command's own failure speaks for itself.
	default:
		a.report(err, code)
	}
	return int(code)
}

// execute runs the command line args and returns the error the command ended with.
func (a *app) execute(ctx context.Context, args []string) error {
	root := a.rootCommandFor(args)
	if err := knownCommand(root, args); err != nil {
		return err
	}
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// report prints the error that ends the process: one line, through the logger once there is
// one, so that JSON logs stay JSON.
func (a *app) report(err error, code schemagate.ExitCode) {
	msg := messageLine(err)
	reason := code.String()
	if errors.As(err, new(*coordinator.StoppedError)) {
		reason = "stopped" // exit 4 covers a deadline and a signal; the reason tells them apart
	}
	if a.log != nil {
		a.log.Error().Int("exit_code", int(code)).Str("exit_reason", reason).Msg(msg)
		return
	}
	fmt.Fprintf(a.stderr, "schemagate: %s (exit %d: %s)\n", msg, code, reason)
	var usage *usageError
	if errors.As(err, &usage) && usage.hint != "" {
		fmt.Fprintln(a.stderr, usage.hint)
	}
}

// commandBuilder names a command and builds it.
type commandBuilder struct {
	name  string
	build func() *cobra.Command
}

// commandBuilders are the commands under the root.
func (a *app) commandBuilders() []commandBuilder {
	return []commandBuilder{
		{"migrate", a.migrateCommand}, {"wait", a.waitCommand}, {"serve", a.serveCommand}, {"exec", a.execCommand},
		{"check", a.checkCommand}, {"status", a.statusCommand}, {"validate", a.validateCommand},
		{"resolve", a.resolveCommand}, {"abort", a.abortCommand}, {"run", a.runCommand}, {"probe", a.probeCommand},
		{"install", a.installCommand}, {"version", a.versionCommand}, {command.ReapCommand, a.reapCommand},
	}
}

// rootCommand is the whole command tree: every command.
func (a *app) rootCommand() *cobra.Command { return a.rootCommandFor(nil) }

// rootCommandFor is the command tree that runs args: when args start with a command's name, the
// root and that command alone. Every replica of a herd starts the binary at once, and building
// every command's flags was a third of a start's CPU (docs/performance.md). Anything else (no
// command, a flag first, help, completion, a mistyped name) gets the whole tree.
func (a *app) rootCommandFor(args []string) *cobra.Command {
	root := a.bareRoot()
	builders := a.commandBuilders()
	if len(args) > 0 {
		for _, b := range builders {
			if b.name == args[0] {
				builders = []commandBuilder{b}
				break
			}
		}
	}
	for _, b := range builders {
		root.AddCommand(b.build())
	}
	registerCompletions(root)
	return root
}

// bareRoot is the root command, with no command under it.
func (a *app) bareRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "schemagate",
		Short: "One migrator per rollout; every other replica waits until the schema is ready",
		Long: `schemagate runs in front of every replica of an app. Exactly one replica applies the
pending migrations; the others wait for the result and start only when the schema is at the
version they need. If the migrator dies, another takes over.

A setting is a flag, an environment variable (SCHEMAGATE_ and the flag's name in capitals,
dashes as underscores: SCHEMAGATE_DATABASE_URL) or a key of a --config file, in that order of
precedence. "schemagate COMMAND --help" shows a command's examples, exit codes and flags.`,
		Example: examples(
			"# In front of the app's start command, in every replica",
			`schemagate migrate --database-url "$DATABASE_URL" --dir ./migrations && exec ./start-my-app`,
			"# The same gate, then the app in schemagate's place (Docker, Compose, Swarm)",
			"schemagate exec --dir /app/migrations -- bash start.sh",
			"# What is happening, and what to do",
			"schemagate status --dir ./migrations"),
		Args: noArgs,
		// schemagate alone prints this help; --version, what the version command prints. (Not
		// cobra's Version field: its output is a text/template, and the template package keeps
		// the linker from dropping unused methods, which costs megabytes of binary.)
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v, _ := cmd.Flags().GetBool("version"); v {
				fmt.Fprint(a.stdout, versionLine(schemagate.Version))
				return nil
			}
			return cmd.Help()
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// The root lists every code, each under the name the README's table and ExitCode.String use.
	setExitCodes(root, "",
		exit{schemagate.ExitReady, "ready: the schema satisfies this replica"},
		exit{schemagate.ExitNotReady, "not ready: check found the schema not ready, or probe got no healthy answer"},
		exit{schemagate.ExitInvalidInput, "invalid input: a flag, the config file, the database URL or the migration files; " +
			"nothing was written"},
		exit{schemagate.ExitMigrationFailed, "migration failed: here or on the migrator this replica waited for; or an " +
			"interrupted one awaits resolve"},
		exit{schemagate.ExitTimeout, "timed out: --timeout passed, or SIGTERM or SIGINT stopped the process, before the " +
			"schema was ready"},
		exit{schemagate.ExitUnreachable, "database unreachable: until the deadline, or it refused this replica"},
		exit{schemagate.ExitAhead, "database ahead: it holds migrations this replica does not know, and --when-ahead is exit"},
		exit{schemagate.ExitAppNotStarted, "app not started: exec passed the gate, but could not start the app"},
		exit{schemagate.ExitFleetDisagrees, "fleet disagrees: a --same-env variable's value differs from the one on the " +
			"ready replicas of this release"})
	root.Flags().Bool("version", false, "print the version, as schemagate version does")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		return writeUsage(cmd.OutOrStderr(), cmd, terminalWidth(a.stdout))
	})
	return root
}
