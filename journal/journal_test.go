package journal_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// TestFencedWrites: a fenced journal writes only while its fence passes; a migrator that lost
// the election without knowing writes nothing.
func TestFencedWrites(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "j.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	j := journal.New(db, journal.SQLite, journal.DefaultTable, "ns")
	if err := j.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	held := true
	fenceCalls := 0
	fenced := j.Fenced(func(ctx context.Context, tx lock.Execer) error {
		fenceCalls++
		if !held {
			return lock.ErrLost
		}
		return nil
	})
	id, err := fenced.StartRun(ctx, "web-1", "set", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	held = false
	if err := fenced.FinishRun(ctx, id, journal.Failed, nil, "boom"); !errors.Is(err, lock.ErrLost) {
		t.Errorf("a write after the loss: %v, want ErrLost", err)
	}
	if _, err := fenced.Abandon(ctx); !errors.Is(err, lock.ErrLost) {
		t.Errorf("Abandon after the loss: %v, want ErrLost", err)
	}
	run, err := j.LastRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if run.Outcome != journal.Running || fenceCalls != 3 {
		t.Errorf("run is %s after %d fence calls; the writes after the loss went through", run.Outcome, fenceCalls)
	}
	// The unfenced journal is untouched by the fence.
	if err := j.FinishRun(ctx, id, journal.Succeeded, nil, ""); err != nil {
		t.Fatal(err)
	}
}
