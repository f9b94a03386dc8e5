package file

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// processStartOf reads the process's start time (field 22 of /proc/<pid>/stat, in clock ticks
// since boot) and the boot id: together they name one process of one boot.
func processStartOf(pid int) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	// The command name, field 2, is in parentheses and may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return "", false
	}
	fields := strings.Fields(string(b[end+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return "", false // a zombie has ended: only its exit status is left for its parent
	}
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(boot)) + "/" + fields[19], true
}
