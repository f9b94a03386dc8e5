package file

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
)

// processes plays the processes of several replicas inside one test process: each locker gets
// a pid of its own, which runs until killed.
type processes struct {
	mu   sync.Mutex
	next int
	dead map[int]bool
}

// locker is a locker on path whose replica runs as a process of its own.
func (p *processes) locker(path, replica string) *Locker {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	pid := 1_000_000 + p.next
	l := New(path, replica)
	l.guard.env.pid = func() int { return pid }
	l.guard.env.process = func(pid int) (string, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return fmt.Sprintf("start-of-%d", pid), !p.dead[pid]
	}
	return l
}

func (p *processes) kill(l *Locker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead == nil {
		p.dead = map[int]bool{}
	}
	p.dead[l.guard.env.pid()] = true
}

func TestPresenceConformance(t *testing.T) {
	paths := map[*testing.T]string{}
	procs := &processes{}
	locktest.TestPresence(t, locktest.Backend{
		New: func(t *testing.T, replica string) lock.Locker {
			p, ok := paths[t]
			if !ok {
				p = lockPath(t)
				paths[t] = p
			}
			return procs.locker(p, replica)
		},
		Kill: func(_ *testing.T, l lock.Locker) { procs.kill(l.(*Locker)) },
	})
}

func presenceMember(replica string) lock.Member {
	return lock.Member{Replica: replica, Host: "h", MigrationSet: "set-1", Phase: "ready", Since: time.Now().UTC(),
		Fingerprints: map[string]string{"SECRET_KEY": "v1:00"}}
}

// TestPresenceOfAKilledProcess: an entry counts while its process runs, as /proc tells it, and
// no longer once the process was SIGKILLed; the next Show drops it from the file.
func TestPresenceOfAKilledProcess(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	// The child's entry, as the child would write it.
	other := New(path, "child")
	other.guard.env.pid = func() int { return child.Process.Pid }
	if err := other.Show(ctx, presenceMember("child")); err != nil {
		t.Fatal(err)
	}
	me := New(path, "me")
	if got, err := me.Fleet(ctx); err != nil || len(got) != 1 || got[0].Replica != "child" {
		t.Fatalf("Fleet while the child runs: %v, %v", got, err)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if got, err := me.Fleet(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Fleet after the child was killed: %v, %v", got, err)
	}
	if err := me.Show(ctx, presenceMember("me")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(PresencePath(path))
	if strings.Contains(string(b), `"child"`) || !strings.Contains(string(b), `"me"`) {
		t.Fatalf("the presence file after the next Show:\n%s", b)
	}
}

// TestPresenceConcurrentShows: replicas that show themselves at the same instant each keep
// their entry: the file is replaced whole, one replica at a time.
func TestPresenceConcurrentShows(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	procs := &processes{}
	const n = 16
	var ls []*Locker
	for i := range n {
		ls = append(ls, procs.locker(path, fmt.Sprintf("worker-%d", i)))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, l := range ls {
		wg.Go(func() {
			<-start
			for range 5 {
				if err := l.Show(ctx, presenceMember(fmt.Sprintf("worker-%d", i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got, err := ls[0].Fleet(ctx); err != nil || len(got) != n {
		t.Fatalf("Fleet after %d concurrent Shows: %d entries, %v", n, len(got), err)
	}
	if tmps, _ := filepath.Glob(PresencePath(path) + ".*.tmp"); len(tmps) != 0 {
		t.Errorf("temporary files left behind: %v", tmps)
	}
}

// TestPresenceFileOfOtherData: a presence path holding something else is neither read as a
// fleet nor overwritten.
func TestPresenceFileOfOtherData(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	if err := os.WriteFile(PresencePath(path), []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := New(path, "web-1")
	if err := l.Show(ctx, presenceMember("web-1")); err == nil || !strings.Contains(err.Error(), "holds other data") {
		t.Fatalf("Show over other data: %v", err)
	}
	if _, err := l.Fleet(ctx); err == nil {
		t.Fatal("Fleet read other data as a fleet")
	}
	if b, _ := os.ReadFile(PresencePath(path)); string(b) != "precious\n" {
		t.Fatalf("the file was changed: %q", b)
	}
	link := lockPath(t)
	if err := os.Symlink(PresencePath(path), PresencePath(link)); err != nil {
		t.Fatal(err)
	}
	if err := New(link, "web-2").Show(ctx, presenceMember("web-2")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Show through a symbolic link: %v", err)
	}
}

// TestPresenceOtherHost: a reader on another machine cannot tell whether the entries'
// processes run, and lists nobody rather than stale entries.
func TestPresenceOtherHost(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	c := &clock{now: time.Now()}
	if err := onHost(path, "machine-one", "web-1", c).Show(ctx, presenceMember("web-1")); err != nil {
		t.Fatal(err)
	}
	if got, err := onHost(path, "machine-one", "ops", c).Fleet(ctx); err != nil || len(got) != 1 {
		t.Fatalf("Fleet on the same machine: %v, %v", got, err)
	}
	if got, err := onHost(path, "machine-two", "ops", c).Fleet(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Fleet on another machine: %v, %v", got, err)
	}
}
