package journal_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/journal"
)

// dialects opens an empty database of each dialect the journal speaks: SQLite in a temporary
// file, and PostgreSQL on the shared test server (skipped, or failed under CI, when none
// answers).
var dialects = []struct {
	dialect journal.Dialect
	open    func(t *testing.T) *sql.DB
}{
	{journal.SQLite, func(t *testing.T) *sql.DB {
		return openDB(t, "sqlite", "file:"+filepath.Join(t.TempDir(), "j.db")+"?_pragma=busy_timeout(10000)")
	}},
	{journal.Postgres, func(t *testing.T) *sql.DB { return openDB(t, "pgx", pgtest.NewDatabase(t)) }},
}

func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// forEachDialect runs test once per dialect, with a fresh database.
func forEachDialect(t *testing.T, test func(t *testing.T, db *sql.DB, dialect journal.Dialect)) {
	for _, d := range dialects {
		t.Run(string(d.dialect), func(t *testing.T) { test(t, d.open(t), d.dialect) })
	}
}

var (
	m1    = engine.Migration{Version: 1, Name: "00001_a.sql", Transactional: true, Checksum: "c1"}
	m2    = engine.Migration{Version: 2, Name: "00002_b.sql"}
	ctx30 = func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
)

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustID(t *testing.T) func(int64, error) int64 {
	return func(id int64, err error) int64 {
		t.Helper()
		must(t, err)
		return id
	}
}

// TestMissingTableReadsEmpty: before the first migrator created it, the journal reads as empty.
func TestMissingTableReadsEmpty(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, dialect journal.Dialect) {
		ctx := ctx30(t)
		j := journal.New(db, dialect, journal.DefaultTable, "ns")
		run, err := j.LastRun(ctx)
		if run != nil || err != nil {
			t.Errorf("LastRun: %+v, %v", run, err)
		}
		if tail, err := j.Tail(ctx, 10); len(tail) != 0 || err != nil {
			t.Errorf("Tail: %+v, %v", tail, err)
		}
		if ms, err := j.Migrators(ctx, "x"); len(ms) != 0 || err != nil {
			t.Errorf("Migrators: %v, %v", ms, err)
		}
		if es, err := j.Interrupted(ctx); len(es) != 0 || err != nil {
			t.Errorf("Interrupted: %v, %v", es, err)
		}
	})
}

// TestEnsureRaces: replicas of several namespaces may create the shared table at once; all
// succeed, and a second Ensure leaves the table alone. PostgreSQL fails all but one of
// concurrent CREATE TABLE IF NOT EXISTS in more ways than one; the race is run on several
// tables, so that each way shows up.
func TestEnsureRaces(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, dialect journal.Dialect) {
		ctx := ctx30(t)
		db.SetMaxOpenConns(8)
		for table := range 5 {
			name := fmt.Sprint("journal_", table)
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Go(func() { errs[i] = journal.New(db, dialect, name, fmt.Sprint("ns-", i)).Ensure(ctx) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("Ensure %d of %s: %v", i, name, err)
				}
			}
		}
		j := journal.New(db, dialect, "journal_0", "ns-0")
		mustID(t)(j.StartRun(ctx, "web-1", "set", 0, 2))
		must(t, j.Ensure(ctx))
		if run, err := j.LastRun(ctx); err != nil || run == nil {
			t.Errorf("after a second Ensure: %+v, %v", run, err)
		}
	})
}

// TestRunLifecycle: a run as a migrator journals it, read back as waiters and status see it.
func TestRunLifecycle(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, dialect journal.Dialect) {
		ctx := ctx30(t)
		j := journal.New(db, dialect, journal.DefaultTable, "ns")
		must(t, j.Ensure(ctx))
		before := time.Now().Add(-time.Second)
		id := mustID(t)(j.StartRun(ctx, "web-1", "set", 0, 2))
		run, err := j.LastRun(ctx)
		must(t, err)
		if run.ID != id || run.Kind != journal.KindRun || run.Replica != "web-1" || run.Fingerprint != "set" ||
			run.FromVersion != 0 || run.ToVersion != 2 || run.Outcome != journal.Running || run.FinishedAt != nil ||
			run.StartedAt.Before(before) {
			t.Fatalf("started run: %+v", run)
		}
		must(t, j.SetCurrent(ctx, id, m2))
		run, _ = j.LastRun(ctx)
		if run.Version != 2 || run.Name != "00002_b.sql" || run.CurrentSince == nil {
			t.Errorf("current migration: %+v", run)
		}
		must(t, j.FinishRun(ctx, id, journal.Failed, &m1, "boom"))
		run, _ = j.LastRun(ctx)
		if run.Outcome != journal.Failed || run.Error != "boom" || run.Version != 1 || run.Name != "00001_a.sql" || run.FinishedAt == nil {
			t.Errorf("failed run: %+v", run)
		}
		id2 := mustID(t)(j.StartRun(ctx, "web-2", "set", 0, 2))
		must(t, j.FinishRun(ctx, id2, journal.Succeeded, nil, ""))
		run, _ = j.LastRun(ctx)
		if run.ID != id2 || run.Outcome != journal.Succeeded || run.Error != "" {
			t.Errorf("the last run: %+v", run)
		}
		ms, err := j.Migrators(ctx, "web-2")
		if err != nil || !slices.Equal(ms, []string{"web-1"}) {
			t.Errorf("Migrators except web-2: %v, %v", ms, err)
		}
	})
}

// TestAbandon: what a vanished migrator left running is marked abandoned (its run) and
// interrupted (its non-transactional migration), saying why; an interrupted migration is listed
// until a rerun is allowed; finished runs are left alone.
func TestAbandon(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, dialect journal.Dialect) {
		ctx := ctx30(t)
		j := journal.New(db, dialect, journal.DefaultTable, "ns")
		other := journal.New(db, dialect, journal.DefaultTable, "other")
		must(t, j.Ensure(ctx))
		done := mustID(t)(j.StartRun(ctx, "web-0", "set", 0, 1))
		must(t, j.FinishRun(ctx, done, journal.Succeeded, nil, ""))
		cmd := mustID(t)(j.StartRun(ctx, "web-1", "set", 1, 2))
		must(t, j.SetCurrent(ctx, cmd, engine.Migration{Name: engine.CommandStep}))
		vanished := mustID(t)(j.StartRun(ctx, "web-2", "set", 1, 2))
		mig := mustID(t)(j.StartMigration(ctx, vanished, "web-2", m2))
		elsewhere := mustID(t)(other.StartRun(ctx, "web-9", "set", 0, 1))

		commands, err := j.Abandon(ctx)
		must(t, err)
		if commands != 1 {
			t.Errorf("Abandon counted %d runs of a migrate command, want 1", commands)
		}
		tail, err := j.Tail(ctx, 10)
		must(t, err)
		byID := map[int64]journal.Entry{}
		for _, e := range tail {
			byID[e.ID] = e
		}
		for _, c := range []struct {
			id      int64
			outcome journal.Outcome
			error   string
		}{
			{done, journal.Succeeded, ""},
			{cmd, journal.Abandoned, "the migrator vanished or lost the election while its migrate command ran"},
			{vanished, journal.Abandoned, "the migrator vanished before finishing"},
			{mig, journal.Interrupted, "the migrator vanished while this migration ran"},
		} {
			e := byID[c.id]
			if e.Outcome != c.outcome || !strings.HasPrefix(e.Error, c.error) {
				t.Errorf("row %d: %s %q, want %s %q…", c.id, e.Outcome, e.Error, c.outcome, c.error)
			}
			if c.outcome != journal.Succeeded && e.FinishedAt == nil {
				t.Errorf("row %d: no finished_at", c.id)
			}
		}
		if run, _ := other.LastRun(ctx); run.ID != elsewhere || run.Outcome != journal.Running {
			t.Errorf("another namespace's run: %+v", run)
		}
		// A migrator that lost the election writes its own end after a successor abandoned the
		// run: the successor's word stands.
		must(t, j.FinishLost(ctx, vanished, "lost while 00002_b.sql ran"))
		if e, _ := j.Tail(ctx, 10); e[1].ID != vanished || e[1].Outcome != journal.Abandoned {
			t.Errorf("after FinishLost of an abandoned run: %+v", e[1])
		}
		interrupted, err := j.Interrupted(ctx)
		must(t, err)
		if len(interrupted) != 1 || interrupted[0].ID != mig || interrupted[0].Version != 2 {
			t.Fatalf("Interrupted: %+v", interrupted)
		}
		must(t, j.MarkRerun(ctx, mig))
		if interrupted, _ := j.Interrupted(ctx); len(interrupted) != 0 {
			t.Errorf("Interrupted after MarkRerun: %+v", interrupted)
		}
	})
}

// TestFinishLost: a run still running when its migrator reports the loss is journaled lost.
func TestFinishLost(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, dialect journal.Dialect) {
		ctx := ctx30(t)
		j := journal.New(db, dialect, journal.DefaultTable, "ns")
		must(t, j.Ensure(ctx))
		id := mustID(t)(j.StartRun(ctx, "web-1", "set", 0, 2))
		must(t, j.FinishLost(ctx, id, "lost between migrations"))
		if run, _ := j.LastRun(ctx); run.Outcome != journal.Lost || run.Error != "lost between migrations" {
			t.Errorf("run: %+v", run)
		}
	})
}

// TestRecordApplied: an applied migration is journaled in its own transaction: with it, or not
// at all.
func TestRecordApplied(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, dialect journal.Dialect) {
		ctx := ctx30(t)
		j := journal.New(db, dialect, journal.DefaultTable, "ns")
		must(t, j.Ensure(ctx))
		run := mustID(t)(j.StartRun(ctx, "web-1", "set", 0, 2))
		since := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
		for _, commit := range []bool{false, true} {
			tx, err := db.BeginTx(ctx, nil)
			must(t, err)
			must(t, j.RecordApplied(ctx, tx, run, "web-1", m1, since))
			if commit {
				must(t, tx.Commit())
			} else {
				must(t, tx.Rollback())
			}
		}
		applied, err := j.Applied(ctx)
		must(t, err)
		if len(applied) != 1 {
			t.Fatalf("Applied: %+v; want the committed record only", applied)
		}
		a := applied[0]
		if a.Kind != journal.KindApplied || a.RunID != run || a.Version != 1 || a.Fingerprint != "c1" ||
			!a.StartedAt.Equal(since) || a.FinishedAt == nil || a.FinishedAt.Before(since) {
			t.Errorf("applied record: %+v (since %v)", a, since)
		}
		if tail, _ := j.Tail(ctx, 10); len(tail) != 1 || tail[0].Kind != journal.KindRun {
			t.Errorf("Tail lists applied records: %+v", tail)
		}
	})
}

// TestRecord: a person's act is journaled with who and why; a resolution changes the interrupted
// migration's outcome, on a transaction when given one.
func TestRecord(t *testing.T) {
	forEachDialect(t, func(t *testing.T, db *sql.DB, dialect journal.Dialect) {
		ctx := ctx30(t)
		j := journal.New(db, dialect, journal.DefaultTable, "ns")
		must(t, j.Ensure(ctx))
		run := mustID(t)(j.StartRun(ctx, "web-1", "set", 0, 2))
		mig := mustID(t)(j.StartMigration(ctx, run, "web-1", m2))
		rec := mustID(t)(j.Record(ctx, journal.KindResolution, "ops@laptop", m2, journal.Resolved, "finished by hand"))
		tx, err := db.BeginTx(ctx, nil)
		must(t, err)
		must(t, j.SetOutcome(ctx, tx, mig, journal.Resolved))
		must(t, tx.Commit())
		tail, err := j.Tail(ctx, 2)
		must(t, err)
		if len(tail) != 2 || tail[0].ID != rec || tail[1].ID != mig {
			t.Fatalf("Tail(2), newest first: %+v", tail)
		}
		if r := tail[0]; r.Kind != journal.KindResolution || r.Replica != "ops@laptop" || r.Name != "00002_b.sql" ||
			r.Outcome != journal.Resolved || r.Error != "finished by hand" || r.FinishedAt == nil {
			t.Errorf("the resolution: %+v", r)
		}
		if tail[1].Outcome != journal.Resolved {
			t.Errorf("the migration: %+v", tail[1])
		}
		must(t, j.SetOutcome(ctx, nil, mig, journal.Rerun))
		if tail, _ := j.Tail(ctx, 2); tail[1].Outcome != journal.Rerun {
			t.Errorf("SetOutcome without a transaction: %+v", tail[1])
		}
	})
}

// TestValidateTable: the journal's table name is checked, naming the key.
func TestValidateTable(t *testing.T) {
	for _, ok := range []string{"schemagate_journal", "ops.schemagate_journal"} {
		if err := journal.ValidateTable(ok); err != nil {
			t.Errorf("ValidateTable(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Journal", "select", "a;drop table x", "a.b.c"} {
		if err := journal.ValidateTable(bad); err == nil || !strings.HasPrefix(err.Error(), "journal-table: ") {
			t.Errorf("ValidateTable(%q): %v", bad, err)
		}
	}
}
