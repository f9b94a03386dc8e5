package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// The fleet: every replica shows itself to the others, status shows them, and --same-env holds
// back a replica whose value differs from its release's ready replicas.

const (
	// fleetSecret is the value the fleet agrees on; otherSecret the one a stray replica holds.
	fleetSecret = "fleet-secret-7f3e9a1c5b"
	otherSecret = "stray-secret-2d8b4e6f0a"
)

// lastMessage is the message of the last JSON log line in output: the reason a process ended.
func lastMessage(output string) string {
	lines := strings.Split(strings.TrimSpace(output), "\n")
	var line struct {
		Message string `json:"message"`
	}
	json.Unmarshal([]byte(lines[len(lines)-1]), &line)
	return line.Message
}

// noSecretIn fails the test if any process printed a --same-env value.
func noSecretIn(t *testing.T, rs ...*replica) {
	t.Helper()
	for _, r := range rs {
		for _, s := range []string{fleetSecret, otherSecret} {
			if strings.Contains(r.output(), s) {
				t.Errorf("%s printed a --same-env value", r.name)
			}
		}
	}
}

// TestFleetGuardPostgres: five serve replicas with the same WEBUI_SECRET_KEY are all ready; a
// replica with another value is held back: migrate exits 8 naming the variable, the five and
// what users would suffer, and serve answers /readyz 503 saying the same. The others stay
// ready. The presence table holds fingerprints, never the values. Once the replicas with the
// old value are gone (SIGKILL), the held-back serve replica becomes ready by itself.
func TestFleetGuardPostgres(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3})
	guard := []string{"--same-env", "WEBUI_SECRET_KEY", "--watch-interval", "500ms"}
	var fleet []*replica
	var eps []endpoint
	for i := range 5 {
		addr, ep := listenAddr(t)
		fleet = append(fleet, start(t, fmt.Sprintf("web-%d", i), d.args("serve", dir, append(guard, "--listen", addr)...),
			"WEBUI_SECRET_KEY="+fleetSecret))
		eps = append(eps, ep)
	}
	for _, ep := range eps {
		ep.awaitStatus(t, time.Minute, "/readyz", 200)
	}

	stray := start(t, "web-5", d.args("migrate", dir, "--same-env", "WEBUI_SECRET_KEY"), "WEBUI_SECRET_KEY="+otherSecret)
	if code := stray.wait(t, time.Minute); code != 8 {
		t.Fatalf("the replica with another value exited %d, want 8:\n%s", code, stray.output())
	}
	want := "WEBUI_SECRET_KEY differs from the value on 5 ready replicas (web-0, web-1, web-2, web-3, web-4); " +
		"users would be logged out when their requests move between replicas"
	if got := lastMessage(stray.output()); got != want {
		t.Errorf("exit message:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(stray.output(), `"exit_reason":"fleet disagrees"`) {
		t.Errorf("the exit reason is not fleet disagrees:\n%s", stray.output())
	}

	addr, strayEp := listenAddr(t)
	straySidecar := start(t, "web-6", d.args("serve", dir, append(guard, "--listen", addr)...), "WEBUI_SECRET_KEY="+otherSecret)
	body := strayEp.awaitStatus(t, time.Minute, "/readyz?verbose", 503)
	await(t, time.Minute, "the stray sidecar to say why it is unready", func() bool {
		_, body = strayEp.get("/readyz?verbose")
		return containsAll(body, "[+]schema ok", "[-]fleet failed: WEBUI_SECRET_KEY differs from the value on 5 ready replicas")
	})
	for i, ep := range eps {
		if code, body := ep.get("/readyz"); code != 200 {
			t.Errorf("web-%d is no longer ready after the stray replicas came: %d %s", i, code, body)
		}
	}

	// The five, the stray sidecar, and perhaps the row of the stray migrate, whose session is gone
	// but whose row the next Show may not have deleted yet.
	rows := d.int(t, "SELECT count(*) FROM schemagate_presence")
	fingerprinted := d.int(t, `SELECT count(*) FROM schemagate_presence WHERE fingerprints ~ '^\{"WEBUI_SECRET_KEY":"v1:[0-9a-f]{32}"\}$'`)
	if rows < 6 || fingerprinted != rows {
		t.Errorf("%d presence rows, %d of them with a v1 fingerprint of WEBUI_SECRET_KEY alone; want 6 or more, all", rows, fingerprinted)
	}
	var dump string
	if err := d.conn.QueryRow(context.Background(), "SELECT string_agg(p::text, ' ') FROM schemagate_presence p").Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, fleetSecret) || strings.Contains(dump, otherSecret) {
		t.Errorf("the presence table holds a --same-env value:\n%s", dump)
	}
	if n := d.int(t, "SELECT count(DISTINCT fingerprints) FROM schemagate_presence"); n != 2 {
		t.Errorf("%d distinct fingerprints, want 2: the fleet's and the stray's", n)
	}

	// The old value goes: the stray sidecar comes to agree with what is left, itself.
	for _, r := range fleet {
		r.signal(t, syscall.SIGKILL)
	}
	strayEp.awaitStatus(t, time.Minute, "/readyz", 200)
	straySidecar.signal(t, syscall.SIGTERM)
	straySidecar.wait(t, 30*time.Second)
	noSecretIn(t, append(fleet, stray, straySidecar)...)
}

// fleetJSON is what status --output json says of the fleet.
type fleetJSON struct {
	Fleet struct {
		Replicas []struct {
			Replica string `json:"replica"`
			Phase   string `json:"phase"`
		} `json:"replicas"`
		Summary string `json:"summary"`
	} `json:"fleet"`
}

// awaitFleet polls status until its fleet summary matches summary, and returns the last text.
func awaitFleet(t *testing.T, within time.Duration, summary *regexp.Regexp, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out := statusText(t, args...)
		if summary.MatchString(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %s within %s; last:\n%s", summary, within, out)
		}
	}
}

// TestFleetStatusHerd: status shows a herd's fleet with the right phases: a migrator blocked on
// a table lock and nineteen serve replicas waiting for it (20 in all); then, once it committed and exited,
// the nineteen ready; then a SIGKILLed replica's entry is gone, with nobody cleaning up. Every sidecar
// exports the fleet's counts.
func TestFleetStatusHerd(t *testing.T) {
	d := newDB(t)
	pgtest.Exec(t, d.conn, "CREATE TABLE blocker (id int)")
	dir := writeMigrations(t, migrationSet{N: 2})
	writeFile(t, dir, "00003_blocked.sql", "-- +goose Up\nALTER TABLE blocker ADD COLUMN note text;\n"+
		"INSERT INTO applied_log (version, replica) VALUES (3, current_setting('application_name'));\n")
	holder := pgtest.Connect(t, d.url)
	pgtest.Exec(t, holder, "BEGIN")
	pgtest.Exec(t, holder, "LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE")

	migrator := start(t, "job-0", d.args("migrate", dir))
	await(t, time.Minute, "the migration to wait on the lock", func() bool {
		return d.int(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'schemagate/job-0' AND wait_event_type = 'Lock'`) == 1
	})
	const n = 19 // and the migrator: a fleet of 20
	var herd []*replica
	var eps []endpoint
	for i := range n {
		addr, ep := listenAddr(t)
		herd = append(herd, start(t, fmt.Sprintf("herd-%d", i), d.args("serve", dir, "--never-migrate", "--listen", addr,
			"--watch-interval", "500ms")))
		eps = append(eps, ep)
	}
	status := []string{"--database-url", d.url, "--dir", dir}
	out := awaitFleet(t, 2*time.Minute, regexp.MustCompile(`fleet: +20 replicas: 1 migrating and 19 waiting on release \S+ \(this one\)\n`), status...)
	if !containsAll(out, "fleet (by replica):", "job-0", "herd-9") {
		t.Errorf("status does not list the replicas:\n%s", out)
	}

	pgtest.Exec(t, holder, "ROLLBACK")
	if code := migrator.wait(t, time.Minute); code != 0 {
		t.Fatalf("the migrator exited %d:\n%s", code, migrator.output())
	}
	awaitFleet(t, time.Minute, regexp.MustCompile(`fleet: +19 replicas: 19 ready on release \S+ \(this one\)\n`), status...)
	await(t, time.Minute, "a sidecar to export the fleet's counts", func() bool {
		_, body := eps[0].get("/metrics")
		return regexp.MustCompile(`schemagate_fleet_replicas\{migration_set="[0-9a-f]+",phase="ready"\} 19\n`).MatchString(body)
	})

	herd[3].signal(t, syscall.SIGKILL)
	herd[3].wait(t, 10*time.Second)
	out = awaitFleet(t, time.Minute, regexp.MustCompile(`fleet: +18 replicas: 18 ready on release`), status...)
	if strings.Contains(out, "herd-3") {
		t.Errorf("status still lists the killed replica:\n%s", out)
	}
	var doc fleetJSON
	if err := json.Unmarshal([]byte(statusText(t, append(status, "--output", "json")...)), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Fleet.Replicas) != n-1 || !strings.HasPrefix(doc.Fleet.Summary, "18 replicas: 18 ready on release") {
		t.Errorf("status --output json: %+v", doc.Fleet)
	}
	for _, r := range doc.Fleet.Replicas {
		if r.Phase != "ready" || r.Replica == "herd-3" {
			t.Errorf("status --output json lists %+v", r)
		}
	}
}

// TestFleetGuardSQLite: with SQLite and the file lock, a replica whose value differs from the
// ready serve replica's is held back with exit 8; one with the same value passes.
func TestFleetGuardSQLite(t *testing.T) {
	db := newSQLite(t)
	dir := writeMigrations(t, migrationSet{N: 2, SQLite: true})
	addr, ep := listenAddr(t)
	sidecar := start(t, "worker-0", db.args("serve", dir, "--listen", addr, "--same-env", "SECRET_KEY"), "SECRET_KEY="+fleetSecret)
	ep.awaitStatus(t, time.Minute, "/readyz", 200)
	stray := start(t, "worker-1", db.args("wait", dir, "--same-env", "SECRET_KEY", "--timeout", "30s"), "SECRET_KEY="+otherSecret)
	if code := stray.wait(t, time.Minute); code != 8 {
		t.Fatalf("the replica with another value exited %d, want 8:\n%s", code, stray.output())
	}
	if got := lastMessage(stray.output()); !strings.HasPrefix(got, "SECRET_KEY differs from the value on 1 ready replica (worker-0); ") {
		t.Errorf("exit message: %s", got)
	}
	same := start(t, "worker-2", db.args("wait", dir, "--same-env", "SECRET_KEY", "--timeout", "30s"), "SECRET_KEY="+fleetSecret)
	if code := same.wait(t, time.Minute); code != 0 {
		t.Fatalf("the replica with the fleet's value exited %d:\n%s", code, same.output())
	}
	sidecar.signal(t, syscall.SIGTERM)
	sidecar.wait(t, 30*time.Second)
	noSecretIn(t, sidecar, stray, same)
}

// TestFleetGuardRaft: with --lock raft, where waiters hold no database connection, the fleet
// is known among the members themselves. Three sidecars with the same key are ready; one of
// them, restarted with another key (a rollout that got the wrong Secret), rejoins the cluster
// and is held back, unready, naming the two that hold the other value, while they stay ready.
func TestFleetGuardRaft(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	c := newRaftCluster(t, "fleet", 3)
	eps := make([]endpoint, 3)
	serve := func(i int, secret string) *replica {
		addr, ep := listenAddr(t)
		eps[i] = ep
		args := append(d.args("serve", dir, c.args(i, c.peers())...), "--listen", addr, "--same-env", "WEBUI_SECRET_KEY",
			"--watch-interval", "500ms")
		return start(t, c.names[i], args, "SCHEMAGATE_RAFT_SECRET="+raftSecret, "WEBUI_SECRET_KEY="+secret)
	}
	members := []*replica{serve(0, fleetSecret), serve(1, fleetSecret), serve(2, fleetSecret)}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range members {
				t.Logf("%s:\n%s", m.name, m.output())
			}
		}
	})
	for _, ep := range eps {
		ep.awaitStatus(t, time.Minute, "/readyz", 200)
	}
	members[2].signal(t, syscall.SIGKILL)
	members[2].wait(t, 30*time.Second)
	members[2] = serve(2, otherSecret)
	eps[2].awaitStatus(t, time.Minute, "/readyz?verbose", 503)
	await(t, time.Minute, "the restarted member to say why it is unready", func() bool {
		_, body := eps[2].get("/readyz?verbose")
		return strings.Contains(body, "[-]fleet failed: WEBUI_SECRET_KEY differs from the value on 2 ready replicas (fleet-0, fleet-1)")
	})
	for i, ep := range eps[:2] {
		if code, body := ep.get("/readyz"); code != 200 {
			t.Errorf("fleet-%d is no longer ready after the restarted member came: %d %s", i, code, body)
		}
	}
	for _, m := range members {
		m.signal(t, syscall.SIGTERM)
		m.wait(t, 30*time.Second)
	}
	noSecretIn(t, members...)
}
