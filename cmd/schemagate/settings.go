package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine/alembic"
	"github.com/schemagate/schemagate/engine/goose"
	"github.com/schemagate/schemagate/engine/sqlversion"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock/postgres"
	"github.com/schemagate/schemagate/lock/raft"
)

// Flags every gate command (migrate, wait, check, status) takes. Each has an environment
// variable SCHEMAGATE_<NAME> (dashes become underscores) and a config-file key of the same name.
func addGateFlags(fs *pflag.FlagSet) {
	addGateFlagsWithTimeout(fs, coordinator.DefaultConfig().Timeout)
}

// addGateFlagsWithTimeout is addGateFlags with another default deadline: serve waits as long as
// its probes let it.
func addGateFlagsWithTimeout(fs *pflag.FlagSet, timeout time.Duration) {
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

	inGroup(fs, essentialFlags, "config", "database-url", "database-url-file", "dir", "timeout", "replica-id")
	inGroup(fs, migrationFlags, "table", "target-version", "allow-out-of-order", "when-ahead", "ddl-lock-timeout",
		"ddl-lock-retries")
	inGroup(fs, engineFlags, "engine", "version-source", "version-query", "migrate-command", "migrate-env")
	inGroup(fs, electionFlags, "lock", "lock-file", "lock-namespace", "journal-table")
	inGroup(fs, connectionFlags, "keepalive-idle", "keepalive-interval", "keepalive-count", "tcp-user-timeout",
		"connection-check-interval", "connect-timeout")
	inGroup(fs, outputFlags, "log-format", "log-level")
}

// addRerunFlag adds --rerun-interrupted, of the commands that may migrate.
func addRerunFlag(fs *pflag.FlagSet) {
	fs.Bool("rerun-interrupted", false, "run again a non-transactional migration that was interrupted midway "+
		"(check what it left behind first)")
	inGroup(fs, migrationFlags, "rerun-interrupted")
}

// addWaitFlags adds the flags of the commands that wait (migrate, wait, serve, exec).
func addWaitFlags(fs *pflag.FlagSet) {
	addRaftFlags(fs)
	cd := coordinator.DefaultConfig()
	fs.Duration("poll-interval", cd.PollInterval, "how often a waiter re-reads the database when nothing wakes it sooner (jittered ±25%)")
	fs.Duration("progress-interval", cd.ProgressInterval, "how soon a waiter logs whom it waits for, and the migrator "+
		"what it applies; the lines then back off to one a minute while nothing changes")
	inGroup(fs, waitingFlags, "poll-interval", "progress-interval")
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

// gateSettings is everything a gate command needs, loaded and validated.
type gateSettings struct {
	// filesOptional: the command can do without the migration files (status); noFiles: it
	// does, since none were given and the default directory is missing.
	filesOptional, noFiles bool
	dsn                    string
	lock                   string
	lockFile               string
	dir                    string
	table                  string
	journalTable           string
	namespace              string
	targetVersion          int64
	target                 string // --target-version as given
	engine                 string // goose or command
	source                 string // goose, alembic or sql
	alembicDir             string
	alembic                *alembic.Graph
	versionQuery           string
	migrateCommand         string
	migrateEnv             []string
	ddlLockTimeout         time.Duration
	ddlLockRetries         int
	allowOutOfOrder        bool
	rerun                  bool
	coordinator            coordinator.Config
	postgres               postgres.Config
	raft                   raft.Config
	fenceTable             string
	logFormat              string
	logLevel               string
	// allowUnready: the command keeps running (serve) or only reports (check, status), so
	// --when-ahead=unready means something.
	allowUnready bool
	// secrets are strings that must never be printed: the database password.
	secrets []string
}

// loadGate reads and validates the settings of a gate command. Nothing touches the database.
func loadGate(l *loader, mode coordinator.Mode, allowUnready, filesOptional bool) (*gateSettings, error) {
	s := &gateSettings{coordinator: coordinator.DefaultConfig(), postgres: postgres.DefaultConfig(), allowUnready: allowUnready,
		filesOptional: filesOptional}
	s.coordinator.Mode = mode
	var err error
	if s.logFormat, err = l.oneOf("log-format", "auto", "json", "console"); err != nil {
		return nil, err
	}
	if s.logLevel, err = l.oneOf("log-level", "debug", "info", "warn", "error"); err != nil {
		return nil, err
	}
	if s.dsn, err = databaseURL(l); err != nil {
		return s, err
	}
	s.dsn = postgres.Canonical(s.dsn) // a SQLAlchemy URL names the same database
	s.secrets = secretsOf(s.dsn)
	s.dir, s.table, s.journalTable = l.string("dir"), l.string("table"), l.string("journal-table")
	if err := journal.ValidateTable(s.journalTable); err != nil {
		return s, err
	}
	if err := s.loadEngine(l, mode); err != nil {
		return s, err
	}
	s.secrets = append(s.secrets, secretValues(s.migrateEnv)...)
	if s.allowOutOfOrder, err = l.bool("allow-out-of-order"); err != nil {
		return s, err
	}
	if err := s.loadCoordinator(l); err != nil {
		return s, err
	}
	if err := s.loadPostgres(l); err != nil {
		return s, err
	}
	s.namespace = l.string("lock-namespace")
	if s.lock, err = l.oneOf("lock", "", "postgres", "file", "raft"); err != nil {
		return s, err
	}
	s.lockFile = l.string("lock-file")
	if err := s.loadDDLLock(l); err != nil {
		return s, err
	}
	if s.lock == "raft" {
		if err := s.loadRaft(l); err != nil {
			return s, err
		}
	}
	return s, nil
}

func (s *gateSettings) loadCoordinator(l *loader) error {
	c := &s.coordinator
	var err error
	if c.ReplicaID, err = replicaID(l); err != nil {
		return err
	}
	if c.Timeout, err = l.duration("timeout"); err != nil {
		return err
	}
	policy, err := coordinator.ParseAheadPolicy(l.string("when-ahead"))
	if err != nil {
		return err
	}
	c.WhenAhead = policy
	if policy == coordinator.AheadUnready && !s.allowUnready {
		return fmt.Errorf("when-ahead: unready applies to serve and check; migrate, wait and exec take ready or exit")
	}
	if l.takes("poll-interval") {
		if c.PollInterval, err = l.duration("poll-interval"); err != nil {
			return err
		}
		if c.ProgressInterval, err = l.duration("progress-interval"); err != nil {
			return err
		}
	}
	if l.takes("rerun-interrupted") {
		if c.RerunInterrupted, err = l.bool("rerun-interrupted"); err != nil {
			return err
		}
	}
	return c.Validate()
}

func (s *gateSettings) loadPostgres(l *loader) error {
	p := &s.postgres
	p.ReplicaID = s.coordinator.ReplicaID
	if err := l.durations(
		durationInto{"keepalive-idle", &p.KeepaliveIdle},
		durationInto{"keepalive-interval", &p.KeepaliveInterval},
		durationInto{"tcp-user-timeout", &p.TCPUserTimeout},
		durationInto{"connection-check-interval", &p.ConnectionCheckInterval},
		durationInto{"connect-timeout", &p.ConnectTimeout},
	); err != nil {
		return err
	}
	count, err := l.int("keepalive-count")
	if err != nil {
		return err
	}
	p.KeepaliveCount = int(count)
	return p.Validate()
}

// databaseURL finds the database URL: --database-url (SCHEMAGATE_DATABASE_URL), or the file
// --database-url-file names, or DATABASE_URL.
func databaseURL(l *loader) (string, error) {
	direct, file := l.string("database-url"), l.string("database-url-file")
	switch {
	case direct != "" && file != "":
		return "", errors.New("database-url and database-url-file are both set; give one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("database-url-file: %s cannot be read: %s", file, describeFileError(err))
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", fmt.Errorf("database-url-file: %s is empty", file)
		}
		return dsn, nil
	case direct != "":
		return direct, nil
	case os.Getenv("DATABASE_URL") != "":
		return strings.TrimSpace(os.Getenv("DATABASE_URL")), nil
	}
	return "", errors.New("database-url: not set (use --database-url, SCHEMAGATE_DATABASE_URL, --database-url-file or DATABASE_URL)")
}

func describeFileError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return oneLine(err.Error())
}

var keywordPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// secretsOf finds the password in a database URL, however it is written, so that output can be
// scrubbed of it.
func secretsOf(dsn string) []string {
	var out []string
	if cfg, err := pgx.ParseConfig(dsn); err == nil && cfg.Password != "" {
		out = append(out, cfg.Password)
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for _, m := range keywordPassword.FindAllStringSubmatch(dsn, -1) {
		out = append(out, strings.Trim(m[1], "'"))
	}
	// A URL that does not parse may still carry user:password@.
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				out = append(out, rest[colon+1:at])
			}
		}
	}
	return out
}

// secretName matches the names of variables whose values are secrets: WEBUI_SECRET_KEY,
// PGPASSWORD, API_TOKEN, AWS_SECRET_ACCESS_KEY, DATABASE_PASS.
var secretName = regexp.MustCompile(`(?i)(secret|passw|pass$|_pass_|token|credential|private|(^|_)key$|api_?key|auth)`)

// secretValues finds, among KEY=VALUE entries (--migrate-env, --env), the values to hide: the
// whole value of a secret-looking name, and the password of any URL or connection string.
func secretValues(kvs []string) []string {
	var out []string
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		if secretName.MatchString(k) {
			out = append(out, v)
		}
		out = append(out, secretsOf(v)...)
	}
	return out
}

func checkDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("dir: %s cannot be read: %s", dir, describeFileError(err))
	case !info.IsDir():
		return fmt.Errorf("dir: %s is not a directory", dir)
	}
	return nil
}

// replicaID is --replica-id, or the host name. It names the replica in PostgreSQL's
// application_name (see postgres.ApplicationName), in logs and in the journal, so it is plain:
// letters, digits, '.', '_' and '-', at most 63 bytes, as a host name. Kubernetes pod names fit.
func replicaID(l *loader) (string, error) {
	const maxBytes, rule = 63, "letters, digits, '.', '_' and '-', at most 63 bytes"
	problem := func(id string) string {
		if i := strings.IndexFunc(id, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
		}); i >= 0 {
			r, _ := utf8.DecodeRuneInString(id[i:])
			return fmt.Sprintf("has %q", r)
		}
		if len(id) > maxBytes {
			return fmt.Sprintf("is %d bytes", len(id))
		}
		return ""
	}
	if id := l.string("replica-id"); id != "" {
		if p := problem(id); p != "" {
			return "", fmt.Errorf("replica-id: %q %s; use %s", id, p, rule)
		}
		return id, nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "", errors.New("replica-id: not set and the host name is unknown")
	}
	if p := problem(host); p != "" {
		return "", fmt.Errorf("replica-id: not set, and the host name %q %s; set --replica-id (SCHEMAGATE_REPLICA_ID) to %s",
			host, p, rule)
	}
	return host, nil
}

// loadDDLLock reads --ddl-lock-timeout and --ddl-lock-retries.
func (s *gateSettings) loadDDLLock(l *loader) error {
	var err error
	if s.ddlLockTimeout, err = l.duration("ddl-lock-timeout"); err != nil {
		return err
	}
	retries, err := l.int("ddl-lock-retries")
	if err != nil {
		return err
	}
	s.ddlLockRetries = int(retries)
	switch {
	case s.ddlLockTimeout < 0:
		return fmt.Errorf("ddl-lock-timeout: %s must not be negative", s.ddlLockTimeout)
	case s.ddlLockTimeout > 0 && s.ddlLockTimeout < time.Millisecond:
		return fmt.Errorf("ddl-lock-timeout: %s is below PostgreSQL's resolution of 1ms", s.ddlLockTimeout)
	case s.ddlLockRetries < 0:
		return fmt.Errorf("ddl-lock-retries: %d must not be negative", s.ddlLockRetries)
	case s.ddlLockTimeout > 0 && s.engine != "goose":
		return errors.New("ddl-lock-timeout: applies to goose migrations; with --engine command, set lock_timeout in the migration tool")
	case s.ddlLockTimeout > 0 && s.lock == "raft":
		return errors.New("ddl-lock-timeout: not available with --lock raft (it holds no session to set it on); " +
			"set it on the migrating role instead: ALTER ROLE … SET lock_timeout = '5s'")
	}
	return nil
}

// loadEngine reads what applies the migrations and how versions are known. Migration files are
// read here, so that a file that cannot be parsed is invalid input, found before any
// connection.
func (s *gateSettings) loadEngine(l *loader, mode coordinator.Mode) error {
	var err error
	if s.engine, err = l.oneOf("engine", "goose", "command"); err != nil {
		return err
	}
	s.target = strings.TrimSpace(l.string("target-version"))
	s.versionQuery = strings.TrimSpace(l.string("version-query"))
	s.migrateCommand = strings.TrimSpace(l.string("migrate-command"))
	if s.migrateEnv, err = l.keyValues("migrate-env"); err != nil {
		return err
	}
	source := strings.TrimSpace(l.string("version-source"))
	switch {
	case source == "goose":
		s.source = "goose"
	case source == "sql":
		s.source = "sql"
	case strings.HasPrefix(source, "alembic:"):
		s.source, s.alembicDir = "alembic", strings.TrimPrefix(source, "alembic:")
		if s.alembicDir == "" {
			return errors.New("version-source: alembic:DIR needs the directory of the revision files")
		}
	default:
		return fmt.Errorf("version-source: %q must be goose, alembic:DIR or sql", source)
	}
	switch {
	case s.engine == "goose" && s.source != "goose":
		return fmt.Errorf("version-source: %s needs --engine command (the goose engine applies goose files only)", source)
	case s.engine == "goose" && s.migrateCommand != "":
		return errors.New("migrate-command: set, but --engine is goose; add --engine command")
	case s.engine == "command" && s.migrateCommand == "" && mode == coordinator.ModeMigrate:
		return errors.New("migrate-command: not set; --engine command needs the command that applies the migrations " +
			"(or use wait, which never migrates)")
	case s.source != "sql" && s.versionQuery != "":
		return errors.New("version-query: set, but --version-source is not sql")
	}
	switch s.source {
	case "goose":
		if s.table == "" {
			s.table = goose.DefaultTable
		}
		if s.target != "" {
			if s.targetVersion, err = strconv.ParseInt(s.target, 10, 64); err != nil || s.targetVersion < 0 {
				return fmt.Errorf("target-version: %q is not a goose version (a whole number, at least 0)", s.target)
			}
		}
		if err := checkDir(s.dir); err != nil {
			// status reads what it can without the files: the database's version, the holder,
			// the waiters and the journal. It needs them only when asked for them.
			if s.filesOptional && !l.given("dir") {
				s.noFiles = true
				return nil
			}
			return err
		}
		return nil
	case "alembic":
		if s.table == "" {
			s.table = alembic.DefaultTable
		}
		if s.target != "" {
			return errors.New("target-version: not used with an alembic source (the target is the directory's heads)")
		}
		s.alembic, err = alembic.Open(s.alembicDir)
		return err
	default: // sql
		switch {
		case s.versionQuery == "":
			return errors.New("version-query: not set; --version-source sql needs a SELECT returning the database's version")
		case s.target == "":
			return errors.New("target-version: not set; --version-source sql needs the version this replica needs")
		}
		if s.table == "" {
			s.table = "version"
		}
		_, err := sqlversion.New(nil, s.versionQuery, s.target)
		return err
	}
}

// namespace returns the lock namespace: as configured, or <database>/<table>.
func (s *gateSettings) namespaceFor(database string) string {
	if s.namespace != "" {
		return s.namespace
	}
	return database + "/" + s.table
}

// loadRaft reads the Raft settings; Config.Validate checks them once the cluster is named.
func (s *gateSettings) loadRaft(l *loader) error {
	if !l.takes("raft-listen") {
		return nil // check, status and validate read the database only; they join no cluster
	}
	r := raft.DefaultConfig()
	r.Replica = s.coordinator.ReplicaID
	r.Listen, r.Advertise = l.string("raft-listen"), l.string("raft-advertise")
	if peers := l.string("raft-peers"); peers != "" {
		var err error
		if r.Peers, err = raft.ParsePeers(peers); err != nil {
			return err
		}
	}
	if d := l.string("raft-discover"); d != "" {
		name, ok := strings.CutPrefix(d, "dns:")
		if !ok || name == "" {
			return fmt.Errorf("raft-discover: %q must be dns:NAME", d)
		}
		r.Discover = name
	}
	expect, err := l.int("raft-expect")
	if err != nil {
		return err
	}
	r.Expect = int(expect)
	voters, err := l.int("raft-voters")
	if err != nil {
		return err
	}
	r.Voters = int(voters)
	secret, err := secretFrom(l, "raft-secret")
	if err != nil {
		return err
	}
	r.Secret = []byte(secret)
	s.secrets = append(s.secrets, secret)
	if err := l.durations(
		durationInto{"raft-heartbeat-timeout", &r.HeartbeatTimeout},
		durationInto{"raft-election-timeout", &r.ElectionTimeout},
		durationInto{"raft-lease-timeout", &r.LeaderLeaseTimeout},
	); err != nil {
		return err
	}
	s.raft = r
	s.fenceTable = l.string("fence-table")
	return nil
}

// secretFrom reads a secret from --KEY or the file --KEY-file names (trimmed), never both.
func secretFrom(l *loader, key string) (string, error) {
	direct, file := l.string(key), l.string(key+"-file")
	switch {
	case direct != "" && file != "":
		return "", fmt.Errorf("%s and %s-file are both set; give one", key, key)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s-file: %s cannot be read: %s", key, file, describeFileError(err))
		}
		return strings.TrimSpace(string(b)), nil
	}
	return direct, nil
}
