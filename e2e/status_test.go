package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusText runs `status` with args and returns what it printed.
func statusText(t *testing.T, args ...string) string {
	t.Helper()
	r := start(t, "ops", append([]string{"status"}, args...))
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("status exited %d:\n%s", code, r.output())
	}
	return r.Stdout.String()
}

// TestStatusDuringMigration: during a slow migration, status says what is happening and what to
// do: the migration and where it stands in the run (3 of 5), who runs it and for how long (as
// "… ago" with a zone, so that two reads differ), which replicas wait, and the next step; the
// JSON document carries the same. Without --dir it still shows the holder, the database's
// version, the waiters and the journal.
func TestStatusDuringMigration(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 5, FirstSlow: map[int]float64{3: 60}})
	rs := startAll(t, 4, "bad-day", d.args("migrate", dir))
	holder, pid, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	await(t, 30*time.Second, "the other replicas to queue", func() bool {
		return d.int(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`) == 3
	})
	first := statusText(t, "--database-url", d.url, "--dir", dir)
	for _, want := range []string{"migrating: replica " + holder, "is applying 00003_step_3.sql (3 of 5), for ",
		"ago (", "waiting:", "3 replica(s)", "next step:", "wait: the migrator is at work", "pg_terminate_backend",
		"last run:"} {
		if !strings.Contains(first, want) {
			t.Errorf("status lacks %q:\n%s", want, first)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the test is that two reads a second apart differ
	if second := statusText(t, "--database-url", d.url, "--dir", dir); second == first {
		t.Errorf("two reads a second apart print the same text: times are not relative")
	}
	var r struct {
		Run      struct{ Replica, Migration string } `json:"last_run"`
		Position int                                 `json:"run_position"`
		Of       int                                 `json:"run_migrations"`
		Waiting  []string                            `json:"waiting"`
		Next     string                              `json:"next_step"`
	}
	if err := json.Unmarshal([]byte(statusText(t, "--database-url", d.url, "--dir", dir, "--output", "json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Run.Replica != holder || r.Run.Migration != "00003_step_3.sql" || r.Position != 3 || r.Of != 5 ||
		len(r.Waiting) != 3 || !strings.HasPrefix(r.Next, "wait") {
		t.Errorf("status --output json: %+v", r)
	}
	bare := statusText(t, "--database-url", d.url) // no --dir, and ./migrations does not exist
	for _, want := range []string{"db version:", "2", holder, "3 replica(s)", "give --dir"} {
		if !strings.Contains(bare, want) {
			t.Errorf("status without --dir lacks %q:\n%s", want, bare)
		}
	}
	if strings.Contains(bare, "target version:") {
		t.Errorf("status without --dir claims a target:\n%s", bare)
	}
	d.int(t, "SELECT count(*) FROM (SELECT pg_terminate_backend($1)) x", pid)
	waitAll(t, rs, time.Minute, 0)
}

// TestStatusAfterFailureAndInterruption: after a failed run status names the failure and says
// to fix the migration; after a non-transactional migration was cut off it says to check it
// and decide with schemagate resolve.
func TestStatusAfterFailureAndInterruption(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3, Fail: map[int]bool{2: true}})
	if code := start(t, "job", d.args("migrate", dir)).wait(t, time.Minute); code != 3 {
		t.Fatal("the failing migration did not fail")
	}
	out := statusText(t, "--database-url", d.url, "--dir", dir)
	for _, want := range []string{"failed: replica job's run failed", "00002_step_2.sql", "division by zero",
		"next step:", "fix 00002_step_2.sql"} {
		if !strings.Contains(out, want) {
			t.Errorf("status after a failure lacks %q:\n%s", want, out)
		}
	}

	d2 := newDB(t)
	notx := writeMigrations(t, migrationSet{N: 3, FirstSlow: map[int]float64{2: 60}, NoTx: map[int]bool{2: true}})
	victim := start(t, "victim", d2.args("migrate", notx))
	d2.activeStatement(t, time.Minute, "first_attempt_sleeps")
	victim.signal(t, syscall.SIGKILL)
	victim.wait(t, 10*time.Second)
	// Before any other migrator looks, the journal still says "running": status must tell that
	// the run was cut off and that the next migrator will refuse what it left, once the server
	// has ended the victim's session (its lock goes with it).
	deadline := time.Now().Add(30 * time.Second)
	for out = statusText(t, "--database-url", d2.url, "--dir", notx); !strings.Contains(out, "lock holder:     none"); out = statusText(t, "--database-url", d2.url, "--dir", notx) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed migrator still holds the lock:\n%s", out)
		}
	}
	if !containsAll(out, "cut off: replica victim's run stopped without finishing while applying 00002_step_2.sql",
		"the next migrator refuses it", "resolve --migration 00002_step_2.sql --mark-applied") {
		t.Errorf("status right after the migrator was killed does not say what happened and what to do:\n%s", out)
	}
	if code := start(t, "next", d2.args("migrate", notx)).wait(t, time.Minute); code != 3 {
		t.Fatal("the interrupted migration was not refused")
	}
	out = statusText(t, "--database-url", d2.url, "--dir", notx)
	if !containsAll(out, "check what 00002_step_2.sql left behind", "resolve --migration 00002_step_2.sql --mark-applied", "--allow-rerun") ||
		strings.Contains(out, ": :") {
		t.Errorf("status after an interruption does not say what to do:\n%s", out)
	}
}

// TestStatusApplied: status --applied lists every applied migration with when, by which replica
// and run, and how long it took, and warns of a file changed since it was applied.
func TestStatusApplied(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3, Slow: map[int]float64{2: 0.5}})
	if code := start(t, "web-3", d.args("migrate", dir)).wait(t, time.Minute); code != 0 {
		t.Fatal("migrate failed")
	}
	path := filepath.Join(dir, "00002_step_2.sql")
	body, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(body, []byte("-- edited after it was applied\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	out := statusText(t, "--database-url", d.url, "--dir", dir, "--applied")
	for _, want := range []string{"applied (newest first):", "00003_step_3.sql", "00001_step_1.sql", "web-3", "#1",
		"warning: 00002_step_2.sql changed since it was applied"} {
		if !strings.Contains(out, want) {
			t.Errorf("status --applied lacks %q:\n%s", want, out)
		}
	}
	var r struct {
		Applied []struct {
			Version int64  `json:"version"`
			Replica string `json:"replica"`
			Took    int64  `json:"took_ns"`
			Changed bool   `json:"changed_since_applied"`
		} `json:"applied"`
	}
	if err := json.Unmarshal([]byte(statusText(t, "--database-url", d.url, "--dir", dir, "--applied", "-o", "json")), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Applied) != 3 || r.Applied[1].Took < int64(400*time.Millisecond) || !r.Applied[1].Changed || r.Applied[0].Changed {
		t.Errorf("status --applied --output json: %+v", r.Applied)
	}
}

// TestStatusCommandEngine: with --engine command the holder line says that the migrate command
// runs and for how long, and never shows schemagate's own statements.
func TestStatusCommandEngine(t *testing.T) {
	d := newDB(t)
	app := newPSQLApp(t, d, 8)
	r := start(t, "cmd-0", app.args("migrate"), app.env()...)
	app.awaitCommand(t, "cmd-0")
	time.Sleep(1500 * time.Millisecond) // a few of the migrator's lease checks on its session
	out := start(t, "ops", append(app.args("status")[:0:0], app.args("status")...), app.env()...)
	out.wait(t, 30*time.Second)
	text := out.Stdout.String()
	if !strings.Contains(text, "is running the migrate command, for ") {
		t.Errorf("status does not say that the migrate command runs:\n%s", text)
	}
	for _, internal := range []string{"pg_locks", "schemagate */", "pg_notify", "schemagate_journal"} {
		if strings.Contains(text, internal) {
			t.Errorf("status shows schemagate's own statement (%s):\n%s", internal, text)
		}
	}
	r.wait(t, time.Minute)
}
