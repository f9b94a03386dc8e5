package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

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
