package command

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reaperAttr starts the reaper as the leader of a process group of its own, and has the kernel
// send it killSignal when this process dies (belt and braces with the life pipe).
func reaperAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: killSignal}
}

// becomeSubreaper makes this process the parent of its descendants' orphans
// (PR_SET_CHILD_SUBREAPER), so that a daemon the command leaves behind stays in reach.
func becomeSubreaper() error { return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }
