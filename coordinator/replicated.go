package coordinator

import (
	"context"
	"errors"
	"time"

	"github.com/schemagate/schemagate/lock"
)

// replicatedView is what a gate knows of a replicated backend's state (lock.Replicated): the
// outcome when the gate started, the last one it read the database for, and how the cluster
// stands.
type replicatedView struct {
	first lock.Outcome
	// readSeq is the outcome the database was last read for.
	readSeq uint64
	// cluster describes the cluster for messages: who leads, how many members answer.
	cluster string
	// leaderlessSince is when the replica last saw the cluster without a leader; zero while it
	// has one.
	leaderlessSince time.Time
}

// start records the outcome when the gate starts, before its first read.
func (v *replicatedView) start(o lock.Outcome) { v.first, v.readSeq = o, o.Seq }

// waitedFor reports whether a failed outcome o is one this replica waited for: it began after
// the gate started, or was under way then, or the replica never migrates.
func (v *replicatedView) waitedFor(o lock.Outcome, mode Mode) bool {
	return o.Seq > v.first.Seq || v.first.Phase == lock.PhaseMigrating || mode == ModeWait
}

// stepReplicated is step for a backend that replicates the run's outcome among the replicas:
// the database is read only when the outcome says the run ended (and once at start), so that a
// waiting replica holds no database connection. A failed run of this replica's migration set
// that it waited for ends the gate without reading the database.
func (g *gate) stepReplicated(ctx context.Context, rep lock.Replicated) (next, error) {
	c := g.c
	v := &g.replicated
	out := rep.Outcome()
	v.cluster = out.Cluster
	mine := out.Fingerprint == c.deps.Engine.Plan().Fingerprint
	if out.Phase == lock.PhaseFailed && mine && v.waitedFor(out, c.cfg.Mode) {
		f := &MigrationFailedError{Migration: out.Migration, Replica: out.Replica, Cause: errors.New(c.redact(out.Error))}
		g.publish(PhaseFailed, false, f.Error())
		return finished, f
	}
	if out.Phase == lock.PhaseDone && out.Seq != v.readSeq || g.stranded(out) {
		st, err := c.deps.Engine.Status(ctx)
		if err != nil {
			return again, err
		}
		v.readSeq = out.Seq
		g.status, g.readAt = &st, time.Now()
		if decided, err := g.verdict(st); decided || err != nil {
			return decidedOr(decided), err
		}
	}
	// The state may move while trying (a new leader catching up): then look again.
	moved := func() bool { return rep.Outcome().Seq != out.Seq }
	if n, err := g.leadIfFree(ctx, moved); n != wait || err != nil {
		return n, err
	}
	g.waiting()
	g.reportProgress()
	return wait, nil
}

// strandedAfter is how long a replica of a replicated backend waits without a leader before
// it asks the database, and then how often it asks again.
const strandedAfter = 2 * time.Second

// stranded reports whether the replica should read the database because it has seen no leader
// for strandedAfter. That happens when the members that committed the end of a run exit before
// this one learned it (a new leader learns what was committed only with a quorum), or when a
// quorum is lost: the replicated state can no longer move, and the database is the truth.
func (g *gate) stranded(out lock.Outcome) bool {
	v := &g.replicated
	if !out.Leaderless {
		v.leaderlessSince = time.Time{}
		return false
	}
	now := time.Now()
	if v.leaderlessSince.IsZero() {
		v.leaderlessSince = now
	}
	return now.Sub(v.leaderlessSince) >= strandedAfter && now.Sub(g.readAt) >= strandedAfter
}
