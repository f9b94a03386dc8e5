package main

import (
	"os"
	"testing"

	"github.com/schemagate/schemagate/engine/command"
)

// TestMain lets the test binary stand in for schemagate's own as the reaper of a command it
// runs (command.ReapCommand), so that tests run the command engine and `run` in-process, as the
// binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == command.ReapCommand {
		args := os.Args[2:]
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		os.Exit(command.Reap(args))
	}
	os.Exit(m.Run())
}
