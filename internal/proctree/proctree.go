// Package proctree reads the process tree from /proc, and lets schemagate be the first process
// of a container (its entrypoint, with no init before it): the kernel makes PID 1 the parent of
// every process whose own parent died, and a PID 1 that does not wait for them collects zombies.
//
// A Reaper waits for those orphans, and only for them: the children schemagate starts itself
// (the migrate command's reaper) are started through it, and their exit stays theirs to
// collect with exec.Cmd.Wait.
package proctree

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sweepInterval is how often a Reaper looks for orphans when no SIGCHLD told it to.
const sweepInterval = 5 * time.Second

// Reaper starts this process's own children and reaps everything else that ends as its child.
// The zero value is not usable; call New.
type Reaper struct {
	mu  sync.Mutex
	own map[int]bool
}

// New returns a Reaper.
func New() *Reaper { return &Reaper{own: map[int]bool{}} }

// Start starts cmd as one of this process's own children: the Reaper leaves its exit to
// cmd.Wait, until Release.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.own[cmd.Process.Pid] = true
	return nil
}

// Release ends Start's claim on pid, once its cmd.Wait returned.
func (r *Reaper) Release(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.own, pid)
}

// Run reaps orphans until ctx ends: whenever a child ends (SIGCHLD), and every sweepInterval.
func (r *Reaper) Run(ctx context.Context) {
	children := make(chan os.Signal, 1)
	signal.Notify(children, syscall.SIGCHLD)
	defer signal.Stop(children)
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		r.Reap()
		select {
		case <-ctx.Done():
			return
		case <-children:
		case <-tick.C:
		}
	}
}

// Reap waits for every child that has ended and is not one of this process's own, and returns
// how many it reaped.
func (r *Reaper) Reap() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, pid := range zombieChildren(os.Getpid()) {
		if r.own[pid] {
			continue
		}
		var ws syscall.WaitStatus
		if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && got == pid {
			n++
		}
	}
	return n
}

// zombieChildren lists the children of parent that have ended and wait to be reaped.
func zombieChildren(parent int) []int {
	var out []int
	for _, p := range processes() {
		if p.ppid == parent && p.state == "Z" {
			out = append(out, p.pid)
		}
	}
	return out
}

// Descendants lists the processes below pid: its children, theirs, and so on.
func Descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range processes() {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = append(queue[1:], children[p]...)
		out = append(out, p)
	}
	return out
}

// Children lists the children of pid, zombies included.
func Children(pid int) []int {
	var out []int
	for _, p := range processes() {
		if p.ppid == pid {
			out = append(out, p.pid)
		}
	}
	return out
}

// State returns the state of process pid as /proc shows it ("R", "S", "Z" for a zombie…), or
// "" when there is no such process.
func State(pid int) string {
	p, ok := readStat("/proc/" + strconv.Itoa(pid) + "/stat")
	if !ok {
		return ""
	}
	return p.state
}

// Started identifies process pid by when it started: the kernel's boot id and the start time
// in /proc/PID/stat (field 22, clock ticks since boot), so that a pid the kernel gave to another
// process since does not pass for it. alive is false when no process has the pid, or only its
// zombie is left.
func Started(pid int) (start string, alive bool) {
	p, ok := readStat("/proc/" + strconv.Itoa(pid) + "/stat")
	if !ok || p.start == "" || p.state == "Z" || p.state == "X" {
		return "", false // a zombie has ended: only its exit status is left for its parent
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot)) + "/" + p.start, true
}

// process is one line of /proc/PID/stat, as far as the tree needs it.
type process struct {
	pid, ppid int
	state     string
	// start is when the process started, in clock ticks since boot (field 22).
	start string
}

// processes reads every process from /proc. Where /proc belongs to another PID namespace than
// this process (a PID namespace without its own /proc), the numbers would not match this
// process's view: it returns none.
func processes() []process {
	if self, err := os.Readlink("/proc/self"); err != nil || self != strconv.Itoa(os.Getpid()) {
		return nil
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	out := make([]process, 0, len(stats))
	for _, path := range stats {
		if p, ok := readStat(path); ok {
			out = append(out, p)
		}
	}
	return out
}

// readStat reads /proc/PID/stat. The command name, in parentheses, may hold anything: the
// fields after it are counted from its last ')'.
func readStat(path string) (process, bool) {
	f, err := os.Open(path)
	if err != nil {
		return process{}, false
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < 0 {
		return process{}, false
	}
	fields := strings.Fields(line[end+1:]) // field 3 (state), 4 (ppid), …
	if len(fields) < 2 {
		return process{}, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(line[:open]))
	ppid, err2 := strconv.Atoi(fields[1])
	p := process{pid: pid, ppid: ppid, state: fields[0]}
	if len(fields) >= 20 {
		p.start = fields[19]
	}
	return p, err1 == nil && err2 == nil
}
