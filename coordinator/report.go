package coordinator

import (
	"context"
	"fmt"
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
	if st, err = c.deps.Engine.Status(ctx); err != nil {
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
	if c.deps.Retryable(err) || c.deps.Refused(err) || ctx.Err() != nil {
		return &UnreachableError{Target: c.deps.Target, Err: err}
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

	// Run is the namespace's last migration run, and Position and Of where it stands: applying
	// the Position-th of the Of migrations it set out to apply (0 where that cannot be told).
	Run      *journal.Entry `json:"last_run,omitempty"`
	Position int            `json:"run_position,omitempty"`
	Of       int            `json:"run_migrations,omitempty"`
	// Waiting are the replicas waiting for the migrator now; WaitingKnown is false where the
	// backend cannot tell (Raft: waiters hold no database connection).
	Waiting      []string `json:"waiting"`
	WaitingKnown bool     `json:"waiting_known"`
	// Next says in one sentence what to do now.
	Next string `json:"next_step,omitempty"`
	// Applied is what the database has applied, when asked for (status --applied).
	Applied []AppliedMigration `json:"applied,omitempty"`
	// Fleet is the replicas alive that share the election, by release and phase; nil where
	// the election cannot show them (Raft, for a command that only reads).
	Fleet *FleetReport `json:"fleet,omitempty"`
}

// AppliedMigration is one applied migration, with what the journal knows of it.
type AppliedMigration struct {
	engine.Applied
	Name string `json:"migration,omitempty"`
	// Replica and RunID applied it; Took is how long it took. Empty where the journal does not
	// know (applied before schemagate, or by another tool).
	Replica string        `json:"replica,omitempty"`
	RunID   int64         `json:"run_id,omitempty"`
	Took    time.Duration `json:"took_ns,omitempty"`
	// Changed is set when the migration's file differs from the one applied.
	Changed bool `json:"changed_since_applied,omitempty"`
}

// ReportOptions say what Report reads beyond the state.
type ReportOptions struct {
	// Journal is how many journal entries to include.
	Journal int
	// Applied includes the applied migrations.
	Applied bool
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
	// Command is the migrate command, with --engine command.
	Command string `json:"migrate_command,omitempty"`
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
	if s.FleetKnown {
		r.Fleet = NewFleetReport(s.Fleet, id.MigrationSet)
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
func (c *Coordinator) Report(ctx context.Context, id Identity, opts ReportOptions) (*Report, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	st, err := c.deps.Engine.Status(ctx)
	if err != nil {
		return nil, c.readError(ctx, err)
	}
	ready, summary, _ := c.judge(st)
	r := &Report{Identity: id, Status: st, Ready: ready, Summary: summary, ReadAt: time.Now().UTC()}
	if r.Holder, err = c.holder(ctx); err != nil {
		return nil, c.readError(ctx, err)
	}
	if r.Journal, err = c.tail(ctx, max(opts.Journal, 1)); err != nil {
		return nil, c.readError(ctx, err)
	}
	if !st.Ready() {
		r.Summary += lastFailure(r.Journal)
	}
	r.Run = lastRunOf(r.Journal)
	r.Position, r.Of = c.position(r.Run)
	r.Journal = r.Journal[:min(len(r.Journal), opts.Journal)]
	if _, ok := c.deps.Locker.(lock.WaiterLister); ok {
		r.Waiting, r.WaitingKnown = c.waitingReplicas(ctx), true
	}
	if opts.Applied {
		if r.Applied, err = c.applied(ctx); err != nil {
			return nil, c.readError(ctx, err)
		}
	}
	r.Fleet = c.fleetReport(ctx, id.MigrationSet)
	r.Next = nextStep(r)
	return r.normalize(), nil
}

// position says where a running run stands: applying the pos-th of the of migrations between
// its from and to versions, as this replica's files list them; 0, 0 where that cannot be told.
func (c *Coordinator) position(run *journal.Entry) (pos, of int) {
	if run == nil || run.Outcome != journal.Running || run.Version == 0 {
		return 0, 0
	}
	for _, m := range c.deps.Engine.Plan().All {
		if m.Version > run.FromVersion && m.Version <= run.ToVersion {
			of++
			if m.Version <= run.Version {
				pos++
			}
		}
	}
	if pos == 0 {
		return 0, 0
	}
	return pos, of
}

// applied lists what the database has applied, with what the journal knows of each.
func (c *Coordinator) applied(ctx context.Context) ([]AppliedMigration, error) {
	h, ok := c.deps.Engine.(engine.Historian)
	if !ok {
		return nil, nil
	}
	as, err := h.Applied(ctx)
	if err != nil {
		return nil, err
	}
	records, err := c.deps.Journal.Applied(ctx)
	if err != nil {
		return nil, err
	}
	byVersion := map[int64]journal.Entry{}
	for _, e := range records {
		byVersion[e.Version] = e // the last record of a version counts
	}
	plan := c.deps.Engine.Plan()
	out := make([]AppliedMigration, 0, len(as))
	for _, a := range as {
		am := AppliedMigration{Applied: a}
		m, known := plan.Find(a.Version)
		if known {
			am.Name = m.Name
		}
		if e, ok := byVersion[a.Version]; ok {
			am.Replica, am.RunID = e.Replica, e.RunID
			if am.Name == "" {
				am.Name = c.redact(e.Name)
			}
			if e.FinishedAt != nil {
				am.Took = e.FinishedAt.Sub(e.StartedAt).Round(time.Millisecond)
				am.At = *e.FinishedAt // the version table's time is its transaction's start
			}
			am.Changed = known && e.Fingerprint != "" && m.Checksum != "" && e.Fingerprint != m.Checksum
		}
		out = append(out, am)
	}
	return out, nil
}

// nextStep says in one sentence what a person should do, given what r shows.
func nextStep(r *Report) string {
	run := r.Run
	interrupted := ""
	for _, e := range r.Journal {
		if e.Kind == journal.KindMigration && e.Outcome == journal.Interrupted {
			interrupted = e.Name
			break
		}
	}
	switch {
	case r.NoFiles:
		return "give --dir (this release's migration files) to see the target and what is pending"
	case interrupted != "" && !r.Status.Ready():
		return fmt.Sprintf("check what %[1]s left behind (it ran without a transaction and was cut off); finish it by "+
			"hand and run schemagate resolve --migration %[1]s --mark-applied --reason …, or undo it and run "+
			"schemagate resolve --migration %[1]s --allow-rerun --reason …", interrupted)
	case r.CutOff():
		return cutOffNext(r)
	case r.Holder != nil && run != nil && run.Outcome == journal.Running:
		stop := "schemagate abort"
		if r.Holder.PID != 0 {
			stop += fmt.Sprintf(", or SELECT pg_terminate_backend(%d)", r.Holder.PID)
		}
		return "wait: the migrator is at work; if it is stuck (the same statement for far longer than it should take), " +
			"stop it with " + stop + ", and a waiter takes over"
	case run != nil && run.Outcome == journal.Failed && !r.Status.Ready():
		what := "the migration"
		if run.Name != "" {
			what = run.Name
		}
		return fmt.Sprintf("fix %s (the error above), release the fix and roll it out; the replicas of this release "+
			"exit 3 until then", what)
	case r.Ahead() && r.Status.Ready():
		return "nothing for this release; the database holds newer migrations: roll forward, or keep " +
			"--when-ahead=ready if the older code still works with them"
	case r.Status.Ready():
		return "nothing: the schema is what this release needs"
	case r.Holder != nil:
		return "wait: another replica holds the lock and is about to migrate"
	}
	return "start a replica that migrates (a migrate Job, or a replica without --never-migrate): nothing is migrating now"
}

// CutOff reports a run the journal still calls running while no replica holds the lock: its
// migrator was killed or cut off before it could write how the run ended. The next migrator
// records it as abandoned.
func (r *Report) CutOff() bool {
	return r.Run != nil && r.Run.Outcome == journal.Running && r.Holder == nil
}

// cutOffNext is the next step after a cut-off run: what the next migrator will do with the
// migration it left, and what a person must do first, if anything.
func cutOffNext(r *Report) string {
	name := r.Run.Name
	switch {
	case name == engine.CommandStep:
		return "start a replica that migrates: it ends what is left of the cut-off migrate command's sessions and runs the command again"
	case name == "":
		return "start a replica that migrates: the cut-off run had not started a migration"
	}
	for _, m := range r.Pending {
		if m.Name == name && !m.Transactional {
			return fmt.Sprintf("check what %[1]s left behind (it ran without a transaction and was cut off): the next "+
				"migrator refuses it until you finish it by hand and run schemagate resolve --migration %[1]s "+
				"--mark-applied --reason …, or undo it and run schemagate resolve --migration %[1]s --allow-rerun --reason …", name)
		}
	}
	return fmt.Sprintf("start a replica that migrates: %s rolled back with the cut-off migrator's transaction, and the next migrator applies it again", name)
}

// withDeadline bounds ctx by --timeout; 0 means no deadline.
func (c *Coordinator) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}
