package command

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// ReapCommand is the hidden subcommand that runs Reap: the migrator starts the migrate command
// as `<its own binary> ReapCommand -- /bin/sh -c COMMAND`.
const ReapCommand = "__reap"

// Signals between the migrator and its reaper.
const (
	// stopSignal asks the command to stop: the reaper passes SIGTERM to its process group.
	stopSignal = syscall.SIGTERM
	// killSignal kills the command's whole process group at once. The kernel also sends it
	// to the reaper when the migrator dies (PR_SET_PDEATHSIG).
	killSignal = syscall.SIGHUP
)

// Reap runs argv in a process group of its own and waits for it, passing stopSignal on and
// turning killSignal (sent by the kernel when the migrator dies, however it dies) into SIGKILL
// of the whole group: a shell's children go too, so no migrate command outlives its migrator
// to race the next one. It returns the command's exit code, 128+signal when a signal ended it.
func Reap(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "schemagate "+ReapCommand+": no command")
		return 2
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, stopSignal, killSignal, syscall.SIGINT)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "schemagate %s: %v\n", ReapCommand, err)
		return 127
	}
	group := -cmd.Process.Pid
	// The migrator may have died before PR_SET_PDEATHSIG took effect: the reaper then
	// belongs to init (or a subreaper), and no signal will come.
	if os.Getppid() == 1 {
		syscall.Kill(group, syscall.SIGKILL)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			if sig == killSignal {
				syscall.Kill(group, syscall.SIGKILL)
			} else {
				syscall.Kill(group, syscall.SIGTERM)
			}
		case err := <-done:
			// Whatever the command left in its group goes with it.
			syscall.Kill(group, syscall.SIGKILL)
			var ee *exec.ExitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &ee):
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ee.ExitCode()
			}
			return 127
		}
	}
}
