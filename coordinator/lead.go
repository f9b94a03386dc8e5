package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// cleanupTimeout bounds what the migrator does after its context ended: journal the outcome,
// release the lock.
const cleanupTimeout = 5 * time.Second

// ended says how a migrator's work ended.
type ended int

const (
	// endedHere: the work ended on this replica (the schema is ready, a migration failed, a
	// signal or the deadline stopped it); its error says which.
	endedHere ended = iota
	// leaseLost: the election was lost under the work. Nothing more is committed on the lost
	// session, and the next migrator finds what the run left.
	leaseLost
)

// lead is the migrator's part: re-read under the lock, journal, apply, announce, release. When
// the lock is lost (the session ended) the replica goes back to waiting (again), so that it
// still ends ready with the others.
func (g *gate) lead(ctx context.Context, lease lock.Lease) (next, error) {
	c := g.c
	c.deps.Log.Debug().Msg("won the election; reading the schema again under the lock")
	c.deps.Observer.Elected(time.Since(g.started))
	g.holder = nil
	g.publish(PhaseMigrating, false, "migrating: this replica is the migrator")
	g.progress = pacer{every: c.cfg.ProgressInterval}

	// A stop (SIGTERM, the deadline) interrupts the running statement on the server, and the
	// hooks refuse to go on; only a lost lease cancels the work outright (see watchLease).
	work, end := watchLease(ctx, lease, func(cancel context.CancelFunc) { g.interrupt(lease, cancel) })
	m := &migrator{g: g, lease: lease, stopped: ctx, journal: c.deps.Journal.Fenced(lease.Fence)}
	how, err := m.run(work)
	end()

	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if rerr := lease.Release(cleanup); rerr != nil && how == endedHere && err == nil {
		// Everything committed; only the unlock failed. The server drops the lock with the
		// session, so this is worth a warning, not a failure.
		c.deps.Log.Warn().Err(rerr).Msg("could not release the lock after migrating; it goes with the session")
	}
	if how == leaseLost {
		cause := m.lossCause()
		c.deps.Log.Warn().Err(err).Msg("lost the election while migrating: " + cause + "; waiting for the next migrator")
		if m.runID != 0 {
			m.record(cleanup, "the lost run", func(ctx context.Context) error {
				return c.deps.Journal.FinishLost(ctx, m.runID, cause)
			})
		}
		c.role = RoleWaiter
		return again, nil
	}
	if err != nil {
		return finished, err
	}
	// Report ready from what the database says now, like every other replica.
	st, err := c.deps.Engine.Status(cleanup)
	if err != nil {
		return finished, fmt.Errorf("read the schema after migrating: %w", err)
	}
	g.status = &st
	if decided, err := g.verdict(st); decided || err != nil {
		return decidedOr(decided), err
	}
	return finished, fmt.Errorf("after migrating, %s", st.Describe())
}

// watchLease runs work under lease on a context of its own, which ends when the lease is lost
// or end is called. Cancelling a context under a running transaction makes database/sql drop
// the connection, and with it the lock, before the outcome can be journaled; so the end of ctx
// (a stop) does not end the work's context: onStop runs instead, given the work's cancel, or
// nothing happens when onStop is nil (the work watches ctx itself). end stops the watch and
// waits for it.
func watchLease(ctx context.Context, lease lock.Lease, onStop func(cancel context.CancelFunc)) (work context.Context, end func()) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopped := ctx.Done()
	if onStop == nil {
		stopped = nil
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-lease.Lost():
			cancel()
		case <-stopped:
			onStop(cancel)
		case <-work.Done():
		}
	}()
	return work, func() {
		cancel()
		<-watched
	}
}

// interrupt stops the work under lease after the replica was told to stop: through the
// lease when it can interrupt its running statement, else by cancelling the work's context.
func (g *gate) interrupt(lease lock.Lease, cancel context.CancelFunc) {
	g.c.deps.Log.Warn().Msg("stopping: interrupting the running migration, which rolls back if transactional")
	in, ok := lease.(lock.Interrupter)
	if !ok {
		cancel()
		return
	}
	ctx, done := context.WithTimeout(context.Background(), cleanupTimeout)
	defer done()
	if err := in.Interrupt(ctx); err != nil {
		g.c.deps.Log.Warn().Err(err).Msg("could not interrupt the running statement; cancelling")
		cancel()
	}
}

// migrator holds one migration run's state.
type migrator struct {
	g     *gate
	lease lock.Lease
	// journal is the coordinator's journal, its writes fenced by the lease.
	journal *journal.Journal
	// stopped ends when the replica is told to stop; the work then goes no further.
	stopped context.Context
	runID   int64
	// nonTx is the journal row of the non-transactional migration under way, if any.
	nonTx int64
	// current is the migration under way and since when.
	current *engine.Migration
	since   time.Time
	// work is the same for the heartbeat's goroutine.
	work atomic.Pointer[work]
}

// run does the work under the lease.
func (m *migrator) run(ctx context.Context) (ended, error) {
	c := m.g.c
	st, err := c.deps.Engine.Status(ctx)
	if err != nil {
		return m.failed(ctx, nil, err)
	}
	m.g.status = &st
	if _, _, err := c.judge(st); err != nil || st.Ready() {
		return endedHere, err // another migrator finished just before this one won; lead reports it
	}
	if err := c.deps.Journal.Ensure(ctx); err != nil {
		return m.failed(ctx, nil, err)
	}
	run, err := c.lastRun(ctx)
	if err != nil {
		return m.failed(ctx, nil, err)
	}
	if m.g.waitedFor(run) {
		return endedHere, m.g.failedBefore(run)
	}
	orphaned, err := m.journal.Abandon(ctx)
	if err != nil {
		return m.failed(ctx, nil, err)
	}
	if m.runID, err = m.journal.StartRun(ctx, c.cfg.ReplicaID, c.deps.Engine.Plan().Fingerprint, st.Current, st.Target); err != nil {
		return m.failed(ctx, nil, err)
	}
	c.ranRun = m.runID
	if err := m.checkInterrupted(ctx, st); err != nil {
		return m.failed(ctx, nil, err)
	}
	if err := m.lease.Announce(ctx, nil, lock.Event{Kind: lock.EventStarted, Replica: c.cfg.ReplicaID}); err != nil {
		return m.failed(ctx, nil, err)
	}
	// Only now, with work to do: a replica that won the election just after another finished
	// found the schema ready above and is not a migrator.
	c.deps.Log.Info().Msg("this replica is the migrator")
	c.role = RoleMigrator
	c.deps.Log.Info().Int64("db_version", st.Current).Int64("target_version", st.Target).Int("pending", len(st.Pending)).
		Msg("applying migrations")

	hooks := m.hooks()
	hooks.Stop, hooks.Lost, hooks.Check, hooks.Settle = m.stopped.Done(), m.lease.Lost(), m.check, orphaned > 0
	beat, stopBeat := context.WithCancel(ctx)
	defer stopBeat()
	go m.heartbeat(beat, &m.work)
	if err := c.deps.Engine.Migrate(ctx, st, hooks); err != nil {
		var me *engine.MigrationError
		if errors.As(err, &me) {
			return m.failed(ctx, &me.Migration, err)
		}
		return m.failed(ctx, nil, err)
	}
	// The end of the run and its announcement commit together.
	done := lock.Event{Kind: lock.EventDone, Replica: c.cfg.ReplicaID, Version: st.Target}
	if err := m.journal.FinishRunAnd(ctx, m.runID, journal.Succeeded, nil, "", func(ctx context.Context, tx lock.Execer) error {
		return m.lease.Announce(ctx, tx, done)
	}); err != nil {
		return m.failed(ctx, nil, err)
	}
	return endedHere, nil
}

// hooks journal and fence each migration.
func (m *migrator) hooks() engine.Hooks {
	c := m.g.c
	return engine.Hooks{
		Before: func(ctx context.Context, mig engine.Migration) error {
			if err := m.stopped.Err(); err != nil {
				return err
			}
			if err := m.journal.SetCurrent(ctx, m.runID, mig); err != nil {
				return err
			}
			if !mig.Transactional {
				id, err := m.journal.StartMigration(ctx, m.runID, c.cfg.ReplicaID, mig)
				if err != nil {
					return err
				}
				m.nonTx = id
			}
			c.deps.Log.Info().Int64("version", mig.Version).Str("migration", mig.Name).
				Bool("transactional", mig.Transactional).Msg("applying " + mig.Name)
			m.current, m.since = &mig, time.Now()
			m.work.Store(&work{migration: mig, since: m.since, waiting: c.waitingReplicas(ctx)})
			m.g.publish(PhaseMigrating, false, "migrating: this replica is applying "+mig.Name)
			return nil
		},
		InTx: func(ctx context.Context, tx lock.Execer, mig engine.Migration) error {
			if err := m.stopped.Err(); err != nil {
				return err // rolls the migration back
			}
			if err := m.lease.Fence(ctx, tx); err != nil {
				return err
			}
			if err := c.deps.Journal.RecordApplied(ctx, tx, m.runID, c.cfg.ReplicaID, mig, m.since); err != nil {
				return err
			}
			return m.lease.Announce(ctx, tx, lock.Event{Kind: lock.EventApplied, Replica: c.cfg.ReplicaID,
				Version: mig.Version, Migration: mig.Name})
		},
		After: func(ctx context.Context, mig engine.Migration, took time.Duration) error {
			if m.nonTx != 0 {
				if err := m.journal.FinishMigration(ctx, m.nonTx, journal.Succeeded, ""); err != nil {
					return err
				}
				m.nonTx = 0
			}
			c.deps.Log.Info().Int64("version", mig.Version).Str("migration", mig.Name).Str("took", took.Round(time.Millisecond).String()).
				Msg("applied " + mig.Name)
			c.deps.Observer.Migrated(mig, took, nil)
			m.current = nil
			m.work.Store(nil)
			return nil
		},
	}
}

// checkInterrupted refuses to go on past a non-transactional migration that was interrupted
// midway and is still pending, unless told to run it again.
func (m *migrator) checkInterrupted(ctx context.Context, st engine.Status) error {
	c := m.g.c
	entries, err := c.deps.Journal.Interrupted(ctx)
	if err != nil {
		return err
	}
	pending := map[int64]bool{}
	for _, p := range st.Pending {
		pending[p.Version] = true
	}
	var blocking []journal.Entry
	for _, e := range entries {
		if pending[e.Version] {
			blocking = append(blocking, e)
		}
	}
	if len(blocking) == 0 {
		return nil
	}
	if !c.cfg.RerunInterrupted {
		return &InterruptedError{Entries: blocking}
	}
	for _, e := range blocking {
		c.deps.Log.Warn().Str("migration", e.Name).Str("interrupted_on", e.Replica).
			Msg("running an interrupted non-transactional migration again (--rerun-interrupted)")
		if err := m.journal.MarkRerun(ctx, e.ID); err != nil {
			return err
		}
	}
	return nil
}

// failed ends the run after err. A lost lease returns done=false (nothing can be journaled on
// a dead session; the next migrator marks the run abandoned). A stop (signal, deadline) is
// journaled as cancelled, saying truthfully what it interrupted. Anything else is a failed
// run: journaled, announced, and returned as a MigrationFailedError naming mig.
func (m *migrator) failed(ctx context.Context, mig *engine.Migration, err error) (ended, error) {
	c := m.g.c
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var progress *engine.Progress
	statement := ""
	failure := err // what the MigrationFailedError wraps, before the engine's details are taken off
	if me := (*engine.MigrationError)(nil); errors.As(err, &me) {
		progress, err = me.Progress, me.Err
		if me.Statement != "" {
			statement = fmt.Sprintf(" (the statement at line %d: %s)", me.Line, oneLine(me.Statement, 100))
			if me.Line == 0 {
				statement = " (the statement: " + oneLine(me.Statement, 100) + ")"
			}
		}
	}
	if m.lost(err) {
		return leaseLost, err
	}
	// Work outside the session may fail because the election was lost under it (a successor
	// ended the command's sessions): that is a loss, not a failed migration.
	if mig != nil && mig.External && m.stopped.Err() == nil {
		if cerr := m.check(cleanup); cerr != nil {
			return leaseLost, fmt.Errorf("%w (and the election was lost: %w)", err, cerr)
		}
	}
	if m.stopped.Err() != nil {
		return m.stop(cleanup, mig, progress)
	}
	cause := c.redact(err.Error() + statement)
	if mig != nil && !mig.Transactional && !mig.External {
		how := "statements before the failing one stay applied"
		if progress != nil {
			how = progress.Describe()
		}
		cause += " (non-transactional: " + how + ")"
	}
	// Where the schema stopped, not where it stood before the run.
	m.reread(cleanup)
	if st := m.g.status; st != nil && mig != nil && !mig.External {
		cause += fmt.Sprintf("; the database stays at version %d", st.Current)
	}
	if m.runID != 0 {
		if m.nonTx != 0 {
			m.record(cleanup, "the end of the migration", func(ctx context.Context) error {
				return m.journal.FinishMigration(ctx, m.nonTx, journal.Failed, cause)
			})
		}
		m.record(cleanup, "the end of the run", func(ctx context.Context) error {
			return m.journal.FinishRun(ctx, m.runID, journal.Failed, mig, cause)
		})
		ev := lock.Event{Kind: lock.EventFailed, Replica: c.cfg.ReplicaID, Error: cause}
		if mig != nil {
			ev.Migration = mig.Name
		}
		if aerr := m.lease.Announce(cleanup, nil, ev); aerr != nil {
			c.deps.Log.Warn().Err(aerr).Msg("could not announce the failure; waiters will see it at their next poll")
		}
	}
	f := &MigrationFailedError{Replica: c.cfg.ReplicaID, Cause: &causeError{text: cause, err: failure}, Here: true}
	if mig != nil {
		f.Migration = mig.Name
	}
	if m.current != nil {
		c.deps.Observer.Migrated(*m.current, time.Since(m.since), err)
	}
	m.g.publish(PhaseFailed, false, fmt.Sprintf("%s (on this replica, %s)", f.Error(), c.cfg.ReplicaID))
	return endedHere, f
}

// reread reads where the schema stopped, for the report, rather than where it stood before
// the run.
func (m *migrator) reread(ctx context.Context) {
	if st, err := m.g.c.deps.Engine.Status(ctx); err == nil {
		m.g.status, m.g.readAt = &st, time.Now()
	}
}

// stop journals a run that a signal or the deadline interrupted, saying what that did to the
// migration under way, and returns the error the replica exits with. A non-transactional
// migration of which any statement may have completed is journaled interrupted: the next
// migrator will not run it again until a person has checked (--rerun-interrupted), exactly as
// after a vanished migrator. Nothing is announced: a stop is not a failure, and the next
// migrator takes over when this one lets go.
func (m *migrator) stop(ctx context.Context, mig *engine.Migration, progress *engine.Progress) (ended, error) {
	reason := stopCause(m.stopped).Error()
	what, migration := m.interrupted(mig, progress)
	if m.runID != 0 {
		if m.nonTx != 0 {
			m.record(ctx, "the end of the migration", func(ctx context.Context) error {
				return m.journal.FinishMigration(ctx, m.nonTx, migration, reason+" "+what)
			})
		}
		m.record(ctx, "the end of the run", func(ctx context.Context) error {
			return m.journal.FinishRun(ctx, m.runID, journal.Cancelled, mig, reason+" "+what)
		})
	}
	m.reread(ctx)
	what += "; " + m.g.describe()
	if errors.Is(m.stopped.Err(), context.DeadlineExceeded) {
		return endedHere, &TimeoutError{Waited: time.Since(m.g.started), Last: what}
	}
	return endedHere, &StoppedError{Cause: stopCause(m.stopped), What: what}
}

// record writes a journal entry after a failure or a stop. It tries twice: a statement cancel
// sent to stop the migration may land on the first try instead.
func (m *migrator) record(ctx context.Context, what string, write func(context.Context) error) {
	err := write(ctx)
	if err != nil {
		err = write(ctx)
	}
	if err != nil {
		m.g.c.deps.Log.Error().Err(err).Msg("could not journal " + what)
	}
}

// check verifies, on the lease's own connection, that this replica still holds the election
// (engine.Hooks.Check).
func (m *migrator) check(ctx context.Context) error { return m.lease.Check(ctx) }

// lost reports whether err means the lease is gone.
func (m *migrator) lost(err error) bool {
	select {
	case <-m.lease.Lost():
		return true
	default:
	}
	return errors.Is(err, lock.ErrLost) || m.g.c.deps.Retryable(err)
}
