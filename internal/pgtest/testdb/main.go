// Command testdb runs a command, the test suite, with a PostgreSQL server to test against, so
// that `make test` works on a fresh laptop:
//
//   - when something answers at SCHEMAGATE_TEST_DATABASE_URL (by default the local server on
//     5432), the command runs as it is;
//   - otherwise, when PostgreSQL's server binaries are installed (pg_config --bindir has initdb
//     and pg_ctl), it starts one throwaway server for the whole run, in a temporary directory on
//     a free port, runs the command with SCHEMAGATE_TEST_DATABASE_URL naming it, and removes it
//     when the command ends;
//   - otherwise the command runs as it is, and the tests that need PostgreSQL skip (or fail,
//     with CI set).
//
// It says which on stderr. Usage:
//
//	go run ./internal/pgtest/testdb -- go test ./...
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/pgscratch"
	"github.com/schemagate/schemagate/internal/pgtest"
)

// envURL is the variable the tests find their server in (internal/pgtest).
const envURL = "SCHEMAGATE_TEST_DATABASE_URL"

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: testdb -- COMMAND [ARG…]")
		return 2
	}
	url := pgtest.AdminURL()
	probe, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	answerErr := pgtest.Answers(probe, url)
	cancel()
	if answerErr == nil {
		return execute(args, os.Environ(), stderr)
	}
	setup, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := pgtest.ServerBinaries(setup); err != nil {
		fmt.Fprintf(stderr, "testdb: nothing answers at %s (%v), and no server can be started: %v; the tests that "+
			"need PostgreSQL skip (with CI set, they fail)\n", pgscratch.Redact(url), answerErr, err)
		return execute(args, os.Environ(), stderr)
	}
	server, err := pgscratch.StartServer(setup, pgscratch.ServerOptions{DirPrefix: "sgtestdb-"})
	if err != nil {
		fmt.Fprintf(stderr, "testdb: nothing answers at %s (%v), and starting a throwaway server failed: %v\n",
			pgscratch.Redact(url), answerErr, err)
		return 1
	}
	fmt.Fprintf(stderr, "testdb: nothing answers at %s (%v); started a throwaway PostgreSQL for this run at "+
		"127.0.0.1:%d (%s), exported as %s\n", pgscratch.Redact(url), answerErr, server.Port, server.Dir, envURL)
	code := execute(args, withEnv(os.Environ(), envURL, server.AdminURL()), stderr)
	if err := server.Remove(); err != nil {
		fmt.Fprintf(stderr, "testdb: removing the throwaway PostgreSQL in %s: %v\n", server.Dir, err)
	} else {
		fmt.Fprintln(stderr, "testdb: stopped and removed the throwaway PostgreSQL")
	}
	return code
}

// withEnv returns env with name set to value.
func withEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// execute runs args with env and the standard streams, passing SIGINT and SIGTERM on to it, so
// that the server is removed only once the command has ended. It returns the command's exit code.
func execute(args, env []string, stderr io.Writer) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, os.Stdin, os.Stdout, os.Stderr
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "testdb: %v\n", err)
		return 1
	}
	exited := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-signals:
				_ = cmd.Process.Signal(sig)
			case <-exited:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(exited)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	}
	fmt.Fprintf(stderr, "testdb: %s: %v\n", args[0], err)
	return 1
}
