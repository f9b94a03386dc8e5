package coordinator

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
)

// maxProgressInterval is the longest a replica goes without a progress line while nothing
// changes.
const maxProgressInterval = time.Minute

// pacer paces progress lines: one at once whenever what they report changes, otherwise at
// growing intervals, from --progress-interval up to maxProgressInterval, so that a long wait
// or a long migration stays visible without flooding the log.
type pacer struct {
	every    time.Duration
	key      string
	last     time.Time
	interval time.Duration
}

// due reports whether a line reporting key is due now, and if so counts it as written.
func (p *pacer) due(key string) bool {
	now := time.Now()
	switch {
	case key != p.key || p.last.IsZero():
		p.key, p.interval = key, p.every
	case now.Sub(p.last) < p.interval:
		return false
	default:
		p.interval = min(2*p.interval, max(maxProgressInterval, p.every))
	}
	p.last = now
	return true
}

// next is when the next line is due if nothing changes.
func (p *pacer) next() time.Time { return p.last.Add(p.interval) }

// reportProgress logs whom the replica waits for: at once when that changes, then at growing
// intervals. The line carries the holder, its migration and how long it has run as fields.
func (g *gate) reportProgress() {
	r := g.lastRun
	key := fmt.Sprint(g.holder != nil && g.holder.Replica != "", g.status != nil && g.status.Current != 0, g.unavailable != nil)
	if g.holder != nil {
		key += g.holder.Replica
	}
	if r != nil {
		key += fmt.Sprintf("/%d/%s/%s", r.ID, r.Outcome, r.Name)
	}
	if g.status != nil {
		key += fmt.Sprintf("/%d", g.status.Current)
	}
	if !g.progress.due(key) {
		return
	}
	ev := g.c.deps.Log.Info().Str("waited", time.Since(g.started).Round(time.Millisecond).String())
	if g.holder != nil {
		ev = ev.Str("holder", g.holder.Replica).Int("holder_pid", g.holder.PID)
	}
	if r != nil && r.Outcome == "running" {
		ev = ev.Time("run_started", r.StartedAt)
		switch {
		case r.Name != "" && r.CurrentSince != nil && g.runReadLongAgo():
			ev = ev.Str("migration_at_last_read", r.Name).Time("last_read", g.lastRunAt)
		case r.Name != "" && r.CurrentSince != nil:
			ev = ev.Str("migration", r.Name).Str("migration_elapsed", since(*r.CurrentSince).String())
		}
		if g.holder != nil && g.holder.State == "active" && !g.holder.QueryStart.IsZero() {
			ev = ev.Str("statement_elapsed", since(g.holder.QueryStart).String())
		}
	}
	if g.status != nil {
		ev = ev.Int64("db_version", g.status.Current).Int64("target_version", g.status.Target).
			Int("pending", len(g.status.Pending))
	}
	ev.Msg("waiting: " + g.describe())
}

// work is what the migrator is doing, for its heartbeat: the migration under way, since when,
// and how many replicas waited on it when it started.
type work struct {
	migration engine.Migration
	since     time.Time
	waiting   []string
}

// heartbeat logs, while the migrator migrates, what it applies, for how long, the statement it
// runs and how many replicas wait: the first time after --progress-interval, then at growing
// intervals; a new migration starts the pacing over. It returns when ctx ends.
func (m *migrator) heartbeat(ctx context.Context, current *atomic.Pointer[work]) {
	c := m.g.c
	p := &pacer{every: c.cfg.ProgressInterval}
	tick := time.NewTicker(max(c.cfg.ProgressInterval/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// The first line once a migration has run --progress-interval, then at growing
		// intervals; the next migration starts over.
		if w := current.Load(); w != nil && time.Since(w.since) >= c.cfg.ProgressInterval && p.due(w.migration.Name) {
			m.logHeartbeat(c.deps.Log, w)
		}
	}
}

func (m *migrator) logHeartbeat(log zerolog.Logger, w *work) {
	c := m.g.c
	took := since(w.since)
	ev := log.Info().Str("migration", w.migration.Name).Int64("version", w.migration.Version).
		Str("elapsed", took.String()).Int("waiting", len(w.waiting))
	msg := fmt.Sprintf("still applying %s, for %s", w.migration.Name, took)
	if w.migration.External {
		msg = fmt.Sprintf("the migrate command is still running, for %s", took)
	}
	if c.deps.Running != nil {
		if stmt, from, ok := c.deps.Running(); ok {
			stmt = strings.TrimSuffix(strings.TrimSpace(c.redact(stmt)), ";")
			ev = ev.Str("statement", oneLine(stmt, 200)).Str("statement_elapsed", since(from).String())
			msg += fmt.Sprintf("; statement running %s: %s", since(from), oneLine(stmt, 120))
		}
	}
	if n := len(w.waiting); n > 0 {
		msg += fmt.Sprintf("; %d replica(s) wait on it", n)
	}
	ev.Msg(msg)
}

// waitingReplicas lists the replicas waiting for the lock, where the backend can tell.
func (c *Coordinator) waitingReplicas(ctx context.Context) []string {
	w, ok := c.deps.Locker.(lock.WaiterLister)
	if !ok {
		return nil
	}
	names, err := w.Waiters(ctx)
	if err != nil {
		c.deps.Log.Debug().Err(err).Msg("could not list the waiting replicas")
	}
	return names
}
