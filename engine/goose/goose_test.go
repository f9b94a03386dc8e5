package goose_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/engine/goose"
	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/lock"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

var sample = fstest.MapFS{
	"00001_users.sql":  file("-- +goose Up\nCREATE TABLE users (id int);\n-- +goose Down\nDROP TABLE users;\n"),
	"00002_index.sql":  file("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n"),
	"00003_emails.sql": file("-- +goose Up\nALTER TABLE users ADD COLUMN email text;\n"),
	"README.md":        file("not a migration"),
}

func TestPlan(t *testing.T) {
	e, err := goose.New(&sql.DB{}, goose.Options{FS: sample})
	if err != nil {
		t.Fatal(err)
	}
	p := e.Plan()
	if p.Target != 3 || len(p.Migrations) != 3 {
		t.Fatalf("plan: target %d, %d migrations; want 3, 3", p.Target, len(p.Migrations))
	}
	wantTx := []bool{true, false, true}
	for i, m := range p.Migrations {
		if m.Transactional != wantTx[i] {
			t.Errorf("%s: transactional = %v, want %v", m.Name, m.Transactional, wantTx[i])
		}
	}
	other := fstest.MapFS{}
	for k, v := range sample {
		other[k] = v
	}
	other["00003_emails.sql"] = file("-- +goose Up\nALTER TABLE users ADD COLUMN mail text;\n")
	e2, err := goose.New(&sql.DB{}, goose.Options{FS: other})
	if err != nil {
		t.Fatal(err)
	}
	if e2.Plan().Fingerprint == p.Fingerprint {
		t.Fatal("changing a file's content did not change the fingerprint")
	}
	pinned, err := goose.New(&sql.DB{}, goose.Options{FS: sample, TargetVersion: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := pinned.Plan(); got.Target != 2 || len(got.Migrations) != 2 || len(got.All) != 3 {
		t.Fatalf("pinned plan: %+v", got)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		fs   fstest.MapFS
		opts goose.Options
		want string
	}{
		{"empty", fstest.MapFS{"README.md": file("x")}, goose.Options{}, "no migrations found"},
		{"duplicate", fstest.MapFS{"001_a.sql": file("-- +goose Up\nSELECT 1;\n"), "1_b.sql": file("-- +goose Up\nSELECT 1;\n")}, goose.Options{}, "version 1 is also 001_a.sql"},
		{"malformed name", fstest.MapFS{"add_users.sql": file("-- +goose Up\nSELECT 1;\n")}, goose.Options{}, "add_users.sql"},
		{"zero version", fstest.MapFS{"0_init.sql": file("-- +goose Up\nSELECT 1;\n")}, goose.Options{}, "0_init.sql"},
		{"no up annotation", fstest.MapFS{"1_a.sql": file("SELECT 1;\n")}, goose.Options{}, "1_a.sql"},
		{"unterminated block", fstest.MapFS{"1_a.sql": file("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n")}, goose.Options{}, "1_a.sql"},
		{"go file", fstest.MapFS{"1_a.go": file("package x\n")}, goose.Options{}, "1_a.go: Go migrations run only"},
		{"target not in dir", sample, goose.Options{TargetVersion: 7}, "target-version: 7"},
		{"bad table", sample, goose.Options{Table: "x; DROP TABLE y"}, "is not a table name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.FS = c.fs
			_, err := goose.New(&sql.DB{}, c.opts)
			var ie *goose.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v; want an InputError", err)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, c.want)
			}
		})
	}
}

func TestMigrateAndStatus(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	e, err := goose.New(db, goose.Options{FS: sample})
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TableExists || st.Ready() || len(st.Pending) != 3 {
		t.Fatalf("fresh database: %+v", st)
	}
	var before, inTx, after []int64
	err = e.Migrate(ctx, st, engine.Hooks{
		Before: func(_ context.Context, m engine.Migration) error { before = append(before, m.Version); return nil },
		InTx: func(ctx context.Context, tx lock.Execer, m engine.Migration) error {
			inTx = append(inTx, m.Version)
			return nil
		},
		After: func(_ context.Context, m engine.Migration, _ time.Duration) error {
			after = append(after, m.Version)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]int64{before, inTx, after} {
		if len(got) != 3 || got[0] != 1 || got[2] != 3 {
			t.Fatalf("hooks saw %v %v %v; want 1,2,3 each", before, inTx, after)
		}
	}
	st, err = e.Status(ctx)
	if err != nil || !st.Ready() || st.Current != 3 || st.Ahead() {
		t.Fatalf("after migrating: %+v, %v", st, err)
	}

	// A replica that carries only the first two migrations sees the database ahead.
	old := fstest.MapFS{"00001_users.sql": sample["00001_users.sql"], "00002_index.sql": sample["00002_index.sql"]}
	oldEngine, err := goose.New(db, goose.Options{FS: old})
	if err != nil {
		t.Fatal(err)
	}
	st, err = oldEngine.Status(ctx)
	if err != nil || !st.Ready() || !st.Ahead() || st.Unknown[0] != 3 {
		t.Fatalf("older replica: %+v, %v", st, err)
	}
}

// TestFenceRollsBack checks that an error from the in-transaction hook rolls the migration back:
// no table, no version row.
func TestFenceRollsBack(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	e, err := goose.New(db, goose.Options{FS: fstest.MapFS{"00001_users.sql": sample["00001_users.sql"]}})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.Status(ctx)
	err = e.Migrate(ctx, st, engine.Hooks{InTx: func(context.Context, lock.Execer, engine.Migration) error {
		return lock.ErrLost
	}})
	var me *engine.MigrationError
	if !errors.As(err, &me) || !errors.Is(err, lock.ErrLost) {
		t.Fatalf("got %v; want a MigrationError wrapping ErrLost", err)
	}
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass('users') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("users table exists after a fenced-off migration: %v %v", exists, err)
	}
	st, _ = e.Status(ctx)
	if st.Current != 0 {
		t.Fatalf("version %d recorded after a fenced-off migration", st.Current)
	}
}
