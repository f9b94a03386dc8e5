// Package coordinator runs the flow every schemagate mode shares: read the schema; if it is not
// what this replica needs, elect one migrator among the replicas; the migrator applies the
// pending migrations, journaling and announcing each; everyone else waits for the result, says
// whom it waits for, and takes over if the migrator dies. A replica reports ready only from
// what it read in the database.
//
// The coordinator does not know which election backend or migration engine it drives: it takes
// a lock.Locker and an Engine.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// Engine is what the coordinator needs from a migration engine.
type Engine interface {
	// Plan describes the migrations this replica carries.
	Plan() engine.Plan
	// Status reads what the database has applied, without writing.
	Status(ctx context.Context) (engine.Status, error)
	// Migrate applies st's pending migrations in order, calling h around each.
	Migrate(ctx context.Context, st engine.Status, h engine.Hooks) error
}

// Deps are what a Coordinator drives.
type Deps struct {
	Locker  lock.Locker
	Engine  Engine
	Journal *journal.Journal
	// Retryable says whether an error means the database is unavailable for now: the replica
	// backs off and tries again until its deadline.
	Retryable func(error) bool
	// Refused says whether the database refused this replica for good (a wrong password).
	Refused func(error) bool
	// Target names the database for messages, without any secret.
	Target string
	Log    zerolog.Logger
	// Observer learns every change of state, for probes and metrics; nil for none.
	Observer Observer
	// Redact hides secrets in text before it is journaled, announced, published or returned;
	// nil for none.
	Redact func(string) string
	// Running reports the migrator's statement under way, for its heartbeat; nil where the
	// backend cannot tell.
	Running func() (statement string, since time.Time, ok bool)
}

// Coordinator runs the flow for one replica. Run, then Watch, from one goroutine.
type Coordinator struct {
	cfg Config
	Deps
	// role is the part this replica played in its last Run.
	role Role
	// gated: the last Run ended with the replica's migrations all applied.
	gated bool
	// ranRun is the journal id of the last run this replica migrated, 0 if none.
	ranRun int64
}

// New checks cfg and returns a coordinator.
func New(cfg Config, d Deps) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, &InputError{Err: err}
	}
	if d.Locker == nil || d.Engine == nil || d.Journal == nil || d.Retryable == nil || d.Refused == nil {
		return nil, errors.New("coordinator: Locker, Engine, Journal, Retryable and Refused are required")
	}
	if d.Observer == nil {
		d.Observer = nopObserver{}
	}
	return &Coordinator{cfg: cfg, Deps: d, role: RoleWaiter}, nil
}

// Run gates until the schema is ready for this replica, migrating it if this replica wins the
// election (in ModeMigrate). It returns nil when ready; otherwise one of this package's error
// types, each of which knows its exit code (schemagate.ExitCodeOf).
func (c *Coordinator) Run(ctx context.Context) error {
	if c.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	g := &gate{c: c, started: time.Now(), backoff: c.cfg.RetryMin, progress: pacer{every: c.cfg.ProgressInterval}}
	c.role, c.gated = RoleWaiter, false
	g.publish(PhaseStarting, false, "starting: the schema has not been read yet")
	return g.run(ctx)
}

// gate is the state of one Run.
type gate struct {
	c       *Coordinator
	started time.Time

	// first is the latest run in the journal when this replica started; a failure of that run
	// (if it was still running) or of a later one is a failure this replica waited for.
	first     *journal.Entry
	firstRead bool

	status  *engine.Status
	readAt  time.Time
	holder  *lock.Holder
	lastRun *journal.Entry
	phase   Phase

	// A replicated backend's outcome when the gate started, the one last acted on, and how the
	// cluster stands (see stepReplicated).
	firstOutcome    lock.Outcome
	readOutcome     uint64
	cluster         string
	leaderlessSince time.Time

	unavailable      error // the last error that made the database unavailable
	unavailableSince time.Time
	backoff          time.Duration
	progress         pacer
}

// publish tells the observer where the gate stands.
func (g *gate) publish(phase Phase, ready bool, reason string) {
	g.phase = phase
	s := Snapshot{Phase: phase, Role: g.c.role, Ready: ready, Reason: reason, Status: g.status,
		ReadAt: g.readAt, Holder: g.holder, Unreachable: g.unavailable, UnreachableSince: g.unavailableSince}
	if g.lastRun != nil {
		s.Journal = []journal.Entry{*g.lastRun}
	}
	g.c.Observer.Observe(s)
}

func (g *gate) run(ctx context.Context) error {
	for {
		done, err := g.step(ctx)
		if done {
			return err
		}
		if err == nil {
			g.backoff = g.c.cfg.RetryMin
			g.unavailable = nil
			continue
		}
		if ctx.Err() != nil {
			return g.deadline(ctx)
		}
		if g.c.Refused(err) {
			return &UnreachableError{Target: g.c.Target, Err: err}
		}
		if !g.c.Retryable(err) {
			return err
		}
		if err := g.retryLater(ctx, err); err != nil {
			return err
		}
	}
}

// step reads where things stand and acts once: finish, become the migrator, or wait.
func (g *gate) step(ctx context.Context) (bool, error) {
	c := g.c
	rep, replicated := c.Locker.(lock.Replicated)
	if replicated && g.status != nil {
		return g.stepReplicated(ctx, rep)
	}
	if replicated {
		g.firstOutcome = rep.Outcome()
		g.readOutcome = g.firstOutcome.Seq
	}
	st, err := c.Engine.Status(ctx)
	if err != nil {
		return false, err
	}
	g.status, g.readAt, g.unavailable = &st, time.Now(), nil
	if done, err := g.verdict(st); done {
		return true, err
	}
	if g.lastRun, err = c.lastRun(ctx); err != nil {
		return false, err
	}
	if !g.firstRead {
		g.first, g.firstRead = g.lastRun, true
	}
	if g.waitedFor(g.lastRun) {
		f := failedRun(g.lastRun, false)
		g.publish(PhaseFailed, false, f.Error())
		return true, f
	}
	if acted, done, err := g.leadIfFree(ctx, nil); acted {
		return done, err
	}
	g.waiting()
	g.reportProgress()
	return false, c.Locker.Wait(ctx, g.nextWait())
}

// stepReplicated is step for a backend that replicates the run's outcome among the replicas:
// the database is read only when the outcome says the run ended (and once at start), so that a
// waiting replica holds no database connection. A failed run of this replica's migration set
// that it waited for ends the gate without reading the database.
func (g *gate) stepReplicated(ctx context.Context, rep lock.Replicated) (bool, error) {
	c := g.c
	out := rep.Outcome()
	g.cluster = out.Cluster
	mine := out.Fingerprint == c.Engine.Plan().Fingerprint
	waited := out.Seq > g.firstOutcome.Seq || g.firstOutcome.Phase == lock.PhaseMigrating || c.cfg.Mode == ModeWait
	if out.Phase == lock.PhaseFailed && mine && waited {
		f := &MigrationFailedError{Migration: out.Migration, Replica: out.Replica, Cause: errors.New(c.redact(out.Error))}
		g.publish(PhaseFailed, false, f.Error())
		return true, f
	}
	if out.Phase == lock.PhaseDone && out.Seq != g.readOutcome || g.stranded(out) {
		st, err := c.Engine.Status(ctx)
		if err != nil {
			return false, err
		}
		g.readOutcome = out.Seq
		g.status, g.readAt = &st, time.Now()
		if done, err := g.verdict(st); done {
			return true, err
		}
	}
	// The state may move while trying (a new leader catching up): then look again.
	moved := func() bool { return rep.Outcome().Seq != out.Seq }
	if acted, done, err := g.leadIfFree(ctx, moved); acted {
		return done, err
	}
	g.waiting()
	g.reportProgress()
	return false, c.Locker.Wait(ctx, g.nextWait())
}

// leadIfFree reads who holds the election and, when nobody does and this replica may migrate,
// tries to take it and leads. acted=false means the replica should wait; so does a try that
// lost the race, unless moved says the state changed meanwhile (acted, not done: look again).
func (g *gate) leadIfFree(ctx context.Context, moved func() bool) (acted, done bool, err error) {
	c := g.c
	if g.holder, err = c.holder(ctx); err != nil {
		return true, false, err
	}
	if g.holder != nil || c.cfg.Mode != ModeMigrate {
		return false, false, nil
	}
	lease, err := c.Locker.TryAcquire(ctx)
	switch {
	case err == nil:
		done, err = g.lead(ctx, lease)
		return true, done, err
	case !errors.Is(err, lock.ErrHeld):
		return true, false, err
	case moved != nil && moved():
		return true, false, nil
	}
	return false, false, nil
}

// strandedAfter is how long a replica of a replicated backend waits without a leader before
// it asks the database, and then how often it asks again.
const strandedAfter = 2 * time.Second

// stranded reports whether the replica should read the database because it has seen no leader
// for strandedAfter. That happens when the members that committed the end of a run exit before
// this one learned it (a new leader learns what was committed only with a quorum), or when a
// quorum is lost: the replicated state can no longer move, and the database is the truth.
func (g *gate) stranded(out lock.Outcome) bool {
	if !out.Leaderless {
		g.leaderlessSince = time.Time{}
		return false
	}
	now := time.Now()
	if g.leaderlessSince.IsZero() {
		g.leaderlessSince = now
	}
	return now.Sub(g.leaderlessSince) >= strandedAfter && now.Sub(g.readAt) >= strandedAfter
}

// verdict decides whether the gate is done with status st: the replica's migrations are all
// applied (whatever the database holds beyond them: Watch judges that under the policy), or the
// database is ahead under --when-ahead=exit.
func (g *gate) verdict(st engine.Status) (bool, error) {
	if err := st.OrderError(); err != nil && !st.Ready() {
		// The migration files are wrong for this database: refused before any run is
		// journaled, like every other bad input.
		g.publish(PhaseFailed, false, err.Error())
		return true, &InputError{Err: err}
	}
	ready, reason, err := g.c.judge(st)
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
	}
	g.publish(phase, ready, reason)
	g.c.gated = true
	g.c.Observer.Gated(time.Since(g.started))
	ev := g.c.Log.Info().Int64("db_version", st.Current).Int64("target_version", st.Target).
		Str("elapsed", time.Since(g.started).Round(time.Millisecond).String())
	if st.Ahead() {
		ev = ev.Ints64("unknown_versions", st.Unknown)
	}
	ev.Msg("schema ready: " + reason)
	return true, nil
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
	if run == nil || run.Outcome != journal.Failed || run.Fingerprint != g.c.Engine.Plan().Fingerprint {
		return false
	}
	if g.first == nil || g.c.cfg.Mode == ModeWait {
		return true
	}
	return run.ID > g.first.ID || (run.ID == g.first.ID && g.first.Outcome == journal.Running)
}

// nextWait is the poll interval jittered by ±25 %, cut short when a progress report is due.
func (g *gate) nextWait() time.Duration {
	p := g.c.cfg.PollInterval
	d := time.Duration(float64(p) * (0.75 + rand.Float64()/2))
	if due := time.Until(g.progress.next()); due > 0 && due < d {
		d = due
	}
	return max(d, 10*time.Millisecond)
}

// retryLater logs that the database is unavailable (at most once per progress interval) and
// sleeps a jittered, growing backoff.
func (g *gate) retryLater(ctx context.Context, err error) error {
	if g.progress.due("unavailable: " + err.Error()) {
		ev := g.c.Log.Warn().Err(err).Str("database", g.c.Target).Str("retry_within", g.backoff.String())
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
		return &UnreachableError{Target: g.c.Target, Err: g.unavailable}
	}
	return &TimeoutError{Waited: time.Since(g.started), Last: g.describe()}
}

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
	if g.cluster != "" && g.holder == nil {
		s += "; " + g.cluster
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
		if r.Name != "" && r.CurrentSince != nil {
			s += fmt.Sprintf(" is applying %s for %s", r.Name, since(*r.CurrentSince))
		} else {
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

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Second) }

// waiting publishes that the replica waits, and why.
func (g *gate) waiting() { g.publish(PhaseWaiting, false, "waiting: "+g.describe()) }

// oneLine squeezes a statement onto one line of at most n bytes, for logs.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
