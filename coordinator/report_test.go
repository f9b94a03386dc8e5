package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// TestCheck: the one-shot read that `schemagate check` (and a readiness probe without serve)
// answers with.
func TestCheck(t *testing.T) {
	unexpected := errors.New("permission denied for table goose_db_version")
	cases := []struct {
		name      string
		whenAhead AheadPolicy
		applied   []int64
		journal   func(t *testing.T, w *world)
		statusErr error

		verdict string // the start of the verdict
		err     error
		code    schemagate.ExitCode
	}{
		{name: "ready", applied: []int64{1, 2, 3}, verdict: "the database is at version 3, which this replica needs",
			code: schemagate.ExitReady},
		{name: "behind", applied: []int64{1}, verdict: "the database is at version 1; this replica needs 3",
			err: ErrNotReady, code: schemagate.ExitNotReady},
		{name: "behind after a failed run", applied: []int64{1}, journal: failedBefore(fingerprint),
			verdict: "the database is at version 1; this replica needs 3 (2 pending, next 00002_m2.sql); the last migration " +
				"run failed: migration 00002_m2.sql failed on replica web-0: boom",
			err: ErrNotReady, code: schemagate.ExitNotReady},
		{name: "ahead under unready", whenAhead: AheadUnready, applied: []int64{1, 2, 3, 4},
			verdict: "the database is at version 4, ahead", err: ErrNotReady, code: schemagate.ExitNotReady},
		{name: "ahead under exit", whenAhead: AheadExit, applied: []int64{1, 2, 3, 4},
			verdict: "the database is at version 4, ahead", err: errors.New("--when-ahead=exit"), code: schemagate.ExitAhead},
		{name: "unavailable", statusErr: errUnavailable, err: errUnavailable, code: schemagate.ExitUnreachable},
		{name: "refused", statusErr: errRefused, err: errRefused, code: schemagate.ExitUnreachable},
		{name: "another error", statusErr: unexpected, err: unexpected, code: schemagate.ExitMigrationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3)
			w.schema.set(tc.applied...)
			if tc.journal != nil {
				tc.journal(t, w)
			}
			r := w.replica("web-1", replicaOptions{config: func(c *Config) {
				if tc.whenAhead != "" {
					c.WhenAhead = tc.whenAhead
				}
			}})
			r.engine.failStatus(tc.statusErr)
			_, verdict, err := r.Check(context.Background())
			if !strings.HasPrefix(verdict, tc.verdict) {
				t.Errorf("verdict %q, want %q…", verdict, tc.verdict)
			}
			if mismatch(err, tc.err) != "" {
				t.Errorf("Check: %v, want %v", err, tc.err)
			}
			if code := schemagate.ExitCodeOf(err); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
		})
	}
}

// TestReport: the status document while a migrator applies migration 2 of 3, from a replica
// that does not take part.
func TestReport(t *testing.T) {
	w := newWorld(t, 3)
	migrator := w.replica("web-1", replicaOptions{})
	entered, release := migrator.engine.hold(2)
	done := migrator.start(context.Background())
	awaitClosed(t, entered, "migration 2")
	defer func() {
		release(nil)
		if err := result(t, done); err != nil {
			t.Error(err)
		}
	}()

	status := w.replica("status", replicaOptions{mode: ModeWait})
	r, err := status.Report(context.Background(), Identity{Replica: "status"}, ReportOptions{Journal: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ready || r.Holder == nil || r.Holder.Replica != "web-1" || r.Run == nil || r.Run.Outcome != journal.Running {
		t.Fatalf("report: ready %v, holder %+v, run %+v", r.Ready, r.Holder, r.Run)
	}
	if r.Position != 2 || r.Of != 3 {
		t.Errorf("position %d of %d, want 2 of 3", r.Position, r.Of)
	}
	if !strings.HasPrefix(r.Next, "wait: the migrator is at work") {
		t.Errorf("next step %q", r.Next)
	}
	if r.WaitingKnown {
		t.Error("the memory election cannot tell who waits, yet the report says it knows")
	}
}

// TestNextStep: the one sentence `schemagate status` ends with, for each situation.
func TestNextStep(t *testing.T) {
	pending := []engine.Migration{{Version: 2, Name: "00002_m2.sql", Transactional: true}}
	nonTx := []engine.Migration{{Version: 2, Name: "00002_m2.sql"}}
	run := func(outcome journal.Outcome, name string) *journal.Entry {
		return &journal.Entry{Kind: journal.KindRun, Outcome: outcome, Name: name}
	}
	holder := &lock.Holder{Replica: "web-1", PID: 4242}
	cases := []struct {
		name string
		r    Report
		want string
	}{
		{"no files", Report{Status: engine.Status{NoFiles: true}}, "give --dir"},
		{"interrupted", Report{Status: engine.Status{Pending: nonTx},
			Journal: []journal.Entry{{Kind: journal.KindMigration, Outcome: journal.Interrupted, Name: "00002_m2.sql"}}},
			"check what 00002_m2.sql left behind"},
		{"cut off before a migration", Report{Status: engine.Status{Pending: pending}, Run: run(journal.Running, "")},
			"start a replica that migrates: the cut-off run had not started a migration"},
		{"cut off in a transactional migration", Report{Status: engine.Status{Pending: pending}, Run: run(journal.Running, "00002_m2.sql")},
			"start a replica that migrates: 00002_m2.sql rolled back"},
		{"cut off in a non-transactional migration", Report{Status: engine.Status{Pending: nonTx}, Run: run(journal.Running, "00002_m2.sql")},
			"check what 00002_m2.sql left behind (it ran without a transaction and was cut off): the next migrator refuses it"},
		{"cut off in the migrate command", Report{Status: engine.Status{Pending: pending}, Run: run(journal.Running, engine.CommandStep)},
			"start a replica that migrates: it ends what is left of the cut-off migrate command's sessions"},
		{"migrating", Report{Status: engine.Status{Pending: pending}, Holder: holder, Run: run(journal.Running, "00002_m2.sql")},
			"wait: the migrator is at work; if it is stuck (the same statement for far longer than it should take), stop it with schemagate abort, or SELECT pg_terminate_backend(4242)"},
		{"failed", Report{Status: engine.Status{Pending: pending}, Run: run(journal.Failed, "00002_m2.sql")},
			"fix 00002_m2.sql (the error above)"},
		{"ready", Report{Status: engine.Status{TableExists: true, Current: 2, Target: 2}}, "nothing: the schema is what this release needs"},
		{"ahead", Report{Status: engine.Status{TableExists: true, Current: 3, Target: 2, Unknown: []int64{3}}},
			"nothing for this release; the database holds newer migrations"},
		{"about to migrate", Report{Status: engine.Status{Pending: pending}, Holder: holder},
			"wait: another replica holds the lock and is about to migrate"},
		{"nobody migrates", Report{Status: engine.Status{Pending: pending}}, "start a replica that migrates (a migrate Job"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextStep(&tc.r); !strings.HasPrefix(got, tc.want) {
				t.Errorf("next step %q\nwant %q…", got, tc.want)
			}
		})
	}
}

// TestResolve: a person's decision on an interrupted non-transactional migration is journaled,
// holding the election, and lets the next migrator go on.
func TestResolve(t *testing.T) {
	w := newWorld(t, 3, 2)
	w.schema.set(1)
	vanished(true)(t, w)
	first := w.replica("web-1", replicaOptions{})
	if err := first.Run(context.Background()); schemagate.ExitCodeOf(err) != schemagate.ExitMigrationFailed {
		t.Fatalf("before the resolution: %v, want the interrupted migration to stop the run", err)
	}
	admin := w.replica("admin", replicaOptions{})
	if _, err := admin.Resolve(context.Background(), Resolution{Migration: "00003_m3.sql", By: "ops", Reason: "x"}); schemagate.ExitCodeOf(err) != schemagate.ExitInvalidInput {
		t.Errorf("resolving a migration that was not interrupted: %v, want bad input", err)
	}
	did, err := admin.Resolve(context.Background(), Resolution{Migration: "2", By: "ops", Reason: "undone by hand"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "00002_m2.sql may run once more"; !strings.HasPrefix(did, want) {
		t.Errorf("Resolve says %q, want %q…", did, want)
	}
	if w.elect.Holder() != "" {
		t.Errorf("%s still holds the election after the resolution", w.elect.Holder())
	}
	next := w.replica("web-2", replicaOptions{})
	if err := next.Run(context.Background()); err != nil {
		t.Fatalf("after the resolution: %v", err)
	}
	tail, err := w.journal().Tail(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var resolution *journal.Entry
	for i := range tail {
		if tail[i].Kind == journal.KindResolution {
			resolution = &tail[i]
		}
	}
	if resolution == nil || resolution.Replica != "ops" || resolution.Outcome != journal.Rerun ||
		!strings.Contains(resolution.Error, "undone by hand") {
		t.Errorf("the resolution's row: %+v", resolution)
	}
}
