package file

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"time"
)

// Machine is a host as the host record names it.
type Machine struct {
	// ID is the first 16 hex digits of the SHA-256 of "schemagate/" and the machine's id. It
	// stays the same across restarts of the replica and changes of its host name, and does
	// not give the id itself away: machine-id(5) asks that the id be kept confidential.
	ID string
	// Name is the host name, for people. A container's changes with every container.
	Name string
}

// environment is what the host guard reads of the machine it runs on. Tests replace parts.
type environment struct {
	// machineID overrides the machine's id (SCHEMAGATE_MACHINE_ID).
	machineID string
	// allowNetworkFS lets a database on a network filesystem through
	// (SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS).
	allowNetworkFS string
	readFile       func(string) ([]byte, error)
	hostname       func() (string, error)
	// filesystem names the filesystem a directory is on, as mountinfo does.
	filesystem func(dir string) (string, error)
	now        func() time.Time
	// rename puts a new host record or presence file in place.
	rename func(oldpath, newpath string) error
	// pid is this process's id, and process tells whether a process runs and since when
	// (processStart): a presence entry counts while its process runs.
	pid     func() int
	process func(pid int) (start string, alive bool)
}

// systemEnvironment is the machine this process runs on. The two variables are read here, not
// in cmd/schemagate, because they say what machine this is, as /etc/machine-id does: they are
// not settings of a run.
func systemEnvironment() environment {
	return environment{
		machineID:      os.Getenv("SCHEMAGATE_MACHINE_ID"),
		allowNetworkFS: os.Getenv("SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS"),
		readFile:       os.ReadFile,
		hostname:       os.Hostname,
		filesystem:     filesystemOf,
		now:            time.Now,
		rename:         os.Rename,
		pid:            os.Getpid,
		process:        processStart,
	}
}

// machine identifies the host: by SCHEMAGATE_MACHINE_ID when set; else by systemd's or D-Bus's
// machine id; else by the kernel's boot id, which a container shares with every other
// container of its node (containers often have no machine id), and which a reboot changes;
// else, where none of those exist (macOS), by the host name.
//
// The boot id is not combined with the host name: a container's host name is its pod's or
// container's name, so a container restarted on the same node would look like another host.
func (e environment) machine() Machine {
	name, _ := e.hostname()
	id := strings.TrimSpace(e.machineID)
	for _, path := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/random/boot_id"} {
		if id != "" {
			break
		}
		b, err := e.readFile(path)
		if s := strings.TrimSpace(string(b)); err == nil && s != "uninitialized" {
			id = s
		}
	}
	if id == "" {
		id = "hostname:" + name
	}
	sum := sha256.Sum256([]byte("schemagate/" + id))
	return Machine{ID: hex.EncodeToString(sum[:8]), Name: name}
}
