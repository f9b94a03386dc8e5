package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate/coordinator"
)

// subcommand returns the subcommand of root named name.
func subcommand(t *testing.T, root *cobra.Command, name string) *cobra.Command {
	t.Helper()
	for _, c := range root.Commands() {
		if c.Name() == name {
			return c
		}
	}
	t.Fatalf("no command %s", name)
	return nil
}

// testCall binds a run of the command name of a new command tree with args, as the command
// would before its body runs.
func testCall(t *testing.T, name string, args ...string) *call {
	t.Helper()
	return testCallOf(t, newApp(io.Discard, io.Discard), name, args...)
}

// testCallOf is testCall of a's command tree.
func testCallOf(t *testing.T, a *app, name string, args ...string) *call {
	t.Helper()
	cmd := subcommand(t, a.rootCommand(), name)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	c, err := a.call(cmd, cmd.Flags().Args())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHelpGroupsEverySharedFlag: every flag several commands share is listed under a heading of
// its own in --help, so that a new one does not land among a command's own flags.
func TestHelpGroupsEverySharedFlag(t *testing.T) {
	var shared []string
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	addSharedFlags(fs, abilities{migrates: true})
	fs.VisitAll(func(f *pflag.Flag) { shared = append(shared, f.Name) })
	for _, cmd := range documented(testRoot()) {
		if cmd.Flags().Lookup("database-url") == nil {
			continue // no gate settings: probe's --timeout is its own
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if slices.Contains(shared, f.Name) && len(f.Annotations[groupAnnotation]) == 0 {
				t.Errorf("%s --%s: no heading in --help", cmd.Name(), f.Name)
			}
		})
	}
}

// TestIgnoredFlagsAreNotRead: check, status and validate accept the waiting commands' Raft and
// polling settings and the migrating commands' settings of applying, and read none of them: a
// value that would stop wait or migrate does not stop them, and they join no Raft cluster.
func TestIgnoredFlagsAreNotRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00001_a.sql"), []byte("-- +goose Up\nSELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCHEMAGATE_POLL_INTERVAL", "not-a-duration")
	t.Setenv("SCHEMAGATE_RAFT_PEERS", "not a peer list")
	t.Setenv("SCHEMAGATE_DDL_LOCK_TIMEOUT", "not-a-duration")
	t.Setenv("SCHEMAGATE_MIGRATE_ENV", "NOT-KEY-VALUE")
	args := []string{"--database-url", "postgres://postgres@127.0.0.1:1/db", "--dir", dir, "--lock", "raft",
		"--raft-listen", ":1", "--replica-id", "r1"}
	load := func(name string, mode coordinator.Mode) (*gateSettings, error) {
		c := testCall(t, name, args...)
		return loadGate(c.settings, c.can, mode)
	}
	for _, name := range []string{"check", "status", "validate"} {
		s, err := load(name, coordinator.ModeWait)
		switch {
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case s.raft.Listen != "":
			t.Errorf("%s joins the Raft cluster on %s", name, s.raft.Listen)
		}
	}
	if _, err := load("wait", coordinator.ModeWait); err == nil {
		t.Error("wait took SCHEMAGATE_POLL_INTERVAL=not-a-duration: the test's bad values are not read at all")
	}
	t.Setenv("SCHEMAGATE_POLL_INTERVAL", "")
	t.Setenv("SCHEMAGATE_RAFT_PEERS", "")
	if _, err := load("migrate", coordinator.ModeMigrate); err == nil {
		t.Error("migrate took SCHEMAGATE_DDL_LOCK_TIMEOUT=not-a-duration: the test's bad values are not read at all")
	}
}

// TestIgnoredFlagsAreNamed: a flag given on the command line to a command that ignores it is
// named in a warning, and the command runs as without it; from the environment, which serves
// every command, it passes silently; a command that reads it says nothing.
func TestIgnoredFlagsAreNamed(t *testing.T) {
	run := func(args ...string) string {
		var stderr strings.Builder
		a := newApp(io.Discard, &stderr)
		if code := a.run(t.Context(), args); code != 0 && code != 1 {
			t.Fatalf("%q: exit %d:\n%s", args, code, stderr.String())
		}
		return stderr.String()
	}
	db, dir := sqliteDB(t), migrations(t, 1)
	const warning = "ignored: --ddl-lock-timeout, --poll-interval do nothing for check"
	if out := run("check", "--database-url", db, "--dir", dir, "--ddl-lock-timeout", "5s", "--poll-interval", "1s"); !strings.Contains(out, warning) {
		t.Errorf("check with a migrator's flags does not warn %q:\n%s", warning, out)
	}
	t.Setenv("SCHEMAGATE_DDL_LOCK_TIMEOUT", "5s")
	if out := run("check", "--database-url", db, "--dir", dir); strings.Contains(out, "ignored") {
		t.Errorf("check warns of a variable of the environment:\n%s", out)
	}
	if out := run("migrate", "--database-url", db, "--dir", dir, "--ddl-lock-timeout", "5s"); strings.Contains(out, "ignored") {
		t.Errorf("migrate warns of a flag it reads:\n%s", out)
	}
}
