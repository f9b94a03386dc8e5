// Package file elects the migrator with flock(2) on a file: for several workers of one app on
// one host or in one container, such as uvicorn workers sharing a SQLite database.
//
// The kernel releases a flock when the process holding it dies, however it dies, so a crashed
// migrator never leaves a stale lock. The holder writes who it is into the lock file, for Holder
// and for people (cat app.db.lock).
//
// flock does not work across hosts on most network filesystems, and a SQLite database takes
// writes from one host only anyway, so the locker keeps the database to one host (guard.go). It
// refuses a database or lock file on a network filesystem (NFS, SMB, CephFS, sshfs, …). Beside
// the lock file it keeps a host record (RecordPath) of the hosts that used the database in the
// last hour, each named by a hash of its machine id and by its host name, and it refuses a
// replica on another machine than one recorded. Both refusals are exit code 2. The machine id
// is SCHEMAGATE_MACHINE_ID when set, else /etc/machine-id, /var/lib/dbus/machine-id, or the
// kernel's boot id; SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS=1 lets a database on a network
// filesystem through when one host alone uses it.
//
// Beside the lock file, too, the presence file (PresencePath) lists the replicas that show
// themselves to their fleet (lock.Presence), each with its process id and start time, so that
// the entry of a process that ended is ignored by every reader and dropped by the next writer.
//
// The lock path may name something that is not schemagate's. The backend never follows a
// symbolic link, opens only regular files, and writes only into a lock file it created or one
// that holds what it writes (nothing, or a holder's JSON); anything else is refused untouched.
package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/schemagate/schemagate/lock"
)

// pollInterval is how often a waiter checks the lock file. A flock attempt is one system call.
const pollInterval = 50 * time.Millisecond

// DefaultPath is the lock file beside a SQLite database file.
func DefaultPath(database string) string { return database + ".schemagate-lock" }

// Locker is the file-lock backend.
type Locker struct {
	path    string
	replica string
	lease   *lease
	// sawHolder: the last Holder call found the lock held.
	sawHolder bool
	// seen is the lock file's modification time at the last Holder or Wait, for announcements.
	seen time.Time
	// guard keeps the database to one host.
	guard guard
	// reader: the replica only reads (check, status); Holder neither refuses nor records it.
	reader bool
}

var _ lock.Locker = (*Locker)(nil)

// New returns a locker on the file at path (created if missing) for replica.
func New(path, replica string) *Locker {
	return &Locker{path: path, replica: replica, guard: guard{env: systemEnvironment(), lockFile: path}}
}

// ForDatabase names the SQLite file the lock is for, so that the host guard checks the
// filesystem it is on too (the lock file may be elsewhere) and names it when it refuses.
func (l *Locker) ForDatabase(path string) *Locker {
	l.guard.database = path
	return l
}

// Reader marks the replica as one that only reads the database (check, status): Holder then
// neither refuses it on another host nor records its host. It must not take the lock.
func (l *Locker) Reader() *Locker {
	l.reader = true
	return l
}

// Admit refuses this replica, with an *OtherHostError or a *NetworkFSError, when the database
// is on a network filesystem or was used from another host within the hour, and otherwise
// records this host in the host record. TryAcquire and Holder admit first; Admit lets a replica
// be refused before it reads the database.
func (l *Locker) Admit() error {
	if fi, err := os.Lstat(l.path); err == nil && !fi.Mode().IsRegular() {
		return nil // not a lock file: TryAcquire and Holder refuse it, and nothing is written beside it
	}
	return l.guard.admit()
}

// Path is the lock file.
func (l *Locker) Path() string { return l.path }

// holderInfo is what the holder writes into the lock file.
type holderInfo struct {
	Replica string     `json:"replica"`
	PID     int        `json:"pid"`
	Host    string     `json:"host"`
	Machine string     `json:"machine,omitempty"`
	Since   time.Time  `json:"since"`
	Event   lock.Event `json:"last_event,omitzero"`
}

// TryAcquire takes the lock if no other open file description holds it.
func (l *Locker) TryAcquire(context.Context) (lock.Lease, error) {
	if l.lease != nil {
		return nil, errors.New("this replica already holds the lock")
	}
	if err := l.Admit(); err != nil {
		return nil, err
	}
	f, created, err := openOrCreate(l.path)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, lock.ErrHeld
		}
		return nil, fmt.Errorf("flock %s: %w", l.path, err)
	}
	if !created {
		// Under the flock, nobody writes: what the file holds now is what it holds.
		if err := recognise(f, l.path); err != nil {
			f.Close()
			return nil, err
		}
	}
	m := l.guard.env.machine()
	ls := &lease{l: l, f: f,
		info: holderInfo{Replica: l.replica, PID: os.Getpid(), Host: m.Name, Machine: m.ID, Since: time.Now().UTC()}}
	if err := ls.write(); err != nil {
		f.Close()
		return nil, err
	}
	l.lease = ls
	return ls, nil
}

// held reports whether another open file description holds the lock, without taking it, and
// returns what the lock file says.
func (l *Locker) held() (bool, []byte, error) {
	f, err := openRegular(l.path, unix.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		b, _ := io.ReadAll(io.LimitReader(f, maxLockFileSize))
		return true, b, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("flock %s: %w", l.path, err)
	}
	return false, nil, nil // closing f drops the shared lock
}

// Holder reads who holds the lock from the lock file, or returns nil when nobody does.
func (l *Locker) Holder(context.Context) (*lock.Holder, error) {
	if !l.reader {
		if err := l.Admit(); err != nil {
			return nil, err
		}
	}
	l.seen = l.mtime()
	held, b, err := l.held()
	if err != nil {
		return nil, err
	}
	l.sawHolder = held && l.lease == nil // another replica holds it
	if !held {
		return nil, nil
	}
	var info holderInfo
	_ = json.Unmarshal(b, &info)
	if info.PID == 0 {
		// The holder took the flock and has not written who it is yet.
		return &lock.Holder{Name: "(just taken, not yet named)"}, nil
	}
	h := &lock.Holder{Replica: info.Replica, PID: info.PID, Address: info.Host, SessionStart: info.Since}
	h.Name = fmt.Sprintf("pid %d on %s", info.PID, info.Host)
	if info.Event.Kind != "" {
		h.State, h.Query = "active", fmt.Sprintf("%s %d", info.Event.Kind, info.Event.Version)
	}
	return h, nil
}

// Wait polls the lock file until the lock's holder changes (released, or died: the kernel
// releases its flock), the holder announces progress (it rewrites the file), or d passes.
func (l *Locker) Wait(ctx context.Context, d time.Duration) error {
	return l.poll(ctx, d, func() bool {
		held, _, err := l.held()
		return err != nil || held != l.sawHolder
	})
}

// WaitForAnnouncement polls until a migrator announces progress or d passes.
func (l *Locker) WaitForAnnouncement(ctx context.Context, d time.Duration) error {
	return l.poll(ctx, d, func() bool { return false })
}

func (l *Locker) poll(ctx context.Context, d time.Duration, changed func() bool) error {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if m := l.mtime(); !m.Equal(l.seen) {
			l.seen = m
			return nil
		}
		if changed() {
			return nil
		}
	}
	return nil
}

func (l *Locker) mtime() time.Time {
	fi, err := os.Lstat(l.path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// Close releases a lease still held.
func (l *Locker) Close() error {
	if l.lease == nil {
		return nil
	}
	return l.lease.Release(context.Background())
}

// lease is the flock held on an open lock file.
type lease struct {
	l    *Locker
	f    *os.File
	info holderInfo
	lock.Loss
	mu sync.Mutex
}

var _ lock.Lease = (*lease)(nil)

// Fence checks that the file this lease locked is still the lock file: a lock file deleted or
// replaced under a holder would let a second process lock a new one.
func (ls *lease) Fence(context.Context, lock.Execer) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var mine, current unix.Stat_t
	if err := unix.Fstat(int(ls.f.Fd()), &mine); err != nil {
		ls.MarkLost()
		return fmt.Errorf("the lock file is no longer open: %w", lock.ErrLost)
	}
	if err := unix.Lstat(ls.l.path, &current); err != nil || current.Ino != mine.Ino || current.Dev != mine.Dev {
		ls.MarkLost()
		return fmt.Errorf("lock file %s was removed or replaced while held: %w", ls.l.path, lock.ErrLost)
	}
	return nil
}

// Check is Fence: the flock lives as long as the open file, which only has to still be the
// lock file.
func (ls *lease) Check(ctx context.Context) error { return ls.Fence(ctx, nil) }

// Announce rewrites the lock file with the event: waiters watching its modification time wake.
// It also renews this host's sighting in the host record: a migrator alone on its host calls
// nothing else that would while it migrates.
func (ls *lease) Announce(_ context.Context, _ lock.Execer, ev lock.Event) error {
	ls.l.guard.renew()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.info.Event = ev
	return ls.write()
}

func (ls *lease) write() error {
	b, _ := json.Marshal(ls.info)
	if err := ls.f.Truncate(0); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	if _, err := ls.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}

// Release empties the lock file and unlocks it.
func (ls *lease) Release(context.Context) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	defer func() { ls.l.lease = nil }()
	select {
	case <-ls.Lost():
		ls.f.Close()
		return fmt.Errorf("release %s: %w", ls.l.path, lock.ErrLost)
	default:
	}
	_ = ls.f.Truncate(0)
	err := unix.Flock(int(ls.f.Fd()), unix.LOCK_UN)
	cerr := ls.f.Close()
	if errors.Is(err, syscall.EBADF) || errors.Is(cerr, os.ErrClosed) {
		ls.MarkLost()
		return fmt.Errorf("release %s: %w", ls.l.path, lock.ErrLost)
	}
	return errors.Join(err, cerr)
}
