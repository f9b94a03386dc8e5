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
	// Fingerprints returns, by name, this replica's fingerprints of the values of the variables
	// Config.SameEnv names, blocking until they are computed: they take tens of milliseconds
	// each, by design, so the caller may compute them in the background while the replica
	// connects and waits. Required with Config.SameEnv.
	Fingerprints func(ctx context.Context) (map[string]string, error)
}

// Coordinator runs the flow for one replica. Run, then Watch, from one goroutine.
type Coordinator struct {
	cfg  Config
	deps Deps
	// role is the part this replica played in its last Run.
	role Role
	// gated: the last Run ended with the replica's migrations all applied.
	gated bool
	// ranRun is the journal id of the last run this replica migrated, 0 if none.
	ranRun int64
	// last is what the last Run published last: Watch starts from its verdict.
	last Snapshot
	// presence is what the replica shows of itself to its fleet (fleet.go); nil when its
	// election cannot show it (lock.Presence).
	presence *presence
	// fingerprints are Deps.Fingerprints' answer, once the guard first needed it.
	fingerprints map[string]string
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
	c := &Coordinator{cfg: cfg, deps: d, role: RoleWaiter}
	if p, ok := d.Locker.(lock.Presence); ok {
		c.presence = &presence{p: p}
	}
	if len(cfg.SameEnv) > 0 && c.presence == nil {
		return nil, &InputError{Err: errors.New("same-env: this election cannot show the fleet the replicas must " +
			"agree with")}
	}
	if len(cfg.SameEnv) > 0 && d.Fingerprints == nil {
		return nil, errors.New("coordinator: Config.SameEnv needs Deps.Fingerprints")
	}
	return c, nil
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
	g := &gate{c: c, ctx: ctx, started: time.Now(), backoff: c.cfg.RetryMin, progress: pacer{every: c.cfg.ProgressInterval}}
	c.role, c.gated = RoleWaiter, false
	g.publish(PhaseStarting, false, "starting: the schema has not been read yet")
	return g.run(ctx)
}
