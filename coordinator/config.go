package coordinator

import (
	"fmt"
	"slices"
	"time"
)

// Mode says whether a replica may become the migrator.
type Mode int

const (
	// ModeMigrate: take part in the election; the winner migrates, everyone waits for ready.
	ModeMigrate Mode = iota
	// ModeWait: never migrate; wait until the schema is ready.
	ModeWait
)

func (m Mode) String() string {
	if m == ModeWait {
		return "wait"
	}
	return "migrate"
}

// AheadPolicy says what a replica does when the database holds migrations it does not know
// (a newer release migrated).
type AheadPolicy string

const (
	// AheadReady: the replica is ready anyway. Right for expand/contract releases, where a
	// newer schema still serves the older code.
	AheadReady AheadPolicy = "ready"
	// AheadUnready: a long-running replica (serve) stays up but reports not ready, so it gets
	// no traffic, until the database no longer holds unknown migrations or it is replaced.
	AheadUnready AheadPolicy = "unready"
	// AheadExit: the replica refuses to run against the newer schema (exit code 6). Right when
	// a release breaks older code (renamed or dropped columns).
	AheadExit AheadPolicy = "exit"
)

// ParseAheadPolicy reads a --when-ahead value.
func ParseAheadPolicy(s string) (AheadPolicy, error) {
	switch p := AheadPolicy(s); p {
	case AheadReady, AheadUnready, AheadExit:
		return p, nil
	}
	return "", fmt.Errorf("when-ahead: %q must be ready, unready or exit", s)
}

// Config tunes the flow. Durations are time.Duration everywhere.
type Config struct {
	Mode Mode
	// ReplicaID names this replica in logs, the journal and the lock holder's session.
	ReplicaID string
	// Timeout bounds the whole run: connecting, waiting and migrating. A migration still
	// running at the deadline is cancelled and, if transactional, rolled back. Zero: no
	// deadline.
	Timeout time.Duration
	// PollInterval is how often a waiter re-reads the database when nothing wakes it earlier;
	// each wait is jittered by ±25 %.
	PollInterval time.Duration
	// ProgressInterval is how often a waiter logs whom it waits for.
	ProgressInterval time.Duration
	// WhenAhead is the policy for a database ahead of this replica.
	WhenAhead AheadPolicy
	// RerunInterrupted lets the migrator run again a non-transactional migration that was
	// interrupted midway (after a person checked what it left behind).
	RerunInterrupted bool
	// RetryMin and RetryMax bound the backoff between attempts to reach an unavailable database.
	RetryMin, RetryMax time.Duration
	// Host names the machine the replica runs on, as its fleet shows it.
	Host string
	// SameEnv names the variables the replicas of a release must agree on (--same-env); empty
	// when the fleet guard is off. Deps.Fingerprints gives this replica's fingerprints of them.
	SameEnv []string
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Mode:             ModeMigrate,
		Timeout:          15 * time.Minute,
		PollInterval:     2 * time.Second,
		ProgressInterval: 5 * time.Second,
		WhenAhead:        AheadReady,
		RetryMin:         100 * time.Millisecond,
		RetryMax:         3 * time.Second,
	}
}

// Validate reports the first setting that cannot work, naming its key and value.
func (c Config) Validate() error {
	if c.ReplicaID == "" {
		return fmt.Errorf("replica-id: must not be empty")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout: %q must be positive, or 0 for no deadline", c.Timeout)
	}
	positive := []struct {
		key string
		d   time.Duration
	}{
		{"poll-interval", c.PollInterval},
		{"progress-interval", c.ProgressInterval},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("%s: %q must be positive", p.key, p.d)
		}
	}
	if _, err := ParseAheadPolicy(string(c.WhenAhead)); err != nil {
		return err
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		return fmt.Errorf("retry backoff (%s to %s) must be positive and increasing", c.RetryMin, c.RetryMax)
	}
	for i, name := range c.SameEnv {
		if name == "" || slices.Contains(c.SameEnv[:i], name) {
			return fmt.Errorf("same-env: %q is empty or given twice", name)
		}
	}
	return nil
}
