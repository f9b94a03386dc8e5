package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/schemagate/schemagate/lock"
)

// PresencePath is the presence file beside the lock file at lockPath: the replicas that show
// themselves to the fleet, each with its process, so that the entry of a process that ended
// counts no longer, whoever reads it.
func PresencePath(lockPath string) string { return lockPath + ".presence" }

// maxPresenceSize bounds what a presence file of schemagate's holds: a few hundred replicas.
const maxPresenceSize = 1 << 20

const presenceAbout = "schemagate replicas using this SQLite database, each while its process runs; " +
	"entries of processes that ended are ignored, and dropped by the next replica that shows itself"

// presenceFile is what the presence file holds.
type presenceFile struct {
	About    string          `json:"about"`
	Replicas []presenceEntry `json:"replicas"`
}

// presenceEntry is one replica's entry, with the process it lives as long as.
type presenceEntry struct {
	lock.Member
	PID int `json:"pid"`
	// Start names the process's start (processStart), Machine the host it runs on.
	Start   string `json:"process_start"`
	Machine string `json:"machine"`
}

var _ lock.Presence = (*Locker)(nil)

// Show publishes this replica's entry in the presence file, replacing the one it showed before,
// and drops the entries of processes that ended. The file is replaced whole (written beside it,
// then renamed over it), under a flock that replicas showing themselves at once take in turn;
// readers take no lock.
func (l *Locker) Show(_ context.Context, m lock.Member) error {
	path := PresencePath(l.path)
	f, err := l.lockPresence(path)
	if err != nil {
		return err
	}
	defer f.Close() // drops the flock, after the rename
	pf, err := readPresence(f, path)
	if err != nil {
		return err
	}
	env := l.guard.env
	pid := env.pid()
	start, _ := env.process(pid)
	machine := env.machine().ID
	me := presenceEntry{Member: m, PID: pid, Start: start, Machine: machine}
	me.Fingerprints = maps.Clone(m.Fingerprints)
	kept := []presenceEntry{me}
	for _, e := range pf.Replicas {
		if e.Replica != m.Replica && l.alive(e, machine) {
			kept = append(kept, e)
		}
	}
	slices.SortFunc(kept, func(a, b presenceEntry) int { return strings.Compare(a.Replica, b.Replica) })
	b, err := json.MarshalIndent(presenceFile{About: presenceAbout, Replicas: kept}, "", "  ")
	if err != nil {
		return err
	}
	if err := replaceFile(path, append(b, '\n'), env.rename); err != nil {
		return fmt.Errorf("write presence file %s: %w", path, err)
	}
	return nil
}

// lockPresence opens the presence file (creating it when missing) and takes its flock. A
// replica that showed itself meanwhile renamed a new file over the one locked: then the new
// one is locked instead, until the file locked is the file at path.
func (l *Locker) lockPresence(path string) (*os.File, error) {
	for {
		f, _, err := openOrCreate(path)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		var locked, current unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &locked); err != nil {
			f.Close()
			return nil, fmt.Errorf("stat %s: %w", path, err)
		}
		if err := unix.Lstat(path, &current); err == nil && current.Ino == locked.Ino && current.Dev == locked.Dev {
			return f, nil
		}
		f.Close()
	}
}

// Fleet lists the entries of the replicas whose processes run now, by replica. It only reads: a
// missing presence file lists nobody. Entries are this host's: a reader on another host (check
// and status may run anywhere) cannot tell whether their processes run, and lists nobody.
func (l *Locker) Fleet(context.Context) ([]lock.Member, error) {
	path := PresencePath(l.path)
	f, err := openRegular(path, unix.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pf, err := readPresence(f, path)
	if err != nil {
		return nil, err
	}
	machine := l.guard.env.machine().ID
	var out []lock.Member
	for _, e := range pf.Replicas {
		if l.alive(e, machine) {
			out = append(out, e.Member)
		}
	}
	return out, nil
}

// alive reports whether e's process runs: the same process (pid and start) on machine, this one.
func (l *Locker) alive(e presenceEntry, machine string) bool {
	if e.Machine != machine {
		return false
	}
	start, running := l.guard.env.process(e.PID)
	return running && start == e.Start
}

// readPresence reads a presence file; an empty one holds nobody. Anything but schemagate's
// presence JSON is refused, as a lock file holding other data is.
func readPresence(f *os.File, path string) (presenceFile, error) {
	var pf presenceFile
	if err := readOwn(f, path, "presence file", "replicas", maxPresenceSize, &pf); err != nil {
		return presenceFile{}, err
	}
	return pf, nil
}
