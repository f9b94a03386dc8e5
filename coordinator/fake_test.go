package coordinator

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
	"github.com/schemagate/schemagate/sqlite"
)

// The coordinator's tests run the real flow against stand-ins that need no server: the election
// is locktest.Memory (or the real file lock), the journal is the real one on a SQLite file, and
// the migration engine is fakeEngine below, whose version table is a set in memory. Each test
// builds a world (what its replicas share) and replicas in it.

var (
	// errUnavailable is a database that is down for now: Retryable.
	errUnavailable = errors.New("connection refused (fake)")
	// errRefused is a database that refuses this replica for good: Refused.
	errRefused = errors.New("password authentication failed (fake)")
)

// fingerprint names the migration set of the world's replicas.
const fingerprint = "set-1"

// testTimeout bounds every test's runs: a test that hangs fails within it.
const testTimeout = 20 * time.Second

// world is what the replicas of one test share: the database (a SQLite file for the journal,
// and the fake version table) and the election.
type world struct {
	t      *testing.T
	db     *sql.DB
	schema *schema
	elect  *locktest.Memory
	plan   engine.Plan
}

// newWorld returns a world whose replicas carry migrations 1…n, transactional unless listed in
// nonTx.
func newWorld(t *testing.T, n int, nonTx ...int64) *world {
	t.Helper()
	db, _, err := sqlite.Open("sqlite:" + filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	plan := engine.Plan{Fingerprint: fingerprint}
	for v := int64(1); v <= int64(n); v++ {
		m := engine.Migration{Version: v, Name: migrationName(v), Transactional: !slices.Contains(nonTx, v)}
		plan.Migrations = append(plan.Migrations, m)
		plan.Target = v
	}
	plan.All = plan.Migrations
	return &world{t: t, db: db, schema: &schema{applied: map[int64]int{}}, elect: locktest.NewMemory(fingerprint), plan: plan}
}

// migrationName is the file name of migration v: 00002_m2.sql.
func migrationName(v int64) string { return fmt.Sprintf("%05d_m%d.sql", v, v) }

// journal is the world's journal, as every replica opens it.
func (w *world) journal() *journal.Journal {
	return journal.New(w.db, journal.SQLite, journal.DefaultTable, "ns")
}

// ensureJournal creates the journal table, as a migrator before would have.
func (w *world) ensureJournal() *journal.Journal {
	w.t.Helper()
	j := w.journal()
	if err := j.Ensure(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	return j
}

// runs returns the journal's runs, oldest first.
func (w *world) runs() []journal.Entry {
	w.t.Helper()
	tail, err := w.journal().Tail(context.Background(), 100)
	if err != nil {
		w.t.Fatal(err)
	}
	var runs []journal.Entry
	for _, e := range slices.Backward(tail) {
		if e.Kind == journal.KindRun {
			runs = append(runs, e)
		}
	}
	return runs
}

// outcomes lists the outcomes of the journal's runs, oldest first.
func (w *world) outcomes() []journal.Outcome {
	var out []journal.Outcome
	for _, r := range w.runs() {
		out = append(out, r.Outcome)
	}
	return out
}

// schema is the fake version table: how often each version was applied.
type schema struct {
	mu      sync.Mutex
	applied map[int64]int
}

// set marks versions applied, as a migrator before (or a restore) left them.
func (s *schema) set(versions ...int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.applied)
	for _, v := range versions {
		s.applied[v] = 1
	}
}

func (s *schema) apply(v int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied[v]++
}

func (s *schema) versions() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []int64
	for v, n := range s.applied {
		if n > 0 {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs
}

// twice lists the versions applied more than once.
func (s *schema) twice() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []int64
	for v, n := range s.applied {
		if n > 1 {
			vs = append(vs, v)
		}
	}
	return vs
}

// fakeEngine is a migration engine over the world's fake version table. Each migration runs in
// a transaction on the SQLite database, so that the hooks journal it as the real engines do.
type fakeEngine struct {
	w *world

	mu sync.Mutex
	// statusErrs are returned by the next Status calls, one each, before Status reads again;
	// statusErr, when set, by every call after those.
	statusErrs []error
	statusErr  error
	statusRead int
	// apply, when set, runs inside each migration's transaction before its hooks: a test fails
	// a migration (an error), or holds it until it lets go.
	apply func(ctx context.Context, m engine.Migration) error
}

var _ Engine = (*fakeEngine)(nil)

func (e *fakeEngine) Plan() engine.Plan { return e.w.plan }

// Status reads the fake version table, unless an error is due.
func (e *fakeEngine) Status(ctx context.Context) (engine.Status, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.statusErrs) > 0 {
		err := e.statusErrs[0]
		e.statusErrs = e.statusErrs[1:]
		return engine.Status{}, err
	}
	if e.statusErr != nil {
		return engine.Status{}, e.statusErr
	}
	if err := ctx.Err(); err != nil {
		return engine.Status{}, err
	}
	e.statusRead++
	vs := e.w.schema.versions()
	return engine.Assess(e.w.plan, len(vs) > 0, vs), nil
}

// reads is how many times Status read the version table.
func (e *fakeEngine) reads() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statusRead
}

func (e *fakeEngine) failStatus(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.statusErr = err
}

// Migrate applies st's pending migrations in order, each in a transaction, calling h around it.
func (e *fakeEngine) Migrate(ctx context.Context, st engine.Status, h engine.Hooks) error {
	if err := st.OrderError(); err != nil {
		return err
	}
	for _, m := range st.Pending {
		if err := h.Before(ctx, m); err != nil {
			return err
		}
		start := time.Now()
		if err := e.applyOne(ctx, m, h); err != nil {
			return &engine.MigrationError{Migration: m, Err: err}
		}
		if err := h.After(ctx, m, time.Since(start)); err != nil {
			return err
		}
	}
	return nil
}

func (e *fakeEngine) applyOne(ctx context.Context, m engine.Migration, h engine.Hooks) error {
	tx, err := e.w.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	e.mu.Lock()
	apply := e.apply
	e.mu.Unlock()
	if apply != nil {
		if err := apply(ctx, m); err != nil {
			return err
		}
	}
	if err := h.InTx(ctx, tx, m); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	e.w.schema.apply(m.Version)
	return nil
}

// onApply sets what runs inside each migration's transaction.
func (e *fakeEngine) onApply(f func(ctx context.Context, m engine.Migration) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.apply = f
}

// hold makes migration v block, once, until the returned release is called with the error it
// should end with (nil: it applies), or until its context ends. entered is closed when it
// blocks.
func (e *fakeEngine) hold(v int64) (entered <-chan struct{}, release func(error)) {
	in, out := make(chan struct{}), make(chan error, 1)
	var once sync.Once
	e.onApply(func(ctx context.Context, m engine.Migration) error {
		if m.Version != v {
			return nil
		}
		held := false
		once.Do(func() { held = true })
		if !held {
			return nil
		}
		close(in)
		select {
		case err := <-out:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return in, func(err error) { out <- err }
}

// observer records every report of a coordinator, and lets a test await one.
type observer struct {
	mu       sync.Mutex
	snaps    []Snapshot
	moved    chan struct{}
	elected  int
	migrated []string // "00001_m1.sql" or "00001_m1.sql failed"
	gated    int
}

func newObserver() *observer { return &observer{moved: make(chan struct{})} }

func (o *observer) Observe(s Snapshot) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.snaps = append(o.snaps, s)
	close(o.moved)
	o.moved = make(chan struct{})
}

func (o *observer) Elected(time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.elected++
}

func (o *observer) Migrated(m engine.Migration, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := m.Name
	if err != nil {
		s += " failed"
	}
	o.migrated = append(o.migrated, s)
}

func (o *observer) Gated(time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gated++
}

// last is the latest snapshot.
func (o *observer) last() Snapshot {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.snaps) == 0 {
		return Snapshot{}
	}
	return o.snaps[len(o.snaps)-1]
}

// all returns every snapshot so far.
func (o *observer) all() []Snapshot {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.snaps)
}

// await returns the first snapshot from the from-th on that satisfies ok, waiting for it, and
// how many snapshots there were up to and including it.
func (o *observer) await(t *testing.T, from int, what string, ok func(Snapshot) bool) (Snapshot, int) {
	t.Helper()
	timeout := time.After(testTimeout)
	for i := from; ; {
		o.mu.Lock()
		snaps, moved := o.snaps, o.moved
		o.mu.Unlock()
		for ; i < len(snaps); i++ {
			if ok(snaps[i]) {
				return snaps[i], i + 1
			}
		}
		select {
		case <-moved:
		case <-timeout:
			t.Fatalf("no snapshot %s within %s; the last: %+v", what, testTimeout, o.last())
		}
	}
}

// logBuffer collects a replica's log, safe for the coordinator's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// replica is one coordinator of a world, with what a test inspects.
type replica struct {
	*Coordinator
	name   string
	engine *fakeEngine
	obs    *observer
	log    *logBuffer
	locker *locker
	// lastErr is what the last Run returned, for checks.
	lastErr error
}

// replicaOptions shape a replica.
type replicaOptions struct {
	mode   Mode
	config func(c *Config)
	// election, when set, returns the replica's locker instead of the world's Memory.
	election func(name string) lock.Locker
	// replicated gives the replica the Memory's replicated view (lock.Replicated), as Raft.
	replicated bool
	// presence lets the replica show itself to the Memory's fleet (lock.Presence), as the
	// PostgreSQL and file locks; presence.show, when set, replaces its Show.
	presence *presenceOptions
}

// presenceOptions shape a replica's presence.
type presenceOptions struct {
	show func(ctx context.Context, m lock.Member) error
	// fingerprints, when set, answers Deps.Fingerprints.
	fingerprints func(ctx context.Context) (map[string]string, error)
}

// replica returns a coordinator named name in w.
func (w *world) replica(name string, opts replicaOptions) *replica {
	w.t.Helper()
	cfg := DefaultConfig()
	cfg.Mode, cfg.ReplicaID = opts.mode, name
	cfg.Timeout = testTimeout
	// Waits end on events; a poll that ends one is a test that relies on its timeout.
	cfg.PollInterval, cfg.ProgressInterval = time.Minute, time.Minute
	cfg.RetryMin, cfg.RetryMax = time.Millisecond, 5*time.Millisecond
	if opts.config != nil {
		opts.config(&cfg)
	}
	r := &replica{name: name, engine: &fakeEngine{w: w}, obs: newObserver(), log: &logBuffer{}}
	var l lock.Locker
	switch {
	case opts.election != nil:
		r.locker = &locker{Locker: opts.election(name)}
		l = r.locker
	case opts.replicated:
		view := w.elect.ReplicatedLocker(name)
		r.locker = &locker{Locker: view}
		l = &replicatedLocker{locker: r.locker, view: view}
	case opts.presence != nil:
		m := w.elect.Locker(name)
		r.locker = &locker{Locker: m}
		l = &presentLocker{locker: r.locker, Presence: m, show: opts.presence.show}
	default:
		r.locker = &locker{Locker: w.elect.Locker(name)}
		l = r.locker
	}
	w.t.Cleanup(func() { l.Close() })
	var fingerprints func(ctx context.Context) (map[string]string, error)
	if opts.presence != nil {
		fingerprints = opts.presence.fingerprints
	}
	c, err := New(cfg, Deps{
		Fingerprints: fingerprints,
		Locker:       l,
		Engine:       r.engine,
		Journal:      w.journal(),
		Retryable:    func(err error) bool { return errors.Is(err, errUnavailable) },
		Refused:      func(err error) bool { return errors.Is(err, errRefused) },
		Target:       "the test database",
		Log:          zerolog.New(r.log),
		Observer:     r.obs,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	r.Coordinator = c
	return r
}

// start runs the replica's gate in a goroutine; the returned channel yields its result.
func (r *replica) start(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return done
}

// result waits for a started gate's result.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(testTimeout + 5*time.Second):
		t.Fatal("the gate did not end")
		return nil
	}
}

// mismatch says how err differs from want (nil, or an error whose text err's contains), or
// returns "" when it does not.
func mismatch(err error, want error) string {
	switch {
	case want == nil && err == nil:
		return ""
	case want == nil:
		return fmt.Sprintf("got %v, want nil", err)
	case err == nil || !strings.Contains(err.Error(), want.Error()):
		return fmt.Sprintf("got %v, want %v", err, want)
	}
	return ""
}

// locker wraps a lock.Locker, to fail or steer its calls and count them.
type locker struct {
	lock.Locker
	mu sync.Mutex
	// tryAcquire, when set, replaces TryAcquire; holder replaces Holder.
	tryAcquire func(ctx context.Context) (lock.Lease, error)
	holder     func(ctx context.Context) (*lock.Holder, error)
	tries      int
	waits      int
}

func (l *locker) TryAcquire(ctx context.Context) (lock.Lease, error) {
	l.mu.Lock()
	l.tries++
	f := l.tryAcquire
	l.mu.Unlock()
	if f != nil {
		return f(ctx)
	}
	return l.Locker.TryAcquire(ctx)
}

func (l *locker) Holder(ctx context.Context) (*lock.Holder, error) {
	l.mu.Lock()
	f := l.holder
	l.mu.Unlock()
	if f != nil {
		return f(ctx)
	}
	return l.Locker.Holder(ctx)
}

// steer sets what replaces TryAcquire and Holder (nil: the wrapped locker's).
func (l *locker) steer(tryAcquire func(ctx context.Context) (lock.Lease, error), holder func(ctx context.Context) (*lock.Holder, error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tryAcquire, l.holder = tryAcquire, holder
}

func (l *locker) Wait(ctx context.Context, d time.Duration) error {
	l.mu.Lock()
	l.waits++
	l.mu.Unlock()
	return l.Locker.Wait(ctx, d)
}

func (l *locker) counts() (tries, waits int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tries, l.waits
}

// replicatedLocker is locker for a lock.Replicated.
type replicatedLocker struct {
	*locker
	view lock.Replicated
}

func (l *replicatedLocker) Outcome() lock.Outcome { return l.view.Outcome() }

// presentLocker is locker for a lock.Presence.
type presentLocker struct {
	*locker
	lock.Presence
	show func(ctx context.Context, m lock.Member) error
}

func (l *presentLocker) Show(ctx context.Context, m lock.Member) error {
	if l.show != nil {
		return l.show(ctx, m)
	}
	return l.Presence.Show(ctx, m)
}
