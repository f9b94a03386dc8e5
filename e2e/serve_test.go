package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// endpoint is a serve replica's probe server.
type endpoint string

func listenAddr(t *testing.T) (string, endpoint) {
	addr := fmt.Sprintf("127.0.0.1:%d", pgtest.FreePort(t))
	return addr, endpoint("http://" + addr)
}

// get returns the status code and body of GET path, or 0 when nothing answers.
func (e endpoint) get(path string) (int, string) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(string(e) + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// awaitStatus waits until GET path answers code.
func (e endpoint) awaitStatus(t *testing.T, within time.Duration, path string, code int) string {
	t.Helper()
	var body string
	await(t, within, fmt.Sprintf("%s%s to answer %d", e, path, code), func() bool {
		var got int
		got, body = e.get(path)
		return got == code
	})
	return body
}

// metric returns the value of an unlabelled (or fully labelled) sample in a /metrics body.
func metric(t *testing.T, body, name string) string {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return ""
}

// TestServeReadiness: /readyz is 503 while the migration waits on a lock a test transaction
// holds, says why, and turns 200 within 100 ms of the migration's commit; /livez is 200 all along.
func TestServeReadiness(t *testing.T) {
	d := newDB(t)
	pgtest.Exec(t, d.conn, "CREATE TABLE blocker (id int)")
	dir := writeMigrations(t, migrationSet{N: 3})
	writeFile(t, dir, "00004_blocked.sql", "-- +goose Up\nALTER TABLE blocker ADD COLUMN note text;\n"+
		"INSERT INTO applied_log (version, replica) VALUES (4, current_setting('application_name'));\n")

	holder := pgtest.Connect(t, d.url)
	pgtest.Exec(t, holder, "BEGIN")
	pgtest.Exec(t, holder, "LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE")

	addr, ep := listenAddr(t)
	s := start(t, "web-1", d.args("serve", dir, "--listen", addr))
	await(t, time.Minute, "the migration to wait on the lock", func() bool {
		return d.int(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'schemagate/web-1' AND wait_event_type = 'Lock'`) == 1
	})
	if code, body := ep.get("/readyz?verbose"); code != 503 || !containsAll(body, "[-]schema failed", "applying 00004_blocked.sql") {
		t.Fatalf("/readyz while blocked: %d\n%s", code, body)
	}
	if code, _ := ep.get("/livez"); code != 200 {
		t.Fatalf("/livez while blocked: %d", code)
	}

	pgtest.Exec(t, holder, "ROLLBACK")
	var ready time.Time
	await(t, 30*time.Second, "/readyz to answer 200", func() bool {
		code, _ := ep.get("/readyz")
		ready = time.Now()
		return code == 200
	})
	var committed time.Time
	if err := d.conn.QueryRow(t.Context(), "SELECT at FROM applied_log WHERE version = 4").Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if lag := ready.Sub(committed); lag > 100*time.Millisecond {
		t.Errorf("/readyz turned 200 %s after the migration committed; want within 100 ms", lag)
	}
	if code, _ := ep.get("/livez"); code != 200 {
		t.Fatalf("/livez after: %d", code)
	}
	probe := start(t, "probe", []string{"probe", "--url", string(ep) + "/readyz"})
	if code := probe.wait(t, 10*time.Second); code != 0 {
		t.Errorf("probe against a ready replica exited %d: %s", code, probe.output())
	}
	s.signal(t, syscall.SIGTERM)
	if code := s.wait(t, 15*time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM:\n%s", code, s.output())
	}
	probe = start(t, "probe", []string{"probe", "--url", string(ep) + "/readyz"})
	if code := probe.wait(t, 10*time.Second); code != 1 {
		t.Errorf("probe against a stopped replica exited %d, want 1", code)
	}
}

// TestServeLivezWhileDatabaseDown stops PostgreSQL under a ready serve replica: /livez stays 200,
// /readyz keeps the verdict of the last read and says the database is unreachable, and the
// replica notices when it comes back.
func TestServeLivezWhileDatabaseDown(t *testing.T) {
	c := pgtest.StartCluster(t)
	d := openDB(t, c.NewDatabase(t))
	dir := writeMigrations(t, migrationSet{N: 2})
	addr, ep := listenAddr(t)
	s := start(t, "web-1", d.args("serve", dir, "--listen", addr, "--watch-interval", "200ms"))
	ep.awaitStatus(t, time.Minute, "/readyz", 200)

	d.conn.Close(t.Context())
	c.Stop()
	body := ep.awaitStatus(t, 30*time.Second, "/status", 200)
	await(t, 30*time.Second, "serve to notice the database is gone", func() bool {
		_, body = ep.get("/status")
		return strings.Contains(body, `"unreachable"`)
	})
	if code, _ := ep.get("/livez"); code != 200 {
		t.Fatalf("/livez with the database down: %d", code)
	}
	if code, verbose := ep.get("/readyz?verbose"); code != 200 || !strings.Contains(verbose, "unreachable for") {
		t.Fatalf("/readyz with the database down: %d\n%s", code, verbose)
	}
	c.Start()
	await(t, 30*time.Second, "serve to read the database again", func() bool {
		_, body = ep.get("/status")
		return !strings.Contains(body, `"unreachable"`)
	})
	if !strings.Contains(s.output(), "database reachable again") {
		t.Errorf("serve did not log that the database came back:\n%s", s.output())
	}
}

// TestServeSkewPolicy: three ready replicas of an older release, one per --when-ahead policy;
// a newer release migrates: ready stays ready, unready turns 503, exit ends with code 6. Then
// the database goes behind (a version row removed, as a restore would): readiness drops and the
// log says why.
func TestServeSkewPolicy(t *testing.T) {
	d := newDB(t)
	newer := writeMigrations(t, migrationSet{N: 3})
	older := t.TempDir()
	copyMigration(t, newer, older, "00001_step_1.sql")
	copyMigration(t, newer, older, "00002_step_2.sql")

	replicas := map[string]endpoint{}
	procs := map[string]*replica{}
	for _, policy := range []string{"ready", "unready", "exit"} {
		addr, ep := listenAddr(t)
		replicas[policy] = ep
		procs[policy] = start(t, "old-"+policy, d.args("serve", older, "--listen", addr, "--when-ahead", policy, "--watch-interval", "200ms"))
	}
	for _, ep := range replicas {
		ep.awaitStatus(t, time.Minute, "/readyz", 200)
	}

	if code := start(t, "new", d.args("migrate", newer)).wait(t, time.Minute); code != 0 {
		t.Fatalf("the newer release's migration exited %d", code)
	}
	body := replicas["unready"].awaitStatus(t, 10*time.Second, "/readyz?verbose", 503)
	if !containsAll(body, "ahead of this replica", "--when-ahead=unready") {
		t.Errorf("unready replica's /readyz does not say why:\n%s", body)
	}
	if code := procs["exit"].wait(t, 10*time.Second); code != 6 {
		t.Errorf("the exit replica exited %d, want 6:\n%s", code, procs["exit"].output())
	}
	if code, _ := replicas["ready"].get("/readyz"); code != 200 {
		t.Errorf("the ready replica answers %d with the database ahead, want 200", code)
	}

	pgtest.Exec(t, d.conn, "DELETE FROM goose_db_version WHERE version_id = 2")
	body = replicas["ready"].awaitStatus(t, 10*time.Second, "/readyz?verbose", 503)
	if !containsAll(body, "behind this replica", "00002_step_2.sql") {
		t.Errorf("/readyz with the database behind:\n%s", body)
	}
	if !strings.Contains(procs["ready"].output(), "the database is behind this replica") {
		t.Errorf("the log does not say the database is behind:\n%s", procs["ready"].output())
	}
}

// TestServeMetrics scrapes /metrics after a migration and after a failure.
func TestServeMetrics(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 3})
	addr, ep := listenAddr(t)
	start(t, "web-1", d.args("serve", dir, "--listen", addr))
	ep.awaitStatus(t, time.Minute, "/readyz", 200)
	_, body := ep.get("/metrics")
	want := map[string]string{
		"schemagate_ready":                                               "1",
		`schemagate_role{role="migrator"}`:                               "1",
		`schemagate_role{role="waiter"}`:                                 "0",
		"schemagate_db_version":                                          "3",
		"schemagate_target_version":                                      "3",
		"schemagate_pending_migrations":                                  "0",
		"schemagate_migrations_applied_total":                            "3",
		"schemagate_migration_failures_total":                            "0",
		`schemagate_migration_duration_seconds_count{outcome="applied"}`: "3",
		"schemagate_lock_wait_seconds_count":                             "1",
		"schemagate_wait_seconds_count":                                  "1",
		"schemagate_database_reachable":                                  "1",
	}
	for name, value := range want {
		if got := metric(t, body, name); got != value {
			t.Errorf("%s = %s, want %s", name, got, value)
		}
	}
	if !strings.Contains(body, "schemagate_build_info{") || metric(t, body, "schemagate_last_success_timestamp_seconds") == "0" {
		t.Error("build info or last success missing")
	}

	// A newer release whose second new migration fails.
	failing := writeMigrations(t, migrationSet{N: 5, Fail: map[int]bool{5: true}})
	addr, ep = listenAddr(t)
	f := start(t, "web-2", d.args("serve", failing, "--listen", addr))
	body = ep.awaitStatus(t, time.Minute, "/readyz?verbose", 503)
	await(t, 30*time.Second, "the failure to show", func() bool {
		_, body = ep.get("/readyz?verbose")
		return strings.Contains(body, "division by zero")
	})
	if !containsAll(body, "00005_step_5.sql", "web-2") {
		t.Errorf("/readyz after the failure does not name the migration and replica:\n%s", body)
	}
	_, body = ep.get("/metrics")
	for name, value := range map[string]string{
		"schemagate_ready":                                              "0",
		"schemagate_migrations_applied_total":                           "1",
		"schemagate_migration_failures_total":                           "1",
		"schemagate_db_version":                                         "4",
		"schemagate_pending_migrations":                                 "1",
		`schemagate_migration_duration_seconds_count{outcome="failed"}`: "1",
	} {
		if got := metric(t, body, name); got != value {
			t.Errorf("after the failure: %s = %s, want %s", name, got, value)
		}
	}
	if f.exited() {
		t.Errorf("serve exited after a failed migration; it should keep serving unready:\n%s", f.output())
	}
}

// TestServeSigterm stops the migrating serve replica with SIGTERM: it exits 0 within the grace
// period, its transaction rolls back, its lock is released, and a waiting replica finishes.
func TestServeSigterm(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 4, FirstSlow: map[int]float64{2: 120}})
	addr1, ep1 := listenAddr(t)
	addr2, ep2 := listenAddr(t)
	rs := []*replica{
		start(t, "web-1", d.args("serve", dir, "--listen", addr1)),
		start(t, "web-2", d.args("serve", dir, "--listen", addr2)),
	}
	holder, _, _ := d.activeStatement(t, time.Minute, "first_attempt_sleeps")
	migrator, other := byName(t, rs, holder), rs[0]
	otherEP := ep1
	if other == migrator {
		other, otherEP = rs[1], ep2
	}
	sent := time.Now()
	migrator.signal(t, syscall.SIGTERM)
	if code := migrator.wait(t, 15*time.Second); code != 0 {
		t.Errorf("the migrating serve exited %d after SIGTERM, want 0:\n%s", code, migrator.output())
	}
	if took := time.Since(sent); took > 10*time.Second {
		t.Errorf("stopping took %s", took)
	}
	otherEP.awaitStatus(t, time.Minute, "/readyz", 200)
	d.assertAppliedOnce(t, 4)
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'cancelled'"); n != 1 {
		t.Errorf("journal has %d cancelled runs, want 1", n)
	}
	if other.exited() {
		t.Errorf("the other replica exited:\n%s", other.output())
	}
}

// TestServeBusyPort: a port already taken is an error at start (exit 2), before the database is
// touched.
func TestServeBusyPort(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	addr, ep := listenAddr(t)
	start(t, "first", d.args("serve", dir, "--listen", addr))
	ep.awaitStatus(t, time.Minute, "/readyz", 200)
	before := d.snapshot(t)
	second := start(t, "second", d.args("serve", dir, "--listen", addr))
	if code := second.wait(t, 30*time.Second); code != 2 || !strings.Contains(second.output(), "address already in use") {
		t.Fatalf("second serve on a busy port: exit %d:\n%s", code, second.output())
	}
	if after := d.snapshot(t); after != before {
		t.Errorf("the database changed: %s -> %s", before, after)
	}
}

// TestServeAfterFailure: every sidecar, not only the migrator's, reports a failed run: phase
// failed in /status and schemagate_last_run{outcome="failed"}; with --exit-on-failure a sidecar
// exits 3 instead of serving unready.
func TestServeAfterFailure(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2, Fail: map[int]bool{2: true}})
	job := start(t, "job", d.args("migrate", dir))
	if code := job.wait(t, time.Minute); code != 3 {
		t.Fatalf("the job exited %d, want 3", code)
	}
	addr, ep := listenAddr(t)
	start(t, "web-0", d.args("serve", dir, "--listen", addr, "--never-migrate"))
	body := ep.awaitStatus(t, time.Minute, "/status", 200)
	await(t, 30*time.Second, "/status to say failed", func() bool {
		_, body = ep.get("/status")
		return strings.Contains(body, `"phase": "failed"`)
	})
	_, metrics := ep.get("/metrics")
	if got := metric(t, metrics, `schemagate_last_run{outcome="failed"}`); got != "1" {
		t.Errorf(`schemagate_last_run{outcome="failed"} = %s, want 1`, got)
	}
	strict := start(t, "web-1", d.args("serve", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", pgtest.FreePort(t)), "--exit-on-failure"))
	if code := strict.wait(t, time.Minute); code != 3 {
		t.Errorf("serve --exit-on-failure exited %d, want 3:\n%s", code, strict.output())
	}
}

// TestServeRoleFollowsTheRollout: a sidecar that migrated one rollout reports itself the
// migrator (schemagate_role) until another replica migrates the next one; then it is a waiter.
func TestServeRoleFollowsTheRollout(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	addr, ep := listenAddr(t)
	start(t, "web-0", d.args("serve", dir, "--listen", addr, "--watch-interval", "200ms"))
	ep.awaitStatus(t, time.Minute, "/readyz", 200)
	_, metrics := ep.get("/metrics")
	if got := metric(t, metrics, `schemagate_role{role="migrator"}`); got != "1" {
		t.Fatalf(`the migrating sidecar: schemagate_role{role="migrator"} = %s`, got)
	}
	next := writeMigrations(t, migrationSet{N: 3})
	if code := start(t, "release-2", d.args("migrate", next)).wait(t, time.Minute); code != 0 {
		t.Fatal("the next release's migration failed")
	}
	await(t, 30*time.Second, "the old migrator to be a waiter of the new rollout", func() bool {
		_, metrics = ep.get("/metrics")
		return strings.Contains(metrics, `schemagate_role{role="waiter"} 1`)
	})
}
