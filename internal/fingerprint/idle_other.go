//go:build !linux

package fingerprint

// lowerThreadPriority does nothing outside Linux, where setting a thread's priority is not
// portable (setpriority applies to the whole process on the BSDs and macOS). The fingerprint
// is computed at normal priority there.
func lowerThreadPriority() {}

// isMainThread is false outside Linux: with the priority untouched, the main thread may compute.
func isMainThread() bool { return false }
