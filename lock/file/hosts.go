package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// hostWindow is how long a sighting of a host keeps other hosts out. It covers one rollout
	// (replicas start within minutes of each other) with room to spare; replicas that keep
	// running (serve, waiters, a migrator announcing progress) renew their host's sighting
	// every refreshEvery, so a host whose replicas run keeps others out for as long as they
	// run. A host gone for hostWindow no longer does: a pod rescheduled to another node after
	// its old node is gone starts at most that long after.
	hostWindow = time.Hour
	// refreshEvery is how old this host's sighting may grow before a replica renews it.
	refreshEvery = 5 * time.Minute
	// recheckEvery is how often a locker reads the host record again.
	recheckEvery = time.Minute
	// maxSightings bounds the record: the most recent are kept.
	maxSightings = 16
	// maxRecordSize bounds what a host record of schemagate's holds.
	maxRecordSize = 16 << 10
)

// RecordPath is the host record beside the lock file at lockPath: the hosts that used the
// database recently. Removing it forgets them, for a database moved to another host on purpose.
func RecordPath(lockPath string) string { return lockPath + ".hosts" }

// hostRecord is what the host record holds.
type hostRecord struct {
	About string     `json:"about"`
	Hosts []sighting `json:"hosts"`
}

// sighting is a host that used the database, and when it last did.
type sighting struct {
	Machine string    `json:"machine"`
	Host    string    `json:"host"`
	Seen    time.Time `json:"seen"`
}

const recordAbout = "hosts whose schemagate replicas used this SQLite database recently; " +
	"remove this file if the database was moved to another host on purpose"

// other returns the most recent sighting of a machine other than machine within hostWindow
// before now. A sighting from the future (a clock ahead of this one) is recent.
func (r hostRecord) other(machine string, now time.Time) (sighting, bool) {
	var found sighting
	for _, s := range r.Hosts {
		if s.Machine != machine && now.Sub(s.Seen) < hostWindow && s.Seen.After(found.Seen) {
			found = s
		}
	}
	return found, !found.Seen.IsZero()
}

// seen returns when machine was last seen, or the zero time.
func (r hostRecord) seen(machine string) time.Time {
	for _, s := range r.Hosts {
		if s.Machine == machine {
			return s.Seen
		}
	}
	return time.Time{}
}

// see records m at now, and drops the sightings older than hostWindow.
func (r hostRecord) see(m Machine, now time.Time) hostRecord {
	hosts := []sighting{{Machine: m.ID, Host: m.Name, Seen: now.UTC()}}
	for _, s := range r.Hosts {
		if s.Machine != m.ID && now.Sub(s.Seen) < hostWindow {
			hosts = append(hosts, s)
		}
	}
	slices.SortFunc(hosts, func(a, b sighting) int { return b.Seen.Compare(a.Seen) })
	return hostRecord{About: recordAbout, Hosts: hosts[:min(len(hosts), maxSightings)]}
}

// readRecord reads the host record at path; a missing or empty one holds no host. Anything but
// a regular file holding a record is refused, as the lock file is.
func readRecord(path string) (hostRecord, error) {
	f, err := openRegular(path, unix.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return hostRecord{}, nil
	}
	if err != nil {
		return hostRecord{}, err
	}
	defer f.Close()
	var r hostRecord
	if err := readOwn(f, path, "host record", "hosts", maxRecordSize, &r); err != nil {
		return hostRecord{}, err
	}
	return r, nil
}

// readOwn reads into v a JSON document of schemagate's own, of at most max bytes and holding
// key, from f; an empty file leaves v as it is. Anything else is refused, as a lock file
// holding other data is: schemagate writes only into files of its own.
func readOwn(f io.Reader, path, what, key string, max int, v any) error {
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var raw map[string]json.RawMessage
	if len(b) > max || json.Unmarshal(b, &raw) != nil || raw[key] == nil || json.Unmarshal(b, v) != nil {
		return fmt.Errorf("%s holds other data, not schemagate's %s; "+
			"schemagate writes only into its own (remove this file if nothing needs it)", path, what)
	}
	return nil
}

// writeRecord replaces the host record at path with r.
func writeRecord(path string, r hostRecord, rename func(oldpath, newpath string) error) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := replaceFile(path, append(b, '\n'), rename); err != nil {
		return fmt.Errorf("write host record %s: %w", path, err)
	}
	return nil
}

// replaceFile replaces the file at path with b: written to a new file beside it, then renamed
// over it, so that a reader (on this host or another) sees the old content or the new one,
// never half of one.
func replaceFile(path string, b []byte, rename func(oldpath, newpath string) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	_, err = tmp.Write(b)
	err = errors.Join(err, tmp.Chmod(0o644), tmp.Close())
	if err == nil {
		err = rename(tmp.Name(), path)
	}
	return err
}

// cannotWrite reports whether err is this replica being unable to write beside the database:
// no permission, a read-only filesystem, a directory that does not exist (yet).
func cannotWrite(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EROFS) || errors.Is(err, os.ErrNotExist)
}
