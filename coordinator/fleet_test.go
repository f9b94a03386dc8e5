package coordinator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/lock"
)

// withSecret is a replica option: presence, and the fleet guard on SECRET_KEY with the
// fingerprint fp.
func withSecret(fp string) replicaOptions {
	fps := func(context.Context) (map[string]string, error) { return map[string]string{"SECRET_KEY": fp}, nil }
	return replicaOptions{presence: &presenceOptions{fingerprints: fps}, config: func(c *Config) {
		c.Host = "host-1"
		c.SameEnv = []string{"SECRET_KEY"}
	}}
}

// phases lists the phases replica showed, in order.
func phases(w *world, replica string) []string {
	var out []string
	for _, m := range w.elect.Shows(replica) {
		out = append(out, m.Phase)
	}
	return out
}

// readyMember shows, in w's fleet, a ready replica of set with fingerprint fp, ready since at.
func readyMember(t *testing.T, w *world, name, set, fp string, at time.Time) {
	t.Helper()
	m := lock.Member{Replica: name, Host: "host-0", MigrationSet: set, Phase: string(PhaseReady), Since: at,
		Fingerprints: map[string]string{"SECRET_KEY": fp}}
	if err := w.elect.Locker(name).Show(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// TestShowOnPhaseChangeOnly: a replica shows itself when its phase changes and at no other
// time, however often it publishes: the waiter waits through several wake-ups and shows
// "waiting" once, the migrator shows "migrating" once across every migration it applies.
func TestShowOnPhaseChangeOnly(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	waiter := w.replica("web-1", replicaOptions{mode: ModeWait, presence: &presenceOptions{}})
	waited := waiter.start(ctx)
	if err := w.elect.AwaitWaiting(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Wake the waiter twice with announcements that change nothing.
	noise := w.announcer()
	for range 2 {
		announce(t, noise)
		if err := w.elect.AwaitWaiting(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	noise.Release(ctx)
	migrator := w.replica("web-2", replicaOptions{presence: &presenceOptions{}})
	if err := migrator.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := result(t, waited); err != nil {
		t.Fatal(err)
	}
	if got := phases(w, "web-1"); !slices.Equal(got, []string{"waiting", "ready"}) {
		t.Errorf("the waiter showed %v, want [waiting ready]", got)
	}
	if got := phases(w, "web-2"); !slices.Equal(got, []string{"migrating", "ready"}) {
		t.Errorf("the migrator showed %v, want [migrating ready]", got)
	}
	shown := w.elect.Shows("web-2")[1]
	if shown.MigrationSet != fingerprint || shown.Replica != "web-2" || shown.Since.IsZero() {
		t.Errorf("the migrator's entry: %+v", shown)
	}
}

// TestShowFailureDoesNotStopTheGate: a replica that cannot show itself still gates, and says
// so once per change of phase.
func TestShowFailureDoesNotStopTheGate(t *testing.T) {
	w := newWorld(t, 2)
	broken := &presenceOptions{show: func(context.Context, lock.Member) error {
		return errors.New("permission denied for schema public (fake)")
	}}
	r := w.replica("web-1", replicaOptions{presence: broken})
	if err := r.Run(context.Background()); err != nil {
		t.Fatalf("Run with a failing Show: %v", err)
	}
	if n := strings.Count(r.log.String(), "could not show this replica to its fleet"); n != 2 {
		t.Errorf("%d warnings for 2 changes of phase (migrating, ready):\n%s", n, r.log.String())
	}
}

// TestFleetGuard: a replica whose value differs from the one on the ready replicas of its
// release is held back with exit code 8, naming the variable, the replicas and what would go
// wrong; the others are untouched. The first replica of a release, with nobody to compare
// with, is ready, and so is one whose release differs (a rotation with a new release).
func TestFleetGuard(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2)
	w.schema.set(1, 2)
	if err := w.replica("web-0", withSecret("v1:aaaa")).Run(ctx); err != nil {
		t.Fatalf("the first replica, alone: %v", err)
	}
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		if err := w.replica(name, withSecret("v1:aaaa")).Run(ctx); err != nil {
			t.Fatalf("%s with the same value: %v", name, err)
		}
	}
	odd := w.replica("web-4", withSecret("v1:bbbb"))
	err := odd.Run(ctx)
	d, ok := errors.AsType[*DisagreeError](err)
	if !ok {
		t.Fatalf("the replica with another value: %v, want a *DisagreeError", err)
	}
	if code := schemagate.ExitCodeOf(err); code != schemagate.ExitFleetDisagrees {
		t.Errorf("exit code %d, want 8", code)
	}
	want := "SECRET_KEY differs from the value on 4 ready replicas (web-0, web-1, web-2, web-3); " +
		"sessions and signed values from one replica would be rejected by another"
	if d.Error() != want {
		t.Errorf("message:\n%s\nwant:\n%s", d.Error(), want)
	}
	if s := odd.obs.last(); s.Phase != PhaseDisagrees || s.Ready || s.Reason != want {
		t.Errorf("the held-back replica's last report: %+v", s)
	}
	if got := phases(w, "web-4"); !slices.Equal(got, []string{"disagrees"}) {
		t.Errorf("the held-back replica showed %v, want [disagrees]", got)
	}
	for _, name := range []string{"web-0", "web-1", "web-2", "web-3"} {
		if got := phases(w, name); !slices.Equal(got, []string{"ready"}) {
			t.Errorf("%s showed %v: the held-back replica must not move the others", name, got)
		}
	}
	// The held-back replica is no ready one to compare with: another with the first value is
	// ready.
	if err := w.replica("web-5", withSecret("v1:aaaa")).Run(ctx); err != nil {
		t.Errorf("a replica with the fleet's value after one was held back: %v", err)
	}

	// Another release may hold another value: the rotation ships with it.
	w2 := newWorld(t, 2)
	w2.schema.set(1, 2)
	readyMember(t, w2, "old-0", "set-0", "v1:aaaa", time.Now().Add(-time.Hour))
	if err := w2.replica("web-0", withSecret("v1:bbbb")).Run(ctx); err != nil {
		t.Errorf("a new release with a new value: %v", err)
	}
	// A fingerprint of another version (or none) is not compared.
	readyMember(t, w2, "web-9", fingerprint, "v2:cccc", time.Now().Add(-time.Hour))
	if err := w2.replica("web-1", withSecret("v1:bbbb")).Run(ctx); err != nil {
		t.Errorf("against a fingerprint of another version: %v", err)
	}
}

// TestGuardUnknownVariable: a variable the guard knows nothing of gets the generic
// consequence; a long list of replicas is cut.
func TestGuardUnknownVariable(t *testing.T) {
	e := &DisagreeError{Differences: []Difference{{Variable: "FEATURE_FLAGS", Replicas: []string{"a", "b", "c",
		"d", "e", "f", "g", "h", "i", "j"}}}}
	want := "FEATURE_FLAGS differs from the value on 10 ready replicas (a, b, c, d, e, f, g, h, …); " +
		"replicas would behave differently depending on which one serves a request"
	if e.Error() != want {
		t.Errorf("message:\n%s\nwant:\n%s", e.Error(), want)
	}
	if got := Consequence("WEBUI_SECRET_KEY"); got != "users would be logged out when their requests move between replicas" {
		t.Errorf("WEBUI_SECRET_KEY's consequence: %q", got)
	}
}

// TestGuardWatch: a serving replica re-checks the guard on every read. Of two ready replicas
// that disagree (they became ready at the same moment, each before the other showed itself),
// the one ready later yields: unready, phase disagrees; it becomes ready again once the
// earlier one is gone. One ready earlier does not yield to one ready after it.
func TestGuardWatch(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2)
	w.schema.set(1, 2)
	r := w.replica("web-1", withSecret("v1:bbbb"))
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	newer := w.announcer()
	from := len(r.obs.all())
	watching(t, r)
	r.obs.await(t, from, "ready", func(s Snapshot) bool { return s.Ready && s.FleetKnown })

	// A replica that became ready after web-1 disagrees: web-1 stays ready.
	readyMember(t, w, "web-2", fingerprint, "v1:aaaa", time.Now().Add(time.Second))
	announce(t, newer)
	_, from = r.obs.await(t, from, "a read that lists web-2", func(s Snapshot) bool { return len(s.Fleet) == 2 })
	if s := r.obs.last(); !s.Ready || s.Phase != PhaseReady {
		t.Fatalf("web-1 yielded to a replica ready after it: %+v", s)
	}

	// One ready before web-1 disagrees: web-1 yields.
	readyMember(t, w, "web-0", fingerprint, "v1:aaaa", time.Now().Add(-time.Hour))
	announce(t, newer)
	s, from := r.obs.await(t, from, "held back", func(s Snapshot) bool { return s.Phase == PhaseDisagrees })
	if s.Ready || !strings.HasPrefix(s.Reason, "SECRET_KEY differs from the value on 1 ready replica (web-0);") {
		t.Errorf("held back: %+v", s)
	}
	if !strings.Contains(r.log.String(), "not ready: SECRET_KEY differs") {
		t.Errorf("the change is not logged:\n%s", r.log.String())
	}

	// The earlier ones go (web-2's phase is moot: it is held back too in its own view).
	w.elect.Vanish("web-0")
	w.elect.Vanish("web-2")
	announce(t, newer)
	r.obs.await(t, from, "ready again", func(s Snapshot) bool { return s.Phase == PhaseReady && s.Ready })
	if got := phases(w, "web-1"); !slices.Equal(got, []string{"ready", "disagrees", "ready"}) {
		t.Errorf("web-1 showed %v, want [ready disagrees ready]", got)
	}
}

// TestGuardNeedsPresence: the guard on an election that cannot show the fleet is refused
// before anything runs: it would compare with nobody.
func TestGuardNeedsPresence(t *testing.T) {
	w := newWorld(t, 1)
	cfg := DefaultConfig()
	cfg.ReplicaID, cfg.SameEnv = "web-1", []string{"SECRET_KEY"}
	_, err := New(cfg, Deps{Locker: &locker{Locker: w.elect.Locker("web-1")}, Engine: &fakeEngine{w: w},
		Fingerprints: func(context.Context) (map[string]string, error) { return nil, nil },
		Journal:      w.journal(), Retryable: func(error) bool { return false }, Refused: func(error) bool { return false }})
	if code := schemagate.ExitCodeOf(err); err == nil || code != schemagate.ExitInvalidInput ||
		!strings.Contains(err.Error(), "same-env") {
		t.Fatalf("New: %v (exit %d), want invalid input naming same-env", err, code)
	}
}

// TestFleetReport: the summary counts the replicas by release, this one's first, and by phase;
// with several releases it names them.
func TestFleetReport(t *testing.T) {
	member := func(name, set, phase string) lock.Member {
		return lock.Member{Replica: name, MigrationSet: set, Phase: phase}
	}
	const mine, old = "3f2a1b2c3d4e5f60", "91bc4d5e6f708192"
	var fleet []lock.Member
	for i := range 18 {
		fleet = append(fleet, member("web-"+string(rune('a'+i)), mine, "ready"))
	}
	fleet = append(fleet, member("web-x", mine, "waiting"), member("web-y", mine, "waiting"), member("old-0", old, "ready"))
	r := NewFleetReport(fleet, mine)
	if want := "21 replicas: 18 ready and 2 waiting on release 3f2a1b2c… (this one); 1 ready on release 91bc4d5e…"; r.Summary != want {
		t.Errorf("summary %q\nwant    %q", r.Summary, want)
	}
	if want := "2 releases: 20 replicas on 3f2a1b2c… (this one), 1 on 91bc4d5e…"; r.Releases != want {
		t.Errorf("releases %q\nwant     %q", r.Releases, want)
	}
	one := NewFleetReport([]lock.Member{member("w", mine, "migrating"), member("v", mine, "ready"),
		member("u", mine, "disagrees")}, "")
	if want := "3 replicas: 1 ready, 1 migrating and 1 disagrees on release 3f2a1b2c…"; one.Summary != want || one.Releases != "" {
		t.Errorf("one release, this one unknown: %q, %q", one.Summary, one.Releases)
	}
	if empty := NewFleetReport(nil, mine); !strings.HasPrefix(empty.Summary, "no replica shows itself now") || empty.Replicas == nil {
		t.Errorf("empty: %+v", empty)
	}
	if got := ShortSet("alembic-0123456789ab"); got != "alembic-01234567…" {
		t.Errorf("ShortSet(alembic-…) = %q", got)
	}
}

// TestReportShowsTheFleet: status reads the fleet without showing itself.
func TestReportShowsTheFleet(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1)
	w.schema.set(1)
	if err := w.replica("web-0", withSecret("v1:aaaa")).Run(ctx); err != nil {
		t.Fatal(err)
	}
	ops := w.replica("ops", replicaOptions{presence: &presenceOptions{}})
	r, err := ops.Report(ctx, Identity{Replica: "ops", MigrationSet: fingerprint}, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Fleet == nil || len(r.Fleet.Replicas) != 1 || r.Fleet.Summary != "1 replica: 1 ready on release set-1 (this one)" {
		t.Errorf("the report's fleet: %+v", r.Fleet)
	}
	if got := w.elect.Shows("ops"); len(got) != 0 {
		t.Errorf("status showed itself: %v", got)
	}
	plain := w.replica("plain", replicaOptions{})
	if r, err := plain.Report(ctx, Identity{}, ReportOptions{}); err != nil || r.Fleet != nil {
		t.Errorf("a report where the election cannot show the fleet: %+v, %v", r.Fleet, err)
	}
}

// TestFingerprintsInTheBackground: a replica shows itself waiting before its fingerprints are
// computed (nobody compares with a waiting replica), and needs them only as it becomes ready:
// computing them overlaps the wait instead of delaying the start.
func TestFingerprintsInTheBackground(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2)
	computed := make(chan struct{})
	opts := withSecret("v1:aaaa")
	opts.mode = ModeWait
	opts.presence.fingerprints = func(ctx context.Context) (map[string]string, error) {
		select {
		case <-computed:
			return map[string]string{"SECRET_KEY": "v1:aaaa"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	waiter := w.replica("web-1", opts)
	done := waiter.start(ctx)
	if err := w.elect.AwaitWaiting(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if shows := w.elect.Shows("web-1"); len(shows) != 1 || shows[0].Phase != "waiting" || shows[0].Fingerprints != nil {
		t.Fatalf("before its fingerprints are computed, the waiter showed %+v", shows)
	}
	if err := w.replica("web-2", replicaOptions{presence: &presenceOptions{}}).Run(ctx); err != nil {
		t.Fatal(err)
	}
	close(computed)
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if shows := w.elect.Shows("web-1"); len(shows) != 2 || shows[1].Fingerprints["SECRET_KEY"] != "v1:aaaa" {
		t.Errorf("ready, the waiter showed %+v", shows)
	}
}
