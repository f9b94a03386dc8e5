package schemagate

import (
	"context"
	"errors"
)

// ExitCode is the status a schemagate process exits with. The values are stable: they are part of
// the interface that Job failure policies and scripts are written against.
type ExitCode int

const (
	// ExitReady: the schema satisfies this replica (one-shot modes), or `check` found it ready.
	ExitReady ExitCode = 0
	// ExitNotReady: `check` found the schema not ready for this replica.
	ExitNotReady ExitCode = 1
	// ExitInvalidInput: bad flags, configuration, database URL or migration files. Nothing was
	// written to the database. Retrying does not help.
	ExitInvalidInput ExitCode = 2
	// ExitMigrationFailed: a migration failed, here or on the replica this one waited for, or
	// the database holds an interrupted migration that must be inspected first. Retrying the
	// same migrations without a change is unlikely to help.
	ExitMigrationFailed ExitCode = 3
	// ExitTimeout: the deadline (--timeout) passed before the schema was ready, or a SIGTERM or
	// SIGINT stopped the process first (exit_reason "stopped"; a second signal ends it at once).
	// Retrying may help: the migrator may simply be slow.
	ExitTimeout ExitCode = 4
	// ExitUnreachable: the database could not be reached or refused the connection until the
	// deadline. Retrying may help.
	ExitUnreachable ExitCode = 5
	// ExitAhead: the database holds migrations this replica does not know, and the policy
	// (--when-ahead=exit) says not to run against it.
	ExitAhead ExitCode = 6
	// ExitAppNotStarted: `exec` passed the gate, but the app's command could not be started
	// in its place (execve failed: the file changed, is not an executable for this machine,
	// or the arguments are too long). The schema is ready; the app never ran.
	ExitAppNotStarted ExitCode = 7
	// ExitFleetDisagrees: the fleet guard (--same-env) held this replica back: the value of a
	// variable the replicas must agree on differs from the one the ready replicas of its
	// release hold. The schema is ready; retrying without a change does not help.
	ExitFleetDisagrees ExitCode = 8
)

// Retryable reports whether an orchestrator should try again after a process ended with code:
// the condition may pass on its own (a slow migrator, a database still starting). The other
// failures need a change (of input, of migrations, of the release) before a retry can succeed.
func (c ExitCode) Retryable() bool {
	return c == ExitTimeout || c == ExitUnreachable
}

// String names the code as the documentation does.
func (c ExitCode) String() string {
	switch c {
	case ExitReady:
		return "ready"
	case ExitNotReady:
		return "not ready"
	case ExitInvalidInput:
		return "invalid input"
	case ExitMigrationFailed:
		return "migration failed"
	case ExitTimeout:
		return "timed out"
	case ExitUnreachable:
		return "database unreachable"
	case ExitAhead:
		return "database ahead"
	case ExitAppNotStarted:
		return "app not started"
	case ExitFleetDisagrees:
		return "fleet disagrees"
	}
	return "unknown"
}

// ExitCodes lists every code schemagate exits with, in numeric order.
func ExitCodes() []ExitCode {
	return []ExitCode{ExitReady, ExitNotReady, ExitInvalidInput, ExitMigrationFailed,
		ExitTimeout, ExitUnreachable, ExitAhead, ExitAppNotStarted, ExitFleetDisagrees}
}

// ExitCoder is an error that knows the exit code a process ends with when it is the reason, as
// net.Error knows whether it is a timeout. The errors of package coordinator, of the engines
// and of the command line that decide an exit code implement it; ExitCodeOf finds them behind
// any wrapping.
type ExitCoder interface {
	error
	ExitCode() ExitCode
}

// ExitCodeOf is the code a process ends with after err, the one classification every command
// uses:
//
//   - ExitReady for nil;
//   - the code of the first error in err's tree that implements ExitCoder, in the order
//     errors.As visits them: the outermost, so that a wrapper that knows more than what it
//     wraps decides (a failed migration run is exit 3, whatever the engine's error behind it);
//   - ExitTimeout for a cancelled context without one: a stop (SIGTERM, SIGINT);
//   - ExitMigrationFailed otherwise: an error nobody classified is the database refusing
//     something the run needs (a missing privilege, a version table of an unexpected shape),
//     and retrying without a change does not help.
func ExitCodeOf(err error) ExitCode {
	var coded ExitCoder
	switch {
	case err == nil:
		return ExitReady
	case errors.As(err, &coded):
		return coded.ExitCode()
	case errors.Is(err, context.Canceled):
		return ExitTimeout
	}
	return ExitMigrationFailed
}
