package main

import (
	"os"
	"path/filepath"
	"slices"
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

// TestHelpGroupsEverySharedFlag: every flag several commands share is listed under a heading of
// its own in --help, so that a new one does not land among a command's own flags.
func TestHelpGroupsEverySharedFlag(t *testing.T) {
	shared := append(flagNames(addGateFlags), flagNames(addWaitFlags)...)
	shared = append(shared, flagNames(addRerunFlag)...)
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
// polling settings and read none of them, as before they accepted them: a value that would stop
// wait does not stop them, and they join no Raft cluster.
func TestIgnoredFlagsAreNotRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00001_a.sql"), []byte("-- +goose Up\nSELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCHEMAGATE_POLL_INTERVAL", "not-a-duration")
	t.Setenv("SCHEMAGATE_RAFT_PEERS", "not a peer list")
	args := []string{"--database-url", "postgres://postgres@127.0.0.1:1/db", "--dir", dir, "--lock", "raft",
		"--raft-listen", ":1", "--replica-id", "r1"}
	load := func(name string) (*gateSettings, error) {
		cmd := subcommand(t, testRoot(), name)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		l, err := newLoader(cmd.Flags())
		if err != nil {
			t.Fatal(err)
		}
		return loadGate(l, coordinator.ModeWait, allowsUnready(name), name == "status")
	}
	for _, name := range []string{"check", "status", "validate"} {
		s, err := load(name)
		switch {
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case s.raft.Listen != "":
			t.Errorf("%s joins the Raft cluster on %s", name, s.raft.Listen)
		}
	}
	if _, err := load("wait"); err == nil {
		t.Error("wait took SCHEMAGATE_POLL_INTERVAL=not-a-duration: the test's bad values are not read at all")
	}
}
