package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/internal/proctree"
)

// psqlApp is an app that migrates with its own tool, psql: the migrate command runs a script
// statement by statement (every statement a round trip of its own, as a real tool's would be),
// inside one transaction that records its effect and then the version. Its version is the
// highest row of versions; the replica needs 1. An effect recorded twice means two migrate
// commands committed.
type psqlApp struct {
	d      *db
	script string
}

// commandSleeps labels the slow statement of a psqlApp's script, to be found in pg_stat_activity.
const commandSleeps = "command_sleeps"

// newPSQLApp writes the script, sleeping sleep seconds inside the transaction, into a directory
// any user can read (the container tests run replicas as another user).
func newPSQLApp(t *testing.T, d *db, sleep float64) *psqlApp {
	t.Helper()
	pgtest.Exec(t, d.conn, "CREATE TABLE effects (by text, at timestamptz DEFAULT clock_timestamp())")
	pgtest.Exec(t, d.conn, "CREATE TABLE versions (v int)")
	dir := sharedDir(t)
	script := filepath.Join(dir, "migrate.sql")
	body := fmt.Sprintf(`BEGIN;
INSERT INTO effects (by) VALUES (current_setting('application_name'));
SELECT pg_sleep(%g) AS %s;
INSERT INTO versions VALUES (1);
COMMIT;
`, sleep, commandSleeps)
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return &psqlApp{d: d, script: script}
}

// sharedDir is a new directory that every user can read and enter.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "schemagate-e2e-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// args are the command line of a gate command of the app.
func (a *psqlApp) args(command string, extra ...string) []string {
	return append([]string{command, "--engine", "command", "--version-source", "sql",
		"--version-query", "SELECT coalesce(max(v), 0) FROM versions", "--target-version", "1",
		"--migrate-command", `psql -X -q -v ON_ERROR_STOP=1 -f ` + a.script + ` "$DATABASE_URL"`}, extra...)
}

// env is the app's environment: the database URL schemagate and psql both read.
func (a *psqlApp) env() []string { return []string{"DATABASE_URL=" + a.d.url} }

// awaitCommand waits until replica's migrate command runs its slow statement, and returns the
// client ports of the replica's own session and of the command's.
func (a *psqlApp) awaitCommand(t *testing.T, replica string) (sessionPort, commandPort int) {
	t.Helper()
	await(t, time.Minute, replica+"'s migrate command to run", func() bool {
		return a.d.conn.QueryRow(t.Context(), `SELECT client_port FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND state = 'active' AND query LIKE '%'||$2||'%'`,
			"schemagate/"+replica+"/command", commandSleeps).Scan(&commandPort) == nil
	})
	if err := a.d.conn.QueryRow(t.Context(), `SELECT client_port FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
		"schemagate/"+replica).Scan(&sessionPort); err != nil {
		t.Fatalf("%s's session: %v", replica, err)
	}
	return sessionPort, commandPort
}

// assertOnce checks that exactly one migrate command committed.
func (a *psqlApp) assertOnce(t *testing.T) {
	t.Helper()
	var by string
	a.d.conn.QueryRow(t.Context(), "SELECT string_agg(by, ', ') FROM effects").Scan(&by)
	if n := a.d.int(t, "SELECT count(*) FROM effects"); n != 1 {
		t.Errorf("%d migrate commands committed (%s), want 1", n, by)
	}
	if n := a.d.int(t, "SELECT count(*) FROM versions"); n != 1 {
		t.Errorf("versions has %d rows, want 1", n)
	}
}

// assertLossJournaled checks that replica's run is journaled as lost (by itself) or abandoned
// (by its successor), saying that the command's own transactions are not fenced.
func (a *psqlApp) assertLossJournaled(t *testing.T, replica string) {
	t.Helper()
	if n := a.d.int(t, `SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND replica = $1
		AND outcome IN ('lost', 'abandoned') AND error LIKE '%own transactions are not fenced%'`, replica); n != 1 {
		var rows string
		a.d.conn.QueryRow(t.Context(), `SELECT string_agg(replica||' '||outcome||': '||error, E'\n') FROM schemagate_journal`).Scan(&rows)
		t.Errorf("the journal does not record %s's run as lost while its command ran:\n%s", replica, rows)
	}
}

// TestCommandSessionKilled: the migrator's own session is ended (pg_terminate_backend) 1.5 s
// into a 6 s migrate command, and a second replica starts. The second wins the election at
// once; the first notices within a second that it no longer holds the lock and kills its
// command, whose transaction rolls back, and the second ends the first command's sessions
// before it runs its own. The command's effect is committed once, both replicas end ready, and
// the first tells the truth about what happened.
func TestCommandSessionKilled(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 6)
	first := start(t, "cmd-a", app.args("migrate"), app.env()...)
	app.awaitCommand(t, "cmd-a")
	time.Sleep(1500 * time.Millisecond) // the audit's timing: 1.5 s into the command
	pgtest.Exec(t, d.conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'schemagate/cmd-a'")
	second := start(t, "cmd-b", app.args("migrate"), app.env()...)
	waitAll(t, []*replica{first, second}, time.Minute, 0)
	app.assertOnce(t)
	if out := first.output(); !containsAll(out, "lost the election while migrating", "lost while the migrate command ran") ||
		strings.Contains(out, "nothing more was committed") {
		t.Errorf("the first migrator does not say truthfully that it lost the election while its command ran:\n%s", out)
	}
	app.assertLossJournaled(t, "cmd-a")
}

// TestCommandMigratorBlackholed: the migrator's node drops off the network in the middle of
// its migrate command: the packets of its session and of its command's session are dropped
// both ways. The next migrator wins once the server has ended the cut-off session, ends the
// cut-off command's session (still open on the server, its transaction with it) and runs its
// own. When the network comes back, nothing of the first command commits: its migrator killed
// it when its checks went unanswered.
func TestCommandMigratorBlackholed(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 6)
	first := start(t, "cmd-a", app.args("migrate"), app.env()...)
	sessionPort, commandPort := app.awaitCommand(t, "cmd-a")
	time.Sleep(1500 * time.Millisecond)
	healSession, healCommand := blackhole(t, sessionPort), blackhole(t, commandPort)
	second := start(t, "cmd-b", app.args("migrate"), app.env()...)
	if code := second.wait(t, time.Minute); code != 0 {
		t.Fatalf("the second replica exited %d:\n%s", code, second.output())
	}
	healSession()
	healCommand()
	if code := first.wait(t, time.Minute); code != 0 {
		t.Errorf("the cut-off migrator exited %d:\n%s", code, first.output())
	}
	if !strings.Contains(first.output(), "killing the migrate command's whole process tree at once") {
		t.Errorf("the cut-off migrator did not kill its command:\n%s", first.output())
	}
	// The next migrator is the second replica, or the first on a new connection (its new
	// connections are not cut off): either ends the cut-off command's session before it runs
	// its own command.
	if out := first.output() + second.output(); !strings.Contains(out, "ended a database session of an earlier migrator's migrate command") {
		t.Errorf("the next migrator did not end the cut-off command's session:\n%s", out)
	}
	app.assertOnce(t)
	app.assertLossJournaled(t, "cmd-a")
}

// TestCommandMigratorFrozen: the migrator is frozen (SIGSTOP) while its migrate command, a
// process of its own, runs on, and its session is ended (as the server does once a frozen
// migrator stops answering). The next migrator ends the frozen one's command sessions before
// it runs its own: the orphaned command's transaction rolls back, and its effect is committed
// once. Thawed, the old migrator finds the election lost and ends ready.
func TestCommandMigratorFrozen(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 6)
	first := start(t, "cmd-a", app.args("migrate"), app.env()...)
	app.awaitCommand(t, "cmd-a")
	first.signal(t, syscall.SIGSTOP)
	pgtest.Exec(t, d.conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'schemagate/cmd-a'")
	second := start(t, "cmd-b", app.args("migrate"), app.env()...)
	if code := second.wait(t, time.Minute); code != 0 {
		t.Fatalf("the second replica exited %d:\n%s", code, second.output())
	}
	if !strings.Contains(second.output(), "ended a database session of an earlier migrator's migrate command") {
		t.Errorf("the next migrator did not end the frozen migrator's command session:\n%s", second.output())
	}
	first.signal(t, syscall.SIGCONT)
	if code := first.wait(t, time.Minute); code != 0 {
		t.Errorf("the thawed migrator exited %d:\n%s", code, first.output())
	}
	app.assertOnce(t)
	app.assertLossJournaled(t, "cmd-a")
}

// TestCommandTimeoutWithDaemon: a migrate command that starts a daemon outside its process
// group (setsid) and then runs past --timeout 5s: the replica ends within 6 s, exit 4, with the
// lock released and the daemon gone.
func TestCommandTimeoutWithDaemon(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 60)
	pidFile := filepath.Join(t.TempDir(), "daemon")
	r := start(t, "cmd-timeout", app.args("migrate", "--timeout", "5s",
		"--migrate-command", `setsid sleep 60 & echo $! > `+pidFile+`; exec psql -X -q -f `+app.script+` "$DATABASE_URL"`),
		app.env()...)
	code := r.wait(t, 8*time.Second)
	took := r.ExitedAt().Sub(r.Started)
	if code != 4 || took > 6*time.Second {
		t.Errorf("exit %d after %s, want 4 within 6 s:\n%s", code, took.Round(100*time.Millisecond), r.output())
	}
	// The replica has exited; its backend ends as soon as the server reads the closed socket.
	held := func() int64 {
		return d.int(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	}
	for deadline := time.Now().Add(time.Second); held() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%d advisory locks still held a second after the replica exited", held())
			break
		}
	}
	b, err := os.ReadFile(pidFile)
	var daemon int
	if _, serr := fmt.Sscan(string(b), &daemon); err != nil || serr != nil {
		t.Fatalf("the daemon's pid: %v %v", err, serr)
	}
	if state := proctree.State(daemon); state != "" && state != "Z" {
		t.Errorf("the migrate command's daemon (pid %d) outlived the replica", daemon)
	}
}

// steppingScript is a migrate command that applies versions one by one, each in a session and
// transaction of its own (psql run once per version), as most tools do; nothing in the
// database stops two copies of it from applying a version twice.
const steppingScript = `set -e
v=$(( $(psql -X -qAt -c "SELECT coalesce(max(v), 0) FROM versions" "$DATABASE_URL") + 1 ))
while [ "$v" -le 12 ]; do
  psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "BEGIN; SELECT pg_sleep(0.2) AS stepping; INSERT INTO effects (by) VALUES ('$v'); INSERT INTO versions VALUES ($v); COMMIT;"
  v=$((v + 1))
done
`

// TestCommandSessionKilledBetweenSessions: the migrator's session is ended while its command
// applies versions through a new session each. The next migrator, queued on the lock, takes it
// at once, but does not start its command until the old migrator must have noticed its loss and
// killed its command, ending that command's sessions as they appear meanwhile: no version is
// applied twice. (The next migrator queues before the session ends: one started only after it
// could find the old migrator's run already closed, or its command done, and have nothing to
// wait for.)
func TestCommandSessionKilledBetweenSessions(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 0)
	script := filepath.Join(sharedDir(t), "migrate.sh")
	if err := os.WriteFile(script, []byte(steppingScript), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(name string) []string {
		return []string{"migrate", "--engine", "command", "--version-source", "sql",
			"--version-query", "SELECT coalesce(max(v), 0) FROM versions", "--target-version", "12",
			"--migrate-command", "sh " + script}
	}
	first := start(t, "cmd-a", args("cmd-a"), app.env()...)
	await(t, time.Minute, "the command to apply a version", func() bool { return d.int(t, "SELECT count(*) FROM versions") >= 1 })
	second := start(t, "cmd-b", args("cmd-b"), app.env()...)
	await(t, time.Minute, "cmd-b to queue on the lock", func() bool {
		return d.int(t, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE NOT l.granted AND l.locktype = 'advisory' AND a.application_name = 'schemagate/cmd-b'`) > 0
	})
	if n := d.int(t, "SELECT count(*) FROM versions"); n >= 12 {
		t.Fatalf("the command applied all %d versions before cmd-b queued: nothing left to take over", n)
	}
	pgtest.Exec(t, d.conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'schemagate/cmd-a'")
	waitAll(t, []*replica{first, second}, 2*time.Minute, 0)
	if n := d.int(t, "SELECT count(*) - count(DISTINCT by) FROM effects"); n != 0 {
		t.Errorf("%d versions were applied twice", n)
	}
	if n := d.int(t, "SELECT count(*) FROM versions"); n != 12 {
		t.Errorf("versions has %d rows, want 12", n)
	}
	if !strings.Contains(first.output()+second.output(), "waiting until it must have killed its command") {
		t.Errorf("the next migrator did not wait for the earlier command to end")
	}
}

// TestCommandEnvironment: the migrate command gets the app's environment and --migrate-env, its
// sessions' tag in PGAPPNAME (overriding one of --migrate-env), and none of the variables that
// hold schemagate's own secrets or lead to them.
func TestCommandEnvironment(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 0)
	dump := filepath.Join(t.TempDir(), "env")
	config := filepath.Join(t.TempDir(), "schemagate.yaml")
	if err := os.WriteFile(config, []byte("log-level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, "cmd-env", app.args("migrate", "--migrate-env", "EXTRA=given", "--migrate-env", "PGAPPNAME=mine",
		"--migrate-command", `env > `+dump+`; psql -X -q -f `+app.script+` "$DATABASE_URL"`),
		append(app.env(), "SCHEMAGATE_CONFIG="+config, "SCHEMAGATE_DATABASE_URL="+d.url,
			"SCHEMAGATE_RAFT_SECRET="+raftSecret, "SCHEMAGATE_RAFT_SECRET_FILE=/run/secrets/raft", "APP_SETTING=kept")...)
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, r.output())
	}
	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(string(b), "\n")
	for _, want := range []string{"PGAPPNAME=schemagate/cmd-env/command", "EXTRA=given", "APP_SETTING=kept", "DATABASE_URL=" + d.url} {
		if !slices.Contains(env, want) {
			t.Errorf("the command's environment lacks %s", want)
		}
	}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains([]string{"SCHEMAGATE_CONFIG", "SCHEMAGATE_DATABASE_URL", "SCHEMAGATE_DATABASE_URL_FILE",
			"SCHEMAGATE_RAFT_SECRET", "SCHEMAGATE_RAFT_SECRET_FILE"}, name) || kv == "PGAPPNAME=mine" {
			t.Errorf("the command inherited %s", name)
		}
	}
}
