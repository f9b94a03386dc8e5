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
		},
	}
	addGateFlags(cmd.Flags())
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say what is happening and what to do: who migrates what and for how long, who waits, the last run, the journal",
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
			applied, err := l.bool("applied")
			if err != nil {
				return &coordinator.InputError{Err: err}
			}
			return a.withGate(cmd, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
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
		},
	}
	addGateFlags(cmd.Flags())
	cmd.Flags().StringP("output", "o", "text", "text or json")
	cmd.Flags().Int("journal-entries", 10, "how many journal entries to show")
	cmd.Flags().Bool("applied", false, "also list every applied migration: when, by which replica and run, how long it "+
		"took, and whether its file changed since")
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprint(a.stdout, versionLine(schemagate.Version))
			return nil
		},
	}
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
