package proctree

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// awaitState waits until process pid is in state.
func awaitState(t *testing.T, pid int, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for State(pid) != state {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is %q, not %q", pid, State(pid), state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTree: children, descendants and states as /proc shows them.
func TestTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	shell := cmd.Process.Pid
	if !slices.Contains(Children(os.Getpid()), shell) {
		t.Fatalf("the shell %d is not among this process's children %v", shell, Children(os.Getpid()))
	}
	var sleeper int
	deadline := time.Now().Add(10 * time.Second)
	for len(Children(shell)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the shell started no child")
		}
		time.Sleep(5 * time.Millisecond)
	}
	sleeper = Children(shell)[0]
	if d := Descendants(os.Getpid()); !slices.Contains(d, shell) || !slices.Contains(d, sleeper) {
		t.Errorf("descendants %v lack the shell %d or its child %d", d, shell, sleeper)
	}
	if State(sleeper) == "" || State(-1) != "" {
		t.Errorf("states: %q for a live process, %q for none", State(sleeper), State(-1))
	}
}

// TestReaperLeavesItsOwn: Reap collects a child that ended and was not started through the
// Reaper, and leaves one that was to its exec.Cmd.Wait.
func TestReaperLeavesItsOwn(t *testing.T) {
	r := New()
	stray := exec.Command("true")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	own := exec.Command("true")
	if err := r.Start(own); err != nil {
		t.Fatal(err)
	}
	awaitState(t, stray.Process.Pid, "Z")
	awaitState(t, own.Process.Pid, "Z")
	if n := r.Reap(); n != 1 {
		t.Errorf("Reap reaped %d processes, want 1 (the stray)", n)
	}
	if State(stray.Process.Pid) != "" {
		t.Error("the stray is still a zombie")
	}
	if err := own.Wait(); err != nil {
		t.Errorf("the Reaper took its own child's exit: %v", err)
	}
	r.Release(own.Process.Pid)
}

// TestStarted: a running process is named by its boot and start time, the same each time it
// is read; its zombie, and a pid no process has, are not alive.
func TestStarted(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	first, alive := Started(pid)
	if !alive || first == "" {
		t.Fatalf("a running process: %q, alive %v", first, alive)
	}
	if again, _ := Started(pid); again != first {
		t.Errorf("read twice: %q, then %q", first, again)
	}
	if own, _ := Started(os.Getpid()); own == first {
		t.Errorf("two processes share the start %q", own)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	awaitState(t, pid, "Z")
	if start, alive := Started(pid); alive {
		t.Errorf("a zombie is alive: %q", start)
	}
	_ = child.Wait()
	if start, alive := Started(pid); alive {
		t.Errorf("a reaped process is alive: %q", start)
	}
}
