package file

import "github.com/schemagate/schemagate/internal/proctree"

// processStart identifies a running process by when it started, so that a pid the kernel gave
// to another process since does not pass for the one that showed itself: the boot id and the
// start time in /proc/<pid>/stat. alive is false when no process has the pid, or only its
// zombie is left.
func processStart(pid int) (start string, alive bool) { return proctree.Started(pid) }
