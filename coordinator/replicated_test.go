package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// The branches below are those of a backend that replicates the run's outcome among the
// replicas (lock.Replicated: Raft). A waiting replica then reads the database only at start and
// when the replicated state says the run ended, or when it has seen no leader for a while.

// TestReplicated runs a replica of a replicated backend while another replica (web-0) leads the
// cluster: the test moves the replicated state while the replica waits, and checks how it
// ends and how often it read the database.
func TestReplicated(t *testing.T) {
	type stage struct {
		lease lock.Lease // web-0's
		w     *world
	}
	announce := func(ev lock.Event) func(t *testing.T, s stage) {
		return func(t *testing.T, s stage) {
			if err := s.lease.Announce(context.Background(), nil, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	release := func(t *testing.T, s stage) {
		if err := s.lease.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	failure := lock.Event{Kind: lock.EventFailed, Replica: "web-0", Migration: "00002_m2.sql", Error: "boom"}
	failedRun := "migration 00002_m2.sql failed on replica web-0: boom"
	cases := []struct {
		name string
		mode Mode
		// before moves the state after web-0 claimed the run, before the replica starts;
		// during, one step at a time, while it waits.
		before func(t *testing.T, s stage)
		during []func(t *testing.T, s stage)

		want  string // "" for nil, else the error's text
		code  schemagate.ExitCode
		reads int // of the version table
		tries int
	}{
		{
			name:   "a failure of the run it waited for ends the wait without the database",
			during: []func(*testing.T, stage){announce(failure)},
			want:   failedRun, code: schemagate.ExitMigrationFailed, reads: 1,
		},
		{
			name: "a failure of another migration set does not",
			before: func(t *testing.T, s stage) {
				s.w.elect.SetOutcome(func(o *lock.Outcome) { o.Fingerprint = "set-0" })
			},
			during: []func(*testing.T, stage){
				func(t *testing.T, s stage) {
					s.w.elect.SetOutcome(func(o *lock.Outcome) { o.Phase, o.Error = lock.PhaseFailed, "boom" })
				},
				func(t *testing.T, s stage) {
					s.w.schema.set(1, 2, 3)
					s.w.elect.SetOutcome(func(o *lock.Outcome) { o.Phase, o.Fingerprint = lock.PhaseDone, fingerprint })
				},
			},
			code: schemagate.ExitReady, reads: 2,
		},
		{
			name: "progress is not a reason to read the database; the end is",
			during: []func(*testing.T, stage){
				announce(lock.Event{Kind: lock.EventApplied, Migration: "00002_m2.sql"}),
				func(t *testing.T, s stage) {
					s.w.schema.set(1, 2, 3)
					announce(lock.Event{Kind: lock.EventDone})(t, s)
				},
			},
			code: schemagate.ExitReady, reads: 2,
		},
		{
			name:   "migrate mode: a failure from before it started is retried",
			before: announce(failure),
			during: []func(*testing.T, stage){release},
			code:   schemagate.ExitReady, reads: 3, tries: 1,
		},
		{
			name: "wait mode: a failure from before it started ends the wait", mode: ModeWait,
			before: announce(failure),
			during: []func(*testing.T, stage){release},
			want:   failedRun, code: schemagate.ExitMigrationFailed, reads: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3)
			w.schema.set(1)
			leader := w.elect.ReplicatedLocker("web-0")
			defer leader.Close()
			lease, err := leader.TryAcquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s := stage{lease: lease, w: w}
			if tc.before != nil {
				tc.before(t, s)
			}
			r := w.replica("web-1", replicaOptions{mode: tc.mode, replicated: true})
			done := r.start(context.Background())
			for i, step := range tc.during {
				// Act only once the replica has published that it waits again after the last
				// step, so that each step is one the replica sees on its own.
				_, seen := r.obs.await(t, 0, "waiting", func(s Snapshot) bool { return s.Phase == PhaseWaiting })
				for range i {
					_, seen = r.obs.await(t, seen, "waiting again", func(s Snapshot) bool { return s.Phase == PhaseWaiting })
				}
				w.awaitWaiting(1)
				step(t, s)
			}
			err = result(t, done)
			if errText(err) != tc.want {
				t.Errorf("Run: %v, want %q", err, tc.want)
			}
			if code := schemagate.ExitCodeOf(err); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if reads := r.engine.reads(); reads != tc.reads {
				t.Errorf("%d reads of the version table, want %d", reads, tc.reads)
			}
			if tries, _ := r.locker.counts(); tries != tc.tries {
				t.Errorf("%d tries to lead, want %d", tries, tc.tries)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// gateOf returns a gate of r as Run starts one, with the schema read once (behind, at 1 of 3)
// and the replicated state as it stands taken as the state at start.
func gateOf(r *replica) *gate {
	st, _ := r.engine.Status(context.Background())
	g := &gate{c: r.Coordinator, started: time.Now(), backoff: r.cfg.RetryMin, progress: pacer{every: r.cfg.ProgressInterval}}
	g.status, g.readAt = &st, time.Now()
	if rep, ok := r.deps.Locker.(lock.Replicated); ok {
		g.replicated.start(rep.Outcome())
	}
	return g
}

// TestStranded: a replica that has seen no leader for strandedAfter, and has not read the
// database for as long, reads it; a leader seen again resets the count.
func TestStranded(t *testing.T) {
	long := -strandedAfter - time.Second
	cases := []struct {
		name            string
		leaderless      bool
		leaderlessSince time.Duration // before now; 0 for not yet
		readAgo         time.Duration
		want            bool
		wantSince       bool // leaderlessSince set afterwards
	}{
		{name: "a leader", leaderless: false, leaderlessSince: long, readAgo: long, want: false, wantSince: false},
		{name: "no leader, just now", leaderless: true, readAgo: long, want: false, wantSince: true},
		{name: "no leader for long, read long ago", leaderless: true, leaderlessSince: long, readAgo: long, want: true, wantSince: true},
		{name: "no leader for long, read just now", leaderless: true, leaderlessSince: long, readAgo: 0, want: false, wantSince: true},
		{name: "no leader for a moment, read long ago", leaderless: true, leaderlessSince: -time.Second, readAgo: long, want: false, wantSince: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &gate{readAt: time.Now().Add(tc.readAgo)}
			if tc.leaderlessSince != 0 {
				g.replicated.leaderlessSince = time.Now().Add(tc.leaderlessSince)
			}
			if got := g.stranded(lock.Outcome{Leaderless: tc.leaderless}); got != tc.want {
				t.Errorf("stranded = %v, want %v", got, tc.want)
			}
			if set := !g.replicated.leaderlessSince.IsZero(); set != tc.wantSince {
				t.Errorf("leaderlessSince set: %v, want %v", set, tc.wantSince)
			}
		})
	}
}

// TestStepReplicated checks one step of a waiting replica of a replicated backend, from a state
// a test sets: when it reads the database, when it ends, and when it looks again at once
// instead of waiting.
func TestStepReplicated(t *testing.T) {
	cases := []struct {
		name string
		// set moves the replicated state after the gate started; g is the gate.
		set        func(w *world, g *gate)
		tryAcquire func(w *world) (lock.Lease, error) // web-1's try, when nobody holds
		holder     bool                               // web-0 holds the election
		schema     []int64                            // the version table when the step reads

		want  next
		err   error
		reads int // during the step
	}{
		{
			name: "stranded: no leader for long, the database says ready", holder: true, schema: []int64{1, 2, 3},
			set: func(w *world, g *gate) {
				w.elect.SetOutcome(func(o *lock.Outcome) { o.Leaderless = true })
				g.replicated.leaderlessSince, g.readAt = time.Now().Add(-time.Minute), time.Now().Add(-time.Minute)
			},
			want: finished, reads: 1,
		},
		{
			name: "no leader for a moment: wait", holder: true, schema: []int64{1, 2, 3},
			set: func(w *world, g *gate) {
				w.elect.SetOutcome(func(o *lock.Outcome) { o.Leaderless = true })
			},
			want: wait, reads: 0,
		},
		{
			name: "done, not seen before: read, ready", holder: true, schema: []int64{1, 2, 3},
			set: func(w *world, g *gate) {
				w.elect.SetOutcome(func(o *lock.Outcome) { o.Phase = lock.PhaseDone })
			},
			want: finished, reads: 1,
		},
		{
			name: "done, and already read: wait", holder: true, schema: []int64{1, 2, 3},
			set: func(w *world, g *gate) {
				w.elect.SetOutcome(func(o *lock.Outcome) { o.Phase = lock.PhaseDone })
				g.replicated.readSeq = w.elect.Outcome().Seq
			},
			want: wait, reads: 0,
		},
		{
			name: "lost the race while the state moved: look again without waiting", schema: []int64{1},
			tryAcquire: func(w *world) (lock.Lease, error) {
				w.elect.SetOutcome(func(o *lock.Outcome) {})
				return nil, lock.ErrHeld
			},
			want: again, reads: 0,
		},
		{
			name: "lost the race, nothing moved: wait", schema: []int64{1},
			tryAcquire: func(w *world) (lock.Lease, error) { return nil, lock.ErrHeld },
			want:       wait, reads: 0,
		},
		{
			name: "failed, by another migration set: wait", holder: true, schema: []int64{1},
			set: func(w *world, g *gate) {
				w.elect.SetOutcome(func(o *lock.Outcome) { o.Phase, o.Fingerprint = lock.PhaseFailed, "set-0" })
			},
			want: wait, reads: 0,
		},
		{
			name: "failed, this set, after the start: the end", holder: true, schema: []int64{1},
			set: func(w *world, g *gate) {
				w.elect.SetOutcome(func(o *lock.Outcome) { o.Phase, o.Migration, o.Error = lock.PhaseFailed, "00002_m2.sql", "boom" })
			},
			want: finished, err: errors.New("migration 00002_m2.sql failed on replica web-0: boom"), reads: 0,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 3)
			w.schema.set(1)
			if tc.holder {
				leader := w.elect.Locker("web-0")
				defer leader.Close()
				if _, err := leader.TryAcquire(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			r := w.replica("web-1", replicaOptions{replicated: true, config: func(c *Config) {
				c.PollInterval = 10 * time.Millisecond // a wait that nothing ends
			}})
			if tc.tryAcquire != nil {
				r.locker.steer(func(context.Context) (lock.Lease, error) { return tc.tryAcquire(w) }, nil)
			}
			g := gateOf(r)
			if tc.set != nil {
				tc.set(w, g)
			}
			w.schema.set(tc.schema...)
			before := r.engine.reads()
			n, err := g.stepReplicated(context.Background(), r.deps.Locker.(lock.Replicated))
			if n != tc.want || mismatch(err, tc.err) != "" {
				t.Errorf("step: %v, %v; want %v, %v", n, err, tc.want, tc.err)
			}
			if reads := r.engine.reads() - before; reads != tc.reads {
				t.Errorf("%d reads, want %d", reads, tc.reads)
			}
		})
	}
}

// TestWaitedFor: which failed run in the journal ends a replica's wait.
func TestWaitedFor(t *testing.T) {
	run := func(id int64, outcome journal.Outcome, set string) *journal.Entry {
		return &journal.Entry{ID: id, Kind: journal.KindRun, Outcome: outcome, Fingerprint: set}
	}
	cases := []struct {
		name  string
		mode  Mode
		first *journal.Entry // the last run when the replica started
		run   *journal.Entry
		want  bool
	}{
		{name: "no run", run: nil, want: false},
		{name: "a run that succeeded", run: run(1, journal.Succeeded, fingerprint), want: false},
		{name: "a run that is running", run: run(1, journal.Running, fingerprint), want: false},
		{name: "an abandoned run", run: run(1, journal.Abandoned, fingerprint), want: false},
		{name: "a cancelled run", run: run(1, journal.Cancelled, fingerprint), want: false},
		{name: "a lost run", run: run(1, journal.Lost, fingerprint), want: false},
		{name: "a failed run of another set", run: run(1, journal.Failed, "set-0"), want: false},
		{name: "a failed run, no run at start", run: run(1, journal.Failed, fingerprint), want: true},
		{name: "a failed run that ran at start", first: run(1, journal.Running, fingerprint), run: run(1, journal.Failed, fingerprint), want: true},
		{name: "a failed run that began later", first: run(1, journal.Succeeded, fingerprint), run: run(2, journal.Failed, fingerprint), want: true},
		{name: "a failure from before the start: retried", first: run(1, journal.Failed, fingerprint), run: run(1, journal.Failed, fingerprint), want: false},
		{name: "a failure from before the start, wait mode", mode: ModeWait, first: run(1, journal.Failed, fingerprint), run: run(1, journal.Failed, fingerprint), want: true},
	}
	w := newWorld(t, 3)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := w.replica("web-1", replicaOptions{mode: tc.mode})
			g := &gate{c: r.Coordinator, first: tc.first, firstRead: true}
			if got := g.waitedFor(tc.run); got != tc.want {
				t.Errorf("waitedFor = %v, want %v", got, tc.want)
			}
		})
	}
}
