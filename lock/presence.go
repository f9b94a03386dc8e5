package lock

import (
	"context"
	"time"
)

// Presence is how a replica shows itself to its fleet while it runs, and sees the others: an
// optional part of a Locker. A backend keeps the entries where its replicas already meet (the
// PostgreSQL backend on each replica's own session, the file lock beside its file, Raft among
// its members), so that an entry goes with its replica, without anyone cleaning up, and
// showing oneself costs no connection of its own and no periodic write.
type Presence interface {
	// Show publishes this replica's entry, replacing the one it showed before. The
	// coordinator calls it when the replica's phase changes, not periodically.
	Show(ctx context.Context, m Member) error

	// Fleet lists the entries of the replicas alive now that share this election, this
	// replica's included once it has shown itself.
	Fleet(ctx context.Context) ([]Member, error)
}

// Member is one replica as its fleet sees it.
type Member struct {
	Replica string `json:"replica"`
	// Host names the machine the replica runs on, for people.
	Host string `json:"host"`
	// MigrationSet fingerprints the replica's migration files: which release it runs.
	MigrationSet string `json:"migration_set"`
	// Phase is the replica's phase as the coordinator names it: waiting, migrating, ready, …
	Phase string `json:"phase"`
	// Since is when the replica entered Phase.
	Since time.Time `json:"since"`
	// Fingerprints are, by variable name, keyed memory-hard fingerprints of the values of the
	// variables the fleet must agree on (--same-env); never the values.
	Fingerprints map[string]string `json:"fingerprints,omitempty"`
}
