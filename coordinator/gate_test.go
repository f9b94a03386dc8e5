package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// Journal rows that earlier migrators left, for a test to start from.

// failedBefore: replica web-0 ran this migration set (or another: set) and failed at
// migration 2.
func failedBefore(set string) func(t *testing.T, w *world) {
	return func(t *testing.T, w *world) {
		j := w.ensureJournal()
		ctx := context.Background()
		id, err := j.StartRun(ctx, "web-0", set, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		m := w.plan.Migrations[1]
		if err := j.FinishRun(ctx, id, journal.Failed, &m, "boom"); err != nil {
			t.Fatal(err)
		}
	}
}

// vanished: replica web-0 began a run and vanished; with nonTx, in the middle of migration 2
// run without a transaction.
func vanished(nonTx bool) func(t *testing.T, w *world) {
	return func(t *testing.T, w *world) {
		j := w.ensureJournal()
		ctx := context.Background()
		id, err := j.StartRun(ctx, "web-0", fingerprint, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !nonTx {
			return
		}
		m := w.plan.Migrations[1]
		if err := j.SetCurrent(ctx, id, m); err != nil {
			t.Fatal(err)
		}
		if _, err := j.StartMigration(ctx, id, "web-0", m); err != nil {
			t.Fatal(err)
		}
	}
}

// migrationRows returns the journal's rows of non-transactional migrations, oldest first.
func migrationRows(t *testing.T, w *world) []journal.Entry {
	t.Helper()
	tail, err := w.journal().Tail(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []journal.Entry
	for _, e := range slices.Backward(tail) {
		if e.Kind == journal.KindMigration {
			out = append(out, e)
		}
	}
	return out
}

func kinds(events []lock.Event) []lock.EventKind {
	var out []lock.EventKind
	for _, e := range events {
		out = append(out, e.Kind)
	}
	return out
}

// firstCall returns a function that reports true the first time it is called, false after.
func firstCall() func() bool {
	calls := 0
	return func() bool {
		calls++
		return calls == 1
	}
}

var (
	started = lock.EventStarted
	applied = lock.EventApplied
	done    = lock.EventDone
	failed  = lock.EventFailed
)

// TestRun runs one replica's gate from a given database, journal and election, and checks how
// it ends: its error and exit code, its last phase, the version table, the journal's runs, what
// it announced, and whether it took part in the election.
func TestRun(t *testing.T) {
	unexpected := errors.New("permission denied for table goose_db_version")
	cases := []struct {
		name    string
		mode    Mode
		nonTx   []int64
		applied []int64 // the version table at start
		journal func(t *testing.T, w *world)
		config  func(c *Config)
		setup   func(t *testing.T, w *world, r *replica)

		want     error // nil, or an error whose text the result's contains
		code     schemagate.ExitCode
		phase    Phase
		ready    bool
		versions []int64
		runs     []journal.Outcome
		events   []lock.EventKind
		tries    int // TryAcquire calls
		check    func(t *testing.T, w *world, r *replica)
	}{
		{
			name: "ready: nothing to do", applied: []int64{1, 2, 3},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
		},
		{
			name: "ahead under ready", applied: []int64{1, 2, 3, 4},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3, 4},
		},
		{
			name: "ahead under unready", applied: []int64{1, 2, 3, 4},
			config: func(c *Config) { c.WhenAhead = AheadUnready },
			code:   schemagate.ExitReady, phase: PhaseUnready, ready: false, versions: []int64{1, 2, 3, 4},
		},
		{
			name: "ahead under exit", applied: []int64{1, 2, 3, 4},
			config: func(c *Config) { c.WhenAhead = AheadExit },
			want:   errors.New("--when-ahead=exit stops this replica"), code: schemagate.ExitAhead,
			phase: PhaseFailed, versions: []int64{1, 2, 3, 4},
		},
		{
			name: "out of order: refused before any run", applied: []int64{2},
			want: errors.New("00001_m1.sql not applied although the database is already at version 2"),
			code: schemagate.ExitInvalidInput, phase: PhaseFailed, versions: []int64{2},
		},
		{
			name: "behind: migrates",
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Succeeded}, events: []lock.EventKind{started, applied, applied, applied, done},
			tries: 1,
			check: func(t *testing.T, w *world, r *replica) {
				if r.role != RoleMigrator || r.obs.elected != 1 || r.obs.gated != 1 {
					t.Errorf("role %s, elected %d, gated %d; want migrator, 1, 1", r.role, r.obs.elected, r.obs.gated)
				}
				if want := []string{"00001_m1.sql", "00002_m2.sql", "00003_m3.sql"}; !slices.Equal(r.obs.migrated, want) {
					t.Errorf("migrated %q, want %q", r.obs.migrated, want)
				}
				applied, err := w.journal().Applied(context.Background())
				if err != nil || len(applied) != 3 || applied[0].RunID != w.runs()[0].ID {
					t.Errorf("applied records %+v, %v; want 3 of the run", applied, err)
				}
			},
		},
		{
			name: "behind by two: applies only those", applied: []int64{1},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Succeeded}, events: []lock.EventKind{started, applied, applied, done}, tries: 1,
		},
		{
			name: "wait mode: a failed run from before ends the wait", mode: ModeWait, applied: []int64{1},
			journal: failedBefore(fingerprint),
			want:    errors.New("migration 00002_m2.sql failed on replica web-0: boom"), code: schemagate.ExitMigrationFailed,
			phase: PhaseFailed, versions: []int64{1}, runs: []journal.Outcome{journal.Failed},
		},
		{
			name: "migrate mode: a failed run from before is retried", applied: []int64{1},
			journal: failedBefore(fingerprint),
			code:    schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Failed, journal.Succeeded}, events: []lock.EventKind{started, applied, applied, done},
			tries: 1,
		},
		{
			name: "wait mode: a failed run of another migration set is not this replica's", mode: ModeWait, applied: []int64{1},
			journal: failedBefore("set-0"), config: func(c *Config) { c.Timeout = 300 * time.Millisecond },
			want: errors.New("no replica is migrating, and this one never migrates (wait mode)"), code: schemagate.ExitTimeout,
			phase: PhaseWaiting, versions: []int64{1}, runs: []journal.Outcome{journal.Failed},
		},
		{
			name: "a vanished migrator's run is abandoned", applied: []int64{1},
			journal: vanished(false),
			code:    schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Abandoned, journal.Succeeded}, events: []lock.EventKind{started, applied, applied, done},
			tries: 1,
			check: func(t *testing.T, w *world, r *replica) {
				if e := w.runs()[0].Error; e != "the migrator vanished before finishing" {
					t.Errorf("the abandoned run says %q", e)
				}
			},
		},
		{
			name: "a non-transactional migration interrupted midway stops everyone", nonTx: []int64{2}, applied: []int64{1},
			journal: vanished(true),
			want:    errors.New("non-transactional migration 00002_m2.sql (started by replica web-0"),
			code:    schemagate.ExitMigrationFailed, phase: PhaseFailed, versions: []int64{1},
			runs: []journal.Outcome{journal.Abandoned, journal.Failed}, events: []lock.EventKind{failed}, tries: 1,
			check: func(t *testing.T, w *world, r *replica) {
				if rows := migrationRows(t, w); len(rows) != 1 || rows[0].Outcome != journal.Interrupted {
					t.Errorf("the migration rows: %+v; want one interrupted", rows)
				}
			},
		},
		{
			name: "an interrupted migration runs again under --rerun-interrupted", nonTx: []int64{2}, applied: []int64{1},
			journal: vanished(true), config: func(c *Config) { c.RerunInterrupted = true },
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Abandoned, journal.Succeeded}, events: []lock.EventKind{started, applied, applied, done},
			tries: 1,
			check: func(t *testing.T, w *world, r *replica) {
				rows := migrationRows(t, w)
				if len(rows) != 2 || rows[0].Outcome != journal.Rerun || rows[1].Outcome != journal.Succeeded {
					t.Errorf("the migration rows: %+v; want the interrupted one marked rerun, then its rerun succeeded", rows)
				}
			},
		},
		{
			name: "an interrupted migration applied since does not stop anyone", nonTx: []int64{2}, applied: []int64{1, 2},
			journal: func(t *testing.T, w *world) {
				vanished(true)(t, w)
				if _, err := w.journal().Abandon(context.Background()); err != nil {
					t.Fatal(err)
				}
			},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Abandoned, journal.Succeeded}, events: []lock.EventKind{started, applied, done}, tries: 1,
		},
		{
			name: "a migration fails", applied: []int64{1},
			setup: func(t *testing.T, w *world, r *replica) {
				r.engine.onApply(func(_ context.Context, m engine.Migration) error {
					if m.Version == 2 {
						return errors.New("boom")
					}
					return nil
				})
			},
			want: errors.New("migration 00002_m2.sql failed: boom; the database stays at version 1"),
			code: schemagate.ExitMigrationFailed, phase: PhaseFailed, versions: []int64{1},
			runs: []journal.Outcome{journal.Failed}, events: []lock.EventKind{started, failed}, tries: 1,
			check: func(t *testing.T, w *world, r *replica) {
				var f *MigrationFailedError
				if err := r.lastErr; !errors.As(err, &f) || !f.Here || f.Replica != "web-1" {
					t.Errorf("error %#v; want a MigrationFailedError here, on web-1", err)
				}
				if run := w.runs()[0]; run.Name != "00002_m2.sql" || !strings.Contains(run.Error, "boom") {
					t.Errorf("the journal's run names %q, %q", run.Name, run.Error)
				}
				if ev := w.elect.Events()[1]; ev.Migration != "00002_m2.sql" || !strings.Contains(ev.Error, "boom") {
					t.Errorf("the failure was announced as %+v", ev)
				}
				if want := []string{"00002_m2.sql failed"}; !slices.Equal(r.obs.migrated, want) {
					t.Errorf("migrated %q, want %q", r.obs.migrated, want)
				}
			},
		},
		{
			name: "a non-transactional migration fails", nonTx: []int64{2}, applied: []int64{1},
			setup: func(t *testing.T, w *world, r *replica) {
				r.engine.onApply(func(_ context.Context, m engine.Migration) error {
					if m.Version == 2 {
						return errors.New("boom")
					}
					return nil
				})
			},
			want: errors.New("boom (non-transactional: statements before the failing one stay applied)"),
			code: schemagate.ExitMigrationFailed, phase: PhaseFailed, versions: []int64{1},
			runs: []journal.Outcome{journal.Failed}, events: []lock.EventKind{started, failed}, tries: 1,
			check: func(t *testing.T, w *world, r *replica) {
				if rows := migrationRows(t, w); len(rows) != 1 || rows[0].Outcome != journal.Failed {
					t.Errorf("the migration rows: %+v; want one failed", rows)
				}
			},
		},
		{
			name: "the database is unavailable for a while", applied: []int64{1, 2, 3},
			setup: func(t *testing.T, w *world, r *replica) {
				r.engine.statusErrs = []error{errUnavailable, errUnavailable}
			},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			check: func(t *testing.T, w *world, r *replica) {
				s, _ := r.obs.await(t, 0, "that says the database is unavailable", func(s Snapshot) bool { return s.Unreachable != nil })
				if s.Ready || !strings.Contains(s.Reason, "database unavailable since") {
					t.Errorf("while unavailable: %+v", s)
				}
				if last := r.obs.last(); last.Unreachable != nil {
					t.Errorf("still unreachable after a good read: %+v", last)
				}
			},
		},
		{
			name: "the database refuses this replica", applied: []int64{1, 2, 3},
			setup: func(t *testing.T, w *world, r *replica) { r.engine.failStatus(errRefused) },
			want:  errRefused, code: schemagate.ExitUnreachable, phase: PhaseStarting, versions: []int64{1, 2, 3},
		},
		{
			name: "the database is unavailable until the deadline", applied: []int64{1, 2, 3},
			config: func(c *Config) { c.Timeout = 200 * time.Millisecond },
			setup:  func(t *testing.T, w *world, r *replica) { r.engine.failStatus(errUnavailable) },
			want:   errUnavailable, code: schemagate.ExitUnreachable, phase: PhaseStarting, versions: []int64{1, 2, 3},
		},
		{
			name: "an error that is neither is the run's end", applied: []int64{1, 2, 3},
			setup: func(t *testing.T, w *world, r *replica) { r.engine.failStatus(unexpected) },
			want:  unexpected, code: schemagate.ExitMigrationFailed, phase: PhaseStarting, versions: []int64{1, 2, 3},
		},
		{
			name: "the election is unavailable for a moment",
			setup: func(t *testing.T, w *world, r *replica) {
				first := firstCall()
				r.locker.steer(func(ctx context.Context) (lock.Lease, error) {
					if first() {
						return nil, errUnavailable
					}
					return r.locker.Locker.TryAcquire(ctx)
				}, nil)
			},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Succeeded}, events: []lock.EventKind{started, applied, applied, applied, done},
			tries: 2,
		},
		{
			name: "the holder cannot be read for a moment",
			setup: func(t *testing.T, w *world, r *replica) {
				first := firstCall()
				r.locker.steer(nil, func(ctx context.Context) (*lock.Holder, error) {
					if first() {
						return nil, errUnavailable
					}
					return r.locker.Locker.Holder(ctx)
				})
			},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Succeeded}, events: []lock.EventKind{started, applied, applied, applied, done},
			tries: 1,
		},
		{
			name: "another replica won the race: wait, then try again",
			// Nobody holds the election when this replica looks, and its try loses: it waits,
			// ended by its poll since nothing else happens, and tries again.
			config: func(c *Config) { c.PollInterval = 20 * time.Millisecond },
			setup: func(t *testing.T, w *world, r *replica) {
				first := firstCall()
				r.locker.steer(func(ctx context.Context) (lock.Lease, error) {
					if first() {
						return nil, lock.ErrHeld
					}
					return r.locker.Locker.TryAcquire(ctx)
				}, nil)
			},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3},
			runs: []journal.Outcome{journal.Succeeded}, events: []lock.EventKind{started, applied, applied, applied, done},
			tries: 2,
			check: func(t *testing.T, w *world, r *replica) {
				if _, waits := r.locker.counts(); waits != 1 {
					t.Errorf("%d waits between the tries; want 1", waits)
				}
			},
		},
		{
			name: "the election fails for good",
			setup: func(t *testing.T, w *world, r *replica) {
				r.locker.steer(func(context.Context) (lock.Lease, error) { return nil, unexpected }, nil)
			},
			want: unexpected, code: schemagate.ExitMigrationFailed, phase: PhaseStarting, tries: 1,
		},
		{
			name: "the schema is ready when the migrator has won: another finished just before", applied: []int64{1},
			setup: func(t *testing.T, w *world, r *replica) {
				r.locker.steer(func(ctx context.Context) (lock.Lease, error) {
					w.schema.set(1, 2, 3)
					return r.locker.Locker.TryAcquire(ctx)
				}, nil)
			},
			code: schemagate.ExitReady, phase: PhaseReady, ready: true, versions: []int64{1, 2, 3}, tries: 1,
			check: func(t *testing.T, w *world, r *replica) {
				if r.role != RoleWaiter || w.elect.Holder() != "" {
					t.Errorf("role %s, holder %q: want a waiter that let go of the election", r.role, w.elect.Holder())
				}
			},
		},
		{
			name: "the run this replica waited for failed just before it won", applied: []int64{1},
			// At start web-0 migrates (its run is running); when this replica wins, that run
			// has failed: it ends with that failure and does not retry.
			journal: vanished(false),
			setup: func(t *testing.T, w *world, r *replica) {
				r.locker.steer(func(ctx context.Context) (lock.Lease, error) {
					m := w.plan.Migrations[1]
					if err := w.journal().FinishRun(ctx, w.runs()[0].ID, journal.Failed, &m, "boom"); err != nil {
						t.Error(err)
					}
					return r.locker.Locker.TryAcquire(ctx)
				}, nil)
			},
			want: errors.New("migration 00002_m2.sql failed on replica web-0: boom"), code: schemagate.ExitMigrationFailed,
			phase:    PhaseFailed,
			versions: []int64{1}, runs: []journal.Outcome{journal.Failed}, tries: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3, tc.nonTx...)
			w.schema.set(tc.applied...)
			if tc.journal != nil {
				tc.journal(t, w)
			}
			r := w.replica("web-1", replicaOptions{mode: tc.mode, config: tc.config})
			if tc.setup != nil {
				tc.setup(t, w, r)
			}
			err := r.Run(context.Background())
			r.lastErr = err
			if m := mismatch(err, tc.want); m != "" {
				t.Errorf("Run: %s", m)
			}
			if code := schemagate.ExitCodeOf(err); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			last := r.obs.last()
			if (tc.phase != "" && last.Phase != tc.phase) || last.Ready != tc.ready {
				t.Errorf("last published %s, ready %v (%s); want %s, ready %v", last.Phase, last.Ready, last.Reason, tc.phase, tc.ready)
			}
			if got := w.schema.versions(); !slices.Equal(got, tc.versions) {
				t.Errorf("versions applied %v, want %v", got, tc.versions)
			}
			if twice := w.schema.twice(); len(twice) > 0 {
				t.Errorf("versions applied twice: %v", twice)
			}
			if got := w.outcomes(); !slices.Equal(got, tc.runs) {
				t.Errorf("journal runs %v, want %v", got, tc.runs)
			}
			if got := kinds(w.elect.Events()); !slices.Equal(got, tc.events) {
				t.Errorf("announced %v, want %v", got, tc.events)
			}
			if tries, _ := r.locker.counts(); tries != tc.tries {
				t.Errorf("%d tries to take the election, want %d", tries, tc.tries)
			}
			if w.elect.Holder() != "" {
				t.Errorf("%s still holds the election", w.elect.Holder())
			}
			if tc.check != nil {
				tc.check(t, w, r)
			}
		})
	}
}

// TestAheadNamesTheNewerRelease: a replica that finds the database ahead of its release says,
// whatever --when-ahead decides, which release put it there, who ran it and in which run.
func TestAheadNamesTheNewerRelease(t *testing.T) {
	for _, policy := range []AheadPolicy{AheadReady, AheadUnready, AheadExit} {
		t.Run(string(policy), func(t *testing.T) {
			w := newWorld(t, 3)
			w.schema.set(1, 2, 3, 4)
			j := w.ensureJournal()
			ctx := context.Background()
			id, err := j.StartRun(ctx, "web-9", "set-of-the-newer-release", 3, 4)
			if err != nil {
				t.Fatal(err)
			}
			if err := j.FinishRun(ctx, id, journal.Succeeded, nil, ""); err != nil {
				t.Fatal(err)
			}
			r := w.replica("web-1", replicaOptions{config: func(c *Config) { c.WhenAhead = policy }})
			_ = r.Run(ctx)
			want := fmt.Sprintf("release set-of-t… (migration set set-of-the-newer-release, applied by replica web-9 in run #%d", id)
			if log := r.log.String(); !strings.Contains(log, want) || !strings.Contains(log, `"newer_replica":"web-9"`) {
				t.Errorf("the log does not name the newer release:\n%s", log)
			}
		})
	}
}
