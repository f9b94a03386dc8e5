package fingerprint

import "runtime"

// atIdlePriority runs f on an OS thread of its own at the lowest priority, nice 19 (on Linux;
// elsewhere at normal priority), and waits for it. A fingerprint is tens of milliseconds of
// CPU that nobody waits for yet (a replica computes it while it connects and waits for the
// migrator), so it should use only CPU that the migrator, the database and the app leave idle.
//
// The goroutine locks itself to its thread and exits without unlocking it: the Go runtime then
// ends that thread instead of giving it to another goroutine. An unprivileged process cannot
// raise a thread's priority again once lowered, so this is what keeps the low priority from
// reaching the replica's other goroutines. f must not start goroutines for its work: they
// would run on other threads, at normal priority.
//
// The cost: while the thread holds one of the runtime's Ps, every stop-the-world (a garbage
// collection's start and end) waits for it to be scheduled. When other processes of the same
// cgroup keep the CPU busy, a nice-19 thread runs only now and then, so the fingerprint takes
// seconds instead of milliseconds and the replica stalls at each collection meanwhile (two busy
// loops beside 20 processes computing one each, on two cores: fingerprints of 25 s instead of
// 1.3 s, stalls of up to 0.85 s). Where nothing else saturates the CPU, as in a herd of
// replicas waiting for their migrator, it takes what is idle.
//
// The main thread is the exception: the runtime does not end it but parks it for good, and
// ps and top show a process's priority as its main thread's. A goroutine that finds itself
// there holds the thread and has the work done by another goroutine, which therefore runs
// elsewhere; then it lets the thread go, its priority untouched.
func atIdlePriority(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if isMainThread() {
			atIdlePriority(f)
			runtime.UnlockOSThread()
			return
		}
		lowerThreadPriority()
		f()
	}()
	<-done
}
