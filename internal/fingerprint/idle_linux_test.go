package fingerprint

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestComputesAtIdlePriority: Of's evaluation (derive, run by atIdlePriority as Of runs it)
// spends its CPU on one thread with nice 19; the caller's thread keeps its
// priority; and the idle thread is gone once the goroutine has ended, so no other goroutine
// ever runs at its priority.
//
// The CPU time is what shows that the work stayed on that thread: one evaluation is about
// 60 ms of CPU, and with golang.org/x/crypto/argon2, which computes in goroutines of its own,
// the thread spends about a millisecond.
func TestComputesAtIdlePriority(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	caller := unix.Gettid()
	before := schedOf(t, caller)
	if isIdle(before) {
		t.Fatalf("the test's own thread already runs at idle priority (%+v): nothing to compare", before)
	}

	var (
		tid   int
		sched *unix.SchedAttr
		cpu   time.Duration
		err   error
		key   []byte
	)
	atIdlePriority(func() {
		tid = unix.Gettid()
		if sched, err = unix.SchedGetAttr(tid, 0); err != nil {
			return
		}
		var start time.Duration
		if start, err = threadCPU(); err != nil {
			return
		}
		key = derive("app/goose_db_version", "SECRET_KEY", "correct horse battery staple")
		var end time.Duration
		end, err = threadCPU()
		cpu = end - start
	})
	if err != nil {
		t.Fatalf("inside the computation: %v", err)
	}
	if tid == caller {
		t.Errorf("the evaluation ran on the caller's thread %d", tid)
	}
	if sched.Nice != idleNice {
		t.Errorf("the evaluation's thread had nice %d, want %d", sched.Nice, idleNice)
	}
	if cpu < 10*time.Millisecond {
		t.Errorf("the evaluation's thread spent %v of CPU on it: the work ran on other threads", cpu)
	}
	if len(key) != size {
		t.Errorf("derive gave %d bytes, want %d", len(key), size)
	}
	if after := schedOf(t, caller); after.Nice != before.Nice || after.Policy != before.Policy {
		t.Errorf("the caller's thread went from nice %d, policy %d to nice %d, policy %d",
			before.Nice, before.Policy, after.Nice, after.Policy)
	}
	t.Logf("evaluation: %v of CPU on thread %d (nice %d, policy %d)", cpu, tid, sched.Nice, sched.Policy)

	waitNoIdleThreads(t)
}

// TestNeverOnTheMainThread: the runtime parks the main thread for good instead of ending it,
// and tools show a process's priority as its main thread's, so the idle thread is never the
// main one. The goroutine that computes usually runs on its caller's thread (the caller waits
// for it), and the caller, not locked, moves between threads; over many calls it is on the
// main thread some of the time (without the check, this test fails nearly every run). Then no
// thread of the process may be left at idle priority.
func TestNeverOnTheMainThread(t *testing.T) {
	pid := os.Getpid()
	for range 2000 {
		var tid int
		atIdlePriority(func() { tid = unix.Gettid() })
		if tid == pid {
			t.Fatalf("computed on the main thread %d", pid)
		}
	}
	waitNoIdleThreads(t)
	if main := schedOf(t, pid); isIdle(main) {
		t.Errorf("the main thread is at nice %d, policy %d", main.Nice, main.Policy)
	}
}

// waitNoIdleThreads waits until no thread of the process is left at idle priority: each ends
// right after its goroutine, which is a moment after atIdlePriority returns.
func waitNoIdleThreads(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := idleThreads(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v still run at idle priority (process %d)", left, os.Getpid())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isIdle(a *unix.SchedAttr) bool {
	return a.Nice == idleNice
}

// schedOf is the scheduling policy and nice value of thread tid.
func schedOf(t *testing.T, tid int) *unix.SchedAttr {
	t.Helper()
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		t.Fatalf("sched_getattr %d: %v", tid, err)
	}
	return a
}

// idleThreads are the threads of this process at nice 19.
func idleThreads(t *testing.T) []int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, d := range dirs {
		tid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		a, err := unix.SchedGetAttr(tid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue // ended since the listing
		}
		if err != nil {
			t.Fatalf("sched_getattr %d: %v", tid, err)
		}
		if isIdle(a) {
			out = append(out, tid)
		}
	}
	return out
}

// threadCPU is the CPU time the calling thread has used.
func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, os.NewSyscallError("clock_gettime", err)
	}
	return time.Duration(ts.Nano()), nil
}
