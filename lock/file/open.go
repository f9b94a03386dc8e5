package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// maxLockFileSize bounds what a lock file of schemagate's holds: one holder's JSON.
const maxLockFileSize = 4096

// Check refuses a lock path that names something other than a schemagate lock file: a symbolic
// link, a named pipe, a directory, a device, or a file holding other data. A missing file is
// fine: TryAcquire creates it. Check reads, and writes nothing.
func Check(path string) error {
	f, err := openRegular(path, unix.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return recognise(f, path)
}

// openOrCreate opens the lock file for writing, creating it when it is missing; created says
// whether this call made it.
func openOrCreate(path string) (f *os.File, created bool, err error) {
	for {
		f, err = openRegular(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
		if !errors.Is(err, os.ErrExist) {
			return f, err == nil, err
		}
		f, err = openRegular(path, unix.O_RDWR)
		if !errors.Is(err, os.ErrNotExist) {
			return f, false, err // removed in between: try to create it again
		}
	}
}

// openRegular opens path without following a symbolic link and without blocking on a named
// pipe, and refuses anything but a regular file. It looks before it opens, so that a device
// is not opened at all, and checks again what it opened.
func openRegular(path string, flags int) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, notRegular(path, fs.ModeSymlink)
	case err != nil:
		return nil, fmt.Errorf("open lock file: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open lock file: %w", &fs.PathError{Op: "fstat", Path: path, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, notRegular(path, 0)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open lock file: %w", &fs.PathError{Op: "fcntl", Path: path, Err: err})
	}
	return os.NewFile(uintptr(fd), path), nil
}

func notRegular(path string, mode fs.FileMode) error {
	what := "not a regular file"
	switch {
	case mode&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case mode&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case mode.IsDir():
		what = "a directory"
	case mode&fs.ModeDevice != 0:
		what = "a device"
	case mode&fs.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("%s is %s; the file lock takes only a regular file of its own (name another --lock-file)", path, what)
}

// recognise refuses a file that holds anything but what schemagate writes into a lock file:
// nothing (released), or the JSON naming a holder (one that was killed leaves it behind).
func recognise(f *os.File, path string) error {
	b, err := io.ReadAll(io.LimitReader(f, maxLockFileSize+1))
	if err != nil {
		return fmt.Errorf("read lock file %s: %w", path, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var info map[string]json.RawMessage
	if len(b) <= maxLockFileSize && json.Unmarshal(b, &info) == nil && info["pid"] != nil && info["replica"] != nil {
		return nil
	}
	return fmt.Errorf("%s holds other data, not a schemagate lock; the file lock writes only into its own "+
		"lock files (name another --lock-file, or remove this file if nothing needs it)", path)
}
