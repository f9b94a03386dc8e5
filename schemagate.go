// Package schemagate holds what every part of schemagate shares: the exit codes a replica ends
// with, so that orchestrators (Kubernetes Job podFailurePolicy, Swarm restart policies, CI
// scripts) can branch on them, and the build's version.
//
// The flow itself lives in package coordinator, the election backends in package lock and its
// subpackages, the migration engines in package engine, and the command line in cmd/schemagate.
package schemagate

import "runtime/debug"

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
	}
	return "unknown"
}

// ExitCodes lists every code schemagate exits with, in numeric order.
func ExitCodes() []ExitCode {
	return []ExitCode{ExitReady, ExitNotReady, ExitInvalidInput, ExitMigrationFailed,
		ExitTimeout, ExitUnreachable, ExitAhead, ExitAppNotStarted}
}

// Version is the release this binary was built from. Release builds and `make build` stamp it
// with -ldflags "-X github.com/schemagate/schemagate.Version=v1.2.3"; a binary built without
// that (`go install github.com/schemagate/schemagate/cmd/schemagate@v1.2.3`) reads it from its
// build info, and one built from a checkout without version control information says "dev".
var Version string

// modulePath is the module whose version a binary reports when nothing stamped it.
const modulePath = "github.com/schemagate/schemagate"

// The linker's -X can only set a variable initialized to a constant, so the fallback to the
// build info runs here, before anything reads Version.
func init() {
	info, ok := debug.ReadBuildInfo()
	Version = version(Version, info, ok)
}

// version is what a binary reports: stamped when -ldflags set it, else the version of this
// module in the build info (the main module for `go install …@v1.2.3`, a dependency when
// another program imports it), else "dev".
func version(stamped string, info *debug.BuildInfo, ok bool) string {
	if stamped != "" {
		return stamped
	}
	if !ok || info == nil {
		return "dev"
	}
	m := &info.Main
	if m.Path != modulePath {
		m = nil
		for _, d := range info.Deps {
			if d.Path == modulePath {
				m = d
				break
			}
		}
	}
	switch {
	case m == nil, m.Version == "", m.Version == "(devel)":
		return "dev"
	case m.Replace != nil && m.Replace.Version == "":
		// Replaced by a directory: the version in go.mod is a placeholder.
		return "dev"
	case m.Replace != nil:
		return m.Replace.Version
	}
	return m.Version
}
