package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/engine/command"
	"github.com/schemagate/schemagate/lock/postgres"
	"github.com/schemagate/schemagate/sqlite"
)

// exitCase is one row of the exit-code table: a cause of code with an engine on a backend, the
// error it ends a command with, and the end-to-end tests that prove the same code with real
// processes (on PostgreSQL unless they say otherwise).
type exitCase struct {
	code    schemagate.ExitCode
	engine  string // goose, command (the command engine with the sql or alembic version source), or "—"
	backend string // postgres, sqlite (with its file lock), raft, or "—": the command line itself
	cause   string
	err     func(t *testing.T) error
	// behind, when set, must be found behind the error by errors.As or errors.Is: what the code
	// does not hide.
	behind func(error) bool
	e2e    string
}

// TestExitCodeTable: every documented exit code, from real causes with each engine and backend
// where the code can arise, classified by the one path every command takes:
// schemagate.ExitCodeOf. The errors on SQLite are those of the commands run in-process, as the
// binary runs them; those of PostgreSQL and Raft are their packages' errors, classified by the
// coordinator as for a PostgreSQL replica (the Raft backend reads and writes through the same
// PostgreSQL pool) or built as the coordinator builds them where only a cluster makes them.
func TestExitCodeTable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs commands against SQLite databases, some until their deadline")
	}
	cases := exitCases()
	for _, c := range schemagate.ExitCodes() {
		found := false
		for _, tc := range cases {
			found = found || tc.code == c
		}
		if !found {
			t.Errorf("exit code %d (%s) has no row", c, c)
		}
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d %s/%s: %s", tc.code, tc.engine, tc.backend, tc.cause), func(t *testing.T) {
			err := tc.err(t)
			if got := schemagate.ExitCodeOf(err); got != tc.code {
				t.Errorf("exit code %d (%s), want %d (%s); the error: %v", got, got, tc.code, tc.code, err)
			}
			if tc.behind != nil && !tc.behind(err) {
				t.Errorf("errors.As does not find what caused %v", err)
			}
		})
	}
}

func exitCases() []exitCase {
	as := func(target any) func(error) bool {
		return func(err error) bool { return errors.As(err, target) }
	}
	return []exitCase{
		// 0: ready.
		{schemagate.ExitReady, "goose", "sqlite", "migrate applies the pending migrations", func(t *testing.T) error {
			return execute(t, "migrate", "--database-url", sqliteDB(t), "--dir", migrations(t, 2))
		}, nil, "TestHerd, TestSQLiteFileLock (sqlite), TestRaftHerd (raft)"},
		{schemagate.ExitReady, "command", "sqlite", "wait: the sql version source reads the target", func(t *testing.T) error {
			db := sqliteDB(t)
			sqlExec(t, db, "CREATE TABLE v (n int)", "INSERT INTO v VALUES (1)")
			return execute(t, sqlSource(db, "wait", "SELECT n FROM v", "1")...)
		}, nil, "TestCommandSessionKilled"},
		{schemagate.ExitReady, "command", "sqlite", "check: alembic_version is at the head", func(t *testing.T) error {
			db := sqliteDB(t)
			sqlExec(t, db, "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL)",
				"INSERT INTO alembic_version VALUES ('0001')")
			return execute(t, alembicSource(t, db, "check")...)
		}, nil, "TestAlembicHerd"},

		// 1: not ready.
		{schemagate.ExitNotReady, "goose", "sqlite", "check: migrations are pending", func(t *testing.T) error {
			return execute(t, "check", "--database-url", sqliteDB(t), "--dir", migrations(t, 1))
		}, nil, "TestCheck"},
		{schemagate.ExitNotReady, "goose", "raft", "check only reads: it joins no cluster", func(t *testing.T) error {
			return execute(t, "check", "--database-url", sqliteDB(t), "--dir", migrations(t, 1), "--lock", "raft",
				"--raft-peers", "a=127.0.0.1:1")
		}, nil, "—"},
		{schemagate.ExitNotReady, "command", "sqlite", "check: the sql source's version is below the target", func(t *testing.T) error {
			db := sqliteDB(t)
			sqlExec(t, db, "CREATE TABLE v (n int)", "INSERT INTO v VALUES (0)")
			return execute(t, sqlSource(db, "check", "SELECT n FROM v", "1")...)
		}, nil, "TestSQLSourceDirty"},
		{schemagate.ExitNotReady, "command", "sqlite", "check: no alembic_version yet", func(t *testing.T) error {
			return execute(t, alembicSource(t, sqliteDB(t), "check")...)
		}, nil, "—"},
		{schemagate.ExitNotReady, "—", "—", "probe: no answer", func(t *testing.T) error {
			return execute(t, "probe", "--url", "http://127.0.0.1:1/readyz", "--timeout", "1s")
		}, nil, "TestSharedConfigFile"},

		// 2: invalid input.
		{schemagate.ExitInvalidInput, "—", "—", "an unknown command", func(t *testing.T) error {
			return execute(t, "stauts")
		}, nil, "TestMistypedCommandsAndFlags"},
		{schemagate.ExitInvalidInput, "—", "—", "an unknown flag", func(t *testing.T) error {
			return execute(t, "migrate", "--tiemout", "1m")
		}, nil, "TestMistypedCommandsAndFlags"},
		{schemagate.ExitInvalidInput, "goose", "sqlite", "a file without -- +goose Up", func(t *testing.T) error {
			return execute(t, "migrate", "--database-url", sqliteDB(t), "--dir",
				writeDir(t, map[string]string{"00001_a.sql": "CREATE TABLE a (id int);\n"}))
		}, nil, "TestBadInput, TestValidate"},
		{schemagate.ExitInvalidInput, "goose", "sqlite", "a pending migration older than the newest applied", func(t *testing.T) error {
			db, all := sqliteDB(t), migrations(t, 2)
			newest := writeDir(t, map[string]string{"00002_m.sql": migration(2)})
			if err := execute(t, "migrate", "--database-url", db, "--dir", newest); err != nil {
				t.Fatal(err)
			}
			return execute(t, "migrate", "--database-url", db, "--dir", all)
		}, nil, "TestOutOfOrder"},
		{schemagate.ExitInvalidInput, "command", "sqlite", "--engine command without --migrate-command", func(t *testing.T) error {
			return execute(t, "migrate", "--database-url", sqliteDB(t), "--dir", migrations(t, 1), "--engine", "command")
		}, nil, "TestCommandEngineInput"},
		{schemagate.ExitInvalidInput, "command", "sqlite", "the sql source's query returns three columns", func(t *testing.T) error {
			return execute(t, sqlSource(sqliteDB(t), "wait", "SELECT 1, 2, 3", "1")...)
		}, nil, "TestRefuseWritingVersionQuery, TestRefusePrivilege"},
		{schemagate.ExitInvalidInput, "command", "sqlite", "an alembic directory that does not exist", func(t *testing.T) error {
			return execute(t, "wait", "--database-url", sqliteDB(t), "--engine", "command", "--version-source", "alembic:/nonexistent")
		}, nil, "TestCommandEngineInput, TestAlembicBadRevisionFile"},
		{schemagate.ExitInvalidInput, "goose", "sqlite", "--lock postgres on a SQLite database", func(t *testing.T) error {
			return execute(t, "migrate", "--database-url", sqliteDB(t), "--dir", migrations(t, 1), "--lock", "postgres")
		}, nil, "TestRefuseLockFile"},
		{schemagate.ExitInvalidInput, "goose", "raft", "a peer list that does not parse", func(t *testing.T) error {
			return execute(t, "migrate", "--database-url", sqliteDB(t), "--dir", migrations(t, 1), "--lock", "raft",
				"--raft-peers", "not a peer list")
		}, nil, "TestRefuseTableNames (the fence table)"},
		{schemagate.ExitInvalidInput, "goose", "postgres", "the URL leads to a transaction pooler", func(t *testing.T) error {
			return answering(t, fmt.Errorf("open the session: %w", postgres.ErrTransactionPooler))
		}, func(err error) bool { return errors.Is(err, postgres.ErrTransactionPooler) }, "TestTransactionPoolerRefused"},
		{schemagate.ExitInvalidInput, "goose", "postgres", "the server rejects a setting the URL asks for", func(t *testing.T) error {
			return answering(t, &postgres.ConnectError{Target: "postgres db", Err: &pgconn.PgError{Severity: "FATAL",
				Code: "42704", Message: `unrecognized configuration parameter "sslmdoe"`}})
		}, nil, "TestBadInput (unknown URL parameter)"},

		// 3: migration failed.
		{schemagate.ExitMigrationFailed, "goose", "sqlite", "a migration's statement fails", func(t *testing.T) error {
			return execute(t, "migrate", "--database-url", sqliteDB(t), "--dir",
				writeDir(t, map[string]string{"00001_a.sql": "-- +goose Up\nSELECT * FROM missing;\n"}))
		}, as(new(*engine.MigrationError)), "TestFailingMigration, TestWaitAfterFailure"},
		{schemagate.ExitMigrationFailed, "goose", "sqlite", "a vanished migrator left a non-transactional migration midway", func(t *testing.T) error {
			db := sqliteDB(t)
			dir := writeDir(t, map[string]string{"00001_m.sql": migration(1),
				"00002_m.sql": "-- +goose NO TRANSACTION\n" + migration(2)})
			vanished(t, db, dir, "00002_m.sql")
			return execute(t, "migrate", "--database-url", db, "--dir", dir)
		}, as(new(*coordinator.InterruptedError)), "TestInterruptedNonTransactional, TestSignalDuringNonTransactional"},
		{schemagate.ExitMigrationFailed, "goose", "postgres", "the role lacks a privilege", func(t *testing.T) error {
			return answering(t, &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "permission denied for table goose_db_version"})
		}, nil, "TestRefusePrivilege"},
		{schemagate.ExitMigrationFailed, "command", "sqlite", "the migrate command exits 1", func(t *testing.T) error {
			db := sqliteDB(t)
			sqlExec(t, db, "CREATE TABLE v (n int)", "INSERT INTO v VALUES (0)")
			return execute(t, append(sqlSource(db, "migrate", "SELECT n FROM v", "1"), "--migrate-command", "exit 1")...)
		}, as(new(*command.ExitError)), "TestSQLSourceDirty, TestExecGateFails"},
		{schemagate.ExitMigrationFailed, "command", "sqlite", "the migrate command exits 0, and alembic_version is still behind", func(t *testing.T) error {
			return execute(t, append(alembicSource(t, sqliteDB(t), "migrate"), "--migrate-command", "true")...)
		}, nil, "TestAlembicFailureSwallowed"},
		{schemagate.ExitMigrationFailed, "goose", "raft", "the leader's run failed, as the cluster replicates it", func(t *testing.T) error {
			return &coordinator.MigrationFailedError{Migration: "00002_b.sql", Replica: "web-0",
				Cause: errors.New(`ERROR: relation "missing" does not exist (SQLSTATE 42P01)`)}
		}, nil, "TestWaitAfterFailure (the same path on PostgreSQL)"},

		// 4: timed out, or stopped.
		{schemagate.ExitTimeout, "goose", "sqlite", "wait: nobody migrates before --timeout", func(t *testing.T) error {
			return execute(t, "wait", "--database-url", sqliteDB(t), "--dir", migrations(t, 1), "--timeout", "1s",
				"--poll-interval", "100ms")
		}, as(new(*coordinator.TimeoutError)), "TestWaitNeverMigrates, TestCommandTimeoutWithDaemon"},
		{schemagate.ExitTimeout, "command", "sqlite", "SIGTERM before the schema was ready", func(t *testing.T) error {
			db := sqliteDB(t)
			sqlExec(t, db, "CREATE TABLE v (n int)", "INSERT INTO v VALUES (0)")
			ctx, stop := context.WithCancelCause(t.Context())
			stop(&StoppedError{Signal: syscall.SIGTERM})
			return newApp(io.Discard, io.Discard).execute(ctx, sqlSource(db, "wait", "SELECT n FROM v", "1"))
		}, func(err error) bool {
			return errors.As(err, new(*coordinator.StoppedError)) && errors.Is(err, context.Canceled)
		}, "TestSigtermDuringMigration, TestContainerSigterm, TestRaftLeaderSigterm (raft)"},
		{schemagate.ExitTimeout, "goose", "raft", "the cluster never formed before --timeout", func(t *testing.T) error {
			return &coordinator.TimeoutError{Waited: 4 * time.Second, Last: "the raft cluster has not formed: 1 of its 3 voters answer"}
		}, nil, "TestRaftQuorumLost, TestRaftWrongSecret"},

		// 5: database unreachable.
		{schemagate.ExitUnreachable, "goose", "sqlite", "the file is not a SQLite database", func(t *testing.T) error {
			path := filepath.Join(t.TempDir(), "app.db")
			if err := os.WriteFile(path, []byte("not a database, but long enough to have a header of one: "+
				"0123456789abcdef0123456789abcdef0123456789abcdef"), 0o644); err != nil {
				t.Fatal(err)
			}
			return execute(t, "migrate", "--database-url", "sqlite:///"+path, "--dir", migrations(t, 1))
		}, as(new(*coordinator.UnreachableError)), "—"},
		{schemagate.ExitUnreachable, "goose", "postgres", "the server refuses the password", func(t *testing.T) error {
			return answering(t, &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "app"`})
		}, nil, "TestWrongPassword, TestBadInput (unknown role)"},
		{schemagate.ExitUnreachable, "goose", "postgres", "connection refused until --timeout (raft reads through the same pool)", func(t *testing.T) error {
			return answering(t, &postgres.ConnectError{Target: "postgres db", Err: &net.OpError{Op: "dial", Net: "tcp",
				Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}})
		}, nil, "TestBadInput (unreachable host)"},

		// 6: database ahead.
		{schemagate.ExitAhead, "goose", "sqlite", "the database holds a migration this replica does not know", func(t *testing.T) error {
			db := sqliteDB(t)
			if err := execute(t, "migrate", "--database-url", db, "--dir", migrations(t, 2)); err != nil {
				t.Fatal(err)
			}
			return execute(t, "migrate", "--database-url", db, "--dir", migrations(t, 1), "--when-ahead", "exit")
		}, as(new(*coordinator.AheadError)), "TestBadInput (database ahead), TestCheck, TestServeSkewPolicy"},
		{schemagate.ExitAhead, "command", "sqlite", "the sql source's version is above the target", func(t *testing.T) error {
			db := sqliteDB(t)
			sqlExec(t, db, "CREATE TABLE v (n int)", "INSERT INTO v VALUES (2)")
			return execute(t, append(sqlSource(db, "check", "SELECT n FROM v", "1"), "--when-ahead", "exit")...)
		}, nil, "—"},
		{schemagate.ExitAhead, "command", "sqlite", "alembic_version holds a revision this replica does not know", func(t *testing.T) error {
			db := sqliteDB(t)
			sqlExec(t, db, "CREATE TABLE alembic_version (version_num varchar(32) NOT NULL)",
				"INSERT INTO alembic_version VALUES ('ffff')")
			return execute(t, append(alembicSource(t, db, "wait"), "--when-ahead", "exit")...)
		}, nil, "—"},

		// 7: app not started; and run's COMMAND's own code.
		{schemagate.ExitAppNotStarted, "—", "—", "exec passed the gate, and execve failed", func(t *testing.T) error {
			return &appNotStartedError{path: "/app/start", err: syscall.ENOEXEC}
		}, func(err error) bool { return errors.Is(err, syscall.ENOEXEC) }, "TestExecAppCannotStart"},
		{schemagate.ExitCode(7), "goose", "sqlite", "run: COMMAND exits 7, and so does run", func(t *testing.T) error {
			return execute(t, "run", "--database-url", sqliteDB(t), "--dir", migrations(t, 1), "--reason", "a test",
				"--", "sh", "-c", "exit 7")
		}, as(new(*command.ExitError)), "TestRunHoldsTheLock, TestExec (the app's own code)"},

		// 8: fleet disagrees. The first replica's entry stays in the fleet: its process (this
		// test's) still runs.
		{schemagate.ExitFleetDisagrees, "goose", "sqlite", "a --same-env value differs from the ready replicas'", func(t *testing.T) error {
			db, dir := sqliteDB(t), migrations(t, 1)
			t.Setenv("SECRET_KEY", "the fleet's value")
			if err := execute(t, "migrate", "--database-url", db, "--dir", dir, "--replica-id", "web-0", "--same-env", "SECRET_KEY"); err != nil {
				t.Fatal(err)
			}
			t.Setenv("SECRET_KEY", "another value")
			return execute(t, "migrate", "--database-url", db, "--dir", dir, "--replica-id", "web-1", "--same-env", "SECRET_KEY")
		}, as(new(*coordinator.DisagreeError)), "TestFleetGuardPostgres, TestFleetGuardSQLite (sqlite)"},
	}
}

// execute runs a command line in-process, as the binary does, and returns the error it ends
// with.
func execute(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return newApp(io.Discard, io.Discard).execute(ctx, args)
}

// answering runs migrate's gate against a database whose every read fails with err, and
// classifies the failure as a PostgreSQL replica does: lock/postgres's Retryable and Refused in
// the coordinator, then settingsRefused where the gate ends. (The database is SQLite, for the
// journal and the lock; the engine answers for it.)
func answering(t *testing.T, err error) error {
	t.Helper()
	a := newApp(io.Discard, io.Discard)
	c := testCallOf(t, a, "migrate", "--database-url", sqliteDB(t), "--dir", migrations(t, 1), "--timeout", "1s",
		"--poll-interval", "100ms")
	g, gerr := a.openGate(c, coordinator.ModeMigrate, nil)
	if gerr != nil {
		t.Fatal(gerr)
	}
	defer g.close()
	eng, gerr := newEngine(g.settings, g.backend, g.journal, nil, zerolog.Nop())
	if gerr != nil {
		t.Fatal(gerr)
	}
	co, gerr := coordinator.New(g.settings.coordinator, coordinator.Deps{Locker: g.locker, Engine: failingReads{eng, err},
		Journal: g.journal, Retryable: postgres.Retryable, Refused: postgres.Refused, Target: "postgres db", Log: zerolog.Nop()})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return settingsRefused(co.Run(t.Context()))
}

// vanished journals, on the database at url, a run of the migrations in dir that replica web-0
// started and never finished, cut off in the midst of the non-transactional migration name.
func vanished(t *testing.T, url, dir, name string) {
	t.Helper()
	a := newApp(io.Discard, io.Discard)
	g, err := a.openGate(testCallOf(t, a, "migrate", "--database-url", url, "--dir", dir), coordinator.ModeMigrate, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ctx := t.Context()
	if err := g.journal.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	var mig engine.Migration
	for _, m := range g.plan.Migrations {
		if m.Name == name {
			mig = m
		}
	}
	run, err := g.journal.StartRun(ctx, "web-0", g.fingerprint, 0, mig.Version)
	if err == nil {
		_, err = g.journal.StartMigration(ctx, run, "web-0", mig)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// failingReads is an engine whose database answers every read with err.
type failingReads struct {
	coordinator.Engine
	err error
}

func (f failingReads) Status(context.Context) (engine.Status, error) { return engine.Status{}, f.err }

// sqliteDB is the URL of a new SQLite database.
func sqliteDB(t *testing.T) string { return "sqlite:///" + filepath.Join(t.TempDir(), "app.db") }

// sqlExec runs statements on the SQLite database at url.
func sqlExec(t *testing.T, url string, statements ...string) {
	t.Helper()
	db, _, err := sqlite.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range statements {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// sqlSource is the command line of command on url with the sql version source.
func sqlSource(url, command, query, target string) []string {
	return []string{command, "--database-url", url, "--engine", "command", "--version-source", "sql",
		"--version-query", query, "--target-version", target, "--timeout", "10s"}
}

// alembicSource is the command line of command on url with an alembic version source of one
// revision, 0001.
func alembicSource(t *testing.T, url, command string) []string {
	dir := writeDir(t, map[string]string{"0001_base.py": "revision = \"0001\"\ndown_revision = None\n"})
	return []string{command, "--database-url", url, "--engine", "command", "--version-source", "alembic:" + dir,
		"--timeout", "10s"}
}

// migration is the goose migration of version n: it creates a table.
func migration(n int) string { return fmt.Sprintf("-- +goose Up\nCREATE TABLE t%d (id int);\n", n) }

// migrations writes goose migrations 1 to n into a new directory.
func migrations(t *testing.T, n int) string {
	files := map[string]string{}
	for i := 1; i <= n; i++ {
		files[fmt.Sprintf("%05d_m.sql", i)] = migration(i)
	}
	return writeDir(t, files)
}

// writeDir writes files into a new directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
