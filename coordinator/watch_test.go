package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/lock"
)

// watching runs r's Watch in a goroutine until the test ends; the returned channel yields what
// Watch returned. Reads after the first come only from announcements (or, while the database is
// unreachable, the retry backoff): the interval is far longer than any test.
func watching(t *testing.T, r *replica) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		done <- r.Watch(ctx, time.Hour)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return done
}

// announcer is a migrator of a newer release, whose announcements wake a watching replica.
func (w *world) announcer() lock.Lease {
	w.t.Helper()
	l := w.elect.Locker("web-9")
	w.t.Cleanup(func() { l.Close() })
	lease, err := l.TryAcquire(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return lease
}

func announce(t *testing.T, lease lock.Lease) {
	t.Helper()
	if err := lease.Announce(context.Background(), nil, lock.Event{Kind: lock.EventApplied, Replica: "web-9"}); err != nil {
		t.Fatal(err)
	}
}

// TestWatchTransitions follows a ready replica through what can happen to its database later,
// one change at a time: each is announced, and the replica's next report must say so.
func TestWatchTransitions(t *testing.T) {
	w := newWorld(t, 3)
	w.schema.set(1, 2, 3)
	r := w.replica("web-1", replicaOptions{})
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	newer := w.announcer()
	from := len(r.obs.all())
	watching(t, r)
	steps := []struct {
		name string
		act  func()
		// want is the report that must follow.
		want func(s Snapshot) bool
		// log is a line the change must have logged, if any.
		log string
	}{
		{
			name: "ready",
			want: func(s Snapshot) bool {
				return s.Phase == PhaseReady && s.Ready && s.Unreachable == nil && s.Role == RoleWaiter
			},
		},
		{
			name: "restored from a backup: behind, unready",
			act:  func() { w.schema.set(1, 2) },
			want: func(s Snapshot) bool {
				return s.Phase == PhaseUnready && !s.Ready &&
					strings.HasPrefix(s.Reason, "the database is behind this replica: 00003_m3.sql is not applied")
			},
			log: "not ready: the database is behind this replica",
		},
		{
			name: "migrated again: ready again",
			act:  func() { w.schema.set(1, 2, 3) },
			want: func(s Snapshot) bool { return s.Phase == PhaseReady && s.Ready },
			log:  "ready again: the database is at version 3",
		},
		{
			name: "unreachable: the verdict stands, and says since when",
			act:  func() { r.engine.failStatus(errUnavailable) },
			want: func(s Snapshot) bool {
				return s.Phase == PhaseReady && s.Ready && errors.Is(s.Unreachable, errUnavailable) && !s.UnreachableSince.IsZero()
			},
			log: "database unavailable; the verdict stays that of the last read",
		},
		{
			name: "reachable again",
			act:  func() { r.engine.failStatus(nil) },
			want: func(s Snapshot) bool { return s.Phase == PhaseReady && s.Ready && s.Unreachable == nil },
			log:  "database reachable again",
		},
		{
			name: "unreachable while behind: stays unready",
			act: func() {
				w.schema.set(1, 2)
				announce(t, newer)
				r.obs.await(t, from, "behind", func(s Snapshot) bool { return s.Phase == PhaseUnready })
				r.engine.failStatus(errUnavailable)
			},
			want: func(s Snapshot) bool { return s.Phase == PhaseUnready && !s.Ready && s.Unreachable != nil },
		},
		{
			name: "back, and a newer release migrated: ahead, ready under --when-ahead=ready",
			act: func() {
				w.schema.set(1, 2, 3, 4)
				r.engine.failStatus(nil)
			},
			want: func(s Snapshot) bool {
				return s.Phase == PhaseReady && s.Ready && s.Status.Ahead() && s.Unreachable == nil
			},
		},
	}
	for _, step := range steps {
		if step.act != nil {
			step.act()
			announce(t, newer)
		}
		var s Snapshot
		s, from = r.obs.await(t, from, step.name, step.want)
		if s.Holder == nil || s.Holder.Replica != "web-9" {
			t.Errorf("%s: the holder is %+v, want web-9", step.name, s.Holder)
		}
		if step.log != "" && !strings.Contains(r.log.String(), step.log) {
			t.Errorf("%s: the log does not say %q:\n%s", step.name, step.log, r.log.String())
		}
	}
}

// TestWatchVerdict checks the first report of a watching replica, from the database and
// journal it finds and what its gate ended with.
func TestWatchVerdict(t *testing.T) {
	cases := []struct {
		name      string
		gated     bool // the gate ended ready
		whenAhead AheadPolicy
		applied   []int64
		journal   func(t *testing.T, w *world)
		statusErr error

		phase  Phase
		ready  bool
		reason string // the start of the reason
		err    error
		code   schemagate.ExitCode
	}{
		{name: "ready", gated: true, applied: []int64{1, 2, 3},
			phase: PhaseReady, ready: true, reason: "the database is at version 3, which this replica needs"},
		{name: "ahead under unready", gated: true, whenAhead: AheadUnready, applied: []int64{1, 2, 3, 4},
			phase: PhaseUnready, reason: "the database is at version 4, ahead of this replica's 3 (version 4 unknown here); --when-ahead=unready"},
		{name: "ahead under exit", gated: true, whenAhead: AheadExit, applied: []int64{1, 2, 3, 4},
			phase: PhaseFailed, reason: "the database is at version 4, ahead", err: errors.New("--when-ahead=exit stops this replica"),
			code: schemagate.ExitAhead},
		{name: "never ready, nothing failed: waiting", applied: []int64{1},
			phase: PhaseWaiting, reason: "the database is at version 1; this replica needs 3 (2 pending, next 00002_m2.sql)"},
		{name: "never ready, the last run failed", applied: []int64{1}, journal: failedBefore(fingerprint),
			phase: PhaseFailed, reason: "the database is at version 1; this replica needs 3 (2 pending, next 00002_m2.sql); " +
				"the last migration run failed: migration 00002_m2.sql failed on replica web-0: boom"},
		{name: "ready once, behind now, the last run failed", gated: true, applied: []int64{1}, journal: failedBefore(fingerprint),
			phase: PhaseUnready, reason: "the database is behind this replica: 00002_m2.sql is not applied (restored from a backup, " +
				"or rolled back by hand?); the database is at version 1; this replica needs 3 (2 pending, next 00002_m2.sql); " +
				"the last migration run failed"},
		{name: "unreachable from the start", gated: false, statusErr: errUnavailable,
			phase: PhaseStarting, reason: "the schema has not been read yet"},
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
			r.gated = tc.gated
			r.engine.failStatus(tc.statusErr)
			done := watching(t, r)
			s, _ := r.obs.await(t, 0, "the first", func(Snapshot) bool { return true })
			if s.Phase != tc.phase || s.Ready != tc.ready || !strings.HasPrefix(s.Reason, tc.reason) {
				t.Errorf("first report: %s, ready %v, %q\nwant %s, ready %v, %q…", s.Phase, s.Ready, s.Reason, tc.phase, tc.ready, tc.reason)
			}
			if (tc.statusErr != nil) != (s.Unreachable != nil) {
				t.Errorf("unreachable: %v, want %v", s.Unreachable, tc.statusErr)
			}
			if tc.err == nil {
				return
			}
			select {
			case err := <-done:
				if mismatch(err, tc.err) != "" || schemagate.ExitCodeOf(err) != tc.code {
					t.Errorf("Watch: %v (exit %d), want %v (exit %d)", err, schemagate.ExitCodeOf(err), tc.err, tc.code)
				}
			case <-time.After(testTimeout):
				t.Fatal("Watch did not end")
			}
		})
	}
}

// TestWatchKeepsTheGatesVerdict: when the first read of Watch fails, the replica keeps the
// verdict its gate ended with (ready), saying since when the database is unreachable, rather
// than starting over as "not read yet".
func TestWatchKeepsTheGatesVerdict(t *testing.T) {
	w := newWorld(t, 3)
	w.schema.set(1, 2, 3)
	r := w.replica("web-1", replicaOptions{})
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	from := len(r.obs.all())
	r.engine.failStatus(errUnavailable)
	watching(t, r)
	s, _ := r.obs.await(t, from, "the first read of Watch", func(Snapshot) bool { return true })
	if !s.Ready || s.Phase != PhaseReady || s.Unreachable == nil {
		t.Errorf("first report of Watch: %s, ready %v, unreachable %v (%s); want the gate's ready verdict, unreachable",
			s.Phase, s.Ready, s.Unreachable, s.Reason)
	}
}

// TestWatchRole: the migrator of one rollout is a waiter of the next: once the journal's last
// run is another replica's, the role reported is waiter.
func TestWatchRole(t *testing.T) {
	w := newWorld(t, 3)
	r := w.replica("web-1", replicaOptions{})
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	newer := w.announcer()
	watching(t, r)
	_, from := r.obs.await(t, 0, "as the migrator", func(s Snapshot) bool { return s.Phase == PhaseReady && s.Role == RoleMigrator })
	failedBefore(fingerprint)(t, w) // the next rollout's run, by web-0
	announce(t, newer)
	r.obs.await(t, from, "as a waiter", func(s Snapshot) bool { return s.Role == RoleWaiter })
}
