package main

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate/engine/command"
)

// commandNames are the names of the commands under root, but cobra's own.
func commandNames(root *cobra.Command) []string {
	var names []string
	for _, c := range root.Commands() {
		if c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	return names
}

// TestOneCommandTree: the tree built to run one command holds that command alone, and the
// command is the one the whole tree holds: the same help, flag for flag. And every command of
// the whole tree has a builder under its own name, so none is left out of the tree that runs it.
func TestOneCommandTree(t *testing.T) {
	whole := newApp(io.Discard, io.Discard).rootCommand()
	var built []string
	for _, b := range newApp(io.Discard, io.Discard).commandBuilders() {
		built = append(built, b.name)
	}
	slices.Sort(built) // as cobra lists them
	if names := commandNames(whole); !slices.Equal(names, built) {
		t.Fatalf("commands %v, built by name %v", names, built)
	}
	for _, name := range built {
		if names := commandNames(newApp(io.Discard, io.Discard).rootCommandFor([]string{name, "--help"})); !slices.Equal(names, []string{name}) {
			t.Errorf("the tree for %s holds %v", name, names)
		}
		if name == command.ReapCommand {
			continue // it takes no flags, --help included: it runs what follows
		}
		var alone bytes.Buffer
		if code := newApp(&alone, &alone).run(t.Context(), []string{name, "--help"}); code != 0 {
			t.Errorf("%s --help: exit %d: %s", name, code, alone.String())
		}
		var all bytes.Buffer
		root := newApp(&all, &all).rootCommand()
		root.SetArgs([]string{name, "--help"})
		if err := root.ExecuteContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		if alone.String() != all.String() {
			t.Errorf("%s --help differs in the tree that runs it:\n%s\nfrom the whole tree's:\n%s", name, alone.String(), all.String())
		}
	}
	// Anything but a command's name builds them all: help, completion and hints need them.
	for _, args := range [][]string{nil, {"--version"}, {"help", "migrate"}, {cobra.ShellCompRequestCmd, "mi"}, {"migarte"}} {
		if names := commandNames(newApp(io.Discard, io.Discard).rootCommandFor(args)); !slices.Equal(names, built) {
			t.Errorf("the tree for %q holds %v", args, names)
		}
	}
}
