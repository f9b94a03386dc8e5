package command

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/engine/sqlversion"
	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestMain lets the test binary stand in for schemagate as the migrate command's reaper: the
// engine starts it as `<test binary> __reap -- /bin/sh -c COMMAND`.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == ReapCommand {
		os.Exit(Reap(os.Args[3:]))
	}
	os.Exit(m.Run())
}

// self is the test binary, the reaper of the engines under test.
func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// newEngine returns an engine whose version source is the table v of a fresh database: the
// replica needs version 2, and the database is at 1.
func newEngine(t *testing.T, command string, opts Options) (*Engine, *sql.DB, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE v (version int); INSERT INTO v VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	src, err := sqlversion.New(db, "SELECT version FROM v", "2")
	if err != nil {
		t.Fatal(err)
	}
	opts.Command, opts.Log, opts.Self = command, zerolog.Nop(), self(t)
	e, err := New(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, db, url
}

func migrate(t *testing.T, e *Engine, h engine.Hooks) error {
	t.Helper()
	st, err := e.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return e.Migrate(context.Background(), st, h)
}

// TestSuccessIsReadFromTheDatabase: the command that moves the version succeeds; one that
// exits 0 and changes nothing is a failed migration, quoting its output.
func TestSuccessIsReadFromTheDatabase(t *testing.T) {
	e, _, url := newEngine(t, "", Options{})
	e.opts.Command = `psql -q "$TEST_URL" -c "UPDATE v SET version = 2"`
	e.opts.Env = []string{"TEST_URL=" + url}
	var after []string
	if err := migrate(t, e, engine.Hooks{After: func(_ context.Context, m engine.Migration, _ time.Duration) error {
		after = append(after, m.Name)
		return nil
	}}); err != nil {
		t.Fatalf("a command that applied the migration failed: %v", err)
	}
	if len(after) != 1 {
		t.Errorf("After ran %d times", len(after))
	}

	e, _, _ = newEngine(t, "echo nothing to do here", Options{})
	err := migrate(t, e, engine.Hooks{})
	var me *engine.MigrationError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "exited 0, but the database is at 1; this replica needs 2") ||
		!strings.Contains(err.Error(), "nothing to do here") {
		t.Errorf("a command that changed nothing: %v", err)
	}
}

// TestFailureQuotesTheLastLines: a non-zero exit fails with the code and the last lines of
// both streams, not all of them.
func TestFailureQuotesTheLastLines(t *testing.T) {
	e, _, _ := newEngine(t, `for i in 1 2 3 4 5 6 7; do echo "line $i"; done; sleep 0.2; echo "boom" >&2; exit 3`, Options{})
	err := migrate(t, e, engine.Hooks{})
	if err == nil || !strings.Contains(err.Error(), "exited 3") || !strings.Contains(err.Error(), "boom") ||
		strings.Contains(err.Error(), "line 1 ") || !strings.Contains(err.Error(), "line 7") {
		t.Errorf("got %v", err)
	}
}

// TestEnvironment: --migrate-env is added (overriding an inherited value), Drop is removed.
func TestEnvironment(t *testing.T) {
	t.Setenv("SCHEMAGATE_RAFT_SECRET", "do-not-pass-me")
	t.Setenv("ENABLE_DB_MIGRATIONS", "false")
	e, _, url := newEngine(t, `test "$ENABLE_DB_MIGRATIONS" = true && test -z "$SCHEMAGATE_RAFT_SECRET" && psql -q "$TEST_URL" -c "UPDATE v SET version = 2"`,
		Options{Drop: []string{"SCHEMAGATE_RAFT_SECRET"}})
	e.opts.Env = []string{"ENABLE_DB_MIGRATIONS=true", "TEST_URL=" + url}
	if err := migrate(t, e, engine.Hooks{}); err != nil {
		t.Errorf("the command saw the wrong environment: %v", err)
	}
}

// TestStop: closing Stop sends SIGTERM to the command's process group (a shell's children
// included); a command that ignores it is killed after the grace period.
func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"polite", `trap 'echo got TERM; exit 5' TERM; touch "$READY"; sleep 60 & wait`, "got TERM"},
		{"stubborn", `trap '' TERM; touch "$READY"; sleep 60`, "killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready := filepath.Join(t.TempDir(), "ready")
			e, _, _ := newEngine(t, tc.script, Options{StopGrace: 300 * time.Millisecond})
			e.opts.Env = []string{"READY=" + ready}
			stop := make(chan struct{})
			go func() {
				for {
					if _, err := os.Stat(ready); err == nil {
						close(stop)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			begin := time.Now()
			err := migrate(t, e, engine.Hooks{Stop: stop})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if took := time.Since(begin); took > 10*time.Second {
				t.Errorf("the command took %s to stop", took)
			}
		})
	}
}

func TestNoCommand(t *testing.T) {
	e, _, _ := newEngine(t, "", Options{})
	if err := migrate(t, e, engine.Hooks{}); err == nil || !strings.Contains(err.Error(), "migrate-command") {
		t.Errorf("got %v", err)
	}
	if _, err := New(e.Source, Options{Env: []string{"NOEQUALS"}}); err == nil {
		t.Error("a bad --migrate-env entry was accepted")
	}
}
