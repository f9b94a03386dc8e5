package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine/alembic"
	"github.com/schemagate/schemagate/engine/goose"
	"github.com/schemagate/schemagate/engine/sqlversion"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock/postgres"
	"github.com/schemagate/schemagate/lock/raft"
)

// gateSettings is everything a command that reads the schema needs, loaded and validated.
type gateSettings struct {
	// filesOptional: the command can do without the migration files (status); noFiles: it
	// does, since none were given and the default directory is missing.
	filesOptional, noFiles bool
	// writes: the command may write to the database (all but check, status and validate); on
	// SQLite it must then be on the database's host, which it records.
	writes          bool
	dsn             string
	lock            string
	lockFile        string
	dir             string
	table           string
	journalTable    string
	namespace       string
	targetVersion   int64
	target          string // --target-version as given
	engine          string // goose or command
	source          string // goose, alembic or sql
	alembicDir      string
	alembic         *alembic.Graph
	versionQuery    string
	migrateCommand  string
	migrateEnv      []string
	ddlLockTimeout  time.Duration
	ddlLockRetries  int
	allowOutOfOrder bool
	coordinator     coordinator.Config
	postgres        postgres.Config
	raft            raft.Config
	fenceTable      string
	logFormat       string
	logLevel        string
	// allowUnready: the command keeps running or only reports, so --when-ahead=unready means
	// something (abilities.allowsUnready).
	allowUnready bool
	// secrets are strings that must never be printed (see secretsIn).
	secrets []string
	// sameEnv are the variables the fleet must agree on (--same-env), and presenceTable where
	// the PostgreSQL lock shows the fleet (sameenv.go).
	sameEnv       []sameValue
	presenceTable string
}

// loadGate reads and validates the settings of a command that reads the schema, those it reads
// given what it may do. Nothing touches the database.
func loadGate(l *loader, can abilities, mode coordinator.Mode) (*gateSettings, error) {
	s := &gateSettings{coordinator: coordinator.DefaultConfig(), postgres: postgres.DefaultConfig(),
		allowUnready: can.allowsUnready(), filesOptional: can.filesOptional, writes: !can.readOnly}
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
	s.secrets = secretsIn(l, s.dsn)
	s.dir, s.table, s.journalTable = l.string("dir"), l.string("table"), l.string("journal-table")
	if err := journal.ValidateTable(s.journalTable); err != nil {
		return s, err
	}
	if err := s.loadEngine(l, mode); err != nil {
		return s, err
	}
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
	if l.takes("require-env") {
		reqs, err := parseRequirements(l.entries("require-env"))
		if err != nil {
			return s, err
		}
		if err := checkRequirements(reqs, os.Getenv); err != nil {
			return s, err
		}
	}
	if err := s.loadFleet(l); err != nil {
		return s, err
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
		durationInto{"migrator-lease", &p.Lease},
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

func describeFileError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return oneLine(err.Error())
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

// loadDDLLock reads --ddl-lock-timeout and --ddl-lock-retries, of the commands that migrate.
func (s *gateSettings) loadDDLLock(l *loader) error {
	if !l.takes("ddl-lock-timeout") {
		return nil
	}
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
	if l.takes("migrate-command") {
		s.migrateCommand = strings.TrimSpace(l.string("migrate-command"))
	}
	if l.takes("migrate-env") {
		if s.migrateEnv, err = l.keyValues("migrate-env"); err != nil {
			return err
		}
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
		return nil // a command that only reads joins no cluster
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
