package coordinator

import (
	"context"
	"fmt"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
)

// journalTail is how many journal entries a watching replica keeps for /status.
const journalTail = 10

// Watch keeps a long-running replica's verdict current after Run: it re-reads the schema each
// time a migrator announces progress (a newer release migrating, a restore followed by a
// re-migration) and at least every interval, jittered by ±25 %, and reports every read to the
// observer. Reads are nearly the only database work it does: one query for the schema, one for
// the lock holder, one for the journal tail and, where the election shows the fleet, one for
// the fleet per wake-up. It writes only to show the replica to its fleet when its phase
// changes. With the fleet guard (--same-env) every read judges the guard again: a ready
// replica that disagrees with replicas ready before it becomes unready (phase disagrees), and
// one held back becomes ready once the fleet agrees.
//
// It returns nil when ctx ends, or an *AheadError when the database moves ahead of this replica
// under --when-ahead=exit.
func (c *Coordinator) Watch(ctx context.Context, every time.Duration) error {
	// Until its first read succeeds, the verdict is the one Run ended with.
	w := &watcher{c: c, snap: c.last, backoff: c.cfg.RetryMin, wasReady: c.gated}
	for {
		if err := w.read(ctx); err != nil {
			return err
		}
		wait := jittered(every)
		if w.snap.Unreachable != nil {
			wait = min(w.backoff, wait)
			w.backoff = min(2*w.backoff, c.cfg.RetryMax)
		} else {
			w.backoff = c.cfg.RetryMin
		}
		if err := c.deps.Locker.WaitForAnnouncement(ctx, wait); err != nil && ctx.Err() == nil {
			// The connection broke while waiting; the next read reconnects or reports it.
			w.fail(ctx, err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// watcher is the state of one Watch.
type watcher struct {
	c       *Coordinator
	snap    Snapshot
	backoff time.Duration
	// wasReady: the replica's migrations were all applied at some point of its life.
	wasReady bool
}

// read reads the schema, the holder and the journal, judges, logs a change of verdict, and
// publishes the result.
func (w *watcher) read(ctx context.Context) error {
	c := w.c
	st, err := c.deps.Engine.Status(ctx)
	if err != nil {
		w.fail(ctx, err)
		return nil
	}
	holder, err := c.holder(ctx)
	if err != nil {
		w.fail(ctx, err)
		return nil
	}
	tail, err := c.tail(ctx, journalTail)
	if err != nil {
		w.fail(ctx, err)
		return nil
	}
	fleet, fleetKnown, err := c.fleet(ctx)
	if err != nil && c.guarding() {
		w.fail(ctx, err)
		return nil
	}
	if err != nil {
		// Only /status and the metrics miss it: the verdict does not depend on it.
		c.deps.Log.Debug().Err(err).Msg("could not read the fleet")
	}
	// The migrator of an earlier rollout is a waiter of a later one.
	if last := lastRunOf(tail); last != nil && last.ID != c.ranRun {
		c.role = RoleWaiter
	}
	ready, reason, exit := c.judge(st)
	phase := PhaseReady
	switch {
	case exit != nil:
		phase = PhaseFailed
	case !st.Ready() && w.wasReady:
		phase = PhaseUnready
		reason = w.behind(st) + lastFailure(tail)
	case !st.Ready():
		phase = PhaseWaiting
		if failure := lastFailure(tail); failure != "" {
			phase, reason = PhaseFailed, reason+failure
		}
	case !ready:
		phase = PhaseUnready // ahead, under --when-ahead=unready
	case c.guarding():
		if err := c.ownFingerprints(ctx); err != nil {
			return nil // only the end of ctx stops it
		}
		if d := c.disagreement(fleet, c.presence.readySince()); d != nil {
			phase, ready, reason = PhaseDisagrees, false, d.Error()
		}
	}
	w.wasReady = w.wasReady || st.Ready()
	c.show(ctx, phase, true)
	if fleetKnown {
		fleet = c.withSelf(fleet)
	}
	prev := w.snap
	w.snap = Snapshot{Phase: phase, Role: c.role, Ready: ready, Reason: reason, Status: &st, ReadAt: time.Now(),
		Holder: holder, Journal: tail, Fleet: fleet, FleetKnown: fleetKnown}
	w.logChange(prev)
	c.deps.Observer.Observe(w.snap)
	return exit
}

// behind explains a replica that was ready and no longer is: migrations it needs are not
// applied any more.
func (w *watcher) behind(st engine.Status) string {
	return fmt.Sprintf("the database is behind this replica: %s is not applied (restored from a backup, "+
		"or rolled back by hand?); %s", st.Pending[0], st.Describe())
}

// lastRunOf returns the newest run among journal entries (newest first), or nil.
func lastRunOf(tail []journal.Entry) *journal.Entry {
	for i := range tail {
		if tail[i].Kind == journal.KindRun {
			return &tail[i]
		}
	}
	return nil
}

// lastFailure names the last migration run's failure, if it failed: why the schema is behind.
func lastFailure(tail []journal.Entry) string {
	if last := lastRunOf(tail); last != nil && last.Outcome == journal.Failed {
		return "; the last migration run failed: " + failedRun(last, false).Error()
	}
	return ""
}

// fail records a failed read: the verdict stays what it was (the schema as last read), and the
// snapshot says since when the database is unreachable.
func (w *watcher) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if w.snap.Unreachable == nil {
		w.snap.UnreachableSince = time.Now()
		w.c.deps.Log.Warn().Err(err).Msg("database unavailable; the verdict stays that of the last read")
	}
	w.snap.Unreachable = err
	if w.snap.Phase == "" {
		w.snap.Phase, w.snap.Role = PhaseStarting, w.c.role
		w.snap.Reason = "the schema has not been read yet"
	}
	w.c.deps.Observer.Observe(w.snap)
}

// logChange logs when the verdict changes, and when the database comes back.
func (w *watcher) logChange(prev Snapshot) {
	log := w.c.deps.Log
	if prev.Unreachable != nil {
		log.Info().Str("unreachable_for", time.Since(prev.UnreachableSince).Round(time.Second).String()).
			Msg("database reachable again")
	}
	if prev.Phase == w.snap.Phase && prev.Reason == w.snap.Reason {
		return
	}
	switch {
	case w.snap.Ready && prev.Phase != "" && !prev.Ready:
		log.Info().Msg("ready again: " + w.snap.Reason)
	case !w.snap.Ready:
		log.Warn().Str("phase", string(w.snap.Phase)).Msg("not ready: " + w.snap.Reason)
	}
}
