//go:build !linux

package command

import (
	"errors"
	"syscall"
)

// reaperAttr starts the reaper as the leader of a process group of its own. Outside Linux the
// kernel cannot tell it of this process's death: the life pipe alone does.
func reaperAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// becomeSubreaper is Linux's alone: elsewhere a daemon that leaves the command's process group
// escapes the reaper.
func becomeSubreaper() error {
	return errors.New("only Linux lets a process adopt its descendants' orphans")
}
