package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// The verbs a coordinator owns besides the gate: a person's decisions, journaled with who and
// why, each taken while holding the election so that no rollout's migrator races them. The
// migration tool keeps its own verbs (create, down, redo, fix).

// NothingToDoError is an admin verb that found nothing to act on (no migrator to abort).
type NothingToDoError struct{ What string }

func (e *NothingToDoError) Error() string { return e.What }

// Held is what a holder of the election works with: hooks for work outside the session (stop,
// loss, checks) and the journal, its writes fenced by the lease.
type Held struct {
	Lease   lock.Lease
	Hooks   engine.Hooks
	Journal *journal.Journal
}

// Hold waits until this replica can take the election (logging who holds it meanwhile, at
// growing intervals), runs fn as its holder, and lets go. what names the work for the log.
func (c *Coordinator) Hold(ctx context.Context, what string, fn func(ctx context.Context, h Held) error) error {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if _, replicated := c.deps.Locker.(lock.Replicated); replicated {
		return &InputError{Err: errors.New("lock: " + what + " needs a lock this process can take alone; with --lock raft " +
			"only a member of the rollout's cluster can lead: run it where no rollout runs, with --lock postgres")}
	}
	if err := c.deps.Journal.Ensure(ctx); err != nil {
		return err
	}
	p := pacer{every: c.cfg.ProgressInterval}
	for {
		lease, err := c.deps.Locker.TryAcquire(ctx)
		if err == nil {
			return c.holding(ctx, lease, fn)
		}
		if !errors.Is(err, lock.ErrHeld) {
			return c.readError(ctx, err)
		}
		h, _ := c.holder(ctx)
		name := "another replica"
		if h != nil {
			name = "replica " + h.String()
		}
		if p.due(name) {
			c.deps.Log.Info().Msg("waiting to take the lock for " + what + ": " + name + " holds it")
		}
		if err := c.deps.Locker.Wait(ctx, c.cfg.PollInterval); err != nil || ctx.Err() != nil {
			if ctx.Err() != nil {
				return &TimeoutError{Waited: c.cfg.Timeout, Last: name + " held the lock all along"}
			}
			return c.readError(ctx, err)
		}
	}
}

// holding runs fn under lease and releases it.
func (c *Coordinator) holding(ctx context.Context, lease lock.Lease, fn func(ctx context.Context, h Held) error) error {
	work, end := watchLease(ctx, lease, nil) // fn sees the stop through its hooks
	defer end()
	h := Held{Lease: lease, Journal: c.deps.Journal.Fenced(lease.Fence),
		Hooks: engine.Hooks{Stop: ctx.Done(), Lost: lease.Lost(), Check: lease.Check}}
	err := fn(work, h)
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if rerr := lease.Release(cleanup); rerr != nil && err == nil {
		err = fmt.Errorf("release the lock: %w", rerr)
	}
	return err
}

// Resolution is a person's decision on an interrupted non-transactional migration.
type Resolution struct {
	// Migration names it: its file name, or its version.
	Migration string
	// Applied marks it applied (the person finished it by hand); otherwise the next migrator
	// may run it once more.
	Applied bool
	// By and Reason are journaled with the decision.
	By, Reason string
}

// Resolve records r for the interrupted migration it names, holding the election: the
// migration is marked applied in the version table, or released to run once more. It returns
// what was done, in one sentence.
func (c *Coordinator) Resolve(ctx context.Context, r Resolution) (string, error) {
	var done string
	err := c.Hold(ctx, "resolve", func(ctx context.Context, h Held) error {
		entries, err := c.deps.Journal.Interrupted(ctx)
		if err != nil {
			return err
		}
		var names []string
		var found *journal.Entry
		for i, e := range entries {
			names = append(names, e.Name)
			if e.Name == r.Migration || fmt.Sprint(e.Version) == r.Migration {
				found = &entries[i]
			}
		}
		if found == nil {
			known := "the journal records none"
			if len(names) > 0 {
				known = "the journal records " + strings.Join(names, ", ")
			}
			return &InputError{Err: fmt.Errorf("migration: no interrupted migration %q to resolve; %s", r.Migration, known)}
		}
		mig := engine.Migration{Version: found.Version, Name: found.Name}
		if !r.Applied {
			if _, err := h.Journal.Record(ctx, journal.KindResolution, r.By, mig, journal.Rerun,
				"allowed to run once more: "+c.redact(r.Reason)); err != nil {
				return err
			}
			if err := h.Journal.SetOutcome(ctx, nil, found.ID, journal.Rerun); err != nil {
				return err
			}
			done = fmt.Sprintf("%s may run once more: the next migrator applies it", found.Name)
			return nil
		}
		marker, ok := c.deps.Engine.(interface {
			MarkApplied(ctx context.Context, version int64, inTx func(ctx context.Context, tx lock.Execer) error) error
		})
		if !ok {
			return &InputError{Err: errors.New("mark-applied: this engine cannot mark a migration applied; use --allow-rerun instead")}
		}
		err = marker.MarkApplied(ctx, found.Version, func(ctx context.Context, tx lock.Execer) error {
			if err := h.Lease.Fence(ctx, tx); err != nil {
				return err
			}
			return c.deps.Journal.SetOutcome(ctx, tx, found.ID, journal.Resolved)
		})
		if err != nil {
			return err
		}
		if _, err := h.Journal.Record(ctx, journal.KindResolution, r.By, mig, journal.Resolved,
			"marked applied by hand: "+c.redact(r.Reason)); err != nil {
			return err
		}
		done = fmt.Sprintf("%s is marked applied (version %d); the next migrator goes on past it", found.Name, found.Version)
		return nil
	})
	return done, err
}

// Abort stops the running migrator: it cancels the statement its session runs (a
// transactional migration rolls back, and the run fails) and, when the lock is not released
// within grace, ends the session. It is journaled with who and why, and returns what happened.
func (c *Coordinator) Abort(ctx context.Context, by, reason string, grace time.Duration) (string, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	stopper, ok := c.deps.Locker.(lock.HolderStopper)
	if !ok {
		return "", &InputError{Err: errors.New("lock: abort stops a migrator through its database session; this lock " +
			"has none (stop its process instead)")}
	}
	h, err := c.holder(ctx)
	if err != nil {
		return "", c.readError(ctx, err)
	}
	if h == nil {
		return "", &NothingToDoError{What: "nothing to abort: no replica holds the lock"}
	}
	run, err := c.lastRun(ctx)
	if err != nil {
		return "", c.readError(ctx, err)
	}
	mig := engine.Migration{}
	if run != nil && run.Outcome == journal.Running {
		mig = engine.Migration{Version: run.Version, Name: run.Name}
	}
	if err := c.deps.Journal.Ensure(ctx); err != nil {
		return "", err
	}
	if _, err := c.deps.Journal.Record(ctx, journal.KindAbort, by, mig, journal.Cancelled,
		fmt.Sprintf("aborted the run of replica %s: %s", h.Replica, c.redact(reason))); err != nil {
		return "", err
	}
	if err := stopper.StopHolder(ctx, h, false); err != nil {
		return "", err
	}
	if c.released(ctx, h, grace) {
		return fmt.Sprintf("cancelled the statement of replica %s; it let go of the lock", h.String()), nil
	}
	if err := stopper.StopHolder(ctx, h, true); err != nil {
		return "", err
	}
	if !c.released(ctx, h, grace) {
		return "", fmt.Errorf("replica %s still holds the lock after its session was ended", h.String())
	}
	return fmt.Sprintf("cancelled the statement of replica %s, and ended its session when it held on for %s", h.String(), grace), nil
}

// released waits up to d for h to let go of the lock.
func (c *Coordinator) released(ctx context.Context, h *lock.Holder, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		now, err := c.deps.Locker.Holder(ctx)
		if err == nil && (now == nil || now.PID != h.PID) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}
