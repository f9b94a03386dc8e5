package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// gate is the state of one Run.
type gate struct {
	c *Coordinator
	// ctx is the Run's, which the gate lives no longer than: each change of phase is shown to
	// the fleet under it.
	ctx     context.Context
	started time.Time

	// first is the latest run in the journal when this replica started; a failure of that run
	// (if it was still running) or of a later one is a failure this replica waited for.
	first     *journal.Entry
	firstRead bool

	status  *engine.Status
	readAt  time.Time
	holder  *lock.Holder
	lastRun *journal.Entry
	// lastRunAt is when lastRun was read (runReadLongAgo).
	lastRunAt time.Time
	phase     Phase

	// replicated is what the gate knows of a replicated backend's state (Raft).
	replicated replicatedView
	// fleet is the fleet as the guard last read it, if it did.
	fleet      []lock.Member
	fleetKnown bool

	unavailable      error // the last error that made the database unavailable
	unavailableSince time.Time
	backoff          time.Duration
	progress         pacer
}

// next is what the gate does after a step.
type next int

const (
	// wait: nothing to act on now; wait for a change (an announcement, the lock, the poll).
	wait next = iota
	// again: the state moved under the step (a lost race, a lost lease): look again at once.
	again
	// finished: the gate is over; the error that comes with it is Run's result.
	finished
)

// publish tells the observer where the gate stands, and the fleet when the phase changed.
func (g *gate) publish(phase Phase, ready bool, reason string) {
	g.phase = phase
	s := Snapshot{Phase: phase, Role: g.c.role, Ready: ready, Reason: reason, Status: g.status,
		ReadAt: g.readAt, Holder: g.holder, Unreachable: g.unavailable, UnreachableSince: g.unavailableSince,
		FleetKnown: g.fleetKnown}
	if g.lastRun != nil {
		s.Journal = []journal.Entry{*g.lastRun}
	}
	g.c.show(g.ctx, phase, false)
	if g.fleetKnown {
		s.Fleet = g.c.withSelf(g.fleet)
	}
	g.c.last = s
	g.c.deps.Observer.Observe(s)
}

func (g *gate) run(ctx context.Context) error {
	for {
		n, err := g.step(ctx)
		if n == finished {
			return err
		}
		if n == wait && err == nil {
			err = g.waitForChange(ctx)
		}
		if err == nil {
			g.backoff = g.c.cfg.RetryMin
			g.unavailable = nil
			continue
		}
		if ctx.Err() != nil {
			return g.deadline(ctx)
		}
		if g.c.deps.Refused(err) {
			return &UnreachableError{Target: g.c.deps.Target, Err: err}
		}
		if !g.c.deps.Retryable(err) {
			return err
		}
		if err := g.retryLater(ctx, err); err != nil {
			return err
		}
	}
}

// step reads where things stand and acts once: finish, become the migrator, or wait. An error
// with a next other than finished is one the gate may retry.
func (g *gate) step(ctx context.Context) (next, error) {
	c := g.c
	rep, replicated := c.deps.Locker.(lock.Replicated)
	if replicated && g.status != nil {
		return g.stepReplicated(ctx, rep)
	}
	if replicated {
		g.replicated.start(rep.Outcome())
	}
	st, err := g.readStatus(ctx)
	if err != nil {
		return again, err
	}
	g.status, g.readAt, g.unavailable = &st, time.Now(), nil
	if decided, err := g.verdict(st); decided || err != nil {
		return decidedOr(decided), err
	}
	if g.lastRun, err = c.lastRun(ctx); err != nil {
		return again, err
	}
	g.lastRunAt = time.Now()
	if !g.firstRead {
		g.first, g.firstRead = g.lastRun, true
	}
	if g.waitedFor(g.lastRun) {
		return finished, g.failedBefore(g.lastRun)
	}
	if n, err := g.leadIfFree(ctx, nil); n != wait || err != nil {
		return n, err
	}
	g.waiting()
	g.reportProgress()
	return wait, nil
}

// readStatus reads the schema: from the answer the last wait brought back when it ended with
// the holder's release (lock.QuietWaiter's ReadOnRelease, read after the holder's commits in the
// wait's own statement), or else from the database.
func (g *gate) readStatus(ctx context.Context) (engine.Status, error) {
	q, quiet := g.c.deps.Locker.(lock.QuietWaiter)
	sq, querier := g.c.deps.Engine.(engine.StatusQuerier)
	if quiet && querier {
		if answer, missing, ok := q.ReleaseAnswer(); ok {
			if st, err := sq.StatusFrom(answer, missing); err == nil {
				g.c.deps.Log.Debug().Int64("db_version", st.Current).Msg("read the schema in the wait that the migrator's release ended")
				return st, nil
			}
		}
	}
	return g.c.deps.Engine.Status(ctx)
}

// failedBefore ends the gate with a failed run of this replica's migration set that it waited
// for.
func (g *gate) failedBefore(run *journal.Entry) error {
	f := failedRun(run, false)
	g.publish(PhaseFailed, false, f.Error())
	return f
}

// leadIfFree reads who holds the election and, when nobody does and this replica may migrate,
// tries to take it and leads. It returns wait when somebody holds it, when this replica may
// not migrate, and after a try that lost the race, unless moved says the state changed
// meanwhile (again).
func (g *gate) leadIfFree(ctx context.Context, moved func() bool) (next, error) {
	c := g.c
	var err error
	if g.holder, err = c.holder(ctx); err != nil {
		return again, err
	}
	if g.holder != nil || c.cfg.Mode != ModeMigrate {
		return wait, nil
	}
	lease, err := c.deps.Locker.TryAcquire(ctx)
	switch {
	case err == nil:
		return g.lead(ctx, lease)
	case !errors.Is(err, lock.ErrHeld):
		return again, err
	case moved != nil && moved():
		return again, nil
	}
	return wait, nil
}

// decidedOr is the next of a step after verdict: finished when it decided, else again (a read
// of the fleet failed, which the gate retries like any read).
func decidedOr(decided bool) next {
	if decided {
		return finished
	}
	return again
}

// verdict decides whether the gate is done with status st: the replica's migrations are all
// applied (whatever the database holds beyond them: Watch judges that under the policy), or the
// database is ahead under --when-ahead=exit. When the schema is ready, the fleet guard has the
// last word: a replica that disagrees with its ready fleet ends with a *DisagreeError. An error
// without a decision is a failed read of the fleet.
func (g *gate) verdict(st engine.Status) (decided bool, err error) {
	if err := st.OrderError(); err != nil && !st.Ready() {
		// The migration files are wrong for this database: refused before any run is
		// journaled, like every other bad input.
		g.publish(PhaseFailed, false, err.Error())
		return true, &InputError{Err: err}
	}
	ready, reason, err := g.c.judge(st)
	if st.Ahead() {
		g.logNewerRelease(st, reason)
	}
	if err != nil {
		g.publish(PhaseFailed, false, reason)
		return true, err
	}
	if !st.Ready() {
		return false, nil
	}
	phase := PhaseReady
	if !ready {
		phase = PhaseUnready
	} else if err := g.agree(g.ctx); err != nil {
		if d, ok := errors.AsType[*DisagreeError](err); ok {
			g.publish(PhaseDisagrees, false, d.Error())
			g.c.gated = true
			return true, d
		}
		return false, err
	}
	// The verdict first, then the bookkeeping: showing the new phase to the fleet is a write,
	// and a herd of waiters woken together should not queue for it before saying so.
	ev := g.c.deps.Log.Info().Int64("db_version", st.Current).Int64("target_version", st.Target).
		Str("elapsed", time.Since(g.started).Round(time.Millisecond).String())
	if st.Ahead() {
		ev = ev.Ints64("unknown_versions", st.Unknown)
	}
	ev.Msg("schema ready: " + reason)
	g.publish(phase, ready, reason)
	g.c.gated = true
	g.c.deps.Observer.Gated(time.Since(g.started))
	return true, nil
}

// logNewerRelease says, when the database is ahead of this replica, which release put it
// there: the migration set of the journal's last successful run, the replica that ran it and
// when, so that a person reading a --when-ahead decision knows which rollout is newer.
func (g *gate) logNewerRelease(st engine.Status, decision string) {
	c := g.c
	ev := c.deps.Log.Warn().Ints64("unknown_versions", st.Unknown).Str("when_ahead", string(c.cfg.WhenAhead))
	newer := "a release this replica's journal does not name (migrated by another tool, or before schemagate)"
	if run, err := c.lastRun(g.ctx); err == nil && run != nil && run.Outcome == journal.Succeeded &&
		run.Fingerprint != c.deps.Engine.Plan().Fingerprint {
		newer = fmt.Sprintf("release %s (migration set %s, applied by replica %s in run #%d, %s ago)",
			short(run.Fingerprint), run.Fingerprint, run.Replica, run.ID, since(*endOf(run)))
		ev = ev.Str("newer_migration_set", run.Fingerprint).Str("newer_replica", run.Replica).Int64("newer_run", run.ID)
	}
	ev.Msg("the database is ahead of this release (" + short(c.deps.Engine.Plan().Fingerprint) + "): " + newer +
		" holds the newer schema; " + decision)
}

// short is a migration set's fingerprint as people read it: its first 8 characters.
func short(fingerprint string) string {
	if len(fingerprint) > 8 {
		return fingerprint[:8] + "…"
	}
	return fingerprint
}

// endOf is when a run ended, or when it started while it runs.
func endOf(e *journal.Entry) *time.Time {
	if e.FinishedAt != nil {
		return e.FinishedAt
	}
	return &e.StartedAt
}

// judge is the readiness verdict on st under the --when-ahead policy, with its reason in one
// sentence. Under --when-ahead=exit a database ahead is an *AheadError.
func (c *Coordinator) judge(st engine.Status) (ready bool, reason string, err error) {
	reason = st.Describe()
	if st.Ahead() {
		switch c.cfg.WhenAhead {
		case AheadExit:
			return false, reason + "; --when-ahead=exit stops this replica", &AheadError{Status: st}
		case AheadUnready:
			return false, reason + "; --when-ahead=unready keeps this replica out of service", nil
		}
	}
	return st.Ready(), reason, nil
}

// waitedFor reports whether run is a failed attempt of this replica's migration set that ends
// this replica's wait: it was running when the replica started, or began later. An older
// failure does not stop a replica that may migrate, whose start is the retry; a replica that
// never migrates (wait mode) cannot retry, and the failure stands for it until a migrator
// succeeds.
func (g *gate) waitedFor(run *journal.Entry) bool {
	if run == nil || run.Outcome != journal.Failed || run.Fingerprint != g.c.deps.Engine.Plan().Fingerprint {
		return false
	}
	if g.first == nil || g.c.cfg.Mode == ModeWait {
		return true
	}
	return run.ID > g.first.ID || (run.ID == g.first.ID && g.first.Outcome == journal.Running)
}

// waitForChange waits until something may have changed. With a backend that says when nothing
// did (lock.QuietWaiter: the holder held the lock throughout the wait), it waits again without
// re-reading anything, reporting progress from what the wait saw of the holder, until something
// did.
func (g *gate) waitForChange(ctx context.Context) error {
	if q, ok := g.c.deps.Locker.(lock.QuietWaiter); ok {
		sample := ""
		if r := g.lastRun; r != nil && r.Outcome == journal.Running {
			sample = g.c.deps.Journal.CurrentQuery(r.ID)
		}
		q.WatchHolder(sample, func(h *lock.Holder, answer string) {
			g.holder = h
			g.sampled(answer)
			g.reportProgress()
		})
		defer q.WatchHolder("", nil)
		if sq, ok := g.c.deps.Engine.(engine.StatusQuerier); ok {
			q.ReadOnRelease(sq.StatusQuery())
			defer q.ReadOnRelease("")
		}
	}
	for {
		if err := g.c.deps.Locker.Wait(ctx, g.nextWait()); err != nil {
			return err
		}
		h, quiet := g.heldThroughout()
		if !quiet {
			return nil
		}
		g.holder = h
		g.reportProgress()
	}
}

// sampled takes the running run's current migration from an answer to the journal's
// CurrentQuery, asked during a wait.
func (g *gate) sampled(answer string) {
	name, since, ok := journal.ParseCurrent(answer)
	if !ok || g.lastRun == nil {
		return
	}
	r := *g.lastRun
	r.Name, r.CurrentSince = name, since
	g.lastRun, g.lastRunAt = &r, time.Now()
}

// heldThroughout reports whether the backend said the last Wait changed nothing, and the
// holder as it stands now.
func (g *gate) heldThroughout() (*lock.Holder, bool) {
	if q, ok := g.c.deps.Locker.(lock.QuietWaiter); ok {
		return q.HeldThroughout()
	}
	return nil, false
}

// nextWait is how long the next Wait may last: the poll interval jittered by ±25 %, cut short
// when a progress report is due.
//
// A waiter queued on a lock.QuietWaiter's holder that runs this replica's own migration set
// waits longer, up to a minute: the holder's release wakes it the instant the run ends, which
// is the only moment its schema can become ready, and the wait reports the holder's progress
// on the way (WatchHolder). While another release's migrator runs, this replica's schema may be
// ready at any of its commits, which only an announcement tells, and announcements arrive
// between waits: then it polls.
func (g *gate) nextWait() time.Duration {
	if g.waitsOnOwnRun() {
		return jittered(maxProgressInterval)
	}
	d := jittered(g.c.cfg.PollInterval)
	if due := time.Until(g.progress.next()); due > 0 && due < d {
		d = due
	}
	return max(d, 10*time.Millisecond)
}

// jittered is d moved by a random amount within ±25 %, so that a herd's waits spread out.
func jittered(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

// waitsOnOwnRun reports whether the replica is queued on a lock.QuietWaiter's holder that runs
// this replica's migration set, as the journal said when last read.
func (g *gate) waitsOnOwnRun() bool {
	_, quiet := g.c.deps.Locker.(lock.QuietWaiter)
	r := g.lastRun
	return quiet && g.holder != nil && r != nil && r.Outcome == journal.Running &&
		r.Fingerprint == g.c.deps.Engine.Plan().Fingerprint && (g.holder.Replica == "" || r.Replica == g.holder.Replica)
}

// retryLater logs that the database is unavailable (at most once per progress interval) and
// sleeps a jittered, growing backoff.
func (g *gate) retryLater(ctx context.Context, err error) error {
	if g.progress.due("unavailable: " + err.Error()) {
		ev := g.c.deps.Log.Warn().Err(err).Str("database", g.c.deps.Target).Str("retry_within", g.backoff.String())
		until := "until schemagate stops"
		if deadline, ok := ctx.Deadline(); ok {
			ev = ev.Time("retry_until", deadline)
			until = "until " + deadline.Format(time.TimeOnly+" MST") + " (--timeout)"
		}
		ev.Msg("database unavailable; retrying " + until)
	}
	if g.unavailable == nil {
		g.unavailableSince = time.Now()
	}
	g.unavailable = err
	phase := g.phase
	if phase == PhaseReady {
		phase = PhaseWaiting
	}
	g.publish(phase, false, fmt.Sprintf("database unavailable since %s: %v", g.unavailableSince.Format(time.TimeOnly), err))
	sleep := time.Duration(rand.Int64N(int64(g.backoff)) + 1)
	g.backoff = min(2*g.backoff, g.c.cfg.RetryMax)
	select {
	case <-ctx.Done():
		return g.deadline(ctx)
	case <-time.After(sleep):
		return nil
	}
}

// deadline turns the end of ctx into the error the replica exits with.
func (g *gate) deadline(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return &StoppedError{Cause: stopCause(ctx), What: g.describe()}
	}
	if g.status == nil && g.unavailable != nil {
		return &UnreachableError{Target: g.c.deps.Target, Err: g.unavailable}
	}
	return &TimeoutError{Waited: time.Since(g.started), Last: g.describe()}
}

// waiting publishes that the replica waits, and why.
func (g *gate) waiting() { g.publish(PhaseWaiting, false, "waiting: "+g.describe()) }
