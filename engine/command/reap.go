package command

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/proctree"
)

// ReapCommand is the hidden subcommand that runs Reap: the migrator starts the migrate command
// as `<its own binary> ReapCommand -- /bin/sh -c COMMAND`.
const ReapCommand = "__reap"

// Signals from the migrator to its reaper.
const (
	// stopSignal asks the command to stop: the reaper passes SIGTERM to every process of it.
	stopSignal = syscall.SIGTERM
	// killSignal kills the command's whole tree at once. The kernel also sends it to the
	// reaper when the migrator dies (PR_SET_PDEATHSIG).
	killSignal = syscall.SIGHUP
)

// The descriptors the migrator hands its reaper, after standard input, output and error.
const (
	// lifeFD is the read end of a pipe whose write end only the migrator holds: end of file
	// means the migrator is gone, however it went. Unlike "my parent is now PID 1", this holds
	// when the migrator itself is PID 1 of a container, and in every PID namespace.
	lifeFD = 3
	// reportFD is where the reaper reports the command's process id and how it ended, so that
	// the migrator can tell an exit code above 128 from a signal.
	reportFD = 4
)

// Reap runs argv and waits for it and everything it starts, for the migrator. It is a child
// subreaper (PR_SET_CHILD_SUBREAPER): a process the command leaves behind, even one that left
// its process group with setsid, becomes the reaper's child rather than init's, so that
//
//   - stopSignal passes SIGTERM to every process of the command;
//   - killSignal, the migrator's death (its pipe closing) or the command's own exit SIGKILL the
//     whole tree, and the reaper returns only once none of it is left, so nothing holds the
//     output pipes and no migrate command outlives its migrator to race the next one.
//
// It returns the command's exit code, 128+signal when a signal ended it.
func Reap(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "schemagate "+ReapCommand+": no command")
		return 2
	}
	life, report := os.NewFile(lifeFD, "migrator"), os.NewFile(reportFD, "report")
	syscall.CloseOnExec(lifeFD)
	syscall.CloseOnExec(reportFD)
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "schemagate %s: become a subreaper: %v\n", ReapCommand, err)
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, stopSignal, killSignal, syscall.SIGINT, syscall.SIGCHLD)
	pid, err := spawn(argv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "schemagate %s: %v\n", ReapCommand, err)
		fmt.Fprintf(report, "exit 127\n")
		return 127
	}
	fmt.Fprintf(report, "started %d\n", pid)
	gone := make(chan struct{})
	go func() {
		io.Copy(io.Discard, life)
		close(gone)
	}()
	t := tree{self: os.Getpid(), group: pid}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var ended *syscall.WaitStatus
	killing := false
	for {
		ws, done := t.reap(pid)
		if ws != nil {
			ended, killing = ws, true // whatever the command left behind goes with it
		}
		if done && ended != nil {
			return reportEnd(report, *ended)
		}
		if killing {
			t.signal(syscall.SIGKILL)
		}
		select {
		case sig := <-signals:
			switch sig {
			case killSignal:
				killing = true
			case stopSignal, syscall.SIGINT:
				t.signal(syscall.SIGTERM)
			}
		case <-gone:
			gone, killing = nil, true
		case <-tick.C:
		}
	}
}

// spawn starts argv in a process group of its own, with no standard input.
func spawn(argv []string) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return 0, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	return syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{null.Fd(), os.Stdout.Fd(), os.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
}

// reportEnd tells the migrator how the command ended and returns the reaper's exit code.
func reportEnd(report io.Writer, ws syscall.WaitStatus) int {
	if ws.Signaled() {
		fmt.Fprintf(report, "signal %d\n", int(ws.Signal()))
		return 128 + int(ws.Signal())
	}
	fmt.Fprintf(report, "exit %d\n", ws.ExitStatus())
	return ws.ExitStatus()
}

// tree is the reaper's view of the command: its process group and every descendant of the
// reaper.
type tree struct {
	self, group int
}

// reap collects every child that has exited. It returns the command's wait status if the
// command was among them, and done once the reaper has no child left.
func (t tree) reap(command int) (ended *syscall.WaitStatus, done bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil: // ECHILD: nothing left
			return ended, true
		case pid <= 0:
			return ended, false
		case pid == command:
			ended = &ws
		}
	}
}

// signal sends sig to the command's process group and to every descendant of the reaper (where
// /proc shows them; else to the group alone).
func (t tree) signal(sig syscall.Signal) {
	syscall.Kill(-t.group, sig)
	for _, pid := range proctree.Descendants(t.self) {
		syscall.Kill(pid, sig)
	}
}
