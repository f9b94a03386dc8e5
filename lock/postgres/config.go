package postgres

import (
	"fmt"
	"time"
)

// Config tunes the session a replica keeps with PostgreSQL. Two mechanisms bound how long a
// vanished migrator keeps the lock. The lease: a migrator keeps its session busy (it runs a
// statement at least every second when it has nothing else to run), and a waiter ends a
// migrator whose session sat idle for longer than Lease with the lock held, which is what a
// frozen migrator's session does. The TCP settings: with the defaults the server drops a silent
// client's session, and with it the lock, after about 5 s (2 s idle + 3 probes × 1 s), or 5 s
// when data is unacknowledged, which covers a migrator cut off in the middle of a long
// statement; a killed client's running statement is noticed within 1 s.
type Config struct {
	// ReplicaID names this replica in application_name ("schemagate/<ReplicaID>").
	ReplicaID string

	// KeepaliveIdle is tcp_keepalives_idle: silence before the server probes the client.
	KeepaliveIdle time.Duration
	// KeepaliveInterval is tcp_keepalives_interval: time between unanswered probes.
	KeepaliveInterval time.Duration
	// KeepaliveCount is tcp_keepalives_count: unanswered probes before the session is dropped.
	KeepaliveCount int
	// TCPUserTimeout is tcp_user_timeout: how long sent data may stay unacknowledged.
	TCPUserTimeout time.Duration
	// ConnectionCheckInterval is client_connection_check_interval (PostgreSQL 14+): how often a
	// running statement checks that its client is still there.
	ConnectionCheckInterval time.Duration
	// ConnectTimeout bounds one connection attempt.
	ConnectTimeout time.Duration
	// Lease is how long a migrator's session may sit idle, the lock held, before a waiting
	// replica ends it. A healthy migrator's session is never idle for more than about a
	// second (lease.renew); a migrator busy in a long statement is active, not idle, and is
	// never ended this way.
	Lease time.Duration
}

// RenewEvery is how often a migrator runs a statement on its otherwise idle session, to show
// the waiters it is alive. Lease must be well above it: the difference is how long a migrator
// may go without CPU (a paused process, a starved node) and keep its run.
const RenewEvery = time.Second

// DefaultConfig returns the settings described on Config.
func DefaultConfig() Config {
	return Config{
		KeepaliveIdle:           2 * time.Second,
		KeepaliveInterval:       time.Second,
		KeepaliveCount:          3,
		TCPUserTimeout:          5 * time.Second,
		ConnectionCheckInterval: time.Second,
		ConnectTimeout:          5 * time.Second,
		Lease:                   6 * time.Second,
	}
}

// Validate reports the first setting that cannot work, naming its key.
func (c Config) Validate() error {
	seconds := []struct {
		key string
		d   time.Duration
	}{
		{"keepalive-idle", c.KeepaliveIdle},
		{"keepalive-interval", c.KeepaliveInterval},
	}
	for _, s := range seconds {
		if s.d < time.Second || s.d%time.Second != 0 {
			return fmt.Errorf("%s: %q must be a whole number of seconds, at least 1s", s.key, s.d)
		}
	}
	if c.KeepaliveCount < 1 {
		return fmt.Errorf("keepalive-count: %d must be at least 1", c.KeepaliveCount)
	}
	millis := []struct {
		key string
		d   time.Duration
	}{
		{"tcp-user-timeout", c.TCPUserTimeout},
		{"connection-check-interval", c.ConnectionCheckInterval},
	}
	for _, s := range millis {
		if s.d < 0 || s.d%time.Millisecond != 0 {
			return fmt.Errorf("%s: %q must be zero (off) or a positive whole number of milliseconds", s.key, s.d)
		}
	}
	if c.Lease < 3*RenewEvery || c.Lease%time.Millisecond != 0 {
		return fmt.Errorf("migrator-lease: %q must be a whole number of milliseconds, at least %s (a migrator renews every %s)",
			c.Lease, 3*RenewEvery, RenewEvery)
	}
	if c.ConnectTimeout <= 0 {
		return fmt.Errorf("connect-timeout: %q must be positive", c.ConnectTimeout)
	}
	return nil
}

// settings returns the session parameters schemagate sets on each connection, in the form
// set_config takes them. Parameters the server does not know (client_connection_check_interval
// and idle_session_timeout before PostgreSQL 14) are left out.
func (c Config) settings(serverMajor int) [][2]string {
	s := [][2]string{
		{"tcp_keepalives_idle", fmt.Sprint(int(c.KeepaliveIdle / time.Second))},
		{"tcp_keepalives_interval", fmt.Sprint(int(c.KeepaliveInterval / time.Second))},
		{"tcp_keepalives_count", fmt.Sprint(c.KeepaliveCount)},
		{"tcp_user_timeout", fmt.Sprint(c.TCPUserTimeout.Milliseconds())},
	}
	if serverMajor >= 14 {
		s = append(s,
			[2]string{"client_connection_check_interval", fmt.Sprint(c.ConnectionCheckInterval.Milliseconds())},
			// A migrator is never idle for long, but a waiter is: a server-wide
			// idle_session_timeout must not keep dropping it.
			[2]string{"idle_session_timeout", "0"},
		)
	}
	return s
}
