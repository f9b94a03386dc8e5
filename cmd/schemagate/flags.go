package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock/postgres"
	"github.com/schemagate/schemagate/lock/raft"
)

// The settings every command with a database shares. Each is a flag, an environment variable
// SCHEMAGATE_<NAME> (dashes become underscores) and a config-file key of the same name. Every
// such command defines all of them, so that one command line, environment or config file
// serves them all; what a command may do (its abilities) decides which of them it reads, and
// which its --help shows.

// addSharedFlags adds the shared settings to fs: those of reading the schema, of the Raft
// election and of waiting for every command, and --rerun-interrupted for those that migrate.
func addSharedFlags(fs *pflag.FlagSet, can abilities) {
	timeout := coordinator.DefaultConfig().Timeout
	if can.serves {
		timeout = 0 // serve waits as long as its probes let it
	}
	addGateFlags(fs, timeout)
	addRaftFlags(fs)
	addWaitingFlags(fs)
	addFleetFlags(fs)
	if can.migrates {
		addRerunFlag(fs)
	}
}

// addGateFlags adds the settings of reading the schema: the database, the migration files, the
// engine, the election's names, the connection and the logging; timeout is --timeout's default.
func addGateFlags(fs *pflag.FlagSet, timeout time.Duration) {
	cd := coordinator.DefaultConfig()
	pg := postgres.DefaultConfig()
	fs.String("config", "", "read settings from this YAML, JSON or TOML file (flags and environment take precedence)")
	fs.String("database-url", "", "PostgreSQL URL (postgres://USER@HOST:5432/DB, the password as USER:PASSWORD@ or in PGPASSWORD; or key=value) or SQLite "+
		"file (sqlite:////data/app.db, four slashes: absolute); DATABASE_URL is used when neither this nor SCHEMAGATE_DATABASE_URL is set")
	fs.String("database-url-file", "", "read the database URL from this file (a mounted secret)")
	fs.String("dir", "migrations", "directory of goose migration files (VERSION_description.sql)")
	fs.String("table", "", "version table, optionally schema-qualified (default: goose_db_version; alembic_version with an alembic source)")
	fs.String("target-version", "", "version this replica needs (goose: default the highest in --dir; required with --version-source sql)")
	fs.String("engine", "goose", "what applies the migrations: goose (the files in --dir) or command (--migrate-command)")
	fs.String("version-source", "goose", "how the target and the database's version are known: goose (--dir), "+
		"alembic:DIR (an Alembic script or versions directory) or sql (--version-query and --target-version)")
	fs.String("version-query", "", "with --version-source sql: a SELECT returning the database's version, and optionally a dirty flag")
	fs.String("migrate-command", "", "with --engine command: what the elected migrator runs (by /bin/sh -c) to apply the migrations")
	fs.StringArray("migrate-env", nil, "KEY=VALUE added to the migrate command's environment (repeatable)")
	fs.Duration("ddl-lock-timeout", 0, "bound on how long a migration statement waits for a table lock (PostgreSQL lock_timeout; "+
		"0: wait as long as it takes); a transactional migration that times out is rolled back and retried")
	fs.Int("ddl-lock-retries", 10, "how many times a migration that hit --ddl-lock-timeout is retried (pauses 1 s, 2 s, 4 s … up to 30 s)")
	fs.Bool("allow-out-of-order", false, "apply pending migrations older than the newest applied one")
	fs.String("when-ahead", string(cd.WhenAhead), "when the database holds migrations this replica does not know: "+
		"ready, unready (serve, check and status only) or exit (code 6)")
	fs.String("lock", "", "how replicas elect the migrator: postgres (advisory lock; default for PostgreSQL), "+
		"file (flock beside the database; default for SQLite) or raft")
	fs.String("lock-file", "", "lock file of --lock file (default: beside the SQLite file, <file>.schemagate-lock)")
	fs.String("lock-namespace", "", "name the election is held under (default: <database>/<table>); replicas that share it elect one migrator")
	fs.String("journal-table", journal.DefaultTable, "table recording migrator runs, optionally schema-qualified")
	fs.Duration("timeout", timeout, "overall deadline: connecting, waiting and migrating (0: none)")
	fs.String("replica-id", "", "name of this replica in logs, the journal and pg_stat_activity (default: the host name)")
	fs.String("log-format", "auto", "json, console, or auto (console when stderr is a terminal)")
	fs.String("log-level", "info", "debug, info, warn or error")
	fs.Duration("keepalive-idle", pg.KeepaliveIdle, "server-side tcp_keepalives_idle of this replica's session")
	fs.Duration("keepalive-interval", pg.KeepaliveInterval, "server-side tcp_keepalives_interval")
	fs.Int("keepalive-count", pg.KeepaliveCount, "server-side tcp_keepalives_count")
	fs.Duration("tcp-user-timeout", pg.TCPUserTimeout, "tcp_user_timeout on both ends of the session (0: system default)")
	fs.Duration("connection-check-interval", pg.ConnectionCheckInterval, "client_connection_check_interval (PostgreSQL 14+; 0: off)")
	fs.Duration("connect-timeout", pg.ConnectTimeout, "bound on one connection attempt")
	fs.Duration("migrator-lease", pg.Lease, "--lock postgres: how long the migrator's session may sit idle, the lock held "+
		"(a frozen migrator), before a waiting replica ends it; a migrator busy in a statement is never ended")

	inGroup(fs, essentialFlags, "config", "database-url", "database-url-file", "dir", "timeout", "replica-id")
	inGroup(fs, migrationFlags, "table", "target-version", "allow-out-of-order", "when-ahead", "ddl-lock-timeout",
		"ddl-lock-retries")
	inGroup(fs, engineFlags, "engine", "version-source", "version-query", "migrate-command", "migrate-env")
	inGroup(fs, electionFlags, "lock", "lock-file", "lock-namespace", "journal-table")
	inGroup(fs, connectionFlags, "keepalive-idle", "keepalive-interval", "keepalive-count", "tcp-user-timeout",
		"connection-check-interval", "connect-timeout", "migrator-lease")
	inGroup(fs, outputFlags, "log-format", "log-level")
}

// addRerunFlag adds --rerun-interrupted, which only the commands that may migrate define.
func addRerunFlag(fs *pflag.FlagSet) {
	fs.Bool("rerun-interrupted", false, "run again a non-transactional migration that was interrupted midway "+
		"(check what it left behind first)")
	inGroup(fs, migrationFlags, "rerun-interrupted")
}

// addWaitingFlags adds the settings of waiting, for a migrator or to take the election.
func addWaitingFlags(fs *pflag.FlagSet) {
	cd := coordinator.DefaultConfig()
	fs.Duration("poll-interval", cd.PollInterval, "how often a waiter re-reads the database when nothing wakes it sooner (jittered ±25%; a waiter queued on a PostgreSQL migrator is woken by its release and does not poll)")
	fs.Duration("progress-interval", cd.ProgressInterval, "how soon a waiter logs whom it waits for, and the migrator "+
		"what it applies; the lines then back off to one a minute while nothing changes")
	inGroup(fs, waitingFlags, "poll-interval", "progress-interval")
}

// addFleetFlags adds the settings of the fleet guard: what every replica of an app must have.
func addFleetFlags(fs *pflag.FlagSet) {
	fs.StringArray("require-env", nil, "NAME[,NAME…] or NAME=why: variables this replica must have with a non-empty "+
		"value; without one it is refused before it touches the database (exit 2), saying why (repeatable)")
	fs.StringArray("same-env", nil, "NAME[,NAME…]: variables the ready replicas of a release must agree on; "+
		"a replica whose value differs is held back (exit 8; serve: unready), naming the variable and the replicas "+
		"(only fingerprints of the values leave the replica; repeatable)")
	inGroup(fs, fleetFlags, "require-env", "same-env")
}

// addRaftFlags adds the settings of --lock raft.
func addRaftFlags(fs *pflag.FlagSet) {
	rc := raft.DefaultConfig()
	fs.String("raft-listen", rc.Listen, "address the Raft member listens on (--lock raft)")
	fs.String("raft-advertise", "", "address the other replicas reach this one on, host:port (in Kubernetes $(POD_IP):9091; "+
		"default: this replica's entry in --raft-peers)")
	fs.String("raft-peers", "", "the members, id=host:port,… (the same list on every replica, this one included)")
	fs.String("raft-discover", "", "find the members by DNS instead: dns:NAME (a headless Service with publishNotReadyAddresses)")
	fs.Int("raft-expect", 0, "how many members --raft-discover must find before the cluster forms")
	fs.Int("raft-voters", rc.Voters, "how many members vote (the first by id); the others follow the voters' state")
	fs.String("raft-secret", "", "shared secret authenticating the members (prefer SCHEMAGATE_RAFT_SECRET or --raft-secret-file)")
	fs.String("raft-secret-file", "", "read the shared secret from this file (a mounted secret)")
	fs.Duration("raft-heartbeat-timeout", rc.HeartbeatTimeout, "Raft heartbeat timeout")
	fs.Duration("raft-election-timeout", rc.ElectionTimeout, "Raft election timeout (at least the heartbeat timeout)")
	fs.Duration("raft-lease-timeout", rc.LeaderLeaseTimeout, "Raft leader lease timeout (at most the heartbeat timeout)")
	fs.String("fence-table", raft.DefaultFenceTable, "table of the Raft leader's fencing epochs, optionally schema-qualified")
	inGroup(fs, raftFlags, "raft-listen", "raft-advertise", "raft-peers", "raft-discover", "raft-expect", "raft-voters",
		"raft-secret", "raft-secret-file", "raft-heartbeat-timeout", "raft-election-timeout", "raft-lease-timeout", "fence-table")
}
