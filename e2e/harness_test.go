// Package e2e runs the schemagate binary as real processes against real PostgreSQL, and
// injects real faults: SIGKILL, SIGSTOP, pg_terminate_backend, packets dropped by iptables,
// servers that refuse connections, poolers in the way.
package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/pgtest"
)

// binary is the schemagate binary under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "schemagate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Replicas run as other users too (TestContainerNonRootHerd).
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if binary, err = fleet.Build("..", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// replica is one schemagate process, with test-failing helpers.
type replica struct {
	*fleet.Replica
	name string
}

// start launches schemagate with args, as replica name, with the extra environment env. The
// process is killed if it still runs when the test ends.
func start(t testing.TB, name string, args []string, env ...string) *replica {
	t.Helper()
	return startIn(t, fleet.Container{}, name, args, env...)
}

// startIn is start, in container c: as PID 1 of a PID namespace of its own, or as another user.
func startIn(t testing.TB, c fleet.Container, name string, args []string, env ...string) *replica {
	t.Helper()
	r, err := fleet.StartIn(c, binary, name, args, env...)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the process is stopped first, then all it printed is
	// searched for every secret the tests hand out.
	t.Cleanup(func() { checkNoSecret(t, name, r.Output()) })
	t.Cleanup(r.Stop)
	return &replica{Replica: r, name: name}
}

// wait waits for the process to end and returns its exit code.
func (r *replica) wait(t testing.TB, within time.Duration) int {
	t.Helper()
	code, err := r.Wait(within)
	if err != nil {
		t.Fatalf("%v; stderr:\n%s", err, r.Stderr.String())
	}
	return code
}

func (r *replica) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := r.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, r.name, err)
	}
}

func (r *replica) output() string { return r.Output() }

// exited reports whether the process has ended.
func (r *replica) exited() bool {
	select {
	case <-r.Done():
		return true
	default:
		return false
	}
}

// startAll starts n replicas named prefix-0 … prefix-(n-1) as close to the same instant as
// exec allows.
func startAll(t testing.TB, n int, prefix string, args []string, env ...string) []*replica {
	rs := make([]*replica, n)
	for i := range rs {
		rs[i] = start(t, fmt.Sprintf("%s-%d", prefix, i), args, env...)
	}
	return rs
}

// waitAll waits for every replica and fails the test unless each exited with want.
func waitAll(t testing.TB, rs []*replica, within time.Duration, want int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, r := range rs {
		if code := r.wait(t, time.Until(deadline)); code != want {
			t.Errorf("%s exited %d, want %d; output:\n%s", r.name, code, want, r.output())
		}
	}
}

// except returns rs without the given replicas: the survivors of a fault.
func except(rs []*replica, gone ...*replica) []*replica {
	var out []*replica
	for _, r := range rs {
		if !slices.Contains(gone, r) {
			out = append(out, r)
		}
	}
	return out
}

// byName returns the replica called name.
func byName(t testing.TB, rs []*replica, name string) *replica {
	t.Helper()
	for _, r := range rs {
		if r.name == name {
			return r
		}
	}
	t.Fatalf("no replica named %q", name)
	return nil
}

// migrationSet is fleet.MigrationSet; see there.
type migrationSet = fleet.MigrationSet

// writeMigrations writes set to a new directory and returns it.
func writeMigrations(t testing.TB, set migrationSet) string {
	t.Helper()
	dir := t.TempDir()
	if err := set.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// db is a test database with a connection for the test's own queries.
type db struct {
	url  string
	name string
	conn *pgx.Conn
}

// e2ePassword is in the URL of every test database. The shared server trusts local
// connections, so it is not checked, but every output is searched for it.
const e2ePassword = "e2e-db-pw-5b0c2f9a71"

// neverPrinted are the secrets the tests hand to replicas: database passwords and Raft secrets.
// No replica's output, whatever it did or suffered, may contain one.
var neverPrinted = []string{e2ePassword, secret, faultPassword, raftSecret, wrongRaftSecret, sinkPassword, sinkToken, rolePassword}

func checkNoSecret(t testing.TB, name, output string) {
	for _, s := range neverPrinted {
		if strings.Contains(output, s) {
			t.Errorf("%s printed a secret (%.4s…)", name, s)
		}
	}
}

func newDB(t testing.TB) *db {
	t.Helper()
	u := withPassword(t, pgtest.NewDatabase(t), e2ePassword)
	return openDB(t, u)
}

func openDB(t testing.TB, u string) *db {
	conn := pgtest.Connect(t, u)
	return &db{url: u, name: conn.Config().Database, conn: conn}
}

func (d *db) int(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	return pgtest.QueryInt(t, d.conn, sql, args...)
}

// assertAppliedOnce checks that versions 1..n were each applied exactly once, per both the
// application log and goose's version table.
// assertResumedCommittedNothing resumes victim, a migrator stopped (SIGSTOP) in the middle of
// its run and replaced meanwhile, and checks that it ends ready, that the n migrations are
// applied once each, and that it applied only the before of them it had applied when stopped.
func (d *db) assertResumedCommittedNothing(t testing.TB, victim *replica, n, before int) {
	t.Helper()
	victim.signal(t, syscall.SIGCONT)
	if code := victim.wait(t, time.Minute); code != 0 {
		t.Errorf("the resumed migrator exited %d, want 0; output:\n%s", code, victim.output())
	}
	d.assertAppliedOnce(t, n)
	if got := d.int(t, "SELECT count(*) FROM applied_log WHERE replica = $1", "schemagate/"+victim.name); got != int64(before) {
		t.Errorf("the stopped migrator applied %d migrations, want only the %d before it was stopped", got, before)
	}
}

func (d *db) assertAppliedOnce(t testing.TB, n int) {
	t.Helper()
	if dup := d.int(t, "SELECT count(*) FROM (SELECT version FROM applied_log GROUP BY version HAVING count(*) > 1) d"); dup != 0 {
		t.Errorf("%d migrations applied more than once", dup)
	}
	if got := d.int(t, "SELECT count(DISTINCT version) FROM applied_log"); got != int64(n) {
		t.Errorf("applied_log has %d distinct versions, want %d", got, n)
	}
	if got := d.int(t, "SELECT count(*) FROM goose_db_version WHERE version_id > 0"); got != int64(n) {
		t.Errorf("goose_db_version has %d rows, want %d", got, n)
	}
	if got := d.int(t, "SELECT count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0"); got != int64(n) {
		t.Errorf("goose_db_version has %d distinct versions, want %d", got, n)
	}
}

// await polls cond every 20 ms until it holds or within passes: it awaits a condition in the
// database or a process, never a fixed time.
func await(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// activeStatement returns the replica running a statement containing fragment in database d,
// with its backend pid and client port, once one does.
func (d *db) activeStatement(t testing.TB, within time.Duration, fragment string) (replica string, pid, port int) {
	t.Helper()
	await(t, within, "a replica running "+fragment, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := d.conn.QueryRow(ctx, `SELECT application_name, pid, coalesce(client_port, 0) FROM pg_stat_activity
			WHERE datname = $1 AND state = 'active' AND application_name LIKE 'schemagate/%' AND query LIKE '%'||$2||'%'`,
			d.name, fragment).Scan(&replica, &pid, &port)
		return err == nil
	})
	return strings.TrimPrefix(replica, "schemagate/"), pid, port
}

// args builds the common arguments of a gate command on d with migrations in dir.
func (d *db) args(command, dir string, extra ...string) []string {
	return append([]string{command, "--database-url", d.url, "--dir", dir}, extra...)
}

// containsAll reports whether s contains every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
