package command

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/internal/proctree"
	"github.com/schemagate/schemagate/lock"
)

// awaitFile waits until the command under test wrote path, and returns its contents.
func awaitFile(t *testing.T, path string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within %s", path, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	state := proctree.State(pid)
	return state != "" && state != "Z"
}

// runaway is a command that starts a descendant outside its process group (setsid), writes its
// pid to $PIDFILE, and then does what rest says. The descendant holds the output pipes.
const runaway = `setsid sleep 60 & echo $! > "$PIDFILE"; `

func pidFile(t *testing.T) string { return filepath.Join(t.TempDir(), "pid") }

func descendantPID(t *testing.T, file string) int {
	t.Helper()
	pid, err := strconv.Atoi(awaitFile(t, file, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestLeftoversDie: a command that leaves a daemon behind (setsid) and exits 0 ends the run at
// once, and the daemon is gone: it neither holds the output pipes (and the migrator with them)
// nor outlives the run to race the next migrator.
func TestLeftoversDie(t *testing.T) {
	file := pidFile(t)
	e, _, url := newEngine(t, runaway+`psql -q "$TEST_URL" -c "UPDATE v SET version = 2"`, Options{})
	e.opts.Env = []string{"PIDFILE=" + file, "TEST_URL=" + url}
	begin := time.Now()
	if err := migrate(t, e, engine.Hooks{}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("the run took %s: the daemon held it", took)
	}
	if pid := descendantPID(t, file); alive(pid) {
		t.Errorf("the command's daemon (pid %d) outlived the run", pid)
	}
}

// TestStopWithLeftovers: a polite stop of a command whose daemon ignores nothing but holds the
// pipes ends within the grace period, daemon included.
func TestStopWithLeftovers(t *testing.T) {
	file := pidFile(t)
	e, _, _ := newEngine(t, runaway+`trap '' TERM; sleep 60`, Options{StopGrace: 500 * time.Millisecond})
	e.opts.Env = []string{"PIDFILE=" + file}
	stop := make(chan struct{})
	go func() {
		descendantPID(t, file)
		close(stop)
	}()
	begin := time.Now()
	err := migrate(t, e, engine.Hooks{Stop: stop})
	if err == nil || !strings.Contains(err.Error(), "killed by SIGKILL") {
		t.Errorf("got %v, want the command killed after its grace period", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("the stop took %s", took)
	}
	if pid := descendantPID(t, file); alive(pid) {
		t.Errorf("the command's daemon (pid %d) outlived the stop", pid)
	}
}

// TestLostKillsAtOnce: when the election is lost, the command is killed at once, without the
// grace period a polite stop gets, daemon included; the error wraps lock.ErrLost and says that
// the command's own transactions are not fenced.
func TestLostKillsAtOnce(t *testing.T) {
	file := pidFile(t)
	e, _, _ := newEngine(t, runaway+`trap '' TERM; sleep 60`, Options{StopGrace: time.Minute})
	e.opts.Env = []string{"PIDFILE=" + file}
	lost := make(chan struct{})
	go func() {
		descendantPID(t, file)
		close(lost)
	}()
	begin := time.Now()
	err := migrate(t, e, engine.Hooks{Lost: lost})
	if !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "own transactions are not fenced") {
		t.Errorf("got %v, want a lost election", err)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("the command took %s to die after the election was lost", took)
	}
	if pid := descendantPID(t, file); alive(pid) {
		t.Errorf("the command's daemon (pid %d) outlived the lost election", pid)
	}
}

// TestCheckedEverySecond: while the command runs, the election is checked at least every
// second, before it starts too; the first failed check kills the command at once.
func TestCheckedEverySecond(t *testing.T) {
	e, _, _ := newEngine(t, `trap '' TERM; sleep 60`, Options{StopGrace: time.Minute})
	var checks atomic.Int32
	begin := time.Now()
	check := func(ctx context.Context) error {
		if checks.Add(1) == 4 {
			return errors.New("the session did not answer")
		}
		return nil
	}
	err := migrate(t, e, engine.Hooks{Check: check})
	took := time.Since(begin)
	if !errors.Is(err, lock.ErrLost) || !strings.Contains(err.Error(), "the session did not answer") {
		t.Errorf("got %v, want the failed check", err)
	}
	// One check before the start, three more at 1 s intervals, the last failing.
	if took < 2500*time.Millisecond || took > 6*time.Second {
		t.Errorf("four checks took %s; want about 3 s (one before the start, then one a second)", took)
	}
}

// TestCheckBeforeStart: a migrator that lost the election before the command starts never
// starts it.
func TestCheckBeforeStart(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	e, _, _ := newEngine(t, `touch "$MARKER"`, Options{})
	e.opts.Env = []string{"MARKER=" + marker}
	err := migrate(t, e, engine.Hooks{Check: func(context.Context) error { return errors.New("gone") }})
	if !errors.Is(err, lock.ErrLost) {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran after a failed check")
	}
}

// TestExitCodes: an exit code above 128 is the command's own, not a signal; a signal is named
// as people name it.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"exit 130", "the migrate command exited 130"},
		{"kill -KILL $$", "the migrate command was killed by SIGKILL"},
		{"kill -TERM $$", "the migrate command was killed by SIGTERM"},
	} {
		e, _, _ := newEngine(t, tc.script, Options{})
		if err := migrate(t, e, engine.Hooks{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.script, err, tc.want)
		}
	}
}

// TestMigratorDeathKillsTree: the reaper kills the command's whole tree when its migrator dies,
// which it learns from its life pipe closing, not from its parent's pid: a migrator that is
// PID 1 of a container dies the same way. Here the test process plays the migrator and closes
// the pipe without dying.
func TestMigratorDeathKillsTree(t *testing.T) {
	file := pidFile(t)
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reportR.Close()
	cmd := exec.Command(self(t), ReapCommand, "--", "/bin/sh", "-c", runaway+"sleep 60")
	cmd.Env = append(os.Environ(), "PIDFILE="+file)
	cmd.ExtraFiles = []*os.File{lifeR, reportW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lifeR.Close()
	reportW.Close()
	daemon := descendantPID(t, file)
	lifeW.Close() // the migrator "dies"
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the reaper did not end after its migrator's pipe closed")
	}
	if alive(daemon) {
		t.Errorf("the command's daemon (pid %d) outlived the migrator", daemon)
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.ExitStatus() != 128+int(syscall.SIGKILL) {
		t.Errorf("the reaper exited %d, want %d (the shell was killed)", ws.ExitStatus(), 128+int(syscall.SIGKILL))
	}
}
