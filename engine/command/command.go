// Package command is the engine for apps that migrate with their own tool: the elected
// migrator runs a command (`alembic upgrade heads`, the app's own entry point, `migrate up`)
// as a child process, and success is decided by reading the database afterwards, never by the
// command's exit code alone.
//
// What the replica carries and what the database holds come from a Source: goose files, an
// Alembic revision directory, or a query (see the engine/alembic and engine/sqlversion
// packages).
package command

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
)

// Source knows the migrations a replica carries and reads what the database has applied.
type Source interface {
	Plan() engine.Plan
	Status(ctx context.Context) (engine.Status, error)
}

// Options configure the command.
type Options struct {
	// Command is run by /bin/sh -c.
	Command string
	// Env is added to the command's environment (KEY=VALUE), which is otherwise this
	// process's, without the variables named in Drop.
	Env []string
	// Drop names environment variables the command must not see (the Raft secret, and what
	// leads to it).
	Drop []string
	// Tag, when set, is the PGAPPNAME the command's environment carries, so that its database
	// sessions name the replica (libpq, psycopg2 and pgx read it) and a later migrator can end
	// them. It overrides a PGAPPNAME of Env.
	Tag string
	// Shell runs Command; default /bin/sh.
	Shell string
	// Self is this program's executable, which runs the command under Reap (ReapCommand).
	// Required to migrate.
	Self string
	// StopGrace is how long the command has to exit after SIGTERM before it is killed, when
	// the replica stops (a signal, the deadline). A lost election kills it at once.
	StopGrace time.Duration
	// CheckInterval is how often the migrator checks, while the command runs, that it still
	// holds the election (engine.Hooks.Check); default DefaultCheckInterval.
	CheckInterval time.Duration
	// Evict ends the database sessions of commands that earlier migrators started and that
	// may still run (a frozen or cut-off migrator's). It runs before the command starts, with
	// own true: sessions tagged with this replica's own name are an earlier run's then, and
	// end too. After every check it runs again with own false. Nil where the database cannot
	// tell (SQLite).
	Evict func(ctx context.Context, own bool) error
	// Spawner, when set, starts the reaper (see Spawner).
	Spawner Spawner
	// Log receives the command's output, one entry per line.
	Log zerolog.Logger
}

// DefaultStopGrace is the default Options.StopGrace.
const DefaultStopGrace = 10 * time.Second

// DefaultCheckInterval is the default Options.CheckInterval.
const DefaultCheckInterval = time.Second

// tailLines is how many of the command's last output lines a failure quotes (the log has all).
const tailLines = 5

// Engine runs Command to apply what Source says is pending.
type Engine struct {
	Source
	opts Options
}

// StatusQuery is the source's, when it reads its status in one query (engine.StatusQuerier),
// or "" when it does not: a wait then runs nothing on the engine's behalf.
func (e *Engine) StatusQuery() string {
	if q, ok := e.Source.(engine.StatusQuerier); ok {
		return q.StatusQuery()
	}
	return ""
}

// StatusFrom is the source's (see StatusQuery).
func (e *Engine) StatusFrom(answer string, missing bool) (engine.Status, error) {
	if q, ok := e.Source.(engine.StatusQuerier); ok {
		return q.StatusFrom(answer, missing)
	}
	return engine.Status{}, errors.New("the version source reads its status by itself")
}

// New checks opts and returns the engine. A missing command is allowed for replicas that never
// migrate (wait, check, status); Migrate then fails.
func New(src Source, opts Options) (*Engine, error) {
	if opts.Shell == "" {
		opts.Shell = "/bin/sh"
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	for _, kv := range opts.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("migrate-env: %q is not KEY=VALUE", kv)
		}
	}
	return &Engine{Source: src, opts: opts}, nil
}

// Step is the one migration the engine reports for a run: the command, applying everything
// pending up to the target.
func Step(st engine.Status) engine.Migration {
	// The command's own tool commits each migration with its version row (Alembic, goose,
	// golang-migrate, Flyway, Prisma on PostgreSQL): run again after a kill, it carries on.
	return engine.Migration{Version: st.Target, Name: engine.CommandStep, Transactional: true, External: true}
}

// LostError is a migrate command killed because its migrator no longer held the election, or
// could not tell in time. It wraps lock.ErrLost.
type LostError struct {
	// Cause is why: the failed check, or the election lost.
	Cause error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("the migrate command was killed at once: this replica no longer holds the election (%v); "+
		"the command's own transactions are not fenced, so what it committed before it died stays", e.Cause)
}

func (e *LostError) Unwrap() []error { return []error{lock.ErrLost, e.Cause} }

// Migrate runs the command once, then reads the database: the run succeeded only if the
// schema is now what the replica needs. While the command runs, h.Check is called every
// CheckInterval; its failure, or h.Lost closing, kills the command's whole tree at once. h.Stop
// stops it politely: SIGTERM, then SIGKILL after StopGrace.
func (e *Engine) Migrate(ctx context.Context, st engine.Status, h engine.Hooks) error {
	if e.opts.Command == "" {
		return errors.New("migrate-command: not set; --engine command needs the command that applies the migrations")
	}
	if e.opts.Self == "" {
		return errors.New("migrate-command: the program's own executable is unknown, and the command cannot run without its reaper")
	}
	step := Step(st)
	// Settle first: until the command starts, status and the heartbeat say the migrator is
	// preparing, not that a command runs.
	if err := e.settle(ctx, h); err != nil {
		return &engine.MigrationError{Migration: step, Err: err}
	}
	if h.Before != nil {
		if err := h.Before(ctx, step); err != nil {
			return err
		}
	}
	if h.Check != nil {
		if err := h.Check(ctx); err != nil {
			return &engine.MigrationError{Migration: step, Err: &LostError{Cause: err}}
		}
	}
	e.evict(ctx, true)
	begin := time.Now()
	tail, err := e.run(ctx, h)
	if err != nil {
		return &engine.MigrationError{Migration: step, Err: withTail(err, tail)}
	}
	after, err := e.Source.Status(ctx)
	if err != nil {
		return fmt.Errorf("read the schema after the migrate command: %w", err)
	}
	if !after.Ready() {
		return &engine.MigrationError{Migration: step, Err: withTail(
			fmt.Errorf("the migrate command exited 0, but %s", after.Describe()), tail)}
	}
	if h.After != nil {
		return h.After(ctx, step, time.Since(begin))
	}
	return nil
}

// settle waits, when an earlier migrator vanished while its command ran (h.Settle), until that
// migrator must have noticed its loss and killed its command: it checks at least every
// CheckInterval, and a check gives up after lock.CheckDeadline. Meanwhile it ends the earlier
// command's sessions every 100 ms, so that none of its transactions commits beside this
// replica's command. A migrator frozen by SIGSTOP notices nothing until it is thawed: its
// command's new sessions are ended as they appear, here and while this command runs.
func (e *Engine) settle(ctx context.Context, h engine.Hooks) error {
	if !h.Settle {
		return nil
	}
	wait := e.opts.CheckInterval + lock.CheckDeadline + time.Second
	e.opts.Log.Warn().Str("for", wait.String()).Msg("an earlier migrator vanished while its migrate command ran; " +
		"waiting until it must have killed its command, and ending that command's sessions meanwhile")
	deadline := time.Now().Add(wait)
	for {
		e.evict(ctx, true)
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.Stop:
			return errors.New("stopped before the migrate command started")
		case <-h.Lost:
			return fmt.Errorf("the election was lost before the migrate command started: %w", lock.ErrLost)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// evict ends earlier migrators' command sessions, if the database can tell them.
func (e *Engine) evict(ctx context.Context, own bool) {
	if e.opts.Evict == nil {
		return
	}
	if err := e.opts.Evict(ctx, own); err != nil {
		e.opts.Log.Warn().Err(err).Msg("could not end the database sessions of an earlier migrator's command")
	}
}

func withTail(err error, tail []string) error {
	if len(tail) == 0 {
		return fmt.Errorf("%w; it printed nothing", err)
	}
	return fmt.Errorf("%w; its last output: %s", err, strings.Join(tail, " | "))
}

// run starts the command under its reaper, streams its output to the log, watches the
// election, and waits. It returns the last lines of output.
func (e *Engine) run(ctx context.Context, h engine.Hooks) ([]string, error) {
	p, err := start(e.opts.Self, []string{e.opts.Shell, "-c", e.opts.Command}, e.environ(), e.opts.Spawner, false)
	if err != nil {
		return nil, err
	}
	log := e.opts.Log.With().Int("pid", p.cmd.Process.Pid).Logger()
	log.Info().Str("command", e.opts.Command).Msg("running the migrate command")
	t := &tail{}
	var readers sync.WaitGroup
	readers.Go(func() { e.stream(p.stdout, "stdout", log, t) })
	readers.Go(func() { e.stream(p.stderr, "stderr", log, t) })

	exited := make(chan struct{})
	lost := make(chan error, 1)
	var supervised sync.WaitGroup
	supervised.Go(func() { e.supervise(ctx, h, p, exited, lost, log) })
	err = p.wait(&readers)
	close(exited)
	supervised.Wait()
	select {
	case cause := <-lost:
		return t.lines(), &LostError{Cause: cause}
	default:
	}
	return t.lines(), err
}

// RunDirect runs argv (no shell) the way the migrate command runs, writing to this process's
// own standard output and error: under its reaper, its sessions tagged, earlier migrators'
// command sessions ended first, the lease checked every second and the command killed at once
// when it is lost, stopped politely when the process stops. It is for an admin command run
// while holding the election (schemagate run). An exit other than 0 is an *ExitError.
func (e *Engine) RunDirect(ctx context.Context, argv []string, h engine.Hooks) error {
	if e.opts.Self == "" {
		return errors.New("the program's own executable is unknown, and the command cannot run without its reaper")
	}
	if h.Check != nil {
		if err := h.Check(ctx); err != nil {
			return &LostError{Cause: err}
		}
	}
	e.evict(ctx, true)
	p, err := start(e.opts.Self, argv, e.environ(), e.opts.Spawner, true)
	if err != nil {
		return err
	}
	log := e.opts.Log.With().Int("pid", p.cmd.Process.Pid).Logger()
	exited := make(chan struct{})
	lost := make(chan error, 1)
	var supervised sync.WaitGroup
	supervised.Go(func() { e.supervise(ctx, h, p, exited, lost, log) })
	err = p.wait(&sync.WaitGroup{})
	close(exited)
	supervised.Wait()
	select {
	case cause := <-lost:
		return &LostError{Cause: cause}
	default:
	}
	return err
}

// supervise stops the command when it must: at once when the election is lost (h.Lost, or a
// failed h.Check), politely when the replica stops (ctx, h.Stop). It returns when the command
// has exited.
func (e *Engine) supervise(ctx context.Context, h engine.Hooks, p *process, exited <-chan struct{}, lost chan<- error,
	log zerolog.Logger) {
	failed := make(chan error, 1)
	if h.Check != nil {
		go e.watch(ctx, h.Check, exited, failed)
	}
	stop, done := h.Stop, ctx.Done()
	var grace <-chan time.Time
	for {
		select {
		case <-exited:
			return
		case <-h.Lost:
			// A failed check marks the lease lost just before it reports why: prefer its word.
			select {
			case err := <-failed:
				lost <- err
			case <-time.After(100 * time.Millisecond):
				lost <- errors.New("the election was lost")
			}
		case err := <-failed:
			lost <- err
		case <-stop:
		case <-done:
		case <-grace:
			log.Warn().Str("grace", e.opts.StopGrace.String()).Msg("the migrate command did not stop; killing it")
			p.kill()
			grace = nil
			continue
		}
		if len(lost) > 0 {
			log.Error().Msg("this replica no longer holds the election; killing the migrate command's whole process tree at once")
			p.kill()
			<-exited
			return
		}
		if grace == nil && (stop != nil || done != nil) {
			log.Warn().Msg("stopping the migrate command (SIGTERM)")
			p.terminate()
			grace = time.After(e.opts.StopGrace)
		}
		stop, done = nil, nil // each fires once
	}
}

// watch calls check every CheckInterval until the command exits, and ends earlier migrators'
// command sessions after each check that passed. The first failure goes to failed.
func (e *Engine) watch(ctx context.Context, check func(context.Context) error, exited <-chan struct{}, failed chan<- error) {
	tick := time.NewTicker(e.opts.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return
		case <-tick.C:
		}
		if err := check(ctx); err != nil {
			failed <- err
			return
		}
		e.evict(ctx, false)
	}
}

// environ is this process's environment without Drop, plus Env and the tag.
func (e *Engine) environ() []string {
	add := e.opts.Env
	if e.opts.Tag != "" {
		add = append(slices.Clip(add), "PGAPPNAME="+e.opts.Tag)
	}
	return Environ(os.Environ(), add, e.opts.Drop...)
}

// Environ returns base without the variables named in drop, with add added; an entry of add
// replaces a base entry of the same key, and an earlier entry of add.
func Environ(base, add []string, drop ...string) []string {
	gone := map[string]bool{}
	for _, d := range drop {
		gone[d] = true
	}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		gone[k] = true
	}
	out := make([]string, 0, len(base)+len(add))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !gone[k] {
			out = append(out, kv)
		}
	}
	// Of two entries of add with one key, the later wins: getenv would find the first.
	last := map[string]int{}
	for i, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	for i, kv := range add {
		if k, _, _ := strings.Cut(kv, "="); last[k] == i {
			out = append(out, kv)
		}
	}
	return out
}

// stream logs each line of r and keeps the last ones.
func (e *Engine) stream(r io.Reader, name string, log zerolog.Logger, t *tail) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		t.add(line)
		log.Info().Str("stream", name).Msg(line)
	}
	io.Copy(io.Discard, r) // a line too long for the scanner: drain, so the command never blocks
}

// tail keeps the last tailLines lines.
type tail struct {
	mu  sync.Mutex
	buf []string
}

func (t *tail) add(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, line)
	if len(t.buf) > tailLines {
		t.buf = t.buf[len(t.buf)-tailLines:]
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.buf...)
}
