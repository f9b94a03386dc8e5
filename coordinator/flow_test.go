package coordinator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/file"
)

// awaitClosed fails the test unless ch is closed within testTimeout.
func awaitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatalf("%s did not happen within %s", what, testTimeout)
	}
}

// awaitWaiting returns once n replicas of w wait on the election.
func (w *world) awaitWaiting(n int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := w.elect.AwaitWaiting(ctx, n); err != nil {
		w.t.Fatal(err)
	}
}

// TestWaiterFollowsTheMigrator: a replica that finds another migrating waits, says whom it waits
// for and what that one applies, and ends ready when the migrator is done, without migrating;
// every migration is applied once.
func TestWaiterFollowsTheMigrator(t *testing.T) {
	w := newWorld(t, 3)
	migrator := w.replica("web-1", replicaOptions{})
	entered, release := migrator.engine.hold(2)
	migrated := migrator.start(context.Background())
	awaitClosed(t, entered, "migration 2")

	waiter := w.replica("web-2", replicaOptions{})
	waited := waiter.start(context.Background())
	w.awaitWaiting(1)
	s := waiter.obs.last()
	if s.Phase != PhaseWaiting || s.Holder == nil || s.Holder.Replica != "web-1" ||
		!strings.Contains(s.Reason, "replica web-1 is applying 00002_m2.sql") {
		t.Errorf("while waiting: %s, holder %+v, %q", s.Phase, s.Holder, s.Reason)
	}
	if log := waiter.log.String(); !strings.Contains(log, "waiting: the database is at version 1; this replica needs 3") ||
		!strings.Contains(log, `"holder":"web-1"`) {
		t.Errorf("the waiter's log does not say whom it waits for:\n%s", log)
	}
	release(nil)

	for _, r := range []struct {
		name string
		done <-chan error
	}{{"migrator", migrated}, {"waiter", waited}} {
		if err := result(t, r.done); err != nil {
			t.Errorf("%s: %v", r.name, err)
		}
	}
	// The waiter may try the election once the migrator let go, and find the schema ready
	// under it: it never becomes a migrator.
	if waiter.role != RoleWaiter || migrator.role != RoleMigrator {
		t.Errorf("roles %s and %s; want migrator and waiter", migrator.role, waiter.role)
	}
	if got := waiter.obs.last(); got.Phase != PhaseReady || !got.Ready {
		t.Errorf("the waiter ends %s", got.Phase)
	}
	if vs, twice := w.schema.versions(), w.schema.twice(); !slices.Equal(vs, []int64{1, 2, 3}) || len(twice) > 0 {
		t.Errorf("versions %v, twice %v", vs, twice)
	}
	if got := w.outcomes(); !slices.Equal(got, []journal.Outcome{journal.Succeeded}) {
		t.Errorf("runs %v", got)
	}
}

// TestWaiterEndsWithTheFailureItWaitedFor: when the run a replica waits for fails, the waiter
// ends with exit 3 naming the migration, the error and the migrator, whether it may migrate or
// not: it does not retry what just failed.
func TestWaiterEndsWithTheFailureItWaitedFor(t *testing.T) {
	for _, mode := range []Mode{ModeMigrate, ModeWait} {
		t.Run(mode.String(), func(t *testing.T) {
			w := newWorld(t, 3)
			migrator := w.replica("web-1", replicaOptions{})
			entered, release := migrator.engine.hold(2)
			migrated := migrator.start(context.Background())
			awaitClosed(t, entered, "migration 2")
			waiter := w.replica("web-2", replicaOptions{mode: mode})
			waited := waiter.start(context.Background())
			w.awaitWaiting(1)
			release(errors.New("boom"))

			var here, there *MigrationFailedError
			if err := result(t, migrated); !errors.As(err, &here) || !here.Here {
				t.Fatalf("the migrator: %v; want its own failure", err)
			}
			err := result(t, waited)
			if !errors.As(err, &there) || there.Here || there.Replica != "web-1" || there.Migration != "00002_m2.sql" ||
				!strings.Contains(fmt.Sprint(there.Cause), "boom") {
				t.Fatalf("the waiter: %#v; want the failure on web-1 of 00002_m2.sql", err)
			}
			if code := schemagate.ExitCodeOf(err); code != schemagate.ExitMigrationFailed {
				t.Errorf("the waiter's exit code %d", code)
			}
			if tries, _ := waiter.locker.counts(); tries != 0 {
				t.Errorf("the waiter tried to migrate %d times after the failure", tries)
			}
			if got := waiter.obs.last(); got.Phase != PhaseFailed || !strings.Contains(got.Reason, "boom") {
				t.Errorf("the waiter ends %s: %s", got.Phase, got.Reason)
			}
			if got := w.outcomes(); !slices.Equal(got, []journal.Outcome{journal.Failed}) {
				t.Errorf("runs %v", got)
			}
		})
	}
}

// TestWaiterTakesOverFromADeadMigrator: the migrator's election ends under it (its process
// crashed, its session was killed) while its migration still runs. The waiter takes over at
// once, marks the dead run abandoned and applies what is left; the old migrator, once it
// notices, commits nothing, and ends ready like the others.
func TestWaiterTakesOverFromADeadMigrator(t *testing.T) {
	w := newWorld(t, 3)
	old := w.replica("web-1", replicaOptions{})
	entered, dying := make(chan struct{}), make(chan struct{})
	first := firstCall()
	old.engine.onApply(func(ctx context.Context, m engine.Migration) error {
		if m.Version != 2 || !first() {
			return nil
		}
		close(entered)
		<-ctx.Done() // the work stops when the lease is lost
		<-dying      // and the old migrator takes its time to notice
		return ctx.Err()
	})
	oldDone := old.start(context.Background())
	awaitClosed(t, entered, "migration 2")
	successor := w.replica("web-2", replicaOptions{})
	successorDone := successor.start(context.Background())
	w.awaitWaiting(1)

	if !w.elect.Kill() {
		t.Fatal("nobody held the election")
	}
	if err := result(t, successorDone); err != nil {
		t.Fatalf("the successor: %v", err)
	}
	close(dying)
	if err := result(t, oldDone); err != nil {
		t.Fatalf("the old migrator: %v", err)
	}
	if successor.role != RoleMigrator || old.role != RoleWaiter {
		t.Errorf("roles: old %s, successor %s", old.role, successor.role)
	}
	if vs, twice := w.schema.versions(), w.schema.twice(); !slices.Equal(vs, []int64{1, 2, 3}) || len(twice) > 0 {
		t.Errorf("versions %v, twice %v", vs, twice)
	}
	runs := w.runs()
	if got := w.outcomes(); !slices.Equal(got, []journal.Outcome{journal.Abandoned, journal.Succeeded}) {
		t.Fatalf("runs %v", got)
	}
	if runs[0].Replica != "web-1" || runs[1].Replica != "web-2" {
		t.Errorf("runs by %s and %s", runs[0].Replica, runs[1].Replica)
	}
}

// TestMigratorLosesTheElection: a migrator whose election ends under it stops: the migration
// under way does not commit (its fence fails inside the transaction), the run is journaled lost
// with what that meant, and the replica goes back to the gate, where it wins again and finishes.
func TestMigratorLosesTheElection(t *testing.T) {
	w := newWorld(t, 3)
	r := w.replica("web-1", replicaOptions{})
	first := firstCall()
	r.engine.onApply(func(ctx context.Context, m engine.Migration) error {
		if m.Version == 2 && first() {
			w.elect.Kill()
		}
		return nil
	})
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	runs := w.runs()
	if got := w.outcomes(); !slices.Equal(got, []journal.Outcome{journal.Lost, journal.Succeeded}) {
		t.Fatalf("runs %v", got)
	}
	if want := "lost while 00002_m2.sql ran; its transaction could not commit without the lock"; !strings.Contains(runs[0].Error, want) {
		t.Errorf("the lost run says %q, want %q", runs[0].Error, want)
	}
	recs, err := w.journal().Applied(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byRun := map[int64][]int64{}
	for _, e := range recs {
		byRun[e.RunID] = append(byRun[e.RunID], e.Version)
	}
	if !slices.Equal(byRun[runs[0].ID], []int64{1}) || !slices.Equal(byRun[runs[1].ID], []int64{2, 3}) {
		t.Errorf("applied by run: %v; want 1 by the lost run, 2 and 3 by the next", byRun)
	}
	if vs, twice := w.schema.versions(), w.schema.twice(); !slices.Equal(vs, []int64{1, 2, 3}) || len(twice) > 0 {
		t.Errorf("versions %v, twice %v", vs, twice)
	}
	if !strings.Contains(r.log.String(), "lost the election while migrating") {
		t.Errorf("the log does not say the election was lost:\n%s", r.log.String())
	}
}

// TestStopWhileMigrating: a signal or the deadline during a migration interrupts it; the run is
// journaled cancelled saying what the stop did to the migration, a non-transactional one is
// journaled interrupted, and the election is released.
func TestStopWhileMigrating(t *testing.T) {
	cases := []struct {
		name     string
		nonTx    bool
		deadline bool
		want     string
		code     schemagate.ExitCode
	}{
		{name: "signal", want: "stopped by SIGTERM before the schema was ready: while applying 00002_m2.sql; its transaction rolled back",
			code: schemagate.ExitTimeout},
		{name: "deadline", deadline: true, want: "timed out after", code: schemagate.ExitTimeout},
		{name: "signal, non-transactional", nonTx: true,
			want: "while applying 00002_m2.sql without a transaction: any of its statements may have completed; it is recorded as interrupted",
			code: schemagate.ExitTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var nonTx []int64
			if tc.nonTx {
				nonTx = []int64{2}
			}
			w := newWorld(t, 3, nonTx...)
			r := w.replica("web-1", replicaOptions{config: func(c *Config) {
				if tc.deadline {
					c.Timeout = 300 * time.Millisecond
				}
			}})
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			first := firstCall()
			r.engine.onApply(func(work context.Context, m engine.Migration) error {
				if m.Version != 2 || !first() {
					return nil
				}
				if !tc.deadline {
					cancel(errors.New("stopped by SIGTERM"))
				}
				<-work.Done() // the stop interrupts the work
				return work.Err()
			})
			err := r.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v; want %q", err, tc.want)
			}
			if code := schemagate.ExitCodeOf(err); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			runs := w.runs()
			if got := w.outcomes(); !slices.Equal(got, []journal.Outcome{journal.Cancelled}) {
				t.Fatalf("runs %v", got)
			}
			if runs[0].Name != "00002_m2.sql" {
				t.Errorf("the cancelled run names %q", runs[0].Name)
			}
			if rows := migrationRows(t, w); tc.nonTx && (len(rows) != 1 || rows[0].Outcome != journal.Interrupted) {
				t.Errorf("the non-transactional migration's rows: %+v; want it interrupted", rows)
			}
			if !slices.Equal(w.schema.versions(), []int64{1}) || w.elect.Holder() != "" {
				t.Errorf("versions %v, holder %q", w.schema.versions(), w.elect.Holder())
			}
		})
	}
}

// TestStopWhileWaiting: a stop while waiting says what the replica waited for.
func TestStopWhileWaiting(t *testing.T) {
	w := newWorld(t, 3)
	holder := w.elect.Locker("web-0")
	if _, err := holder.TryAcquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	r := w.replica("web-1", replicaOptions{})
	ctx, cancel := context.WithCancelCause(context.Background())
	done := r.start(ctx)
	w.awaitWaiting(1)
	cancel(errors.New("stopped by SIGTERM"))
	err := result(t, done)
	want := "stopped by SIGTERM before the schema was ready: the database has no migrations yet; this replica needs version 3; replica web-0 holds the lock"
	if err == nil || err.Error() != want {
		t.Fatalf("Run: %v\nwant: %s", err, want)
	}
	if code := schemagate.ExitCodeOf(err); code != schemagate.ExitTimeout {
		t.Errorf("exit code %d", code)
	}
}

// TestHerdOnTheFileLock: replicas that start together on the real file lock elect exactly one
// migrator; every migration is applied once and everyone ends ready.
func TestHerdOnTheFileLock(t *testing.T) {
	w := newWorld(t, 3)
	path := filepath.Join(t.TempDir(), "app.db.schemagate-lock")
	var rs []*replica
	for i := range 4 {
		rs = append(rs, w.replica(fmt.Sprintf("web-%d", i), replicaOptions{
			election: func(name string) lock.Locker { return file.New(path, name) },
		}))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	start := make(chan struct{})
	for i, r := range rs {
		wg.Go(func() {
			<-start
			errs[i] = r.Run(context.Background())
		})
	}
	close(start)
	wg.Wait()
	migrators := 0
	for i, r := range rs {
		if errs[i] != nil {
			t.Errorf("%s: %v", r.name, errs[i])
		}
		if r.role == RoleMigrator {
			migrators++
		}
	}
	if migrators != 1 {
		t.Errorf("%d migrators, want 1", migrators)
	}
	if vs, twice := w.schema.versions(), w.schema.twice(); !slices.Equal(vs, []int64{1, 2, 3}) || len(twice) > 0 {
		t.Errorf("versions %v, twice %v", vs, twice)
	}
	if got := w.outcomes(); !slices.Equal(got, []journal.Outcome{journal.Succeeded}) {
		t.Errorf("runs %v", got)
	}
}
