//go:build linux

package raft

import (
	"context"
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestServesAfterRunningOutOfDescriptors: a member whose process runs out of file descriptors
// (accept fails with EMFILE while connections wait to be accepted) serves again once it has
// some. Member 0 starts alone and is flooded past the descriptor limit; after that, members 1
// and 2 start, the three form a cluster, and member 0 answers their hellos.
func TestServesAfterRunningOutOfDescriptors(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "fence.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	peers := []Peer{{ID: "a", Address: freeAddr(t)}, {ID: "b", Address: freeAddr(t)}, {ID: "c", Address: freeAddr(t)}}
	logs := &logLines{}
	start := func(i int, log zerolog.Logger) *Node {
		cfg := DefaultConfig()
		cfg.Replica, cfg.Listen, cfg.Peers, cfg.Secret, cfg.Cluster = peers[i].ID, peers[i].Address, peers, testSecret, "test/fingerprint"
		n, err := Start(cfg, db, "sqlite3", DefaultFenceTable, "test", log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	nodes := []*Node{start(0, zerolog.New(logs))}

	// Far more connections than descriptors: a few are accepted, the rest wait in the backlog
	// while accept fails.
	release := idleFlood(t, peers[0].Address, 200, 8)
	if !logs.await("cannot accept connections", 10*time.Second) {
		t.Error("the member did not log that it could not accept")
	}
	release()

	nodes = append(nodes, start(1, zerolog.Nop()), start(2, zerolog.Nop()))
	leader := awaitLeader(t, nodes[0])
	for _, n := range nodes[1:] {
		if got := awaitLeader(t, n); got != leader {
			t.Errorf("%s follows %s, %s follows %s", n.cfg.Replica, got, nodes[0].cfg.Replica, leader)
		}
		// Member 0 could have formed the cluster by dialling out alone: ask it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h, err := n.stream.askHello(ctx, peers[0].Address)
		cancel()
		if err != nil || h.ID != peers[0].ID {
			t.Errorf("%s asked %s for a hello: %v (answered by %q)", n.cfg.Replica, peers[0].ID, err, h.ID)
		}
	}
}

// TestIdleFloodDoesNotLockOutMembers: a flood of connections that never authenticate, three
// times the cap and more than the process has descriptors for, does not keep a member's hello
// from being answered at once: the member holds at most maxHandshakes of them, each newer one
// closing the oldest, so descriptors remain and the member's connection is admitted.
func TestIdleFloodDoesNotLockOutMembers(t *testing.T) {
	creds, err := deriveCredentials(testSecret, "test/fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logLines{}
	server, client := testStream(t, creds, zerolog.New(logs)), testStream(t, creds, zerolog.Nop())

	release := idleFlood(t, server.ln.Addr().String(), 3*maxHandshakes, maxHandshakes+32)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // well within authTimeout
	defer cancel()
	if h, err := client.askHello(ctx, server.ln.Addr().String()); err != nil || h.ID != "server" {
		t.Fatalf("a member's hello during the flood: %+v, %v", h, err)
	}
	if !logs.await("dropped a Raft connection that had not authenticated yet", 5*time.Second) {
		t.Error("the member did not log dropping connections")
	}
}

// testStream is a bare transport on loopback that answers hellos with its id.
func testStream(t *testing.T, creds *credentials, log zerolog.Logger) *stream {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	answer := func() hello { return hello{ID: "server"} }
	view := func(*hello, <-chan struct{}) (hello, bool) { return answer(), false }
	s, err := newStream(addr.String(), addr, creds, answer, view, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); s.wait() })
	return s
}

// idleFlood opens n TCP connections to addr that never send a byte, and lowers the process's
// descriptor limit so that only spare more descriptors can be opened: for the server's side
// of those connections and everything else the process opens meanwhile. The connections'
// own descriptors are opened before the limit is lowered. release (also run at cleanup)
// closes them and restores the limit.
func idleFlood(t *testing.T, addr string, n, spare int) (release func()) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	to := &syscall.SockaddrInet4{}
	copy(to.Addr[:], net.ParseIP(host).To4())
	if to.Port, err = strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
	var fds []int
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, fd := range fds {
				syscall.Close(fd)
			}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
				t.Errorf("restore the descriptor limit: %v", err)
			}
		})
	}
	t.Cleanup(release)
	for range n {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	limit := syscall.Rlimit{Cur: uint64(highestFD(t) + 1 + spare), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if err := syscall.Connect(fd, to); err != nil {
			t.Fatalf("connect to %s: %v", addr, err)
		}
	}
	return release
}

// highestFD is the highest file descriptor open in this process.
func highestFD(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > highest {
			highest = fd
		}
	}
	return highest
}

// logLines collects a logger's output, for a test to await a line.
type logLines struct {
	mu    sync.Mutex
	text  strings.Builder
	added chan struct{} // closed at the next write
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text.Write(p)
	if l.added != nil {
		close(l.added)
		l.added = nil
	}
	return len(p), nil
}

// await reports whether the output contains s within d.
func (l *logLines) await(s string, d time.Duration) bool {
	timeout := time.After(d)
	for {
		l.mu.Lock()
		found := strings.Contains(l.text.String(), s)
		if l.added == nil {
			l.added = make(chan struct{})
		}
		added := l.added
		l.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-added:
		case <-timeout:
			return false
		}
	}
}
