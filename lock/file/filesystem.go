package file

import "strings"

// networkFilesystems are the filesystems a SQLite database is refused on, named as
// /proc/self/mountinfo names them (macOS: as statfs does). On each of them the same files are
// reachable from several hosts, and file locks either do not hold across hosts or hold only
// as well as a lock server and every client's cache allow; SQLite's own documentation advises
// against them.
//
// Left out on purpose:
//   - 9p: WSL 2's Windows drives, QEMU's and gVisor's shares of the host's files, all on one
//     machine;
//   - virtiofs and FUSE filesystems not listed (Docker Desktop's file sharing, bindfs, mergerfs,
//     ntfs-3g): most are local, and the FUSE magic number does not tell them apart; the host
//     record still refuses a second host on them;
//   - GFS2 and OCFS2: shared block devices whose cluster lock managers do make locks hold
//     across hosts; the host record refuses a second host there too.
func networkFilesystem(fstype string) bool {
	switch strings.ToLower(fstype) {
	case "nfs", "nfs4", "smb", "smbfs", "smb2", "smb3", "cifs", "ceph", "afs", "lustre", "afpfs", "webdav",
		"fuse.sshfs", "fuse.glusterfs", "fuse.ceph-fuse", "fuse.s3fs", "fuse.gcsfuse", "fuse.goofys",
		"fuse.mountpoint-s3", "fuse.blobfuse", "fuse.blobfuse2", "fuse.juicefs", "fuse.rclone":
		return true
	}
	return false
}
