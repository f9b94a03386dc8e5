// Command demo is `make demo`: it runs real rollouts of schemagate replicas on this machine and
// narrates them from the replicas' own logs. Three rollouts, N replicas each, started at once:
// release v1 onto an empty database, release v2 with two more migrations, and release v3 whose
// migrator is SIGKILLed in the middle of a slow migration. Then it checks the database (every
// migration applied exactly once), prints `schemagate status`, and removes everything it made.
//
// The database is a SQLite file in a temporary directory (no setup); a throwaway database
// created inside DATABASE_URL (PostgreSQL) when that is set; or, with --postgres, a throwaway
// PostgreSQL cluster started with the server binaries of `pg_config --bindir`.
//
//	go run ./internal/demo [--replicas N] [--postgres]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the demo could not run, or what it saw contradicts the invariants
	exitUsage  = 2
	exitSignal = 130 // stopped by Ctrl-C or SIGTERM, after cleaning up
)

func main() {
	// A closed stdout (make demo | head) must not kill the demo before it cleans up.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the demo with its arguments, environment and output passed in.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return exitUsage
	}
	d := &demo{opts: opts, out: stdout}
	if err := d.run(ctx); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		if ctx.Err() != nil {
			return exitSignal
		}
		return exitFailed
	}
	return exitOK
}

// options are the demo's settings.
type options struct {
	// replicas is how many replicas each rollout starts.
	replicas int
	// postgres starts a throwaway PostgreSQL cluster.
	postgres bool
	// databaseURL is a PostgreSQL server to create a throwaway database in (DATABASE_URL).
	databaseURL string
}

const maxReplicas = 50

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./internal/demo [--replicas N] [--postgres]\n\n"+
			"Runs three rollouts of N schemagate replicas on this machine and narrates them. The database is\n"+
			"a SQLite file in a temporary directory, a throwaway database inside DATABASE_URL (PostgreSQL)\n"+
			"when that is set, or a throwaway PostgreSQL cluster with --postgres.\n\n")
		fs.PrintDefaults()
	}
	o := options{databaseURL: getenv("DATABASE_URL")}
	fs.IntVar(&o.replicas, "replicas", 5, fmt.Sprintf("replicas per rollout, 2 to %d", maxReplicas))
	fs.BoolVar(&o.postgres, "postgres", false, "start a throwaway PostgreSQL cluster (pg_config --bindir) instead of using SQLite or DATABASE_URL")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if o.replicas < 2 || o.replicas > maxReplicas {
		return o, fmt.Errorf("--replicas: %d must be between 2 and %d", o.replicas, maxReplicas)
	}
	if o.postgres {
		o.databaseURL = ""
	}
	if o.databaseURL != "" {
		if _, err := postgresURL(o.databaseURL); err != nil {
			return o, fmt.Errorf("DATABASE_URL: %w (unset it to use SQLite)", err)
		}
	}
	return o, nil
}
