package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// TestCheck: one read, exit 0 when ready, 1 when not, 6 when ahead under --when-ahead=exit.
func TestCheck(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3})
	older := t.TempDir()
	copyMigration(t, dir, older, "00001_step_1.sql")

	check := func(dir string, extra ...string) (int, string) {
		r := start(t, "check", d.args("check", dir, extra...))
		return r.wait(t, 30*time.Second), r.Stdout.String()
	}
	if code, out := check(dir); code != 1 || !strings.HasPrefix(out, "not ready:") {
		t.Fatalf("fresh database: exit %d, %q; want 1, not ready", code, out)
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Fatalf("check created %d tables", n)
	}
	if code := start(t, "m", d.args("migrate", dir)).wait(t, time.Minute); code != 0 {
		t.Fatal("migrate failed")
	}
	if code, out := check(dir); code != 0 || !strings.HasPrefix(out, "ready:") {
		t.Fatalf("migrated database: exit %d, %q; want 0, ready", code, out)
	}
	if code, _ := check(older); code != 0 {
		t.Fatalf("older replica, when-ahead=ready: exit %d, want 0", code)
	}
	if code, _ := check(older, "--when-ahead", "exit"); code != 6 {
		t.Fatalf("older replica, when-ahead=exit: exit %d, want 6", code)
	}
}

// TestStatusShowsTheMigrator reads `status --output json` while a migration runs: the holder,
// what it runs, the pending list and the journal; and never the password.
func TestStatusShowsTheMigrator(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 4, FirstSlow: map[int]float64{3: 60}})
	url := withPassword(t, d.url, secret)
	m := start(t, "web-7", []string{"migrate", "--database-url", url, "--dir", dir})
	d.activeStatement(t, time.Minute, "first_attempt_sleeps")

	s := start(t, "ops", []string{"status", "--database-url", url, "--dir", dir, "--output", "json"})
	if code := s.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("status exited %d:\n%s", code, s.output())
	}
	if strings.Contains(s.output(), secret) {
		t.Fatal("status printed the password")
	}
	var r struct {
		Ready     bool  `json:"ready"`
		DBVersion int64 `json:"db_version"`
		Target    int64 `json:"target_version"`
		Pending   []struct {
			Name string `json:"name"`
		} `json:"pending"`
		Holder *struct {
			Replica string `json:"replica"`
			Name    string `json:"name"`
			PID     int    `json:"pid"`
			Query   string `json:"query"`
		} `json:"lock_holder"`
		Journal []struct {
			Kind    string `json:"kind"`
			Replica string `json:"replica"`
			Outcome string `json:"outcome"`
			Name    string `json:"migration"`
		} `json:"journal"`
	}
	if err := json.Unmarshal([]byte(s.Stdout.String()), &r); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, s.Stdout.String())
	}
	if r.Ready || r.DBVersion != 2 || r.Target != 4 || len(r.Pending) != 2 || r.Pending[0].Name != "00003_step_3.sql" {
		t.Errorf("status: ready=%v db=%d target=%d pending=%v", r.Ready, r.DBVersion, r.Target, r.Pending)
	}
	if r.Holder == nil || r.Holder.Replica != "web-7" || r.Holder.Name != "schemagate/web-7" || r.Holder.PID == 0 ||
		!strings.Contains(r.Holder.Query, "first_attempt_sleeps") {
		t.Errorf("lock holder: %+v", r.Holder)
	}
	if len(r.Journal) == 0 || r.Journal[0].Kind != "run" || r.Journal[0].Outcome != "running" ||
		r.Journal[0].Replica != "web-7" || r.Journal[0].Name != "00003_step_3.sql" {
		t.Errorf("journal: %+v", r.Journal)
	}

	text := start(t, "ops", []string{"status", "--database-url", url, "--dir", dir})
	if code := text.wait(t, 30*time.Second); code != 0 || !containsAll(text.Stdout.String(), "web-7", "00003_step_3.sql", "running") {
		t.Errorf("text status (exit %d):\n%s", code, text.output())
	}
	m.signal(t, 9)
}

// TestWaitNeverMigrates: `wait` replicas never migrate. Alone, they give up at the deadline
// (exit 4) saying nobody migrates; beside a migrator, they exit 0 when it is done.
func TestWaitNeverMigrates(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3, Slow: map[int]float64{2: 1}})
	alone := start(t, "waiter", d.args("wait", dir, "--timeout", "2s"))
	if code := alone.wait(t, 30*time.Second); code != 4 {
		t.Fatalf("lone waiter exited %d, want 4:\n%s", code, alone.output())
	}
	if out := alone.output(); !strings.Contains(out, "no replica is migrating") {
		t.Errorf("the timeout does not say why:\n%s", out)
	}
	// The presence table is the fleet's, where every replica that gates shows itself; nothing
	// of the migrations.
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schemagate_presence'"); n != 0 {
		t.Fatalf("wait created %d tables", n)
	}
	waiters := startAll(t, 3, "waiter", d.args("wait", dir))
	migrator := start(t, "migrator", d.args("migrate", dir))
	waitAll(t, append(waiters, migrator), time.Minute, 0)
	if n := d.int(t, "SELECT count(DISTINCT replica) FROM applied_log WHERE replica <> 'schemagate/migrator'"); n != 0 {
		t.Errorf("%d waiters applied migrations", n)
	}
}

// TestSettingsPrecedence: flags beat the environment, which beats the config file; DATABASE_URL
// is used when nothing else names the database; --database-url-file reads a mounted secret.
func TestSettingsPrecedence(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	cfgDir := t.TempDir()
	writeFile(t, cfgDir, "schemagate.yaml", "dir: /nonexistent/from-file\ntimeout: 1m\nlog-format: json\n")
	cfg := filepath.Join(cfgDir, "schemagate.yaml")

	// The file's dir is wrong; the environment's is right and wins.
	r := start(t, "p1", []string{"migrate", "--config", cfg}, "DATABASE_URL="+d.url, "SCHEMAGATE_DIR="+dir)
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("env over file: exit %d:\n%s", code, r.output())
	}
	// The environment's dir is wrong; the flag is right and wins.
	r = start(t, "p2", []string{"check", "--config", cfg, "--dir", dir}, "DATABASE_URL="+d.url, "SCHEMAGATE_DIR=/nonexistent/from-env")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("flag over env: exit %d:\n%s", code, r.output())
	}
	// Only the file names the dir: it is used (and is wrong).
	r = start(t, "p3", []string{"check", "--config", cfg}, "DATABASE_URL="+d.url)
	if code := r.wait(t, time.Minute); code != 2 || !strings.Contains(r.output(), "/nonexistent/from-file") {
		t.Fatalf("file alone: exit %d:\n%s", code, r.output())
	}
	// SCHEMAGATE_DATABASE_URL beats DATABASE_URL.
	r = start(t, "p4", []string{"check", "--dir", dir}, "DATABASE_URL=postgres://nobody@127.0.0.1:1/x", "SCHEMAGATE_DATABASE_URL="+d.url)
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("SCHEMAGATE_DATABASE_URL over DATABASE_URL: exit %d:\n%s", code, r.output())
	}
	// The URL from a file, as a Kubernetes or Docker secret mounts it (with a trailing newline).
	secretDir := t.TempDir()
	writeFile(t, secretDir, "url", d.url+"\n")
	r = start(t, "p5", []string{"check", "--dir", dir}, "SCHEMAGATE_DATABASE_URL_FILE="+filepath.Join(secretDir, "url"))
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("database-url-file: exit %d:\n%s", code, r.output())
	}
}

// TestMistypedCommandsAndFlags: a mistyped command, a migration tool's verb by habit, or a
// mistyped flag is invalid input (exit 2), reported on one line, with what was most likely
// meant on a line of its own; nothing is touched.
func TestMistypedCommandsAndFlags(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	for _, tc := range []struct {
		args       []string
		line, hint string
	}{
		{[]string{"stauts"}, `unknown command "stauts"`, "did you mean: schemagate status"},
		{[]string{"migarte"}, `unknown command "migarte"`, "did you mean: schemagate migrate"},
		{[]string{"up"}, `unknown command "up"`, "schemagate migrate applies the pending migrations"},
		{[]string{"down"}, `unknown command "down"`, "goose down"},
		{[]string{"create", "add_users", "sql"}, `unknown command "create"`, "goose create"},
		{d.args("migrate", dir, "--tiemout", "1m"), "unknown flag: --tiemout", "did you mean: --timeout"},
		{d.args("status", dir, "--outptu", "json"), "unknown flag: --outptu", "did you mean: --output"},
		{[]string{"check", "--databse-url", d.url}, "unknown flag: --databse-url", "did you mean: --database-url"},
	} {
		r := start(t, "typo", tc.args)
		code := r.wait(t, 30*time.Second)
		lines := strings.Split(strings.TrimSpace(r.Stderr.String()), "\n")
		if code != 2 || len(lines) != 2 || !strings.Contains(lines[0], tc.line) || !strings.Contains(lines[0], "exit 2") ||
			!strings.Contains(lines[1], tc.hint) {
			t.Errorf("%v: exit %d,\n%s\nwant exit 2, one line with %q, then one with %q", tc.args, code, r.Stderr.String(), tc.line, tc.hint)
		}
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("the database was touched: %d tables", n)
	}
}

// TestSQLAlchemyURLs: the database URL an app already has in SQLAlchemy's form works as it is,
// meaning what it means to SQLAlchemy: postgresql+psycopg2:// is PostgreSQL, and
// sqlite+pysqlite:///data/app.db is data/app.db in the working directory. sqlite:///x, which
// tools read two ways, is taken the way the files tell, and refused with both readings where
// they do not.
func TestSQLAlchemyURLs(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	sqlalchemy := strings.Replace(d.url, "postgres://", "postgresql+psycopg2://", 1)
	r := start(t, "sa-pg", []string{"migrate", "--dir", dir}, "DATABASE_URL="+sqlalchemy)
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("migrate with %s: exit %d:\n%s", "postgresql+psycopg2://", code, r.output())
	}
	d.assertAppliedOnce(t, 2)

	sqliteDir := writeMigrations(t, migrationSet{N: 2, SQLite: true})
	wd := t.TempDir()
	if err := os.Mkdir(filepath.Join(wd, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	in := fleet.Container{Dir: wd}
	r = startIn(t, in, "sa-sqlite", []string{"migrate", "--dir", sqliteDir}, "DATABASE_URL=sqlite+pysqlite:///data/app.db")
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("migrate with sqlite+pysqlite:///data/app.db: exit %d:\n%s", code, r.output())
	}
	if _, err := os.Stat(filepath.Join(wd, "data", "app.db")); err != nil {
		t.Errorf("sqlite+pysqlite:///data/app.db is not data/app.db in the working directory: %v", err)
	}
	r = startIn(t, in, "three-slashes", []string{"check", "--dir", sqliteDir, "--database-url", "sqlite:///data/app.db"})
	if code := r.wait(t, time.Minute); code != 0 || !strings.Contains(r.output(), "as SQLAlchemy does: its file exists") {
		t.Errorf("sqlite:///data/app.db with only ./data/app.db there: exit %d:\n%s", code, r.output())
	}
	r = startIn(t, in, "ambiguous", []string{"migrate", "--dir", sqliteDir, "--database-url", "sqlite:///no-such-dir-7f3a/app.db"})
	if code := r.wait(t, time.Minute); code != 2 || !containsAll(r.output(), "ambiguous", "/no-such-dir-7f3a/app.db",
		filepath.Join(wd, "no-such-dir-7f3a/app.db"), "sqlite:////no-such-dir-7f3a/app.db") {
		t.Errorf("an ambiguous URL: exit %d:\n%s", code, r.output())
	}
}
