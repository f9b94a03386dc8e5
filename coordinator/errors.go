package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
)

// Each error this package returns for a reason a replica stops knows its exit code
// (schemagate.ExitCoder), so that schemagate.ExitCodeOf classifies it wherever it is wrapped.

// ErrNotReady is returned by Check when the schema does not satisfy this replica: exit code 1.
var ErrNotReady error = notReadyError{}

type notReadyError struct{}

func (notReadyError) Error() string                 { return "the schema is not ready for this replica" }
func (notReadyError) ExitCode() schemagate.ExitCode { return schemagate.ExitNotReady }

// MigrationFailedError is a failed migration run: this replica's own, or the one it waited for.
// Exit code 3, whatever the error behind it.
type MigrationFailedError struct {
	// Migration is the migration that failed, when one did (a run can also refuse to start).
	Migration string
	// Replica ran the migration.
	Replica string
	// Cause is why: its text is what the journal keeps (the database's error, redacted, and
	// where the schema stopped). When this replica was the migrator, it wraps the error itself,
	// which errors.As finds (an *InterruptedError, an engine's error); for a run another replica
	// failed, the journal's text is all there is.
	Cause error
	// Here is true when this replica was the migrator.
	Here bool
}

func (e *MigrationFailedError) Error() string {
	where := ""
	if !e.Here {
		where = " on replica " + e.Replica
	}
	if e.Migration == "" {
		return fmt.Sprintf("migration run failed%s: %v", where, e.Cause)
	}
	return fmt.Sprintf("migration %s failed%s: %v", e.Migration, where, e.Cause)
}

func (e *MigrationFailedError) Unwrap() error                 { return e.Cause }
func (e *MigrationFailedError) ExitCode() schemagate.ExitCode { return schemagate.ExitMigrationFailed }

// failedRun is the failure of a run the journal records.
func failedRun(run *journal.Entry, here bool) *MigrationFailedError {
	return &MigrationFailedError{Migration: run.Name, Replica: run.Replica, Cause: errors.New(run.Error), Here: here}
}

// causeError is the cause of a run this replica failed: the text it journaled, and the error
// behind it.
type causeError struct {
	text string
	err  error
}

func (e *causeError) Error() string { return e.text }
func (e *causeError) Unwrap() error { return e.err }

// InterruptedError is a non-transactional migration that a vanished migrator left half-done:
// exit code 3 until a person decides (schemagate resolve).
type InterruptedError struct{ Entries []journal.Entry }

func (e *InterruptedError) Error() string {
	parts := make([]string, len(e.Entries))
	for i, x := range e.Entries {
		parts[i] = fmt.Sprintf("%s (started by replica %s at %s)", x.Name, x.Replica, x.StartedAt.Format(time.RFC3339))
	}
	return "non-transactional migration " + strings.Join(parts, ", ") + " was interrupted midway and may have " +
		"left part of its change behind; check the database, then run schemagate resolve --migration " +
		e.Entries[0].Name + " with --mark-applied (you finished it by hand) or --allow-rerun (it may run again)"
}

func (e *InterruptedError) ExitCode() schemagate.ExitCode { return schemagate.ExitMigrationFailed }

// TimeoutError is the deadline passing before the schema was ready: exit code 4.
type TimeoutError struct {
	Waited time.Duration
	// Last describes what the replica last saw: the schema and who was migrating.
	Last string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s before the schema was ready: %s", e.Waited.Round(time.Second), e.Last)
}

func (e *TimeoutError) ExitCode() schemagate.ExitCode { return schemagate.ExitTimeout }

// StoppedError is a replica told to stop (SIGTERM, SIGINT) before the schema was ready: exit
// code 4, as a deadline; the exit reason tells them apart.
type StoppedError struct {
	// Cause is what stopped it: "stopped by SIGTERM".
	Cause error
	// What says what the stop interrupted and where the database stays.
	What string
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("%v before the schema was ready: %s", e.Cause, e.What)
}

func (e *StoppedError) Unwrap() error                 { return context.Canceled }
func (e *StoppedError) ExitCode() schemagate.ExitCode { return schemagate.ExitTimeout }

// UnreachableError is the database staying unavailable until the deadline, or refusing this
// replica (wrong password, missing database): exit code 5.
type UnreachableError struct {
	Target string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("database unreachable: %v", e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// ExitCode is 5, unless the error behind it knows better: a read that failed because its
// query is wrong stays invalid input, even when the deadline passed as it failed.
func (e *UnreachableError) ExitCode() schemagate.ExitCode {
	if inner, ok := errors.AsType[schemagate.ExitCoder](e.Err); ok {
		return inner.ExitCode()
	}
	return schemagate.ExitUnreachable
}

// AheadError is a database ahead of this replica under --when-ahead=exit: exit code 6.
type AheadError struct{ Status engine.Status }

func (e *AheadError) Error() string {
	return e.Status.Describe() + "; --when-ahead=exit stops this replica"
}

func (e *AheadError) ExitCode() schemagate.ExitCode { return schemagate.ExitAhead }

// InputError is bad input: a flag, the configuration, the database URL or the migration files.
// Nothing was written to the database. Exit code 2, whatever it wraps.
type InputError struct{ Err error }

func (e *InputError) Error() string                 { return e.Err.Error() }
func (e *InputError) Unwrap() error                 { return e.Err }
func (e *InputError) ExitCode() schemagate.ExitCode { return schemagate.ExitInvalidInput }
