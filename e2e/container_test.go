package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/proctree"
)

// The tests in this file run replicas the way a container runtime does: as PID 1 of a PID
// namespace of their own (the kernel gives PID 1 no default action for SIGTERM and SIGINT, and
// makes it the parent of every orphan), and as a user other than root in a working directory
// it cannot write.

// asPID1 is the container of a replica that is its container's entrypoint.
var asPID1 = fleet.Container{PID1: true}

// needContainers skips a test where replicas cannot be run as containers run them.
func needContainers(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run replicas in PID namespaces of their own (unshare) and as another user (setpriv)")
	}
	for _, tool := range []string{"unshare", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (util-linux)", tool)
		}
	}
}

// engineCase is one way an app migrates: goose files, or its own command (psql).
type engineCase struct {
	name string
	// args returns a gate command's arguments on d, and the environment the replicas need.
	setup func(t *testing.T, d *db) (args func(command string, extra ...string) []string, env []string, assertOnce func())
}

var engineCases = []engineCase{
	{"goose", func(t *testing.T, d *db) (func(string, ...string) []string, []string, func()) {
		dir := sharedDir(t)
		if err := (migrationSet{N: 3}).Write(dir); err != nil {
			t.Fatal(err)
		}
		return func(command string, extra ...string) []string { return d.args(command, dir, extra...) },
			nil, func() { d.assertAppliedOnce(t, 3) }
	}},
	{"command", func(t *testing.T, d *db) (func(string, ...string) []string, []string, func()) {
		app := newPSQLApp(t, d, 0.5)
		return app.args, app.env(), func() { app.assertOnce(t) }
	}},
}

// TestContainerModes: with either engine, three replicas that are each PID 1 of their own
// container all end ready in every mode: migrate exits 0, exec's app starts as PID 1 in
// schemagate's place, serve answers /readyz 200 and stops cleanly on SIGTERM.
func TestContainerModes(t *testing.T) {
	needContainers(t)
	for _, ec := range engineCases {
		for _, mode := range []string{"migrate", "exec", "serve"} {
			t.Run(ec.name+"/"+mode, func(t *testing.T) {
				d := newDB(t)
				args, env, assertOnce := ec.setup(t, d)
				out := sharedDir(t)
				var rs []*replica
				var eps []endpoint
				for i := range 3 {
					name := fmt.Sprintf("pid1-%d", i)
					var a []string
					switch mode {
					case "migrate":
						a = args("migrate")
					case "exec":
						a = append(args("exec"), "--", "sh", "-c", `echo $$ > `+filepath.Join(out, name))
					case "serve":
						addr, ep := listenAddr(t)
						a, eps = args("serve", "--listen", addr), append(eps, ep)
					}
					rs = append(rs, startIn(t, asPID1, name, a, env...))
				}
				for _, ep := range eps {
					ep.awaitStatus(t, time.Minute, "/readyz", 200)
				}
				for _, r := range rs {
					if mode == "serve" {
						r.signal(t, syscall.SIGTERM)
					}
				}
				waitAll(t, rs, time.Minute, 0)
				assertOnce()
				for _, r := range rs {
					if mode == "exec" {
						if b, err := os.ReadFile(filepath.Join(out, r.name)); err != nil || string(b) != "1\n" {
							t.Errorf("%s: the app reported pid %q (%v), want 1: it replaces schemagate", r.name, b, err)
						}
					}
					if strings.Contains(r.output(), "was killed by") {
						t.Errorf("%s: a migrate command was killed:\n%s", r.name, r.output())
					}
				}
			})
		}
	}
}

// TestContainerKilledMigrator: the migrator, PID 1 of its container, is SIGKILLed in the middle of
// its migration; with it goes its container, the migrate command included. The survivors take
// over, and everything is applied once.
func TestContainerKilledMigrator(t *testing.T) {
	needContainers(t)
	t.Run("goose", func(t *testing.T) {
		d, rs, victim := slowGooseHerd(t)
		victim.signal(t, syscall.SIGKILL)
		waitAll(t, except(rs, victim), time.Minute, 0)
		d.assertAppliedOnce(t, 4)
	})
	t.Run("command", func(t *testing.T) {
		d := newDB(t)
		app := newPSQLApp(t, d, 30)
		rs := startAllIn(t, asPID1, 3, "pid1", app.args("migrate"), app.env()...)
		victim := byName(t, rs, app.commandRunner(t))
		victim.signal(t, syscall.SIGKILL)
		survivors := except(rs, victim)
		// The successor's command sleeps as long; it ends the killed command's session first.
		waitAll(t, survivors, 2*time.Minute, 0)
		app.assertOnce(t)
	})
}

// slowGooseHerd starts three replicas, each PID 1 of its container, on four goose migrations
// of which the third sleeps a minute on its first attempt, and returns the migrator once it
// sleeps there.
func slowGooseHerd(t *testing.T) (*db, []*replica, *replica) {
	t.Helper()
	d := newDB(t)
	dir := sharedDir(t)
	if err := (migrationSet{N: 4, FirstSlow: map[int]float64{3: 60}}).Write(dir); err != nil {
		t.Fatal(err)
	}
	rs := startAllIn(t, asPID1, 3, "pid1", d.args("migrate", dir))
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	return d, rs, byName(t, rs, holder)
}

// commandRunner waits until some replica's migrate command runs its slow statement and names
// that replica.
func (a *psqlApp) commandRunner(t *testing.T) string {
	t.Helper()
	var name string
	await(t, time.Minute, "a migrate command to run", func() bool {
		return a.d.conn.QueryRow(t.Context(), `SELECT application_name FROM pg_stat_activity
			WHERE datname = current_database() AND application_name LIKE 'schemagate/%/command' AND state = 'active'
			AND query LIKE '%'||$1||'%'`,
			commandSleeps).Scan(&name) == nil
	})
	return strings.TrimSuffix(strings.TrimPrefix(name, "schemagate/"), "/command")
}

// TestContainerSigterm: SIGTERM reaches a migrator that is PID 1 (the kernel would drop it
// without a handler): it stops its migration and exits 4, and the others finish. A second
// signal ends a migrator at once, while its command still has most of its grace period left.
func TestContainerSigterm(t *testing.T) {
	needContainers(t)
	t.Run("goose", func(t *testing.T) {
		d, rs, victim := slowGooseHerd(t)
		victim.signal(t, syscall.SIGTERM)
		if code := victim.wait(t, 10*time.Second); code != 4 {
			t.Errorf("the migrator exited %d after SIGTERM, want 4:\n%s", code, victim.output())
		}
		waitAll(t, except(rs, victim), time.Minute, 0)
		d.assertAppliedOnce(t, 4)
	})
	t.Run("command-twice", func(t *testing.T) {
		d := newDB(t)
		app := newPSQLApp(t, d, 60)
		stubborn := app.args("migrate", "--migrate-command",
			`trap '' TERM; psql -X -q -f `+app.script+` "$DATABASE_URL"; sleep 60`)
		r := startIn(t, asPID1, "pid1-0", stubborn, app.env()...)
		app.awaitCommand(t, "pid1-0")
		r.signal(t, syscall.SIGTERM)
		await(t, 10*time.Second, "the migrator to stop its command", func() bool {
			return strings.Contains(r.output(), "stopping the migrate command (SIGTERM)")
		})
		sent := time.Now()
		r.signal(t, syscall.SIGTERM)
		if code := r.wait(t, 5*time.Second); code != 4 {
			t.Errorf("exit %d after a second SIGTERM, want 4:\n%s", code, r.output())
		}
		if took := time.Since(sent); took > 2*time.Second {
			t.Errorf("the second SIGTERM took %s to end the process", took)
		}
		if !strings.Contains(r.output(), "second SIGTERM received: exiting at once") {
			t.Errorf("the process does not say why it ended at once:\n%s", r.output())
		}
		// The container went with its PID 1, the command with it: its transaction never commits
		// (the server ends its session once the statement it runs is over).
		if n := d.int(t, "SELECT count(*) FROM effects"); n != 0 {
			t.Errorf("the stopped command committed %d effects", n)
		}
	})
}

// TestContainerReapsOrphans: serve as PID 1 adopts the processes left behind when a migrate
// command's reaper is killed: it kills them, as nothing of a command may outlive it, and reaps
// them, leaving no zombie.
func TestContainerReapsOrphans(t *testing.T) {
	needContainers(t)
	d := newDB(t)
	app := newPSQLApp(t, d, 60)
	pidFile := filepath.Join(sharedDir(t), "daemon")
	addr, ep := listenAddr(t)
	r := startIn(t, asPID1, "pid1-0", app.args("serve", "--listen", addr, "--migrate-command",
		`setsid sleep 600 & echo $! > `+pidFile+`; exec psql -X -q -f `+app.script+` "$DATABASE_URL"`), app.env()...)
	app.awaitCommand(t, "pid1-0")
	init, err := r.PID()
	if err != nil {
		t.Fatal(err)
	}
	reaper := 0
	for _, pid := range proctree.Children(init) {
		if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(cmdline), "__reap") {
			reaper = pid
		}
	}
	if reaper == 0 {
		t.Fatalf("no reaper among the children of PID 1 (%d): %v", init, proctree.Children(init))
	}
	if err := syscall.Kill(reaper, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	await(t, 10*time.Second, "no process of the command left, and no zombie", func() bool {
		left := proctree.Children(init)
		return len(left) == 0
	})
	// /readyz answers 503 already while the command runs ("migrating"): await the answer that
	// says why the run ended.
	ep.awaitStatus(t, 10*time.Second, "/readyz?verbose", 503)
	await(t, 10*time.Second, "/readyz to say the command's reaper was killed", func() bool {
		code, body := ep.get("/readyz?verbose")
		return code == 503 && strings.Contains(body, "reaper was killed by SIGKILL")
	})
	r.signal(t, syscall.SIGTERM)
	if code := r.wait(t, 15*time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM:\n%s", code, r.output())
	}
	if n := d.int(t, "SELECT count(*) FROM effects"); n != 0 {
		t.Errorf("the killed command committed %d effects", n)
	}
}

// TestContainerNonRootHerd: a herd of five replicas, each PID 1 of its container, running as
// nobody (uid 65534) in a working directory it cannot write, with either engine: everything is
// applied once and every replica ends ready.
func TestContainerNonRootHerd(t *testing.T) {
	needContainers(t)
	readOnly := sharedDir(t)
	if err := os.Chmod(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	nobody := fleet.Container{PID1: true, UID: 65534, GID: 65534, Dir: readOnly}
	for _, ec := range engineCases {
		t.Run(ec.name, func(t *testing.T) {
			d := newDB(t)
			args, env, assertOnce := ec.setup(t, d)
			rs := startAllIn(t, nobody, 5, "nobody", args("migrate"), env...)
			waitAll(t, rs, 2*time.Minute, 0)
			assertOnce()
		})
	}
}

// startAllIn is startAll, in container c.
func startAllIn(t *testing.T, c fleet.Container, n int, prefix string, args []string, env ...string) []*replica {
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = startIn(t, c, fmt.Sprintf("%s-%d", prefix, i), args, env...)
	}
	return rs
}

// TestContainerBackends: the other election backends from containers: a Raft herd (with the
// command engine) whose members are each PID 1, and SQLite workers sharing a file lock as
// nobody, each PID 1, the database on a volume they can write.
func TestContainerBackends(t *testing.T) {
	needContainers(t)
	t.Run("raft", func(t *testing.T) {
		d := newDB(t)
		app := newPSQLApp(t, d, 0.5)
		c := newRaftCluster(t, "pid1", 3)
		var rs []*replica
		for i := range 3 {
			rs = append(rs, startIn(t, asPID1, c.names[i], append(app.args("migrate"), c.args(i, c.peers())...),
				append(app.env(), "SCHEMAGATE_RAFT_SECRET="+raftSecret)...))
		}
		waitAll(t, rs, 2*time.Minute, 0)
		app.assertOnce(t)
	})
	t.Run("sqlite", func(t *testing.T) {
		data := sharedDir(t)
		if err := os.Chown(data, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		dir := sharedDir(t)
		if err := (migrationSet{N: 3, SQLite: true}).Write(dir); err != nil {
			t.Fatal(err)
		}
		readOnly := sharedDir(t)
		if err := os.Chmod(readOnly, 0o555); err != nil {
			t.Fatal(err)
		}
		nobody := fleet.Container{PID1: true, UID: 65534, GID: 65534, Dir: readOnly}
		path := filepath.Join(data, "app.db")
		rs := startAllIn(t, nobody, 4, "worker", []string{"migrate", "--database-url", "sqlite:///" + path, "--dir", dir})
		waitAll(t, rs, time.Minute, 0)
		db := &sqliteDB{path: path, url: "sqlite:///" + path, db: openSQLite(t, path)}
		db.assertAppliedOnce(t, 3)
	})
}
