package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test app of testdata/alembic-app is shaped like Open WebUI: Alembic runs when app.config
// is imported with ENABLE_DB_MIGRATIONS true, and its errors are swallowed.
const alembicHead = "4ace53fd72c8"

var alembicRevisions = []string{"7e5b5dc7342b", "ca81bd47c050", "242a2047eae0", "1af9b942657b", "3781e22d8b01", alembicHead}

// alembicApp is a copy of the test app, with the record file its processes append to.
type alembicApp struct {
	dir    string
	record string
}

func newAlembicApp(t *testing.T) *alembicApp {
	t.Helper()
	for _, need := range [][]string{{"/usr/bin/python3", "-c", "import alembic, psycopg2"}} {
		if out, err := exec.Command(need[0], need[1:]...).CombinedOutput(); err != nil {
			t.Skipf("needs Debian's alembic and python3-psycopg2 (.ci/run installs them): %v: %s", err, out)
		}
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/alembic-app")); err != nil {
		t.Fatal(err)
	}
	return &alembicApp{dir: dir, record: filepath.Join(t.TempDir(), "record.log")}
}

// addRevision writes one more revision file into the app.
func (a *alembicApp) addRevision(t *testing.T, id, down, upgrade string) {
	t.Helper()
	src := fmt.Sprintf("revision = %q\ndown_revision = %q\n\nfrom alembic import op\n\n\ndef upgrade():\n    %s\n", id, down, upgrade)
	if err := os.WriteFile(filepath.Join(a.dir, "app/migrations/versions", id+"_added.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// args is the Open WebUI recipe: exec with the command engine, the migrating process told
// ENABLE_DB_MIGRATIONS=true, every app process false.
func (a *alembicApp) args(extra ...string) []string {
	args := []string{"exec", "--engine", "command",
		"--version-source", "alembic:" + filepath.Join(a.dir, "app/migrations"),
		"--migrate-command", "cd " + a.dir + " && /usr/bin/python3 -c 'import app.config'",
		"--migrate-env", "ENABLE_DB_MIGRATIONS=true",
		"--env", "ENABLE_DB_MIGRATIONS=false"}
	args = append(args, extra...)
	return append(args, "--", "sh", filepath.Join(a.dir, "start.sh"))
}

func (a *alembicApp) start(t *testing.T, d *db, n int, extra ...string) []*replica {
	return a.startEnv(t, d, n, nil, extra...)
}

func (a *alembicApp) startEnv(t *testing.T, d *db, n int, env []string, extra ...string) []*replica {
	var rs []*replica
	for i := range n {
		rs = append(rs, start(t, fmt.Sprintf("webui-%d", i), a.args(extra...),
			append([]string{"DATABASE_URL=" + d.url, "ALEMBIC_APP_RECORD=" + a.record}, env...)...))
	}
	return rs
}

// processesOf returns the pids of processes whose environment names replica: a replica's
// children inherit its SCHEMAGATE_REPLICA_ID.
func processesOf(replica string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && slices.Contains(strings.Split(string(env), "\x00"), "SCHEMAGATE_REPLICA_ID="+replica) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// lines returns the record's lines that start with what.
func (a *alembicApp) lines(t *testing.T, what string) []string {
	t.Helper()
	b, err := os.ReadFile(a.record)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, what+" ") {
			out = append(out, l)
		}
	}
	return out
}

func (d *db) assertRevisionsOnce(t *testing.T, revisions []string) {
	t.Helper()
	if dup := d.int(t, "SELECT count(*) FROM (SELECT revision FROM applied_log GROUP BY revision HAVING count(*) > 1) d"); dup != 0 {
		t.Errorf("%d revisions applied more than once", dup)
	}
	if got := d.int(t, "SELECT count(*) FROM applied_log WHERE revision = ANY($1)", revisions); got != int64(len(revisions)) {
		t.Errorf("applied_log has %d of the %d revisions", got, len(revisions))
	}
}

// TestAlembicHerd: 10 replicas of the Open-WebUI-shaped app, each with two workers, through
// `schemagate exec --engine command`. One replica runs Alembic; every revision is applied
// once; alembic_version is the head; every app worker saw ENABLE_DB_MIGRATIONS=false.
func TestAlembicHerd(t *testing.T) {
	app := newAlembicApp(t)
	d := newDB(t)
	rs := app.start(t, d, 10, "--log-level", "debug", "--log-format", "json")
	waitAll(t, rs, 2*time.Minute, 0)

	migrations := app.lines(t, "migrate")
	if len(migrations) != 1 || !strings.HasSuffix(migrations[0], "ENABLE_DB_MIGRATIONS=true") {
		t.Errorf("Alembic ran %d times, want once with ENABLE_DB_MIGRATIONS=true: %q", len(migrations), migrations)
	}
	workers := app.lines(t, "app")
	if len(workers) != 20 {
		t.Errorf("%d app workers started, want 20 (2 per replica): %q", len(workers), workers)
	}
	seen := map[string]int{}
	for _, w := range workers {
		if !strings.HasSuffix(w, "ENABLE_DB_MIGRATIONS=false") {
			t.Errorf("an app worker saw migrations enabled: %q", w)
		}
		seen[strings.Fields(w)[1]]++
	}
	for _, r := range rs {
		if seen[r.name] != 2 {
			t.Errorf("%s started %d workers, want 2", r.name, seen[r.name])
		}
	}
	var head string
	if err := d.conn.QueryRow(t.Context(), "SELECT string_agg(version_num, ',') FROM alembic_version").Scan(&head); err != nil || head != alembicHead {
		t.Errorf("alembic_version is %q (%v), want %s", head, err, alembicHead)
	}
	d.assertRevisionsOnce(t, alembicRevisions)
	migrators := 0
	for _, r := range rs {
		if strings.Contains(r.output(), "running the migrate command") {
			migrators++
		}
	}
	if migrators != 1 {
		t.Errorf("%d replicas ran the migrate command, want 1", migrators)
	}
	// The waiters the migrator's release woke read alembic_version in the wait itself.
	woken := 0
	for _, r := range rs {
		if out := r.output(); strings.Contains(out, `"released":true`) {
			woken++
			if !strings.Contains(out, "read the schema in the wait that the migrator's release ended") {
				t.Errorf("%s, woken by the release, read alembic_version on its own:\n%s", r.name, out)
			}
		}
	}
	if woken == 0 {
		t.Error("no waiter was woken by the migrator's release")
	}
}

// TestAlembicFailureSwallowed: a revision fails inside the entry point that swallows the
// error, so the command exits 0. The migrator reads alembic_version, sees the schema behind,
// and exits 3 quoting the command's output; the waiters exit 3 too; no app process starts.
func TestAlembicFailureSwallowed(t *testing.T) {
	app := newAlembicApp(t)
	app.addRevision(t, "9b7e0c1d2a3f", alembicHead, `op.execute("SELECT 1/0")`)
	d := newDB(t)
	rs := app.start(t, d, 4)
	waitAll(t, rs, 2*time.Minute, 3)
	if w := app.lines(t, "app"); len(w) != 0 {
		t.Errorf("app processes started on a stale schema: %q", w)
	}
	var migrator *replica
	for _, r := range rs {
		if strings.Contains(r.output(), "running the migrate command") {
			migrator = r
		}
	}
	if migrator == nil {
		t.Fatal("no replica ran the migrate command")
	}
	if out := migrator.output(); !containsAll(out, "the migrate command exited 0, but", "9b7e0c1d2a3f_added.py", "division by zero") {
		t.Errorf("the migrator does not say the command failed silently, and how:\n%s", out)
	}
	for _, r := range rs {
		if r != migrator && !containsAll(r.output(), "migration failed", migrator.name) {
			t.Errorf("%s does not name the failure and the migrator:\n%s", r.name, r.output())
		}
	}
	// Alembic ran everything in one transaction: the failure rolled all of it back.
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'alembic_version'"); n != 0 {
		t.Errorf("alembic_version exists after the failed run")
	}
}

// TestAlembicMigratorKilled: SIGKILL of the migrator while Alembic runs a 30 s revision. The
// migrate command dies with it at once (it must not go on racing the successor); PostgreSQL
// ends its session (client_connection_check_interval, set in the app's URL) and rolls its
// transaction back; another replica runs Alembic again and every revision ends applied once.
func TestAlembicMigratorKilled(t *testing.T) {
	app := newAlembicApp(t)
	d := newDB(t)
	appURL := d.url + "&options=-c%20client_connection_check_interval%3D200"
	if !strings.Contains(d.url, "?") {
		appURL = strings.Replace(appURL, "&", "?", 1)
	}
	// The later DATABASE_URL wins (os/exec keeps the last of duplicate keys).
	slow := filepath.Join(t.TempDir(), "slow")
	if err := os.WriteFile(slow, []byte("30"), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := app.startEnv(t, d, 3, []string{"DATABASE_URL=" + appURL, "ALEMBIC_APP_SLOW_FILE=" + slow})
	var childPID int
	await(t, time.Minute, "Alembic to run the slow revision", func() bool {
		return d.conn.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND state = 'active'
			AND query LIKE '%alembic_app_slow%' AND query NOT LIKE '%pg_stat_activity%'`, d.name).Scan(&childPID) == nil
	})
	migrators := app.lines(t, "migrate")
	if len(migrators) != 1 {
		t.Fatalf("%d migrate runs before the kill: %q", len(migrators), migrators)
	}
	victim := byName(t, rs, strings.Fields(migrators[0])[1])
	if len(processesOf(victim.name)) < 2 {
		t.Fatalf("the migrate command of %s is not running: %v", victim.name, processesOf(victim.name))
	}
	if err := os.WriteFile(slow, []byte("0.2"), 0o644); err != nil { // for the successor
		t.Fatal(err)
	}
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	await(t, 5*time.Second, "the killed migrator's migrate command to die with it", func() bool {
		return len(processesOf(victim.name)) == 0
	})
	await(t, 10*time.Second, "the killed migrator's Alembic session to end", func() bool {
		return d.int(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", childPID) == 0
	})
	survivors := except(rs, victim)
	waitAll(t, survivors, 2*time.Minute, 0)
	d.assertRevisionsOnce(t, alembicRevisions)
	if n := len(app.lines(t, "migrate")); n != 2 {
		t.Errorf("Alembic ran %d times, want 2 (the killed run and its successor)", n)
	}
}

// TestAlembicBadRevisionFile: a revision file that cannot be read is invalid input: exit 2,
// naming the file, before any connection.
func TestAlembicBadRevisionFile(t *testing.T) {
	app := newAlembicApp(t)
	bad := filepath.Join(app.dir, "app/migrations/versions/0bad0bad0bad_broken.py")
	if err := os.WriteFile(bad, []byte("revision = some_function()\ndown_revision = None\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDB(t)
	r := app.start(t, d, 1)[0]
	if code := r.wait(t, time.Minute); code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, r.output())
	}
	if out := r.output(); !strings.Contains(out, "0bad0bad0bad_broken.py") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("want one line naming the file:\n%s", out)
	}
	if n := d.int(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'schemagate/%'", d.name); n != 0 {
		t.Errorf("%d sessions: bad input must stop before connecting", n)
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("the database was touched: %d tables", n)
	}
}

// TestSQLSourceDirty: a golang-migrate style schema_migrations table. A dirty version is not
// ready, whatever its number, and every command says why; a migrate command that exits 0
// without clearing it is a failed migration.
func TestSQLSourceDirty(t *testing.T) {
	d := newDB(t)
	if _, err := d.conn.Exec(t.Context(), `CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
		INSERT INTO schema_migrations VALUES (3, true)`); err != nil {
		t.Fatal(err)
	}
	source := []string{"--engine", "command", "--version-source", "sql",
		"--version-query", "SELECT version, dirty FROM schema_migrations", "--target-version", "3"}
	check := start(t, "check", append([]string{"check", "--database-url", d.url}, source...))
	if code := check.wait(t, time.Minute); code != 1 {
		t.Fatalf("check: exit %d, want 1:\n%s", code, check.output())
	}
	if !strings.Contains(check.output(), "dirty") {
		t.Errorf("check does not say the version is dirty:\n%s", check.output())
	}
	migrate := start(t, "migrator", append([]string{"migrate", "--database-url", d.url, "--migrate-command", "true"}, source...))
	if code := migrate.wait(t, time.Minute); code != 3 {
		t.Fatalf("migrate: exit %d, want 3:\n%s", code, migrate.output())
	}
	if out := migrate.output(); !containsAll(out, "exited 0, but", "marked dirty", "migrate force") {
		t.Errorf("migrate does not say the schema is still dirty and what to do:\n%s", out)
	}
	if _, err := d.conn.Exec(t.Context(), "UPDATE schema_migrations SET dirty = false"); err != nil {
		t.Fatal(err)
	}
	check = start(t, "check-2", append([]string{"check", "--database-url", d.url}, source...))
	if code := check.wait(t, time.Minute); code != 0 {
		t.Errorf("check after the repair: exit %d, want 0:\n%s", code, check.output())
	}
}

// TestCommandEngineInput: settings of the command engine and version sources that cannot work
// are refused with exit 2 and one line, before any connection.
func TestCommandEngineInput(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--engine", "command"}, "migrate-command: not set"},
		{[]string{"migrate", "--engine", "flyway"}, "engine"},
		{[]string{"migrate", "--version-source", "sql"}, "needs --engine command"},
		{[]string{"migrate", "--migrate-command", "true"}, "--engine command"},
		{[]string{"migrate", "--engine", "command", "--migrate-command", "true", "--version-source", "sql"}, "version-query: not set"},
		{[]string{"migrate", "--engine", "command", "--migrate-command", "true", "--version-source", "sql",
			"--version-query", "SELECT 1"}, "target-version: not set"},
		{[]string{"migrate", "--engine", "command", "--migrate-command", "true", "--version-source", "sql",
			"--version-query", "DELETE FROM x", "--target-version", "1"}, "one SELECT"},
		{[]string{"migrate", "--engine", "command", "--migrate-command", "true", "--version-source", "alembic:/nonexistent"}, "/nonexistent"},
		{[]string{"migrate", "--engine", "command", "--migrate-command", "true", "--migrate-env", "NOEQUALS"}, "migrate-env"},
		{[]string{"migrate", "--target-version", "v2"}, "target-version"},
		{[]string{"migrate", "--ddl-lock-timeout", "-1s"}, "ddl-lock-timeout"},
		{[]string{"migrate", "--ddl-lock-timeout", "5s", "--lock", "raft"}, "ALTER ROLE"},
		{[]string{"migrate", "--ddl-lock-timeout", "5s", "--engine", "command", "--migrate-command", "true"}, "lock_timeout in the migration tool"},
	} {
		args := append(slices.Clone(tc.args[:1]), append([]string{"--database-url", d.url, "--dir", dir}, tc.args[1:]...)...)
		r := start(t, "input", args)
		code := r.wait(t, time.Minute)
		out := strings.TrimSpace(r.output())
		if code != 2 || !strings.Contains(out, tc.want) || strings.Contains(out, "\n") {
			t.Errorf("%v: exit %d, %q; want 2 and one line containing %q", tc.args, code, out, tc.want)
		}
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("the database was touched: %d tables", n)
	}
}
