package file

import (
	"strings"
	"testing"
)

// TestMagicNames: the statfs magic numbers the guard acts on, from linux/magic.h.
func TestMagicNames(t *testing.T) {
	for magic, want := range map[uint32]string{
		0x6969:     "nfs",
		0x517b:     "smb",
		0xff534d42: "cifs",
		0xfe534d42: "smb2",
		0x00c36400: "ceph",
		0x5346414f: "afs",
		0x0bd00bd0: "lustre",
		0x01021997: "9p",
		0x65735546: "fuse",
		0xef53:     "", // ext4
		0x58465342: "", // xfs
		0x01021994: "", // tmpfs
		0x794c7630: "", // overlayfs
	} {
		if got := magicName(magic); got != want {
			t.Errorf("magicName(%#x) = %q, want %q", magic, got, want)
		}
		if want != "" && want != "9p" && want != "fuse" && !networkFilesystem(want) {
			t.Errorf("%s is not refused", want)
		}
	}
	for _, local := range []string{"9p", "fuse", "0xef53"} {
		if networkFilesystem(local) {
			t.Errorf("%s is refused", local)
		}
	}
}

// TestMountType: FUSE filesystems share one magic number; mountinfo tells which one a device is.
func TestMountType(t *testing.T) {
	const mountinfo = `27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
85 27 0:52 / /mnt/remote rw,nosuid,nodev,relatime shared:45 - fuse.sshfs deploy@files:/srv rw,user_id=0,group_id=0
86 27 0:53 / /mnt/docker rw,relatime - fuse.grpcfuse grpcfuse rw
87 27 0:52 /sub /data rw,relatime - fuse.sshfs deploy@files:/srv rw
`
	for dev, want := range map[[2]uint32]string{{0, 52}: "fuse.sshfs", {0, 53}: "fuse.grpcfuse", {254, 0}: "ext4", {0, 99}: ""} {
		if got := mountType(strings.NewReader(mountinfo), dev[0], dev[1]); got != want {
			t.Errorf("mountType(%d:%d) = %q, want %q", dev[0], dev[1], got, want)
		}
	}
}

// TestFilesystemOfLocal: the test's own temporary directory is on a local filesystem.
func TestFilesystemOfLocal(t *testing.T) {
	fs, err := filesystemOf(t.TempDir())
	if err != nil || fs == "" || networkFilesystem(fs) {
		t.Errorf("filesystemOf(a temporary directory) = %q, %v", fs, err)
	}
}
