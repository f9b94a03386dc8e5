package coordinator

import (
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// Phase is where a replica stands.
type Phase string

const (
	PhaseStarting  Phase = "starting"  // nothing read yet
	PhaseWaiting   Phase = "waiting"   // the schema is behind; another replica migrates, or nobody
	PhaseMigrating Phase = "migrating" // this replica is the migrator
	PhaseReady     Phase = "ready"     // the schema satisfies this replica
	PhaseUnready   Phase = "unready"   // it did, and no longer does (ahead under unready, or behind)
	PhaseFailed    Phase = "failed"    // the migration run failed
	PhaseDisagrees Phase = "disagrees" // the schema is ready, but the fleet guard holds the replica back (--same-env)
)

// Role is the part this replica played in the rollout.
type Role string

const (
	RoleWaiter   Role = "waiter"
	RoleMigrator Role = "migrator"
)

// Snapshot is what a replica knows at one moment, as the probes and /status show it.
type Snapshot struct {
	Phase Phase
	Role  Role
	// Ready is the verdict: true only from a read of the database that satisfied the policy.
	Ready bool
	// Reason says in one sentence why the replica is (not) ready.
	Reason string
	// Status is the last successful read of the schema; nil before the first.
	Status *engine.Status
	// ReadAt is when Status was read.
	ReadAt time.Time
	// Holder is the migrator as last seen, if any.
	Holder *lock.Holder
	// Journal is the newest journal entries as last read, newest first.
	Journal []journal.Entry
	// Unreachable is the error of the last failed read since the last good one, if any.
	Unreachable error
	// UnreachableSince is when reads started failing.
	UnreachableSince time.Time
	// Fleet is the replicas alive that share this election, as last read; FleetKnown is false
	// until it was read, and where the election cannot show it.
	Fleet      []lock.Member
	FleetKnown bool
}

// Observer learns what the coordinator does, to serve probes and metrics. Its methods are called
// from the coordinator's goroutine and must return quickly.
type Observer interface {
	// Observe receives every change of the replica's state.
	Observe(s Snapshot)
	// Elected reports that this replica became the migrator after waiting for the lock so long.
	Elected(waited time.Duration)
	// Migrated reports one migration applied (err nil) or failed.
	Migrated(m engine.Migration, took time.Duration, err error)
	// Gated reports that the gate ended ready, after so long.
	Gated(waited time.Duration)
}

// nopObserver is the Observer of a coordinator given none.
type nopObserver struct{}

func (nopObserver) Observe(Snapshot)                                {}
func (nopObserver) Elected(time.Duration)                           {}
func (nopObserver) Migrated(engine.Migration, time.Duration, error) {}
func (nopObserver) Gated(time.Duration)                             {}
