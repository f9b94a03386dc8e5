package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine/goose"
)

func (a *app) validateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a goose migration set without a database (or against one): exit 0 when clean, 2 on any finding",
		Long: `validate reads the migration files in --dir and reports, each with its file and line and a
plain fix, what would make goose skip a file, refuse the set, or fail halfway through a
rollout: a file without -- +goose Up, a golang-migrate layout (.up.sql/.down.sql), near-miss
names (.SQL, backups), duplicate versions, $$ bodies without StatementBegin/StatementEnd, and
statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY) in a migration that
runs in one. It needs no database: run it in CI.

With --database-url (or SCHEMAGATE_DATABASE_URL; DATABASE_URL is not read here), it also
reads the database's version table and reports migrations older than the newest applied one
(out of order), which migrate refuses. It writes nothing.

migrate, wait, serve and exec run the same file checks before they connect.`,
		Example: examples(
			"# In CI, on every change to the migrations: no database needed",
			"schemagate validate --dir migrations",
			"# Also against a database: migrations older than what it already has",
			`schemagate validate --dir migrations --database-url "$STAGING_DATABASE_URL"`,
			"schemagate validate --dir migrations --output json"),
		Args: noArgs,
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "no finding"},
		exit{schemagate.ExitInvalidInput, "findings (each printed with its file, line and fix), or bad flags"},
		exit{schemagate.ExitUnreachable, "the database could not be read"})
	// The gate's other settings do not change what validate finds.
	a.does(cmd, abilities{readOnly: true, only: []string{"config", "database-url", "database-url-file", "dir", "table",
		"allow-out-of-order", "timeout", "log-format", "log-level"}}, a.validate)
	fs := cmd.Flags()
	fs.StringP("output", "o", "text", "text or json")
	inGroup(fs, outputFlags, "output")
	return cmd
}

func (a *app) validate(c *call) error {
	l := c.settings
	output, err := l.oneOf("output", "text", "json")
	if err != nil {
		return &coordinator.InputError{Err: err}
	}
	dir := l.string("dir")
	if err := checkDir(dir); err != nil {
		return &coordinator.InputError{Err: err}
	}
	findings := goose.Lint(os.DirFS(dir))
	withDB := l.string("database-url") != "" || l.string("database-url-file") != ""
	if len(findings) == 0 && withDB {
		if findings, err = a.orderFindings(c); err != nil {
			return err
		}
	} else {
		a.warnIgnored(c)
	}
	if output == "json" {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if findings == nil {
			findings = []goose.Finding{}
		}
		if err := enc.Encode(map[string]any{"dir": dir, "findings": findings}); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			fmt.Fprintln(a.stdout, printable(f.String()))
		}
	}
	if len(findings) > 0 {
		return &coordinator.InputError{Err: fmt.Errorf("validate: %d finding(s) in %s", len(findings), dir)}
	}
	if output == "text" {
		fmt.Fprintf(a.stdout, "ok: %s has no finding\n", dir)
	}
	return nil
}

// orderFindings reads the database and reports pending migrations older than the newest
// applied one.
func (a *app) orderFindings(c *call) ([]goose.Finding, error) {
	var findings []goose.Finding
	err := a.withGate(c, coordinator.ModeWait, func(ctx context.Context, g *gate) error {
		r, err := g.coordinator.Report(ctx, g.identity(), coordinator.ReportOptions{})
		if err != nil {
			return err
		}
		for _, m := range r.OutOfOrder {
			findings = append(findings, goose.Finding{File: m.Name,
				Problem: fmt.Sprintf("not applied, and older than version %d, which the database already has (out of order)", r.Current),
				Fix:     fmt.Sprintf("give it a version above %d, or apply it with --allow-out-of-order", r.Current)})
		}
		return nil
	})
	return findings, err
}
