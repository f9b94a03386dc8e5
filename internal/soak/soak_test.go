package main

import (
	"context"
	"os"
	"testing"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestSoak is the short soak CI runs: a few rounds with a fixed seed, which covers several
// faults, on a server of its own so that its replicas never compete with other tests for
// connections. `make soak` runs 200 rounds.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	c := pgtest.StartCluster(t, "max_connections = 100")
	out, err := os.CreateTemp(t.TempDir(), "soak")
	if err != nil {
		t.Fatal(err)
	}
	s, err := run(context.Background(), options{rounds: 8, seed: 7, minN: 5, maxN: 12, adminURL: c.AdminURL(), moduleDir: "../.."}, out)
	if err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(out.Name())
	if s.rounds != 8 || s.failed != 0 {
		t.Errorf("%d rounds, %d failed:\n%s", s.rounds, s.failed, report)
	}
	if len(s.byFault) < 4 {
		t.Errorf("the seed covers only %d faults:\n%s", len(s.byFault), report)
	}
}
