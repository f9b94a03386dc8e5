package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/schemagate/schemagate/internal/fingerprint"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock/postgres"
	"github.com/schemagate/schemagate/tablename"
)

// The fleet: each replica that gates or serves shows itself to the others where they meet (the
// PostgreSQL presence table, the file beside the SQLite lock file), and with --same-env the
// replicas of a release must agree on the values of some variables (the fleet guard,
// docs/fleet-guard.md). Values never leave the replica: it publishes fingerprints of them.

// sameValue is a variable the fleet must agree on, and this replica's value of it.
type sameValue struct {
	name, value string
}

// loadFleet reads --same-env, of the commands that gate, and names the presence table after
// the journal's. A variable that is not set, or empty, is refused before anything touches the
// database: the replica could not say which value it holds. The values are secrets from then
// on: no output carries them.
func (s *gateSettings) loadFleet(l *loader) error {
	var err error
	if s.presenceTable, err = presenceTable(s.journalTable); err != nil {
		return err
	}
	if !l.takes("same-env") {
		return nil
	}
	if s.sameEnv, err = parseSameEnv(l.entries("same-env"), os.LookupEnv); err != nil {
		return err
	}
	for _, v := range s.sameEnv {
		s.secrets = append(s.secrets, v.value)
	}
	return nil
}

// parseSameEnv reads --same-env entries ("NAME" or "NAME,NAME…") and the value of each variable
// from lookup. Each name is kept once, in the order given.
func parseSameEnv(entries []string, lookup func(string) (string, bool)) ([]sameValue, error) {
	var out []sameValue
	for _, e := range entries {
		for name := range strings.SplitSeq(e, ",") {
			name = strings.TrimSpace(name)
			if !variableName.MatchString(name) {
				return nil, fmt.Errorf("same-env: %q is not a variable name (NAME or NAME,NAME…)", name)
			}
			if slices.ContainsFunc(out, func(v sameValue) bool { return v.name == name }) {
				continue
			}
			value, set := lookup(name)
			switch {
			case !set:
				return nil, fmt.Errorf("--same-env %s: the variable is not set", name)
			case strings.TrimSpace(value) == "":
				return nil, fmt.Errorf("--same-env %s: the variable is empty", name)
			}
			out = append(out, sameValue{name: name, value: value})
		}
	}
	return out, nil
}

// names are the names of vs, in order.
func names(vs []sameValue) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.name
	}
	return out
}

// fingerprintsInBackground starts computing the fingerprints of vs and returns what waits for
// them (the coordinator's Deps.Fingerprints), or nil for none. A herd's replicas compute them
// while they connect and wait for the migrator, instead of before: on a machine whose cores
// the replicas share, tens of argon2id evaluations at once would delay everyone's start. The
// goroutine ends by itself, after the computation.
func fingerprintsInBackground(scope string, vs []sameValue) func(context.Context) (map[string]string, error) {
	if len(vs) == 0 {
		return nil
	}
	done := make(chan map[string]string, 1)
	go func() { done <- fingerprints(scope, vs) }()
	var fps map[string]string
	return func(ctx context.Context) (map[string]string, error) {
		if fps != nil {
			return fps, nil
		}
		select {
		case fps = <-done:
			return fps, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// fingerprints are the fingerprints of vs in scope (the lock namespace), by name, or nil for
// none. Each takes tens of milliseconds and 19 MiB, by design (internal/fingerprint).
func fingerprints(scope string, vs []sameValue) map[string]string {
	if len(vs) == 0 {
		return nil
	}
	out := make(map[string]string, len(vs))
	for _, v := range vs {
		out[v.name] = fingerprint.Of(scope, v.name, v.value)
	}
	return out
}

// presenceTable names the presence table after the journal's, in its schema:
// schemagate_journal gives schemagate_presence, app_journal app_presence, and a name without
// the _journal suffix gets _presence appended.
func presenceTable(journalTable string) (string, error) {
	table := postgres.DefaultPresenceTable
	if journalTable != journal.DefaultTable {
		schema, name, qualified := strings.Cut(journalTable, ".")
		if !qualified {
			schema, name = "", journalTable
		}
		table = strings.TrimSuffix(name, "_journal") + "_presence"
		if qualified {
			table = schema + "." + table
		}
	}
	if err := tablename.Check(table); err != nil {
		return "", fmt.Errorf("journal-table: %s: the presence table is named after it: %w", journalTable, err)
	}
	return table, nil
}

// hostname names this machine for the fleet; "" when it cannot be told.
func hostname() string {
	h, _ := os.Hostname()
	return h
}
