package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
)

// ErrNotReady is returned by Check when the schema does not satisfy this replica.
var ErrNotReady = errors.New("the schema is not ready for this replica")

// MigrationFailedError is a failed migration run: this replica's own, or the one it waited for.
type MigrationFailedError struct {
	// Migration is the migration that failed, when one did (a run can also refuse to start).
	Migration string
	// Replica ran the migration.
	Replica string
	// Cause is the database's error, or why the run refused to start.
	Cause string
	// Here is true when this replica was the migrator.
	Here bool
}

func (e *MigrationFailedError) Error() string {
	where := ""
	if !e.Here {
		where = " on replica " + e.Replica
	}
	if e.Migration == "" {
		return fmt.Sprintf("migration run failed%s: %s", where, e.Cause)
	}
	return fmt.Sprintf("migration %s failed%s: %s", e.Migration, where, e.Cause)
}

func failedRun(run *journal.Entry, here bool) *MigrationFailedError {
	return &MigrationFailedError{Migration: run.Name, Replica: run.Replica, Cause: run.Error, Here: here}
}

// TimeoutError is the deadline passing before the schema was ready.
type TimeoutError struct {
	Waited time.Duration
	// Last describes what the replica last saw: the schema and who was migrating.
	Last string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s before the schema was ready: %s", e.Waited.Round(time.Second), e.Last)
}

// StoppedError is a replica told to stop (SIGTERM, SIGINT) before the schema was ready.
type StoppedError struct {
	// Cause is what stopped it: "stopped by SIGTERM".
	Cause error
	// What says what the stop interrupted and where the database stays.
	What string
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("%v before the schema was ready: %s", e.Cause, e.What)
}

func (e *StoppedError) Unwrap() error { return context.Canceled }

// UnreachableError is the database staying unavailable until the deadline, or refusing this
// replica (wrong password, missing database).
type UnreachableError struct {
	Target string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("database unreachable: %v", e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// AheadError is a database ahead of this replica under --when-ahead=exit.
type AheadError struct{ Status engine.Status }

func (e *AheadError) Error() string {
	return e.Status.Describe() + "; --when-ahead=exit stops this replica"
}

// InputError is bad input: a flag, the configuration, the database URL or the migration files.
// Nothing was written to the database.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// ExitCode maps an error from this package (or nil) to the process exit code.
func ExitCode(err error) schemagate.ExitCode {
	var (
		input       *InputError
		failed      *MigrationFailedError
		timeout     *TimeoutError
		unreachable *UnreachableError
		ahead       *AheadError
	)
	switch {
	case err == nil:
		return schemagate.ExitReady
	case errors.Is(err, ErrNotReady):
		return schemagate.ExitNotReady
	case errors.As(err, &input):
		return schemagate.ExitInvalidInput
	case errors.As(err, &failed):
		return schemagate.ExitMigrationFailed
	case errors.As(err, &ahead):
		return schemagate.ExitAhead
	case errors.As(err, &unreachable):
		return schemagate.ExitUnreachable
	case errors.As(err, &timeout), errors.Is(err, context.Canceled):
		return schemagate.ExitTimeout
	}
	// Anything else is the database refusing something the migration run needs (a missing
	// privilege, a version table of an unexpected shape): the run cannot go on.
	return schemagate.ExitMigrationFailed
}
