package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExec: after the gate, the app replaces schemagate (same PID), with the extra environment,
// receives signals directly, and its exit code is the process's.
func TestExec(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	out := t.TempDir()
	config := filepath.Join(out, "schemagate.yaml")
	if err := os.WriteFile(config, []byte("log-level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `echo "pid=$$ migrations=$ENABLE_DB_MIGRATIONS keep=$KEEP secret=${SCHEMAGATE_RAFT_SECRET:-none}` +
		`${SCHEMAGATE_RAFT_SECRET_FILE:+ secret-file}${SCHEMAGATE_CONFIG:+ config}${SCHEMAGATE_DATABASE_URL:+ url}` +
		`${SCHEMAGATE_DATABASE_URL_FILE:+ url-file}" > ` + out + `/started
trap 'echo term > ` + out + `/signal; exit 42' TERM
while true; do sleep 0.05; done`
	r := start(t, "app-1", d.args("exec", dir, "--env", "ENABLE_DB_MIGRATIONS=false", "--", "sh", "-c", script),
		"ENABLE_DB_MIGRATIONS=true", "KEEP=inherited", "SCHEMAGATE_RAFT_SECRET="+raftSecret,
		"SCHEMAGATE_RAFT_SECRET_FILE=/run/secrets/raft", "SCHEMAGATE_CONFIG="+config, "SCHEMAGATE_DATABASE_URL="+d.url)
	var started string
	await(t, time.Minute, "the app to start", func() bool {
		b, err := os.ReadFile(filepath.Join(out, "started"))
		started = string(b)
		return err == nil && strings.HasSuffix(started, "\n")
	})
	if want := "pid=" + strconv.Itoa(r.Cmd.Process.Pid) + " migrations=false keep=inherited secret=none\n"; started != want {
		t.Fatalf("the app reported %q, want %q (same PID, --env overriding, the rest inherited but schemagate's secrets "+
			"and what leads to them)", started, want)
	}
	d.assertAppliedOnce(t, 2)
	if n := d.int(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'schemagate/app-1'"); n != 0 {
		t.Errorf("the app inherited %d schemagate database sessions", n)
	}

	r.signal(t, syscall.SIGTERM)
	if code := r.wait(t, 10*time.Second); code != 42 {
		t.Errorf("exit code %d, want the app's 42", code)
	}
	if b, err := os.ReadFile(filepath.Join(out, "signal")); err != nil || string(b) != "term\n" {
		t.Errorf("the app did not receive SIGTERM: %q, %v", b, err)
	}

	plain := start(t, "app-2", d.args("exec", dir, "--", "sh", "-c", "exit 7"))
	if code := plain.wait(t, time.Minute); code != 7 {
		t.Errorf("exit code %d, want the app's 7", code)
	}
}

// TestExecGateFails: when the gate fails, the app never starts and the exit code is the gate's.
func TestExecGateFails(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2, Fail: map[int]bool{2: true}})
	marker := filepath.Join(t.TempDir(), "ran")
	r := start(t, "app", d.args("exec", dir, "--", "touch", marker))
	if code := r.wait(t, time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3:\n%s", code, r.output())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the app ran although the migration failed")
	}
	missing := start(t, "app", d.args("exec", dir, "--", "/nonexistent/app"))
	if code := missing.wait(t, time.Minute); code != 2 || !strings.Contains(missing.output(), "command not found") {
		t.Fatalf("a missing command: exit %d:\n%s", code, missing.output())
	}
	bad := start(t, "app", d.args("exec", dir, "--env", "NOEQUALS", "--", "true"))
	if code := bad.wait(t, time.Minute); code != 2 || !strings.Contains(bad.output(), `env: "NOEQUALS" must be KEY=VALUE`) {
		t.Fatalf("a bad --env: exit %d:\n%s", code, bad.output())
	}
}

// TestExecAppCannotStart: the gate passes, but the app cannot be started in schemagate's place
// (an executable that is no program for this machine): exit 7, its own code, saying that the
// schema is ready and the app never ran.
func TestExecAppCannotStart(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	app := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(app, []byte("\x7fELF but not really\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := start(t, "app", d.args("exec", dir, "--", app))
	if code := r.wait(t, time.Minute); code != 7 {
		t.Fatalf("exit %d, want 7:\n%s", code, r.output())
	}
	if out := r.output(); !containsAll(out, "the schema is ready, but the app could not be started", "exec format error",
		`"exit_reason":"app not started"`) {
		t.Errorf("the failure does not say what happened:\n%s", out)
	}
	d.assertAppliedOnce(t, 1)
}
