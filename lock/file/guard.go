package file

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/schemagate/schemagate"
)

// ErrSeveralHosts is the reason the host guard gives for every refusal. OtherHostError and
// NetworkFSError wrap it.
var ErrSeveralHosts = errors.New("SQLite cannot take writes from several hosts; use PostgreSQL")

// OtherHostError refuses a replica because the host record saw another host use the database
// less than an hour ago. Exit code 2: the deployment must change, retrying does not help.
type OtherHostError struct {
	// Database is the SQLite file, or "" when the locker was not told (ForDatabase).
	Database string
	// LockFile is the lock file, and Record the host record beside it.
	LockFile, Record string
	// Other is the host seen, Seen when, and Ago how long before the refusal.
	Other Machine
	Seen  time.Time
	Ago   time.Duration
	// This is the host refused.
	This Machine
}

func (e *OtherHostError) Error() string {
	return fmt.Sprintf("%s is used from another host (%s, machine %s, seen %s ago; this is %s, machine %s; "+
		"if the database was moved here on purpose, remove %s): %v", describe(e.Database, e.LockFile),
		e.Other.Name, e.Other.ID, max(e.Ago, 0).Round(time.Second), e.This.Name, e.This.ID, e.Record, ErrSeveralHosts)
}

func (e *OtherHostError) Unwrap() error                 { return ErrSeveralHosts }
func (e *OtherHostError) ExitCode() schemagate.ExitCode { return schemagate.ExitInvalidInput }

// NetworkFSError refuses a database, or its lock file, on a network filesystem
// (networkFilesystem lists them). Exit code 2.
type NetworkFSError struct {
	// Database is the SQLite file, or "" when the locker was not told (ForDatabase).
	Database, LockFile string
	// Path is what is on the network filesystem: the database, or the lock file's directory.
	Path string
	// Filesystem is its type, as mountinfo names it: "nfs", "cifs", "fuse.sshfs".
	Filesystem string
}

func (e *NetworkFSError) Error() string {
	return fmt.Sprintf("%s is on a network filesystem (%s is on %s), where file locks do not hold across hosts "+
		"(if only this one host uses it, set SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS=1): %v",
		describe(e.Database, e.LockFile), e.Path, e.Filesystem, ErrSeveralHosts)
}

func (e *NetworkFSError) Unwrap() error                 { return ErrSeveralHosts }
func (e *NetworkFSError) ExitCode() schemagate.ExitCode { return schemagate.ExitInvalidInput }

// inputError is a setting or a file beside the database that must change: exit code 2.
type inputError struct{ error }

func (e inputError) Unwrap() error                 { return e.error }
func (e inputError) ExitCode() schemagate.ExitCode { return schemagate.ExitInvalidInput }

func describe(database, lockFile string) string {
	if database != "" {
		return "the SQLite database " + database
	}
	return "the SQLite database locked by " + lockFile
}

// guard keeps a SQLite database to one host: it refuses a database on a network filesystem,
// and a replica on another host than the one the host record saw within the hour, and it
// records this host.
type guard struct {
	env      environment
	lockFile string
	database string

	mu sync.Mutex
	// admitted is when the guard last let this replica through.
	admitted time.Time
}

// admit lets this replica use the database or refuses it, and records its host. It reads the
// record at most every recheckEvery.
func (g *guard) admit() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.env.now()
	if !g.admitted.IsZero() && now.Sub(g.admitted) < recheckEvery {
		return nil
	}
	if err := g.checkFilesystems(); err != nil {
		return err
	}
	if err := g.checkHosts(now); err != nil {
		return err
	}
	g.admitted = now
	return nil
}

// renew renews this host's sighting for a migrator, which uses nothing but its lease while it
// migrates. It never refuses: a migrator does not stop midway for the record. Failing to write
// costs only the renewal, which the next one retries.
func (g *guard) renew() {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.env.now()
	if now.Sub(g.admitted) < recheckEvery {
		return
	}
	path := RecordPath(g.lockFile)
	rec, err := readRecord(path)
	me := g.env.machine()
	if err == nil && now.Sub(rec.seen(me.ID)) >= refreshEvery {
		err = writeRecord(path, rec.see(me, now), g.env.rename)
	}
	if err == nil {
		g.admitted = now
	}
}

// checkFilesystems refuses a lock file or database on a network filesystem, unless
// SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS says that only this host uses it. A directory that cannot
// be looked at is let through: opening the files there says why.
func (g *guard) checkFilesystems() error {
	allow := false
	if v := g.env.allowNetworkFS; v != "" {
		var err error
		if allow, err = strconv.ParseBool(v); err != nil {
			return inputError{fmt.Errorf("SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS: %q must be 1 or 0 (true or false)", v)}
		}
	}
	paths := []string{filepath.Dir(g.lockFile)}
	if g.database != "" {
		paths = append(paths, g.database, filepath.Dir(g.database)) // the file, wherever a link leads
	}
	for _, p := range paths {
		fs, err := g.env.filesystem(p)
		if err == nil && networkFilesystem(fs) && !allow {
			return &NetworkFSError{Database: g.database, LockFile: g.lockFile, Path: p, Filesystem: fs}
		}
	}
	return nil
}

// checkHosts refuses this replica when the host record saw another host within hostWindow, and
// otherwise records this host, unless it did so less than refreshEvery ago. A replica that
// cannot write beside the database records nothing (SQLite will not take its writes either),
// and is still refused if another host is recorded.
func (g *guard) checkHosts(now time.Time) error {
	me := g.env.machine()
	path := RecordPath(g.lockFile)
	rec, err := readRecord(path)
	if err != nil {
		return inputError{err}
	}
	if s, ok := rec.other(me.ID, now); ok {
		return g.otherHost(me, s, now)
	}
	if now.Sub(rec.seen(me.ID)) < refreshEvery {
		return nil
	}
	if err := writeRecord(path, rec.see(me, now), g.env.rename); err != nil {
		if cannotWrite(err) {
			return nil
		}
		return err
	}
	// Another host may have written between the read and the rename: look again. Of two
	// hosts starting at once, the one whose record the other replaced is refused here, unless
	// each read its record back before the other renamed its own; the record is a guard
	// against a deployment's mistake, not a lock.
	if rec, err = readRecord(path); err != nil {
		return inputError{err}
	}
	if s, ok := rec.other(me.ID, now); ok {
		return g.otherHost(me, s, now)
	}
	return nil
}

func (g *guard) otherHost(me Machine, s sighting, now time.Time) error {
	return &OtherHostError{Database: g.database, LockFile: g.lockFile, Record: RecordPath(g.lockFile),
		Other: Machine{ID: s.Machine, Name: s.Host}, Seen: s.Seen, Ago: now.Sub(s.Seen), This: me}
}
