package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
)

// describe says in one sentence what the replica is waiting for.
func (g *gate) describe() string {
	var s string
	switch {
	case g.status == nil:
		s = "the schema was never read"
	default:
		s = g.status.Describe()
	}
	switch {
	case g.holder != nil:
		s += "; " + g.migrating()
	case g.c.cfg.Mode == ModeWait:
		s += "; no replica is migrating, and this one never migrates (wait mode)"
	}
	if g.replicated.cluster != "" && g.holder == nil {
		s += "; " + g.replicated.cluster
	}
	if g.unavailable != nil {
		s += fmt.Sprintf("; last database error: %v", g.unavailable)
	}
	return s
}

// migrating describes the current migrator: who, what it applies and for how long, since when
// it migrates, and the statement it runs: "replica web-7 (pid 4242) is applying
// 00042_add_index.sql for 38s (migrating since 12:00:01; statement running 37s: CREATE INDEX …)".
func (g *gate) migrating() string {
	h := g.holder
	s := "replica " + h.String()
	r := g.lastRun
	if r == nil || r.Outcome != journal.Running || (h.Replica != "" && r.Replica != h.Replica) {
		s += " holds the lock"
	} else {
		stale := g.runReadLongAgo()
		switch {
		case stale && r.Name != "" && r.CurrentSince != nil:
			// Read before this wait, which does not re-read the journal: the migrator may have
			// moved on since.
			s += fmt.Sprintf(" is migrating (it was applying %s at %s, the journal's last read)",
				r.Name, g.lastRunAt.Local().Format(time.TimeOnly))
		case stale:
			s += " is migrating"
		case r.Name != "" && r.CurrentSince != nil:
			s += fmt.Sprintf(" is applying %s for %s", r.Name, since(*r.CurrentSince))
		default:
			s += " is preparing to migrate"
		}
		s += fmt.Sprintf(" (migrating since %s", r.StartedAt.Local().Format(time.TimeOnly))
		if h.State == "active" && !h.QueryStart.IsZero() {
			s += fmt.Sprintf("; statement running %s: %s", since(h.QueryStart), oneLine(h.Query, 120))
		}
		return s + ")"
	}
	if h.State == "active" && !h.QueryStart.IsZero() {
		s += fmt.Sprintf(", running for %s: %s", since(h.QueryStart), oneLine(h.Query, 120))
	}
	return s
}

// runReadLongAgo reports whether the journal's last run was read long enough ago (a wait does
// not re-read it) that the migration it names may no longer be the one the migrator applies.
func (g *gate) runReadLongAgo() bool { return time.Since(g.lastRunAt) > 2*time.Second }

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Second) }

// oneLine squeezes a statement onto one line of at most n bytes, for logs.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// interrupted says what a stop did to the migration under way, and how to journal that
// migration if it ran without a transaction.
func (m *migrator) interrupted(mig *engine.Migration, progress *engine.Progress) (what string, migration journal.Outcome) {
	switch {
	case mig == nil:
		return "before a migration started; nothing more was applied in this run", journal.Cancelled
	case mig.External:
		return "while the migrate command ran; the command was stopped (SIGTERM, then SIGKILL after its grace period), " +
			"and what it committed stays", journal.Cancelled
	case mig.Transactional:
		return "while applying " + mig.Name + "; its transaction rolled back", journal.Cancelled
	case progress != nil && progress.Known && len(progress.Completed) == 0:
		return "while applying " + mig.Name + " (no transaction) before its first statement completed; nothing of it " +
			"was applied", journal.Cancelled
	}
	how := "any of its statements may have completed"
	if progress != nil {
		how = progress.Describe()
	}
	return "while applying " + mig.Name + " without a transaction: " + how + "; it is recorded as interrupted, and no " +
		"migrator runs it again until a person has checked the database and decided (schemagate resolve)", journal.Interrupted
}

// stopCause is what stopped ctx: the signal (from the context's cause), or the deadline.
func stopCause(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errors.New("the deadline (--timeout) passed")
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return errors.New("stopped")
}

// lossCause says what losing the election meant for the work under way, truthfully for its
// kind: the fence stopped a migration on the session from committing, but a command with
// connections of its own commits what it commits.
func (m *migrator) lossCause() string {
	switch {
	case m.current != nil && m.current.External:
		return "lost while the migrate command ran; the command was killed at once, but its own transactions " +
			"are not fenced: what it committed before it died stays"
	case m.current != nil && !m.current.Transactional:
		return fmt.Sprintf("lost while %s ran without a transaction; the statements it completed before stay, "+
			"and it is left for the next migrator to find interrupted", m.current.Name)
	case m.current != nil:
		return fmt.Sprintf("lost while %s ran; its transaction could not commit without the lock, and nothing "+
			"more was committed", m.current.Name)
	}
	return "lost between migrations; nothing more was committed"
}
