package fingerprint

import "golang.org/x/sys/unix"

// idleNice is the nice value of the thread that computes a fingerprint: the lowest.
const idleNice = 19

// lowerThreadPriority gives the calling thread, and only it, nice 19 and then the SCHED_IDLE
// policy, under which it gets the CPU almost only when no other thread wants it (its weight is
// a fifth of a nice-19 thread's, 1/341 of a nice-0 thread's). On Linux both apply to one
// thread, not to the process. Nice comes first so that where sched_setattr is refused (a
// kernel before 3.14, a seccomp profile), the thread still has the lowest nice. Failures are
// ignored: the fingerprint is the same at any priority; computed at normal priority it only
// takes more from the neighbours.
func lowerThreadPriority() {
	tid := unix.Gettid()
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, idleNice)
	_ = unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE, Nice: idleNice}, 0)
}

// isMainThread reports whether the calling thread is the process's main thread, whose thread
// ID is the process ID.
func isMainThread() bool {
	return unix.Gettid() == unix.Getpid()
}
