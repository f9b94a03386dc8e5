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
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/engine"
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
	// Drop names environment variables the command must not see (the Raft secret).
	Drop []string
	// Shell runs Command; default /bin/sh.
	Shell string
	// Self is this program's executable, which runs the command under Reap (ReapCommand);
	// empty runs the shell directly, and a migrator that dies may then leave the shell's
	// children running.
	Self string
	// StopGrace is how long the command has to exit after SIGTERM before it is killed.
	StopGrace time.Duration
	// Log receives the command's output, one entry per line.
	Log zerolog.Logger
}

// DefaultStopGrace is the default Options.StopGrace.
const DefaultStopGrace = 10 * time.Second

// tailLines is how many of the command's last output lines a failure quotes (the log has all).
const tailLines = 5

// Engine runs Command to apply what Source says is pending.
type Engine struct {
	Source
	opts Options
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
	return engine.Migration{Version: st.Target, Name: "migrate-command", Transactional: true}
}

// Migrate runs the command once, then reads the database: the run succeeded only if the
// schema is now what the replica needs. h.Stop, when it closes, stops the command (SIGTERM,
// then SIGKILL after StopGrace).
func (e *Engine) Migrate(ctx context.Context, st engine.Status, h engine.Hooks) error {
	if e.opts.Command == "" {
		return errors.New("migrate-command: not set; --engine command needs the command that applies the migrations")
	}
	step := Step(st)
	if h.Before != nil {
		if err := h.Before(ctx, step); err != nil {
			return err
		}
	}
	begin := time.Now()
	tail, err := e.run(ctx, h.Stop)
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

func withTail(err error, tail []string) error {
	if len(tail) == 0 {
		return fmt.Errorf("%w; it printed nothing", err)
	}
	return fmt.Errorf("%w; its last output: %s", err, strings.Join(tail, " | "))
}

// run starts the command in its own process group, streams its output to the log, and waits.
// It returns the last lines of output.
func (e *Engine) run(ctx context.Context, stop <-chan struct{}) ([]string, error) {
	argv := []string{e.opts.Shell, "-c", e.opts.Command}
	if e.opts.Self != "" {
		argv = append([]string{e.opts.Self, ReapCommand, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = e.environ()
	// Told by the kernel when this process dies, however it dies: the reaper then kills the
	// command's process group, so that no migrate command races the next migrator.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: killSignal}
	if e.opts.Self == "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	t := &tail{}
	// Pdeathsig fires when the thread that started the child ends: keep this goroutine on one
	// thread while starting it (Go does not end unlocked threads).
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("start the migrate command: %w", err)
	}
	log := e.opts.Log.With().Int("pid", cmd.Process.Pid).Logger()
	log.Info().Str("command", e.opts.Command).Msg("running the migrate command")
	var wg sync.WaitGroup
	wg.Go(func() { e.stream(stdout, "stdout", log, t) })
	wg.Go(func() { e.stream(stderr, "stderr", log, t) })

	exited := make(chan struct{})
	go func() {
		var timer <-chan time.Time
		for {
			select {
			case <-exited:
				return
			case <-ctx.Done():
			case <-stop:
			case <-timer:
				log.Warn().Str("grace", e.opts.StopGrace.String()).Msg("the migrate command did not stop; killing it")
				e.signal(cmd, true)
				return
			}
			if timer == nil {
				log.Warn().Msg("stopping the migrate command (SIGTERM)")
				e.signal(cmd, false)
				timer = time.After(e.opts.StopGrace)
			}
			stop, ctx = nil, context.Background() // each fires once
		}
	}()
	wg.Wait() // the pipes close when the command and its children are gone
	err = cmd.Wait()
	close(exited)
	lines := t.lines()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return lines, nil
	case errors.As(err, &ee) && ee.ExitCode() > 128 && e.opts.Self != "":
		return lines, fmt.Errorf("the migrate command was killed by %v", syscall.Signal(ee.ExitCode()-128))
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return lines, fmt.Errorf("the migrate command exited %d", ee.ExitCode())
	case errors.As(err, &ee):
		return lines, fmt.Errorf("the migrate command was killed by %v", ee.Sys().(syscall.WaitStatus).Signal())
	}
	return lines, fmt.Errorf("the migrate command: %w", err)
}

// signal stops the command (kill: at once), through its reaper or its process group.
func (e *Engine) signal(cmd *exec.Cmd, kill bool) {
	switch {
	case e.opts.Self != "" && kill:
		cmd.Process.Signal(killSignal)
	case e.opts.Self != "":
		cmd.Process.Signal(stopSignal)
	case kill:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	default:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
}

// environ is this process's environment without Drop, plus Env.
func (e *Engine) environ() []string { return Environ(os.Environ(), e.opts.Env, e.opts.Drop...) }

// Environ returns base without the variables named in drop, with add added; an entry of add
// replaces a base entry of the same key.
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
	return append(out, add...)
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
