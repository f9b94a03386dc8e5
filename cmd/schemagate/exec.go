package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine/command"
)

func (a *app) execCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec [flags] -- COMMAND [ARG...]",
		Short: "Gate like migrate, then replace this process with COMMAND (same PID, signals and exit code)",
		Long: `exec wraps an app's command: schemagate exec -- bash start.sh.

It runs the same gate as migrate; when the schema is ready it replaces itself with COMMAND
through execve: the app keeps the PID, receives signals directly, and its exit code is the
process's. If the gate fails, COMMAND never starts and the exit code is the gate's.

--env KEY=VALUE adds to COMMAND's environment (repeat it; it overrides an inherited value),
for example --env ENABLE_DB_MIGRATIONS=false so that no app process migrates by itself.
Through the environment, SCHEMAGATE_ENV takes KEY=VALUE entries separated by commas.`,
		Example: examples(
			"# Docker, Compose, Swarm: the gate, then the app in schemagate's place",
			"schemagate exec --dir /app/migrations --env ENABLE_DB_MIGRATIONS=false -- bash start.sh",
			"# A replica that must only wait for another to migrate",
			"schemagate exec --dir /app/migrations --never-migrate -- ./server --port 8080"),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{err: fmt.Errorf("exec needs a command to run: schemagate exec [flags] -- COMMAND [ARG...]")}
			}
			return nil
		},
	}
	codes := gateExitCodes("", "a migration failed, here or on the replica this one waited for; or an interrupted one "+
		"awaits schemagate resolve")[1:]
	// In numeric order: 7 before the last, 8.
	codes = slices.Insert(codes, len(codes)-1,
		exit{schemagate.ExitAppNotStarted, "the schema is ready, but COMMAND could not be started (execve failed)"})
	setExitCodes(cmd, "COMMAND's own, once the gate passed and COMMAND took schemagate's place; before that:", codes...)
	cmd.Flags().SetInterspersed(false)
	a.does(cmd, abilities{migrates: true, waits: true}, a.exec)
	cmd.Flags().StringArray("env", nil, "KEY=VALUE to add to the command's environment (repeatable)")
	cmd.Flags().Bool("never-migrate", false, "wait for another replica to migrate; never become the migrator")
	return cmd
}

func (a *app) exec(c *call) error {
	l, args := c.settings, c.args
	path, err := exec.LookPath(args[0])
	if err != nil {
		return &coordinator.InputError{Err: fmt.Errorf("exec: %s: command not found or not executable", args[0])}
	}
	extra, err := l.keyValues("env")
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	a.hide(secretValues(extra)...)
	mode, err := modeOf(l)
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	return a.withGate(c, mode, func(ctx context.Context, g *gate) error {
		if err := g.coordinator.Run(ctx); err != nil {
			return err
		}
		// The app must not inherit the session: close it before the process becomes the app.
		g.close()
		if a.children != nil {
			a.children.Reap() // no zombie passes to the app
		}
		a.log.Info().Str("command", path).Strs("args", args[1:]).Msg("schema ready; starting the app")
		// schemagate's own secrets go no further than schemagate.
		err := syscall.Exec(path, args, command.Environ(os.Environ(), extra, privateEnv()...))
		return &appNotStartedError{path: path, err: err}
	})
}

// appNotStartedError is an app that exec could not start after the gate passed: the schema is
// ready, the app never ran (exit code 7).
type appNotStartedError struct {
	path string
	err  error
}

func (e *appNotStartedError) Error() string {
	return fmt.Sprintf("the schema is ready, but the app could not be started: exec %s: %v", e.path, e.err)
}

func (e *appNotStartedError) Unwrap() error                 { return e.err }
func (e *appNotStartedError) ExitCode() schemagate.ExitCode { return schemagate.ExitAppNotStarted }
