package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
)

func TestConformance(t *testing.T) {
	paths := map[*testing.T]string{}
	locktest.Run(t, locktest.Backend{
		New: func(t *testing.T, replica string) lock.Locker {
			p, ok := paths[t]
			if !ok {
				p = filepath.Join(t.TempDir(), "app.db.schemagate-lock")
				paths[t] = p
			}
			return New(p, replica)
		},
		// A process that dies has its descriptors closed by the kernel, which drops its flock.
		Kill: func(t *testing.T, l lock.Locker) { l.(*Locker).lease.f.Close() },
		Work: func(*testing.T, lock.Locker) lock.Execer { return nil },
	})
}

// TestFenceNoticesReplacedFile: a lock file deleted and recreated under the holder would let a
// second process lock the new one; the fence notices.
func TestFenceNoticesReplacedFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db.schemagate-lock")
	a := New(path, "a")
	lease, err := a.TryAcquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	b := New(path, "b")
	if _, err := b.TryAcquire(ctx); err != nil {
		t.Fatalf("a second locker could not lock the new file: %v", err)
	}
	if err := lease.Fence(ctx, nil); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("Fence after the file was replaced: %v, want ErrLost", err)
	}
}

// TestHolderReadsTheFile: waiters learn who holds the lock from the file.
func TestHolderReadsTheFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db.schemagate-lock")
	a, b := New(path, "worker-1"), New(path, "worker-2")
	if _, err := a.TryAcquire(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := b.Holder(ctx)
	if err != nil || h == nil || h.Replica != "worker-1" || h.PID != os.Getpid() {
		t.Fatalf("Holder: %+v, %v", h, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if h, err := b.Holder(ctx); err != nil || h != nil {
		t.Fatalf("Holder after release: %+v, %v", h, err)
	}
}

// TestHolderJustTaken: between taking the flock and writing who it is, a holder leaves the file
// empty. A waiter must still see the lock as held, and say so, rather than name "pid 0".
func TestHolderJustTaken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db.schemagate-lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	h, err := New(path, "worker-2").Holder(context.Background())
	if err != nil || h == nil {
		t.Fatalf("Holder: %+v, %v; want the lock held", h, err)
	}
	if h.Name != "(just taken, not yet named)" || h.PID != 0 {
		t.Errorf("Holder: %+v; want it named as just taken", h)
	}
}

// TestRefusesWhatIsNotALockFile: the lock path may name something that is not schemagate's: a
// symbolic link (followed, it would write through to its target), a FIFO (opening it would
// block), a directory, a device, or a file with other content. Each is refused, by Check and by
// TryAcquire, and left as it was. Nothing blocks.
func TestRefusesWhatIsNotALockFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	const content = "precious data, not a lock\n"
	if err := os.WriteFile(victim, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyTarget := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyTarget, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{
		"symbolic link":       filepath.Join(dir, "link.lock"),
		"symbolic link empty": filepath.Join(dir, "link-empty.lock"),
		"dangling link":       filepath.Join(dir, "dangling.lock"),
		"named pipe":          filepath.Join(dir, "fifo.lock"),
		"directory":           filepath.Join(dir, "dir.lock"),
		"device":              "/dev/null",
		"other content":       victim,
	}
	if err := os.Symlink(victim, paths["symbolic link"]); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(emptyTarget, paths["symbolic link empty"]); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), paths["dangling link"]); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(paths["named pipe"], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(paths["directory"], 0o755); err != nil {
		t.Fatal(err)
	}
	for what, path := range paths {
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := Check(path); err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: Check: %v; want it refused naming %s", what, err, path)
			}
			l := New(path, "worker-1")
			if lease, err := l.TryAcquire(ctx); err == nil || errors.Is(err, lock.ErrHeld) {
				t.Errorf("%s: TryAcquire: %v, %v; want it refused", what, lease, err)
				l.Close()
			}
			if _, err := l.Holder(ctx); err == nil && what != "other content" {
				t.Errorf("%s: Holder: no error", what)
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: blocked", what)
		}
	}
	for _, p := range []string{victim, emptyTarget} {
		if b, err := os.ReadFile(p); err != nil || (p == victim) != (string(b) == content) || (p == emptyTarget) != (len(b) == 0) {
			t.Errorf("%s was changed: %q, %v", p, b, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dangling link's target was created: %v", err)
	}
}

// TestReusesItsOwnLockFile: a lock file schemagate wrote before (empty after a release, or
// naming a holder that was killed before it could empty it) is taken again; a missing one is
// created.
func TestReusesItsOwnLockFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	killed := `{"replica":"worker-9","pid":4242,"host":"h","since":"2026-01-02T03:04:05Z","last_event":{"kind":"applying","version":3}}` + "\n"
	for name, content := range map[string]*string{"missing": nil, "empty": new(string), "left by a killed holder": &killed} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".lock")
		if content != nil {
			if err := os.WriteFile(path, []byte(*content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := Check(path); err != nil {
			t.Errorf("%s: Check: %v", name, err)
		}
		l := New(path, "worker-1")
		if _, err := l.TryAcquire(ctx); err != nil {
			t.Errorf("%s: TryAcquire: %v", name, err)
			continue
		}
		if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"replica":"worker-1"`) {
			t.Errorf("%s: the lock file does not name its holder: %q", name, b)
		}
		if err := l.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
}
