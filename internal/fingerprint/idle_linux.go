package fingerprint

import "golang.org/x/sys/unix"

// idleNice is the nice value of the thread that computes a fingerprint: the lowest.
const idleNice = 19

// lowerThreadPriority gives the calling thread, and only it (on Linux, setpriority of a thread
// ID applies to that thread, not to the process), nice 19: a scheduling weight of 15 against
// 1024 for a thread of nice 0, so that it runs when they leave the CPU idle and yields to them
// as soon as they wake. Not SCHED_IDLE (weight 3): on a CPU kept busy by other processes, the
// thread would wait five times as long, and with it the replica's readiness and every
// stop-the-world of its runtime (see atIdlePriority). A failure is ignored: the fingerprint is
// the same at any priority; computed at normal priority it only takes more from the neighbours.
func lowerThreadPriority() {
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), idleNice)
}

// isMainThread reports whether the calling thread is the process's main thread, whose thread
// ID is the process ID.
func isMainThread() bool {
	return unix.Gettid() == unix.Getpid()
}
