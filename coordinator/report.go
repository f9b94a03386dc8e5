package coordinator

import (
	"context"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// Check reads the schema once, without the lock: nil when ready for this replica, ErrNotReady
// when not, an *AheadError under --when-ahead=exit, an *UnreachableError when the database
// cannot be read. The verdict says why in one sentence; a schema behind because the last
// migration run failed says so, with the failure.
func (c *Coordinator) Check(ctx context.Context) (st engine.Status, verdict string, err error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if st, err = c.Engine.Status(ctx); err != nil {
		return st, "", c.readError(ctx, err)
	}
	ready, verdict, err := c.judge(st)
	switch {
	case err != nil:
		return st, verdict, err
	case !ready && !st.Ready():
		last, err := c.lastRun(ctx)
		if err != nil {
			return st, verdict, c.readError(ctx, err)
		}
		if last != nil {
			verdict += lastFailure([]journal.Entry{*last})
		}
		return st, verdict, ErrNotReady
	case !ready:
		return st, verdict, ErrNotReady
	}
	return st, verdict, nil
}

// readError classifies an error of a one-shot read.
func (c *Coordinator) readError(ctx context.Context, err error) error {
	if c.Retryable(err) || c.Refused(err) || ctx.Err() != nil {
		return &UnreachableError{Target: c.Target, Err: err}
	}
	return err
}

// Report is the status document: `schemagate status --output json` prints it, and the sidecar
// serves it at /status.
type Report struct {
	Identity
	engine.Status
	Ready bool `json:"ready"`
	// Phase and Role are the replica's own (serve); `status` leaves them empty.
	Phase   Phase  `json:"phase,omitempty"`
	Role    Role   `json:"role,omitempty"`
	Summary string `json:"summary"`
	// Holder is the current migrator, if any.
	Holder *lock.Holder `json:"lock_holder"`
	// Journal is the newest journal entries, newest first.
	Journal []journal.Entry `json:"journal"`
	// ReadAt is when the database was read.
	ReadAt time.Time `json:"read_at"`
	// Unreachable is why the database cannot be read now, when it cannot (serve).
	Unreachable      string     `json:"unreachable,omitempty"`
	UnreachableSince *time.Time `json:"unreachable_since,omitempty"`
}

// Identity names a replica and what it gates, for reports.
type Identity struct {
	Replica   string `json:"replica"`
	Database  string `json:"database"`
	Namespace string `json:"lock_namespace"`
	// Lock names the election: "postgres advisory lock 123 (namespace …)", "file lock …", …
	Lock string `json:"lock"`
	// MigrationSet fingerprints this replica's migration files.
	MigrationSet string `json:"migration_set"`
}

// NewReport builds the status document from what a replica last knew, without reading the
// database.
func NewReport(id Identity, s Snapshot) *Report {
	r := &Report{Identity: id, Ready: s.Ready, Phase: s.Phase, Role: s.Role, Summary: s.Reason,
		Holder: s.Holder, Journal: s.Journal, ReadAt: s.ReadAt.UTC()}
	if s.Status != nil {
		r.Status = *s.Status
	}
	if s.Unreachable != nil {
		since := s.UnreachableSince.UTC()
		r.Unreachable, r.UnreachableSince = s.Unreachable.Error(), &since
	}
	return r.normalize()
}

// normalize makes empty lists [] rather than null in JSON.
func (r *Report) normalize() *Report {
	if r.Pending == nil {
		r.Pending = []engine.Migration{}
	}
	if r.Journal == nil {
		r.Journal = []journal.Entry{}
	}
	return r
}

// Report reads everything a person needs to see where a rollout stands. It takes no lock.
func (c *Coordinator) Report(ctx context.Context, id Identity, journalEntries int) (*Report, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	st, err := c.Engine.Status(ctx)
	if err != nil {
		return nil, c.readError(ctx, err)
	}
	ready, summary, _ := c.judge(st)
	r := &Report{Identity: id, Status: st, Ready: ready, Summary: summary, ReadAt: time.Now().UTC()}
	if r.Holder, err = c.holder(ctx); err != nil {
		return nil, c.readError(ctx, err)
	}
	if r.Journal, err = c.tail(ctx, max(journalEntries, 1)); err != nil {
		return nil, c.readError(ctx, err)
	}
	if !st.Ready() {
		r.Summary += lastFailure(r.Journal)
	}
	r.Journal = r.Journal[:min(len(r.Journal), journalEntries)]
	return r.normalize(), nil
}

// withDeadline bounds ctx by --timeout; 0 means no deadline.
func (c *Coordinator) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}
