//go:build !linux

package file

import (
	"errors"

	"golang.org/x/sys/unix"
)

// processStart knows no start time here: a process with the pid runs, or none does.
func processStart(pid int) (start string, alive bool) {
	err := unix.Kill(pid, 0)
	return "", err == nil || errors.Is(err, unix.EPERM)
}
