package file

import "golang.org/x/sys/unix"

// filesystemOf names the filesystem dir is on, as statfs(2) does ("apfs", "nfs", "smbfs").
func filesystemOf(dir string) (string, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(fs.Fstypename[:]), nil
}
