package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSQLiteOtherHost: a SQLite file takes writes from one host only. A replica of a newer
// release on another machine (another SCHEMAGATE_MACHINE_ID) finds the schema behind and would
// migrate; it is refused with exit code 2, saying why and what to use instead, and leaves the
// database file as it was. A replica on the first machine, under another host name (a container
// restarted on the same node), migrates.
func TestSQLiteOtherHost(t *testing.T) {
	d := newSQLite(t)
	first := start(t, "web-1", d.args("migrate", writeMigrations(t, migrationSet{N: 2, SQLite: true})),
		"SCHEMAGATE_MACHINE_ID=node-a")
	if code := first.wait(t, time.Minute); code != 0 {
		t.Fatalf("the first host: exit %d\n%s", code, first.output())
	}
	d.db.Close() // the test's own connection: nothing but the replicas opens the file from here on
	before := fileState(t, d.path)

	// The same release on the other host finds the schema ready, but would serve an app that
	// writes to the file from there: refused all the same, before it reads anything. A check
	// and a status, which only read, are not refused.
	same := start(t, "web-3", d.args("migrate", writeMigrations(t, migrationSet{N: 2, SQLite: true})), "SCHEMAGATE_MACHINE_ID=node-b")
	if code := same.wait(t, time.Minute); code != 2 {
		t.Fatalf("a replica on another host, schema ready: exit %d, want 2\n%s", code, same.output())
	}
	for _, cmd := range []string{"check", "status"} {
		r := start(t, cmd, d.args(cmd, writeMigrations(t, migrationSet{N: 2, SQLite: true})), "SCHEMAGATE_MACHINE_ID=node-b")
		if code := r.wait(t, time.Minute); code != 0 {
			t.Errorf("%s on another host: exit %d, want 0\n%s", cmd, code, r.output())
		}
	}

	newer := writeMigrations(t, migrationSet{N: 3, SQLite: true})
	other := start(t, "web-2", d.args("migrate", newer), "SCHEMAGATE_MACHINE_ID=node-b")
	if code := other.wait(t, time.Minute); code != 2 {
		t.Fatalf("a replica on another host: exit %d, want 2\n%s", code, other.output())
	}
	if out := other.output(); !containsAll(out, "the SQLite database", "is used from another host (",
		"SQLite cannot take writes from several hosts; use PostgreSQL") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}
	if after := fileState(t, d.path); after != before {
		t.Errorf("the refused replica changed the database directory:\nbefore %s\nafter  %s", before, after)
	}

	again := start(t, "web-1-restarted", d.args("migrate", newer), "SCHEMAGATE_MACHINE_ID=node-a")
	if code := again.wait(t, time.Minute); code != 0 {
		t.Fatalf("the first host, restarted under another host name: exit %d\n%s", code, again.output())
	}
	d.db = openSQLite(t, d.path)
	d.assertAppliedOnce(t, 3)
}

// fileState describes the database file (its bytes and modification time) and the files
// SQLite would leave beside it while writing (journal, WAL).
func fileState(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var side []string
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); err == nil {
			side = append(side, filepath.Base(path+suffix))
		}
	}
	return fmt.Sprintf("sha256 %x, modified %s, beside it: %q", sha256.Sum256(b), fi.ModTime(), side)
}
