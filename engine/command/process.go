package command

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/schemagate/schemagate/internal/proctree"
)

// drainTimeout bounds how long the migrator reads the command's output after the command and
// its reaper are gone. Every writer is dead by then, unless something escaped the reaper; the
// output is not worth holding the lock for.
const drainTimeout = time.Second

// reaperTimeout is how long the reaper has to end the command's tree after killSignal, before
// the migrator kills the reaper and the command's process group itself.
const reaperTimeout = 2 * time.Second

// process is the migrate command running under its reaper (see Reap).
type process struct {
	cmd *exec.Cmd
	// life is the write end of the reaper's life pipe: the reaper kills the command when it
	// closes, which the kernel does when this process dies.
	life *os.File
	// stdout and stderr are the read ends of the command's output.
	stdout, stderr *os.File
	// group is the command's process group, once the reaper reported it.
	group atomic.Int64
	// reported is how the reaper said the command ended: "exit N" or "signal N".
	reported chan string
	killOnce sync.Once
	spawner  Spawner
}

// Spawner starts the migrator's own children, so that a process that reaps orphans (PID 1 of a
// container: internal/proctree.Reaper) leaves their exit to exec.Cmd.Wait.
type Spawner interface {
	Start(cmd *exec.Cmd) error
	// Release is told of a child's pid once its Wait returned.
	Release(pid int)
}

// start runs argv (the shell and the command) under the reaper self, with env. With direct
// set, the command writes to this process's own standard output and error; otherwise to pipes
// that p.stdout and p.stderr read.
func start(self string, argv, env []string, spawner Spawner, direct bool) (p *process, err error) {
	var closeAfterStart, closeOnError []*os.File
	defer func() {
		for _, f := range closeAfterStart {
			f.Close()
		}
		if err != nil {
			for _, f := range closeOnError {
				f.Close()
			}
		}
	}()
	pipe := func() (r, w *os.File) {
		if err != nil {
			return nil, nil
		}
		r, w, err = os.Pipe()
		return r, w
	}
	lifeR, lifeW := pipe()
	reportR, reportW := pipe()
	cmd := exec.Command(self, append([]string{ReapCommand, "--"}, argv...)...)
	var outR, errR *os.File
	if direct {
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	} else {
		var outW, errW *os.File
		outR, outW = pipe()
		errR, errW = pipe()
		cmd.Stdout, cmd.Stderr = outW, errW
		closeAfterStart = append(closeAfterStart, outW, errW)
		closeOnError = append(closeOnError, outR, errR)
	}
	if err != nil {
		return nil, fmt.Errorf("start the migrate command: %w", err)
	}
	closeAfterStart = append(closeAfterStart, lifeR, reportW)
	closeOnError = append(closeOnError, lifeW, reportR)
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{lifeR, reportW} // lifeFD, reportFD
	cmd.SysProcAttr = reaperAttr()
	// Pdeathsig fires when the thread that started the child ends: keep this goroutine on one
	// thread while starting it (Go does not end unlocked threads).
	runtime.LockOSThread()
	if spawner != nil {
		err = spawner.Start(cmd)
	} else {
		err = cmd.Start()
	}
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("start the migrate command: %w", err)
	}
	p = &process{cmd: cmd, life: lifeW, stdout: outR, stderr: errR, reported: make(chan string, 1), spawner: spawner}
	go p.readReport(reportR)
	return p, nil
}

// readReport reads what the reaper reports: the command's process id, then how it ended.
func (p *process) readReport(r *os.File) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	end := ""
	for sc.Scan() {
		word, n, _ := strings.Cut(sc.Text(), " ")
		if word == "started" {
			if pid, err := strconv.Atoi(n); err == nil {
				p.group.Store(int64(pid))
			}
			continue
		}
		end = sc.Text()
	}
	p.reported <- end
}

// terminate asks every process of the command to stop (SIGTERM).
func (p *process) terminate() { p.cmd.Process.Signal(stopSignal) }

// kill ends the command's whole tree at once: SIGKILL to its process group now, and the reaper
// kills whatever left the group. A reaper that does not end in time is killed too.
func (p *process) kill() {
	p.killOnce.Do(func() {
		if g := p.group.Load(); g > 0 {
			syscall.Kill(-int(g), syscall.SIGKILL)
		}
		p.cmd.Process.Signal(killSignal)
		time.AfterFunc(reaperTimeout, func() { p.cmd.Process.Kill() })
	})
}

// wait waits for the reaper, then for the output readers (at most drainTimeout), and says how
// the command ended.
func (p *process) wait(readers *sync.WaitGroup) error {
	werr := p.cmd.Wait()
	if p.spawner != nil {
		p.spawner.Release(p.cmd.Process.Pid)
	}
	// Nothing of the command may outlive it. If the reaper itself was killed, its group goes,
	// and as PID 1 this process has adopted whatever left the group: that goes too.
	if g := p.group.Load(); g > 0 {
		syscall.Kill(-int(g), syscall.SIGKILL)
	}
	if os.Getpid() == 1 {
		for _, pid := range proctree.Descendants(1) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	p.life.Close()
	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		// Something outside the tree holds the pipes open; stop reading them.
		if p.stdout != nil {
			p.stdout.Close()
			p.stderr.Close()
		}
		<-drained
	}
	return ended(<-p.reported, werr)
}

// ExitError is a command that ended other than with exit code 0.
type ExitError struct {
	// Code is its exit code, or 0 when a signal ended it.
	Code int
	// Signal is the signal that ended it, or 0.
	Signal syscall.Signal
}

func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return "the migrate command was killed by " + signalName(e.Signal)
	}
	return fmt.Sprintf("the migrate command exited %d", e.Code)
}

// ended turns the reaper's report (or, without one, its own exit) into the command's outcome:
// nil for exit 0, an *ExitError for another code or a signal, else why the reaper failed.
func ended(report string, reaper error) error {
	word, n, _ := strings.Cut(report, " ")
	code, err := strconv.Atoi(n)
	switch {
	case err == nil && word == "exit" && code == 0:
		return nil
	case err == nil && word == "exit":
		return &ExitError{Code: code}
	case err == nil && word == "signal":
		return &ExitError{Signal: syscall.Signal(code)}
	}
	// No report: the reaper itself was killed, and its process group with it.
	var ee *exec.ExitError
	if errors.As(reaper, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("the migrate command's reaper was killed by %s; the command's process group was killed with it",
				signalName(ws.Signal()))
		}
	}
	if reaper == nil {
		reaper = errors.New("it reported nothing")
	}
	return fmt.Errorf("the migrate command's reaper failed: %w", reaper)
}

// signalName names a signal as people write it: SIGKILL, SIGTERM.
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}
