package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/pgscratch"
)

// cleanupTimeout bounds dropping the database and stopping the cluster, after Ctrl-C too.
const cleanupTimeout = 30 * time.Second

// demo is one run of the demo.
type demo struct {
	opts options
	out  io.Writer

	tmp     string // the temporary directory: binary, migrations, SQLite file
	bin     string
	db      *database
	cluster *pgscratch.Server
	// version is the database's version after the last rollout; dir that rollout's migrations.
	version int
	dir     string
	records []*record

	// Tests look in through these. started is called once a rollout's replicas run; inspect
	// after the last rollout, before anything is cleaned up.
	started func(*record, []*fleet.Replica)
	inspect func(*database)
}

// run runs the three rollouts and the summary, and cleans up after itself whatever happens.
func (d *demo) run(ctx context.Context) (err error) {
	begin := time.Now()
	if d.tmp, err = os.MkdirTemp("", "schemagate-demo-"); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, d.cleanup(ctx.Err() != nil)) }()
	if err := d.setup(ctx); err != nil {
		return err
	}
	for i, rel := range releases(d.db.sqlite) {
		rec, err := d.rollout(ctx, i+1, rel)
		if err != nil {
			return interrupted(ctx, fmt.Errorf("rollout %d: %w", i+1, err))
		}
		d.records = append(d.records, rec)
		d.version = rel.set.N
		if err := d.verdict(ctx, rec); err != nil {
			return err
		}
	}
	if err := d.summary(ctx); err != nil {
		return interrupted(ctx, err)
	}
	fmt.Fprintf(d.out, "\nThe demo took %s.\n", seconds(time.Since(begin)))
	return nil
}

// interrupted says so when err comes from Ctrl-C.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	return err
}

// setup builds the binary and makes the database, telling what it uses.
func (d *demo) setup(ctx context.Context) error {
	fmt.Fprintf(d.out, "schemagate demo: three rollouts of %d replicas each, started at once on this machine.\n", d.opts.replicas)
	if err := d.build(); err != nil {
		return err
	}
	if err := d.database(ctx); err != nil {
		return interrupted(ctx, err)
	}
	fmt.Fprintf(d.out, "  database  %s\n", d.db.label)
	fmt.Fprintf(d.out, "  replicas  each runs `schemagate migrate`, as an init container would: one migrates, the\n"+
		"            others wait for it, and each exits 0 once the schema is what it needs.\n"+
		"  below     what the replicas log (their JSON logs, parsed), timed from each rollout's start\n")
	return nil
}

// build compiles schemagate from this module.
func (d *demo) build() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return errors.New("run the demo from the schemagate module: make demo, or go run ./internal/demo")
	}
	start := time.Now()
	fmt.Fprintf(d.out, "  binary    building schemagate (the first build takes a minute) … ")
	if d.bin, err = fleet.Build(filepath.Dir(mod), d.tmp); err != nil {
		fmt.Fprintln(d.out, "failed")
		return err
	}
	fmt.Fprintf(d.out, "done in %s\n", seconds(time.Since(start)))
	return nil
}

// database makes the database the replicas migrate: SQLite unless told otherwise.
func (d *demo) database(ctx context.Context) error {
	switch {
	case d.opts.postgres:
		fmt.Fprintf(d.out, "  cluster   starting a throwaway PostgreSQL cluster … ")
		c, err := pgscratch.StartServer(ctx, pgscratch.ServerOptions{DirPrefix: "schemagate-demo-pg-"})
		if err != nil {
			fmt.Fprintln(d.out, "failed")
			return fmt.Errorf("--postgres: %w", err)
		}
		d.cluster = c
		fmt.Fprintf(d.out, "on 127.0.0.1:%d, in %s\n", c.Port, c.Dir)
		if d.db, err = newPostgres(ctx, c.AdminURL()); err != nil {
			return err
		}
		d.db.label = fmt.Sprintf("PostgreSQL database %s in that cluster", d.db.name)
		return nil
	case d.opts.databaseURL != "":
		var err error
		d.db, err = newPostgres(ctx, d.opts.databaseURL)
		return err
	}
	d.db = newSQLite(d.tmp)
	d.db.label += "; the election is a file lock beside it\n" +
		"            (set DATABASE_URL, or pass --postgres, to use PostgreSQL and its advisory lock)"
	return nil
}

// verdict checks a rollout against the invariants and the database, and says so.
func (d *demo) verdict(ctx context.Context, rec *record) error {
	log, err := d.db.appliedLog(ctx)
	if err != nil {
		return interrupted(ctx, fmt.Errorf("read applied_log: %w", err))
	}
	problems := rec.check(log)
	fmt.Fprintln(d.out)
	if len(problems) == 0 {
		fmt.Fprintf(d.out, "  ✓ %s (%s)\n", rec.story(), seconds(rec.took))
		fmt.Fprintf(d.out, "  ✓ database: applied_log holds migrations 1–%d, each applied once\n", d.version)
		return nil
	}
	fmt.Fprintf(d.out, "  ✗ %s\n", rec.story())
	for _, p := range problems {
		fmt.Fprintf(d.out, "  ✗ %s\n", p)
	}
	return fmt.Errorf("rollout %d: %s", rec.number, strings.Join(problems, "; "))
}

// cleanup removes everything the demo made: the database, the cluster, the temporary
// directory. The replicas are already stopped: each rollout stops its own.
func (d *demo) cleanup(stopped bool) error {
	if stopped {
		fmt.Fprintln(d.out, "\nInterrupted: cleaning up.")
	}
	if d.inspect != nil && d.db != nil && !stopped {
		d.inspect(d.db)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	var done []string
	if d.db != nil && d.db.drop != nil && d.cluster == nil {
		errs = append(errs, d.db.drop(ctx))
		done = append(done, "dropped database "+d.db.name)
	}
	if d.cluster != nil {
		errs = append(errs, d.cluster.Remove())
		done = append(done, "stopped the cluster")
	}
	errs = append(errs, os.RemoveAll(d.tmp))
	done = append(done, "removed "+d.tmp)
	err := errors.Join(errs...)
	if err == nil {
		fmt.Fprintf(d.out, "Cleaned up: %s.\n", strings.Join(done, ", "))
	}
	return err
}
