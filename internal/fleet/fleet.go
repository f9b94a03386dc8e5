// Package fleet runs schemagate as a fleet of real processes, for the end-to-end tests and the
// benchmark: build the binary, write a migration set, start replicas, collect how each ended.
package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/proctree"
)

// Build compiles the schemagate command of the module rooted at moduleDir into dir and
// returns the binary's path.
func Build(moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "schemagate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/schemagate")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build schemagate: %w\n%s", err, out)
	}
	return bin, nil
}

// Buffer is a bytes.Buffer safe to read while a process writes to it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Replica is one schemagate process.
type Replica struct {
	Name           string
	Cmd            *exec.Cmd
	Stdout, Stderr Buffer
	Started        time.Time

	done      chan struct{}
	code      int
	exited    time.Time
	container Container
}

// Start launches bin with args as replica name (SCHEMAGATE_REPLICA_ID), logging JSON, with the
// extra environment env.
func Start(bin, name string, args []string, env ...string) (*Replica, error) {
	return StartIn(Container{}, bin, name, args, env...)
}

// Container says how to run a replica the way a container runtime does. The zero value runs it
// as a plain child of the caller.
type Container struct {
	// PID1 runs the replica as the first process of a PID namespace of its own, with its own
	// /proc (unshare --pid --fork --mount-proc): the kernel gives it no default action for
	// SIGTERM and SIGINT, and makes it the parent of every orphan in the namespace. Needs root.
	PID1 bool
	// UID and GID, when UID is not 0, run the replica as that user and group, with no
	// supplementary groups (setpriv). Needs root.
	UID, GID int
	// Dir is the working directory; empty for the caller's.
	Dir string
}

// wrap returns the command line that runs argv in c.
func (c Container) wrap(argv []string) []string {
	if c.UID != 0 {
		argv = append([]string{"setpriv", fmt.Sprintf("--reuid=%d", c.UID), fmt.Sprintf("--regid=%d", c.GID),
			"--clear-groups", "--"}, argv...)
	}
	if c.PID1 {
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	}
	return argv
}

// StartIn is Start, in container c.
func StartIn(c Container, bin, name string, args []string, env ...string) (*Replica, error) {
	r := &Replica{Name: name, done: make(chan struct{}), container: c}
	argv := c.wrap(append([]string{bin}, args...))
	r.Cmd = exec.Command(argv[0], argv[1:]...)
	r.Cmd.Dir = c.Dir
	r.Cmd.Env = append(os.Environ(), "SCHEMAGATE_REPLICA_ID="+name, "SCHEMAGATE_LOG_FORMAT=json")
	r.Cmd.Env = append(r.Cmd.Env, env...)
	r.Cmd.Stdout, r.Cmd.Stderr = &r.Stdout, &r.Stderr
	r.Started = time.Now()
	if err := r.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		err := r.Cmd.Wait()
		r.exited = time.Now()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			r.code = ee.ExitCode() // -1 when killed by a signal
		default:
			r.code = -2
		}
		close(r.done)
	}()
	return r, nil
}

// Wait waits up to within for the process to end, and returns its exit code.
func (r *Replica) Wait(within time.Duration) (int, error) {
	select {
	case <-r.done:
		return r.code, nil
	case <-time.After(within):
		return 0, fmt.Errorf("%s still running after %s", r.Name, within)
	}
}

// Done is closed when the process has ended.
func (r *Replica) Done() <-chan struct{} { return r.done }

// ExitedAt is when the process ended; zero while it runs.
func (r *Replica) ExitedAt() time.Time {
	select {
	case <-r.done:
		return r.exited
	default:
		return time.Time{}
	}
}

// Signal sends sig to schemagate: the process itself, or in a PID namespace of its own, the
// namespace's PID 1 (unshare only waits for it, and ignores SIGTERM and SIGINT).
func (r *Replica) Signal(sig syscall.Signal) error {
	pid, err := r.PID()
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}

// PID is schemagate's process id, as this process sees it: in a PID namespace of its own, the
// host's number for the namespace's PID 1, once it exists.
func (r *Replica) PID() (int, error) {
	if !r.container.PID1 {
		return r.Cmd.Process.Pid, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if children := proctree.Children(r.Cmd.Process.Pid); len(children) > 0 {
			return children[0], nil
		}
		select {
		case <-r.done:
			return 0, fmt.Errorf("%s has exited", r.Name)
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: unshare started no process within 10s", r.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop kills the process if it still runs (resuming it first if it was stopped) and waits.
// A contained replica's namespace goes with its PID 1.
func (r *Replica) Stop() {
	select {
	case <-r.done:
	default:
		if pid, err := r.PID(); err == nil {
			syscall.Kill(pid, syscall.SIGCONT)
			if r.container.PID1 {
				// unshare's --kill-child does not reach a child that changed its uid (the
				// kernel clears the parent-death signal on setuid): kill the namespace's
				// PID 1, which takes every process of the namespace with it.
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		r.Cmd.Process.Signal(syscall.SIGCONT)
		r.Cmd.Process.Kill()
		<-r.done
	}
}

// Output is everything the process printed.
func (r *Replica) Output() string { return r.Stdout.String() + r.Stderr.String() }

// StartAll starts n replicas named prefix-0 … prefix-(n-1), as close to the same instant as
// exec allows. On error it stops those already started.
func StartAll(bin string, n int, prefix string, args []string, env ...string) ([]*Replica, error) {
	rs := make([]*Replica, 0, n)
	for i := range n {
		r, err := Start(bin, fmt.Sprintf("%s-%d", prefix, i), args, env...)
		if err != nil {
			for _, started := range rs {
				started.Stop()
			}
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// MigrationSet describes a goose migration set for tests and benchmarks. Each migration
// creates a table (so running it twice fails) and logs its application to applied_log, which
// has no unique key: a migration applied twice shows up as two rows. The log's "at" column is
// clock_timestamp() at the migration's last statement, just before it commits.
type MigrationSet struct {
	// N is the number of migrations, versions 1 to N.
	N int
	// Slow maps a version to seconds of pg_sleep before its change.
	Slow map[int]float64
	// FirstSlow maps a version to seconds of pg_sleep on its first attempt only (a sequence
	// counts attempts, and sequences ignore rollbacks), so that a migrator killed mid-migration
	// is not followed by a successor that sleeps as long. The statement carries the label
	// first_attempt_sleeps, to be found in pg_stat_activity.
	FirstSlow map[int]float64
	// NoTx lists versions that run without a transaction.
	NoTx map[int]bool
	// Fail lists versions that divide by zero after their change.
	Fail map[int]bool
	// SQLite writes the set for SQLite: Slow counts rows (5 million a second, roughly) instead
	// of sleeping; FirstSlow and the replica column are not available.
	SQLite bool
}

// Write writes the set to dir as NNNNN_step_N.sql files.
func (s MigrationSet) Write(dir string) error {
	for v := 1; v <= s.N; v++ {
		name := fmt.Sprintf("%05d_step_%d.sql", v, v)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s.file(v)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (s MigrationSet) file(v int) string {
	var b strings.Builder
	if s.NoTx[v] {
		b.WriteString("-- +goose NO TRANSACTION\n")
	}
	b.WriteString("-- +goose Up\n")
	if s.SQLite {
		return s.sqliteFile(&b, v)
	}
	if v == 1 {
		b.WriteString("CREATE TABLE applied_log (version int, replica text, at timestamptz DEFAULT clock_timestamp());\n")
		b.WriteString("CREATE SEQUENCE attempts;\n")
	}
	if sec := s.Slow[v]; sec > 0 {
		fmt.Fprintf(&b, "SELECT pg_sleep(%g);\n", sec)
	}
	if sec := s.FirstSlow[v]; sec > 0 {
		fmt.Fprintf(&b, "SELECT pg_sleep(CASE WHEN nextval('attempts') = 1 THEN %g ELSE 0 END) AS first_attempt_sleeps;\n", sec)
	}
	fmt.Fprintf(&b, "CREATE TABLE t_%d (id int);\n", v)
	fmt.Fprintf(&b, "INSERT INTO applied_log (version, replica) VALUES (%d, current_setting('application_name'));\n", v)
	if s.Fail[v] {
		b.WriteString("SELECT 1/0;\n")
	}
	b.WriteString("-- +goose Down\n")
	fmt.Fprintf(&b, "DROP TABLE t_%d;\n", v)
	return b.String()
}

func (s MigrationSet) sqliteFile(b *strings.Builder, v int) string {
	if v == 1 {
		b.WriteString("CREATE TABLE applied_log (version int, at TEXT DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')));\n")
	}
	if sec := s.Slow[v]; sec > 0 {
		fmt.Fprintf(b, "CREATE TABLE slow_%d AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) "+
			"SELECT count(*) AS n FROM c;\n", v, int(sec*5e6))
	}
	fmt.Fprintf(b, "CREATE TABLE t_%d (id int);\n", v)
	fmt.Fprintf(b, "INSERT INTO applied_log (version) VALUES (%d);\n", v)
	if s.Fail[v] {
		b.WriteString("SELECT * FROM no_such_table;\n")
	}
	b.WriteString("-- +goose Down\n")
	fmt.Fprintf(b, "DROP TABLE t_%d;\n", v)
	return b.String()
}
