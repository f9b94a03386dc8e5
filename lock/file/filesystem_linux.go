package file

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// magicName names the filesystems statfs(2) tells by their magic number that matter to the
// host guard (linux/magic.h, and the filesystems' own sources for those it does not list), and
// returns "" for the others.
func magicName(magic uint32) string {
	switch magic {
	case 0x6969:
		return "nfs"
	case 0x517b:
		return "smb"
	case 0xff534d42:
		return "cifs"
	case 0xfe534d42:
		return "smb2"
	case 0x00c36400:
		return "ceph"
	case 0x5346414f, 0x6b414653: // kAFS and OpenAFS; kAFS's dynamic root
		return "afs"
	case 0x0bd00bd0:
		return "lustre"
	case 0x01021997:
		return "9p"
	case 0x65735546: // every FUSE filesystem: mountinfo says which
		return "fuse"
	}
	return ""
}

// filesystemOf names the filesystem dir is on: from its statfs magic number, or, for FUSE,
// whose magic number every FUSE filesystem shares, from /proc/self/mountinfo ("fuse.sshfs").
// Filesystems the guard has no opinion on are named by their number ("0xef53").
func filesystemOf(dir string) (string, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return "", err
	}
	name := magicName(uint32(fs.Type))
	if name == "" {
		return fmt.Sprintf("%#x", uint32(fs.Type)), nil
	}
	if name != "fuse" {
		return name, nil
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return name, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return name, nil
	}
	defer f.Close()
	if t := mountType(f, unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))); t != "" {
		return t, nil
	}
	return name, nil
}

// mountType finds the filesystem type of the mount of device major:minor in mountinfo
// (proc(5)): the first field after the " - " separator. Bind mounts of one device share it.
func mountType(mountinfo io.Reader, major, minor uint32) string {
	dev := fmt.Sprintf("%d:%d", major, minor)
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != dev {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				return fields[i+1]
			}
		}
	}
	return ""
}
