package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/lock"
)

// clock is a settable time for the host guard.
type clock struct{ now time.Time }

func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

// onHost is a locker on path as a replica on the machine whose id is machine and whose host
// name is host, on a local filesystem, at the time c says.
func onHost(path, machine, host string, c *clock) *Locker {
	l := New(path, "replica-on-"+host).ForDatabase(strings.TrimSuffix(path, ".schemagate-lock"))
	l.guard.env.machineID = machine
	l.guard.env.allowNetworkFS = ""
	l.guard.env.hostname = func() (string, error) { return host, nil }
	l.guard.env.now = func() time.Time { return c.now }
	l.guard.env.filesystem = func(string) (string, error) { return "0xef53", nil } // ext4
	return l
}

func lockPath(t *testing.T) string { return filepath.Join(t.TempDir(), "app.db.schemagate-lock") }

// TestOtherHostRefused: a replica on a second machine is refused, exit code 2, naming the host
// seen; it neither takes the lock, nor creates the lock file, nor records itself, so the first
// host is not locked out by it.
func TestOtherHostRefused(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	web1 := onHost(path, "machine-one", "web-1", c)
	if _, err := web1.Holder(ctx); err != nil {
		t.Fatalf("the first host: %v", err)
	}
	c.advance(40 * time.Second)
	web2 := onHost(path, "machine-two", "web-2", c)

	_, err := web2.Holder(ctx)
	var other *OtherHostError
	if !errors.As(err, &other) {
		t.Fatalf("Holder on another host: %v, want an *OtherHostError", err)
	}
	if other.Other.Name != "web-1" || other.This.Name != "web-2" || other.Ago != 40*time.Second {
		t.Errorf("refusal: %+v", other)
	}
	if code := schemagate.ExitCodeOf(err); code != schemagate.ExitInvalidInput {
		t.Errorf("exit code %d, want 2", code)
	}
	if !errors.Is(err, ErrSeveralHosts) {
		t.Errorf("%v does not wrap ErrSeveralHosts", err)
	}
	for _, want := range []string{"the SQLite database " + strings.TrimSuffix(path, ".schemagate-lock") +
		" is used from another host (web-1, machine ", "seen 40s ago", "remove " + RecordPath(path),
		"SQLite cannot take writes from several hosts; use PostgreSQL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if _, err := web2.TryAcquire(ctx); !errors.As(err, &other) {
		t.Errorf("TryAcquire on another host: %v, want an *OtherHostError", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused replica created the lock file: %v", err)
	}
	if rec, _ := readRecord(RecordPath(path)); len(rec.Hosts) != 1 || rec.Hosts[0].Host != "web-1" {
		t.Errorf("host record %+v, want web-1 alone", rec)
	}
	c.advance(time.Minute)
	if _, err := web1.TryAcquire(ctx); err != nil {
		t.Errorf("the first host after the refusal: %v", err)
	}
}

// TestSameMachineNewHostName: a container restarted on the same node gets a new host name but
// keeps the machine id: it is the same host, and it is let through.
func TestSameMachineNewHostName(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if _, err := onHost(path, "node-a", "app-7d9f-x2k4q", c).TryAcquire(ctx); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Minute)
	if _, err := onHost(path, "node-a", "app-7d9f-p8m2z", c).Holder(ctx); err != nil {
		t.Errorf("the same machine under a new host name: %v", err)
	}
}

// TestSightingExpires: a host not seen for an hour no longer keeps others out (a pod
// rescheduled after its node is gone), and one seen just under an hour ago still does.
func TestSightingExpires(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if _, err := onHost(path, "node-a", "web-1", c).Holder(ctx); err != nil {
		t.Fatal(err)
	}
	c.advance(hostWindow - time.Second)
	if _, err := onHost(path, "node-b", "web-2", c).Holder(ctx); !errors.As(err, new(*OtherHostError)) {
		t.Fatalf("just inside the window: %v, want refused", err)
	}
	c.advance(2 * time.Second)
	if _, err := onHost(path, "node-b", "web-2", c).Holder(ctx); err != nil {
		t.Fatalf("after the window: %v, want let through", err)
	}
	if rec, _ := readRecord(RecordPath(path)); len(rec.Hosts) != 1 || rec.Hosts[0].Host != "web-2" {
		t.Errorf("host record %+v, want the expired web-1 dropped", rec)
	}
}

// TestRunningReplicaRenews: a host whose replica keeps running keeps others out for as long as
// it runs: a waiter renews its sighting by using the lock, a migrator by announcing progress.
func TestRunningReplicaRenews(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"waiter", "migrator"} {
		t.Run(how, func(t *testing.T) {
			path := lockPath(t)
			c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			web1 := onHost(path, "node-a", "web-1", c)
			lease, err := web1.TryAcquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c.advance(50 * time.Minute)
			if how == "waiter" {
				_, err = web1.Holder(ctx)
			} else {
				err = lease.Announce(ctx, nil, lock.Event{Kind: lock.EventApplied, Version: 1})
			}
			if err != nil {
				t.Fatal(err)
			}
			c.advance(30 * time.Minute) // 80 minutes after web-1 started, 30 after it was last seen
			if _, err := onHost(path, "node-b", "web-2", c).Holder(ctx); !errors.As(err, new(*OtherHostError)) {
				t.Errorf("another host while web-1 runs: %v, want refused", err)
			}
		})
	}
}

// TestReaderOnAnotherHost: a replica that only reads (check, status) may read the holder from
// another host; it is neither refused nor recorded, so that it does not keep a writer out.
func TestReaderOnAnotherHost(t *testing.T) {
	ctx := context.Background()
	path := lockPath(t)
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if err := onHost(path, "node-a", "web-1", c).Admit(); err != nil {
		t.Fatal(err)
	}
	if _, err := onHost(path, "node-b", "status", c).Reader().Holder(ctx); err != nil {
		t.Errorf("a reader on another host: %v, want let through", err)
	}
	if err := onHost(path, "node-a", "web-2", c).Admit(); err != nil {
		t.Errorf("a writer on the first host after a reader on another: %v, want admitted", err)
	}
}

// TestOtherHostWritesMeanwhile: two hosts start at once, and the other host's record lands
// just after this one's. Reading the record back, this host sees the other and is refused,
// rather than both going ahead with each one's record naming only itself.
func TestOtherHostWritesMeanwhile(t *testing.T) {
	path := lockPath(t)
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	web1 := onHost(path, "node-a", "web-1", c)
	web1.guard.env.rename = func(oldpath, newpath string) error {
		if err := os.Rename(oldpath, newpath); err != nil {
			return err
		}
		// web-2 read the record before web-1's landed, and now replaces it with its own.
		return writeRecord(newpath, hostRecord{}.see(Machine{ID: "b", Name: "web-2"}, c.now), os.Rename)
	}
	if err := web1.Admit(); !errors.As(err, new(*OtherHostError)) {
		t.Errorf("Admit: %v, want web-1 refused on reading web-2's record back", err)
	}
}

// TestNetworkFilesystemRefused: a database on a network filesystem is refused, exit code 2,
// unless SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS says one host alone uses it; local filesystems,
// 9p and FUSE filesystems not known to be remote are let through.
func TestNetworkFilesystemRefused(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		fs, allow string
		refused   bool
	}{
		{fs: "nfs", refused: true},
		{fs: "nfs4", refused: true},
		{fs: "cifs", refused: true},
		{fs: "smb2", refused: true},
		{fs: "ceph", refused: true},
		{fs: "fuse.sshfs", refused: true},
		{fs: "fuse.glusterfs", refused: true},
		{fs: "nfs", allow: "1"},
		{fs: "nfs", allow: "0", refused: true},
		{fs: "0xef53"},
		{fs: "9p"},
		{fs: "fuse"},
		{fs: "fuse.grpcfuse"},
		{fs: "virtiofs"},
	}
	for _, tc := range cases {
		t.Run(tc.fs+"/"+tc.allow, func(t *testing.T) {
			path := lockPath(t)
			l := onHost(path, "node-a", "web-1", &clock{now: time.Now()})
			l.guard.env.filesystem = func(dir string) (string, error) {
				if dir == filepath.Dir(path) {
					return tc.fs, nil
				}
				return "0xef53", nil
			}
			l.guard.env.allowNetworkFS = tc.allow
			_, err := l.TryAcquire(ctx)
			var nfs *NetworkFSError
			if refused := errors.As(err, &nfs); refused != tc.refused {
				t.Fatalf("TryAcquire: %v; want refused %v", err, tc.refused)
			}
			if tc.refused && (schemagate.ExitCodeOf(err) != schemagate.ExitInvalidInput ||
				!strings.Contains(err.Error(), "is on "+tc.fs) || !errors.Is(err, ErrSeveralHosts)) {
				t.Errorf("refusal %q: exit code %d", err, schemagate.ExitCodeOf(err))
			}
			if !tc.refused && err != nil {
				t.Errorf("TryAcquire: %v", err)
			}
		})
	}
}

// TestDatabaseElsewhere: with the lock file on a local disk and the database on NFS, the
// database's filesystem decides.
func TestDatabaseElsewhere(t *testing.T) {
	path := lockPath(t)
	l := onHost(path, "node-a", "web-1", &clock{now: time.Now()}).ForDatabase("/mnt/nfs/app.db")
	l.guard.env.filesystem = func(p string) (string, error) {
		if strings.HasPrefix(p, "/mnt/nfs") {
			return "nfs", nil
		}
		return "0xef53", nil
	}
	if err := l.Admit(); !errors.As(err, new(*NetworkFSError)) || !strings.Contains(err.Error(), "/mnt/nfs/app.db") {
		t.Errorf("Admit: %v, want the database on NFS refused", err)
	}
}

func TestBadAllowNetworkFS(t *testing.T) {
	l := onHost(lockPath(t), "node-a", "web-1", &clock{now: time.Now()})
	l.guard.env.allowNetworkFS = "yes please"
	err := l.Admit()
	if err == nil || schemagate.ExitCodeOf(err) != schemagate.ExitInvalidInput ||
		!strings.Contains(err.Error(), `SCHEMAGATE_SQLITE_ALLOW_NETWORK_FS: "yes please"`) {
		t.Errorf("Admit: %v (exit code %d), want the setting refused with exit code 2", err, schemagate.ExitCodeOf(err))
	}
}

// TestRecordNotOurs: a file where the host record goes that is not one (other data, a symbolic
// link) is refused, exit code 2, and left as it was.
func TestRecordNotOurs(t *testing.T) {
	ctx := context.Background()
	for what, make := range map[string]func(record, victim string) error{
		"other data":    func(record, _ string) error { return os.WriteFile(record, []byte("not yours\n"), 0o644) },
		"symbolic link": func(record, victim string) error { return os.Symlink(victim, record) },
	} {
		t.Run(what, func(t *testing.T) {
			path := lockPath(t)
			victim := filepath.Join(filepath.Dir(path), "victim")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := make(RecordPath(path), victim); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(RecordPath(path))
			_, err := onHost(path, "node-a", "web-1", &clock{now: time.Now()}).Holder(ctx)
			if err == nil || schemagate.ExitCodeOf(err) != schemagate.ExitInvalidInput {
				t.Fatalf("Holder: %v, want refused with exit code 2", err)
			}
			if after, _ := os.ReadFile(RecordPath(path)); string(after) != string(before) {
				t.Errorf("the record path changed: %q", after)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
				t.Errorf("the link's target changed: %q", b)
			}
		})
	}
}

// TestMachineID: where the machine's id comes from, and that only a hash of it is recorded.
func TestMachineID(t *testing.T) {
	const machineID, dbusID, bootID = "4a1f8b2c9d3e4f5a6b7c8d9e0f1a2b3c", "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a",
		"40facb5d-352f-4f23-ac36-4ed0854ff443"
	files := func(present map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if s, ok := present[p]; ok {
				return []byte(s + "\n"), nil
			}
			return nil, os.ErrNotExist
		}
	}
	all := map[string]string{"/etc/machine-id": machineID, "/var/lib/dbus/machine-id": dbusID,
		"/proc/sys/kernel/random/boot_id": bootID}
	id := func(override string, present map[string]string, host string) Machine {
		return environment{machineID: override, readFile: files(present),
			hostname: func() (string, error) { return host, nil }}.machine()
	}
	want := func(raw string) string { return id(raw, nil, "h").ID }
	cases := []struct {
		name    string
		got     Machine
		wantRaw string
	}{
		{"override first", id("node-7", all, "web-1"), "node-7"},
		{"machine-id", id("", all, "web-1"), machineID},
		{"uninitialized machine-id", id("", map[string]string{"/etc/machine-id": "uninitialized",
			"/var/lib/dbus/machine-id": dbusID}, "web-1"), dbusID},
		{"D-Bus's", id("", map[string]string{"/var/lib/dbus/machine-id": dbusID,
			"/proc/sys/kernel/random/boot_id": bootID}, "web-1"), dbusID},
		{"boot id in a container", id("", map[string]string{"/proc/sys/kernel/random/boot_id": bootID}, "web-1"), bootID},
		{"host name last", id("", nil, "web-1"), "hostname:web-1"},
	}
	for _, tc := range cases {
		if tc.got.ID != want(tc.wantRaw) || tc.got.Name != "web-1" {
			t.Errorf("%s: %+v, want the id of %q", tc.name, tc.got, tc.wantRaw)
		}
		if len(tc.got.ID) != 16 || strings.Contains(tc.got.ID, tc.wantRaw) {
			t.Errorf("%s: id %q is not 16 hex digits of a hash", tc.name, tc.got.ID)
		}
	}
	if a, b := id("", all, "app-x2k4q"), id("", all, "app-p8m2z"); a.ID != b.ID {
		t.Errorf("a new host name changed the machine: %s, %s", a.ID, b.ID)
	}
	if want(machineID) == want(dbusID) {
		t.Error("two ids hash alike")
	}
}
