// Package engine describes a replica's migrations and the database's schema in terms every
// migration engine shares, and decides readiness from the two.
//
// An engine (engine/goose, …) knows the migration files a replica carries (its Plan), reads
// what the database has applied, and applies what is pending. Readiness is decided here, from
// what was read, never from what an engine reported doing.
package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/schemagate/schemagate/lock"
)

// Migration is one migration of a replica's set.
type Migration struct {
	Version int64  `json:"version"`
	Name    string `json:"name"` // file name, such as 00042_add_index.sql
	// Transactional migrations apply with their version row or not at all. The others run
	// statement by statement; one interrupted midway leaves a partial change behind.
	Transactional bool `json:"transactional"`
	// External work runs outside the migrator's session: a command with connections of its
	// own. The migrator's fence cannot reach into its transactions.
	External bool `json:"external,omitempty"`
	// Checksum identifies the migration's file (goose): the journal keeps it as applied, so
	// that a file changed after it was applied can be told.
	Checksum string `json:"checksum,omitempty"`
}

// Applied is a migration the database has applied, as its version table records it.
type Applied struct {
	Version int64 `json:"version"`
	// Label names the version where numbers do not (an Alembic revision).
	Label string `json:"label,omitempty"`
	// At is when it was applied, when the version table records it.
	At time.Time `json:"applied_at,omitzero"`
}

// Historian is an Engine that can list what the database has applied.
type Historian interface {
	Applied(ctx context.Context) ([]Applied, error)
}

func (m Migration) String() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("version %d", m.Version)
}

// Plan is the set of migrations a replica carries and the version it needs.
type Plan struct {
	// Migrations in ascending version order, up to and including Target.
	Migrations []Migration
	// All is every migration the replica carries, also those above Target.
	All []Migration
	// Target is the version this replica needs.
	Target int64
	// Fingerprint identifies the set: replicas with the same files share it.
	Fingerprint string
}

// Find returns the migration with version v.
func (p Plan) Find(v int64) (Migration, bool) {
	for _, m := range p.All {
		if m.Version == v {
			return m, true
		}
	}
	return Migration{}, false
}

// StatusQuerier is an engine whose Status is one read-only query, which a statement of another
// package can run on the engine's behalf: the PostgreSQL lock runs it inside the wait that
// ends with the migrator's release, so that a woken waiter knows the schema without a round
// trip of its own while the rest of its fleet wakes with it.
type StatusQuerier interface {
	// StatusQuery returns a query answering one row of one text value, which StatusFrom reads.
	StatusQuery() string
	// StatusFrom reads StatusQuery's answer; missing says the query found no version table.
	StatusFrom(answer string, missing bool) (Status, error)
}

// Status compares a replica's plan with what the database has applied.
type Status struct {
	// TableExists is false before the first migration run created the version table.
	TableExists bool `json:"version_table_exists"`
	// Current is the highest version applied, 0 when none.
	Current int64 `json:"db_version"`
	// Target is the version this replica needs.
	Target int64 `json:"target_version"`
	// Pending are this replica's migrations not applied yet, in the order they would apply.
	Pending []Migration `json:"pending"`
	// Unknown are applied versions this replica does not carry, or carries above its target:
	// the database is ahead of it.
	Unknown []int64 `json:"unknown_versions,omitempty"`
	// OutOfOrder are pending migrations older than the newest applied one, which the engine
	// will not apply (goose without --allow-out-of-order): invalid input.
	OutOfOrder []Migration `json:"out_of_order,omitempty"`
	// CurrentLabel and TargetLabel name the versions where numbers do not (Alembic heads, a
	// Flyway or Prisma version); empty for goose.
	CurrentLabel string `json:"db_revision,omitempty"`
	TargetLabel  string `json:"target_revision,omitempty"`
	// Blocked says why the schema is not ready although nothing is pending (a version marked
	// dirty by a failed migration).
	Blocked string `json:"blocked,omitempty"`
	// NoFiles is set when the status was read without the replica's migration files (status
	// without --dir): Current is known, the target and what is pending are not.
	NoFiles bool `json:"no_files,omitempty"`
}

// Ready reports whether every migration of the replica's set up to its target is applied, and
// nothing marks the schema broken. Without the files (NoFiles) it cannot be told: false.
func (s Status) Ready() bool { return len(s.Pending) == 0 && s.Blocked == "" && !s.NoFiles }

// Ahead reports whether the database holds versions this replica does not know.
func (s Status) Ahead() bool { return len(s.Unknown) > 0 }

// Assess decides a Status from the plan and the versions the database has applied.
func Assess(p Plan, tableExists bool, applied []int64) Status {
	st := Status{TableExists: tableExists, Target: p.Target}
	done := make(map[int64]bool, len(applied))
	for _, v := range applied {
		done[v] = true
		st.Current = max(st.Current, v)
	}
	for _, m := range p.Migrations {
		if !done[m.Version] {
			st.Pending = append(st.Pending, m)
			if m.Version < st.Current {
				st.OutOfOrder = append(st.OutOfOrder, m)
			}
		}
	}
	for _, v := range applied {
		if _, known := p.Find(v); !known || v > p.Target {
			st.Unknown = append(st.Unknown, v)
		}
	}
	slices.Sort(st.Unknown)
	return st
}

// Describe says in one line where the schema stands for this replica.
func (s Status) Describe() string {
	if s.CurrentLabel != "" || s.TargetLabel != "" {
		return s.describeLabels()
	}
	switch {
	case s.NoFiles && !s.TableExists:
		return "the database has no migrations yet (read without the migration files: the target is unknown)"
	case s.NoFiles:
		return fmt.Sprintf("the database is at version %d (read without the migration files: the target and what is "+
			"pending are unknown)", s.Current)
	case !s.TableExists:
		return fmt.Sprintf("the database has no migrations yet; this replica needs version %d", s.Target)
	case s.Ready() && s.Ahead():
		return fmt.Sprintf("the database is at version %d, ahead of this replica's %d (%s unknown here)",
			s.Current, s.Target, versions(s.Unknown))
	case s.Ready():
		return fmt.Sprintf("the database is at version %d, which this replica needs", s.Current)
	}
	if len(s.OutOfOrder) > 0 {
		return fmt.Sprintf("the database is at version %d; this replica needs %d, and %s is older than version %d "+
			"(out of order)", s.Current, s.Target, s.OutOfOrder[0], s.Current)
	}
	return fmt.Sprintf("the database is at version %d; this replica needs %d (%d pending, next %s)",
		s.Current, s.Target, len(s.Pending), s.Pending[0])
}

// OrderError says why pending migrations older than the newest applied one stop this replica,
// or returns nil when none are pending.
func (s Status) OrderError() error {
	if len(s.OutOfOrder) == 0 {
		return nil
	}
	names := make([]string, len(s.OutOfOrder))
	for i, m := range s.OutOfOrder {
		names[i] = m.String()
	}
	return fmt.Errorf("%s not applied although the database is already at version %d (out of order); "+
		"apply with --allow-out-of-order, or give them versions above %d", strings.Join(names, ", "), s.Current, s.Current)
}

// describeLabels is Describe for versions with names.
func (s Status) describeLabels() string {
	switch {
	case !s.TableExists:
		return fmt.Sprintf("the database has no version table yet; this replica needs %s", s.TargetLabel)
	case s.Blocked != "":
		return "the database is not usable: " + s.Blocked
	case s.Ready() && s.Ahead():
		return fmt.Sprintf("the database is at %s, ahead of this replica's %s", s.CurrentLabel, s.TargetLabel)
	case s.Ready():
		return fmt.Sprintf("the database is at %s, which this replica needs", s.CurrentLabel)
	}
	return fmt.Sprintf("the database is at %s; this replica needs %s (%d pending, next %s)",
		s.CurrentLabel, s.TargetLabel, len(s.Pending), s.Pending[0])
}

func versions(vs []int64) string {
	parts := make([]string, 0, len(vs))
	for _, v := range vs {
		parts = append(parts, fmt.Sprint(v))
	}
	if len(parts) == 1 {
		return "version " + parts[0]
	}
	return "versions " + strings.Join(parts, ", ")
}

// CommandStep names the one step of a run whose work is a command of the app's own (External):
// the journal and the log tell such runs apart by it.
const CommandStep = "migrate-command"

// Hooks let the coordinator act around each migration an engine applies.
type Hooks struct {
	// Before runs just before m starts, outside any transaction.
	Before func(ctx context.Context, m Migration) error
	// InTx runs inside m's transaction, before the version row is written. It runs for
	// non-transactional migrations too, on the session, after their statements. An error rolls
	// the transaction back.
	InTx func(ctx context.Context, tx lock.Execer, m Migration) error
	// After runs once m is applied.
	After func(ctx context.Context, m Migration, took time.Duration) error
	// Stop is closed when the replica is stopping (a signal, the deadline). An engine whose
	// work runs outside the migrator's session (a child process) asks it to stop and gives it
	// a grace period; the others are interrupted through the session.
	Stop <-chan struct{}
	// Lost is closed when the replica is no longer the migrator. Work outside the session is
	// killed at once: another replica may already be migrating.
	Lost <-chan struct{}
	// Check verifies, on the migrator's own session, that this replica still holds the
	// election; an error means it does not (or cannot tell in time), and the work must end
	// at once. An engine whose work runs outside the session calls it before the work starts
	// and at least every second while it runs.
	Check func(ctx context.Context) error
	// Settle is set when an earlier migrator vanished while work of its own ran outside its
	// session (a migrate command): that work may still run until its migrator notices the
	// loss. An engine whose work runs outside the session does not start its own before then.
	Settle bool
}

// MigrationError is a migration that failed to apply. Err is the database's error.
type MigrationError struct {
	Migration Migration
	Err       error
	// Progress says, for a non-transactional migration, how far it got; nil otherwise.
	Progress *Progress
	// Statement is the statement that failed, and Line its line in the migration's file,
	// where the engine can tell; else empty and 0.
	Statement string
	Line      int
}

// Progress says how far a non-transactional migration got before it failed or was stopped:
// the statements that completed stay applied.
type Progress struct {
	// Known is false where the engine cannot tell (SQLite): any statement may have run.
	Known bool
	// Completed are the statements that completed, in order, of Total.
	Completed []string
	Total     int
}

// Describe says in one phrase how far the migration got.
func (p *Progress) Describe() string {
	switch {
	case !p.Known:
		return "which of its statements completed cannot be told; any of them may have"
	case len(p.Completed) == 0:
		return fmt.Sprintf("none of its %d statements had completed", p.Total)
	}
	first := strings.Join(strings.Fields(p.Completed[0]), " ")
	if len(first) > 80 {
		first = first[:80] + "…"
	}
	return fmt.Sprintf("statements 1 to %d of %d had completed and stay applied (the first: %s)",
		len(p.Completed), p.Total, first)
}

func (e *MigrationError) Error() string { return fmt.Sprintf("%s: %v", e.Migration, e.Err) }
func (e *MigrationError) Unwrap() error { return e.Err }
