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
// cannot be read.
func (c *Coordinator) Check(ctx context.Context) (engine.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	st, err := c.Engine.Status(ctx)
	if err != nil {
		return st, c.readError(ctx, err)
	}
	switch {
	case st.Ahead() && c.cfg.WhenAhead == AheadExit:
		return st, &AheadError{Status: st}
	case !st.Ready():
		return st, ErrNotReady
	}
	return st, nil
}

// readError classifies an error of a one-shot read.
func (c *Coordinator) readError(ctx context.Context, err error) error {
	if c.Retryable(err) || c.Refused(err) || ctx.Err() != nil {
		return &UnreachableError{Target: c.Target, Err: err}
	}
	return err
}

// Report is the status document: `schemagate status --output json` prints it, and the sidecar
// serves it.
type Report struct {
	Replica   string `json:"replica"`
	Database  string `json:"database"`
	Namespace string `json:"lock_namespace"`
	LockKey   int64  `json:"lock_key"`
	// MigrationSet fingerprints this replica's migration files.
	MigrationSet string `json:"migration_set"`
	engine.Status
	Ready   bool   `json:"ready"`
	Summary string `json:"summary"`
	// Holder is the current migrator, if any.
	Holder *lock.Holder `json:"lock_holder"`
	// Journal is the newest journal entries, newest first.
	Journal []journal.Entry `json:"journal"`
	// ReadAt is when the report was read.
	ReadAt time.Time `json:"read_at"`
}

// ReportOptions name what the report cannot learn from its dependencies.
type ReportOptions struct {
	Namespace string
	LockKey   int64
	// JournalEntries is how many journal entries to include.
	JournalEntries int
}

// Report reads everything a person needs to see where a rollout stands. It takes no lock.
func (c *Coordinator) Report(ctx context.Context, opts ReportOptions) (*Report, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	st, err := c.Engine.Status(ctx)
	if err != nil {
		return nil, c.readError(ctx, err)
	}
	r := &Report{
		Replica:      c.cfg.ReplicaID,
		Database:     c.Target,
		Namespace:    opts.Namespace,
		LockKey:      opts.LockKey,
		MigrationSet: c.Engine.Plan().Fingerprint,
		Status:       st,
		Ready:        st.Ready() && !(st.Ahead() && c.cfg.WhenAhead == AheadExit),
		Summary:      st.Describe(),
		ReadAt:       time.Now().UTC(),
	}
	if r.Pending == nil {
		r.Pending = []engine.Migration{}
	}
	if r.Holder, err = c.Locker.Holder(ctx); err != nil {
		return nil, c.readError(ctx, err)
	}
	if r.Journal, err = c.Journal.Tail(ctx, opts.JournalEntries); err != nil {
		return nil, c.readError(ctx, err)
	}
	if r.Journal == nil {
		r.Journal = []journal.Entry{}
	}
	return r, nil
}
