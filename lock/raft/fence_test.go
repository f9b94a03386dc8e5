package raft

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/lock"
)

// TestFenceOnPostgres: each new leader takes a newer epoch; a transaction carrying an older one
// is refused; and a check holds the fence row until its transaction ends, so that a new leader's
// bump cannot slip between a stale leader's check and its commit.
func TestFenceOnPostgres(t *testing.T) {
	db, err := sql.Open("pgx", pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	f, err := newFence(db, "postgres", DefaultFenceTable, "app/goose_db_version")
	if err != nil {
		t.Fatal(err)
	}
	old, err := f.bump(ctx, "replica-a")
	if err != nil || old != 1 {
		t.Fatalf("first epoch %d, %v", old, err)
	}

	// The old leader checks inside its migration transaction and has not committed yet.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.check(ctx, tx, old); err != nil {
		t.Fatalf("the current epoch was refused: %v", err)
	}
	bumped := make(chan int64, 1)
	go func() {
		e, err := f.bump(ctx, "replica-b")
		if err != nil {
			t.Error(err)
		}
		bumped <- e
	}()
	select {
	case <-bumped:
		t.Fatal("a new leader took an epoch while the old one's checked transaction was open")
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if e := <-bumped; e != 2 {
		t.Fatalf("second epoch %d", e)
	}

	// From now on the old leader's transactions are refused.
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := f.check(ctx, tx, old); !errors.Is(err, lock.ErrLost) {
		t.Fatalf("a stale epoch: %v, want ErrLost", err)
	}
	if _, err := newFence(db, "postgres", "bad name;", "x"); err == nil {
		t.Error("a bad table name was accepted")
	}
}
