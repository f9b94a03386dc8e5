package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/pgtest"
)

// outcome is what a demo run printed and left behind, and what the database said before the
// demo cleaned it up.
type outcome struct {
	out      string
	err      error
	tmp      string
	db       database
	applied  map[int64][]string
	runs     []journalRun
	replicas []*fleet.Replica
}

// runDemo runs the demo with opts, reading the database just before it cleans up. started, if
// set, is called as each rollout's replicas run.
func runDemo(t *testing.T, ctx context.Context, opts options, started func(*record)) outcome {
	t.Helper()
	var o outcome
	var out bytes.Buffer
	d := &demo{opts: opts, out: &out}
	d.started = func(rec *record, rs []*fleet.Replica) {
		o.replicas = append(o.replicas, rs...)
		if started != nil {
			started(rec)
		}
	}
	d.inspect = func(db *database) {
		o.db = *db
		var err error
		if o.applied, err = db.appliedLog(ctx); err != nil {
			t.Errorf("read applied_log: %v", err)
		}
		if o.runs, err = db.runs(ctx); err != nil {
			t.Errorf("read the journal: %v", err)
		}
	}
	begin := time.Now()
	o.err = d.run(ctx)
	o.out, o.tmp = out.String(), d.tmp
	t.Logf("demo took %s; it printed:\n%s", time.Since(begin).Round(time.Millisecond), o.out)
	return o
}

// TestDemoSQLite runs the demo end to end on SQLite, its zero-setup mode.
func TestDemoSQLite(t *testing.T) {
	o := runDemo(t, t.Context(), options{replicas: 4}, nil)
	assertDemo(t, o, 4)
}

// TestDemoPostgres runs the demo against the shared server, as with DATABASE_URL: it creates a
// database of its own there and drops it.
func TestDemoPostgres(t *testing.T) {
	o := runDemo(t, t.Context(), options{replicas: 4, databaseURL: pgtest.AdminURL()}, nil)
	assertDemo(t, o, 4)
	if !strings.HasPrefix(o.db.name, "sgdemo_") {
		t.Fatalf("the demo's database is %q", o.db.name)
	}
	admin := pgtest.Connect(t, pgtest.AdminURL())
	if n := pgtest.QueryInt(t, admin, "SELECT count(*) FROM pg_database WHERE datname = $1", o.db.name); n != 0 {
		t.Errorf("database %s is still there after the demo", o.db.name)
	}
}

// TestDemoCluster runs the demo with --postgres: a throwaway cluster of its own.
func TestDemoCluster(t *testing.T) {
	if _, err := exec.LookPath("pg_config"); err != nil {
		t.Skip("no PostgreSQL server binaries (pg_config)")
	}
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	o := runDemo(t, t.Context(), options{replicas: 3, postgres: true}, nil)
	assertDemo(t, o, 3)
	dir := regexp.MustCompile(`cluster .* in (\S+)`).FindStringSubmatch(o.out)
	if dir == nil {
		t.Fatal("the demo did not say where its cluster was")
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory %s is still there (%v)", dir[1], err)
	}
}

// TestDemoInterrupted stops the demo in the middle of its second rollout, as Ctrl-C does: it
// stops its replicas and removes what it made.
func TestDemoInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	o := runDemo(t, ctx, options{replicas: 3}, func(rec *record) {
		if rec.number == 2 {
			time.AfterFunc(300*time.Millisecond, cancel)
		}
	})
	if o.err == nil || !strings.Contains(o.out, "Interrupted: cleaning up.") {
		t.Fatalf("the demo was not interrupted: %v", o.err)
	}
	assertCleanedUp(t, o)
}

// narrationLine is "  +1.234s  web-v1-0  wins the election: …".
var narrationLine = regexp.MustCompile(`(?m)^\s+\+\d+\.\d{3}s\s+(\S+)\s+(.*)$`)

// assertDemo holds the narration against the database the demo left: one migrator per
// rollout, named as the journal names it; the second rollout applied only the new migrations;
// the killed migrator was replaced; every migration applied exactly once.
func assertDemo(t *testing.T, o outcome, replicas int) {
	t.Helper()
	if o.err != nil {
		t.Fatalf("demo: %v", o.err)
	}
	assertCleanedUp(t, o)
	for v := int64(1); v <= 8; v++ {
		if len(o.applied[v]) != 1 {
			t.Errorf("applied_log: version %d applied %d times, want once", v, len(o.applied[v]))
		}
	}
	if len(o.applied) != 8 {
		t.Errorf("applied_log holds %d versions, want 8", len(o.applied))
	}
	want := []struct {
		outcome  string
		from, to int64
	}{{"succeeded", 0, 3}, {"succeeded", 3, 5}, {"abandoned", 5, 8}, {"succeeded", 6, 8}}
	if len(o.runs) != len(want) {
		t.Fatalf("the journal has %d runs, want %d: %v", len(o.runs), len(want), o.runs)
	}
	for i, w := range want {
		if r := o.runs[i]; r.Outcome != w.outcome || r.From != w.from || r.To != w.to {
			t.Errorf("journal run %d: %+v, want %s from %d to %d", i+1, r, w.outcome, w.from, w.to)
		}
	}
	first, second, victim, successor := o.runs[0].Replica, o.runs[1].Replica, o.runs[2].Replica, o.runs[3].Replica

	sections := rollouts(t, o.out)
	assertRollout(t, sections[0], first, replicas, map[string]string{"00001": first, "00002": first, "00003": first})
	assertRollout(t, sections[1], second, replicas, map[string]string{"00004": second, "00005": second})
	assertRollout(t, sections[2], victim, replicas-1, map[string]string{"00006": victim, "00007": successor, "00008": successor})
	if !regexp.MustCompile(`(?m)^\s+\+\S+\s+demo\s+SIGKILL ` + victim + `, \S+ into 00007_step_7\.sql$`).MatchString(sections[2]) {
		t.Errorf("rollout 3 does not tell that %s was killed during 00007_step_7.sql", victim)
	}
	if !regexp.MustCompile(`(?m)^\s+\+\S+\s+` + successor + `\s+takes over: `).MatchString(sections[2]) {
		t.Errorf("rollout 3 does not tell that %s took over", successor)
	}
	// Applied in the database by whom the narration says, where the database knows (PostgreSQL).
	for v, who := range map[int64]string{1: first, 4: second, 6: victim, 7: successor} {
		if got := o.applied[v]; len(got) == 1 && got[0] != "" && got[0] != who {
			t.Errorf("applied_log: version %d applied by %s, but the narration says %s", v, got[0], who)
		}
	}

	summary := []string{
		fmt.Sprintf("  rollout 1 (release v1): %s migrated: 00001_step_1.sql 00002_step_2.sql 00003_step_3.sql; %d of %d replicas ready, exited 0\n",
			first, replicas, replicas),
		fmt.Sprintf("  rollout 2 (release v2): %s migrated: 00004_step_4.sql 00005_step_5.sql; %d of %d replicas ready, exited 0\n",
			second, replicas, replicas),
		fmt.Sprintf("  journal: %s succeeded (0→3), %s succeeded (3→5), %s abandoned (5→8), %s succeeded (6→8)\n",
			first, second, victim, successor),
	}
	for _, line := range summary {
		if !strings.Contains(o.out, "\nSummary\n") || !strings.Contains(o.out[strings.Index(o.out, "\nSummary\n"):], line) {
			t.Errorf("the summary lacks %q", line)
		}
	}
	third := regexp.QuoteMeta(fmt.Sprintf("  rollout 3 (release v3): %s migrated: 00006_step_6.sql, killed during 00007_step_7.sql; %s took over after ",
		victim, successor)) + `\S+` + regexp.QuoteMeta(fmt.Sprintf(" and migrated: 00007_step_7.sql 00008_step_8.sql; %d of %d survivors ready, exited 0",
		replicas-1, replicas-1))
	if !regexp.MustCompile(`(?m)^` + third + `$`).MatchString(o.out) {
		t.Errorf("the summary lacks rollout 3 as %s", third)
	}
	if !regexp.MustCompile(`(?m)^  db version: +8$`).MatchString(o.out) {
		t.Error("schemagate status does not show the database at version 8")
	}
}

// rollouts splits the narration into its three rollouts.
func rollouts(t *testing.T, out string) []string {
	t.Helper()
	parts := regexp.MustCompile(`(?m)^Rollout \d: `).Split(out, -1)
	if len(parts) != 4 {
		t.Fatalf("%d rollouts told, want 3", len(parts)-1)
	}
	parts[3], _, _ = strings.Cut(parts[3], "\nSummary\n")
	return parts[1:]
}

// assertRollout checks one rollout's narration: migrator won the one election (a rollout
// with a kill has two: the killed migrator's and its successor's), each new migration was
// applied once by whom appliers says and nothing else was applied, and ready replicas ended
// ready.
func assertRollout(t *testing.T, section, migrator string, ready int, appliers map[string]string) {
	t.Helper()
	var elected []string
	applied := map[string][]string{}
	readies := 0
	for _, m := range narrationLine.FindAllStringSubmatch(section, -1) {
		who, text := m[1], m[2]
		switch {
		case strings.HasPrefix(text, "wins the election"):
			elected = append(elected, who)
		case strings.HasPrefix(text, "applied "):
			version := strings.TrimPrefix(text, "applied ")[:5]
			applied[version] = append(applied[version], who)
		case strings.HasPrefix(text, "ready"):
			readies++
		}
	}
	if !slices.Equal(elected, []string{migrator}) {
		t.Errorf("elected %v, want [%s] (the journal's migrator)", elected, migrator)
	}
	for version, who := range appliers {
		if !slices.Equal(applied[version], []string{who}) {
			t.Errorf("%s applied by %v, want once by %s", version, applied[version], who)
		}
	}
	if len(applied) != len(appliers) {
		t.Errorf("applied %v, want only %v", applied, appliers)
	}
	if readies != ready {
		t.Errorf("%d replicas told ready, want %d", readies, ready)
	}
}

// assertCleanedUp checks that the demo left nothing behind: no process, no temporary directory.
func assertCleanedUp(t *testing.T, o outcome) {
	t.Helper()
	for _, r := range o.replicas {
		if r.ExitedAt().IsZero() {
			t.Errorf("replica %s (pid %d) still runs", r.Name, r.Cmd.Process.Pid)
			r.Stop()
		}
	}
	if o.tmp == "" {
		t.Fatal("the demo made no temporary directory")
	}
	if _, err := os.Stat(o.tmp); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", o.tmp, err)
	}
}
