// Package e2e runs the schemagate binary as real processes against real PostgreSQL, and
// injects real faults: SIGKILL, SIGSTOP, pg_terminate_backend, packets dropped by iptables,
// servers that refuse connections, poolers in the way.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	binary = filepath.Join(dir, "schemagate")
	build := exec.Command("go", "build", "-o", binary, "../cmd/schemagate")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build schemagate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// replica is one schemagate process.
type replica struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{}
	code           int
}

// start launches schemagate with args, as replica name, with the extra environment env.
func start(t testing.TB, name string, args []string, env ...string) *replica {
	t.Helper()
	r := &replica{name: name, done: make(chan struct{})}
	r.cmd = exec.Command(binary, args...)
	r.cmd.Env = append(os.Environ(), "SCHEMAGATE_REPLICA_ID="+name, "SCHEMAGATE_LOG_FORMAT=json")
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := r.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			r.code = 0
		case errors.As(err, &ee):
			r.code = ee.ExitCode() // -1 when killed by a signal
		default:
			r.code = -2
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Signal(syscall.SIGCONT)
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for the process to end and returns its exit code.
func (r *replica) wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(within):
		t.Fatalf("%s still running after %s; stderr:\n%s", r.name, within, r.stderr.String())
		return -1
	}
}

func (r *replica) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *replica) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, r.name, err)
	}
}

// output is everything the process printed.
func (r *replica) output() string { return r.stdout.String() + r.stderr.String() }

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

// migrations writes a goose migration set to a new directory. Each migration creates a table
// (so running it twice fails) and logs its application to applied_log, which has no unique key:
// a migration applied twice shows up as two rows. slow maps a version to seconds of pg_sleep
// before its change; noTx lists versions that run without a transaction; fail lists versions
// that divide by zero after their change. firstSlow maps a version to seconds of pg_sleep on
// its first attempt only (a sequence counts attempts, and sequences ignore rollbacks), so that
// a test can kill a migrator mid-migration without its successor sleeping as long.
type migrationSet struct {
	n         int
	slow      map[int]float64
	firstSlow map[int]float64
	noTx      map[int]bool
	fail      map[int]bool
}

func writeMigrations(t testing.TB, set migrationSet) string {
	t.Helper()
	dir := t.TempDir()
	for v := 1; v <= set.n; v++ {
		var b strings.Builder
		if set.noTx[v] {
			b.WriteString("-- +goose NO TRANSACTION\n")
		}
		b.WriteString("-- +goose Up\n")
		if v == 1 {
			b.WriteString("CREATE TABLE applied_log (version int, replica text, at timestamptz DEFAULT clock_timestamp());\n")
			b.WriteString("CREATE SEQUENCE attempts;\n")
		}
		if s := set.slow[v]; s > 0 {
			fmt.Fprintf(&b, "SELECT pg_sleep(%g);\n", s)
		}
		if s := set.firstSlow[v]; s > 0 {
			fmt.Fprintf(&b, "SELECT pg_sleep(CASE WHEN nextval('attempts') = 1 THEN %g ELSE 0 END) AS first_attempt_sleeps;\n", s)
		}
		fmt.Fprintf(&b, "CREATE TABLE t_%d (id int);\n", v)
		fmt.Fprintf(&b, "INSERT INTO applied_log (version, replica) VALUES (%d, current_setting('application_name'));\n", v)
		if set.fail[v] {
			b.WriteString("SELECT 1/0;\n")
		}
		b.WriteString("-- +goose Down\n")
		fmt.Fprintf(&b, "DROP TABLE t_%d;\n", v)
		name := fmt.Sprintf("%05d_step_%d.sql", v, v)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// db is a test database with a connection for the test's own queries.
type db struct {
	url  string
	name string
	conn *pgx.Conn
}

func newDB(t testing.TB) *db {
	t.Helper()
	u := pgtest.NewDatabase(t)
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
