package main

import (
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// writeReport prints the status report for a person at a terminal: first what is happening and
// what to do, then the details. Times are given as "38s ago" with the clock time and its zone.
// Text that others wrote (a migration's name, the holder's statement, a migrate command's
// output in a journal error) is printed without terminal escape sequences or control
// characters: it must not repaint or retitle the terminal of whoever reads it.
func writeReport(w io.Writer, r *coordinator.Report) {
	w = printableWriter{w}
	now := r.ReadAt
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ready := "yes"
	if !r.Ready {
		ready = "no"
	}
	fmt.Fprintf(tw, "state:\t%s\n", stateLine(r, now))
	fmt.Fprintf(tw, "next step:\t%s\n", r.Next)
	fmt.Fprintf(tw, "ready:\t%s: %s\n", ready, r.Summary)
	fmt.Fprintf(tw, "database:\t%s (read %s)\n", r.Database, clock(r.ReadAt))
	fmt.Fprintf(tw, "replica:\t%s\n", r.Replica)
	fmt.Fprintf(tw, "lock:\t%s\n", r.Lock)
	if !r.NoFiles {
		fmt.Fprintf(tw, "migration set:\t%s\n", r.MigrationSet)
		fmt.Fprintf(tw, "target version:\t%s\n", versionText(r.Target, r.TargetLabel))
	}
	fmt.Fprintf(tw, "db version:\t%s\n", versionText(r.Current, r.CurrentLabel))
	if len(r.Pending) > 0 {
		names := make([]string, len(r.Pending))
		for i, m := range r.Pending {
			names[i] = m.Name
			if !m.Transactional {
				names[i] += " (no transaction)"
			}
		}
		fmt.Fprintf(tw, "pending:\t%s\n", strings.Join(names, ", "))
	}
	fmt.Fprintf(tw, "waiting:\t%s\n", waitingText(r))
	fmt.Fprintf(tw, "fleet:\t%s\n", fleetText(r))
	if r.Fleet != nil && r.Fleet.Releases != "" {
		fmt.Fprintf(tw, "\t%s\n", r.Fleet.Releases)
	}
	if h := r.Holder; h != nil {
		fmt.Fprintf(tw, "lock holder:\t%s from %s, session started %s, %s\n", h.String(), orDash(h.Address),
			ago(h.SessionStart, now), orDash(h.State))
		if h.Query != "" {
			fmt.Fprintf(tw, "  statement:\t%s (running %s)\n", strings.Join(strings.Fields(h.Query), " "),
				now.Sub(h.QueryStart).Round(time.Second))
		}
	} else {
		fmt.Fprintf(tw, "lock holder:\tnone\n")
	}
	if run := r.Run; run != nil {
		fmt.Fprintf(tw, "last run:\t#%d by %s: %s\n", run.ID, run.Replica, runText(run, now))
	}
	tw.Flush()
	if len(r.Applied) > 0 {
		writeApplied(w, r.Applied, now)
	}
	if r.Fleet != nil && len(r.Fleet.Replicas) > 0 {
		writeFleet(w, r, now)
	}
	if len(r.Journal) == 0 {
		fmt.Fprintln(w, "journal: empty")
		return
	}
	fmt.Fprintln(w, "journal (newest first):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tKIND\tREPLICA\tOUTCOME\tSTARTED\tMIGRATION\tDETAIL")
	for _, e := range r.Journal {
		detail := e.Error
		if e.Kind == "run" && detail == "" {
			detail = fmt.Sprintf("version %d to %d", e.FromVersion, e.ToVersion)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Kind, e.Replica, e.Outcome,
			ago(e.StartedAt, now), orDash(e.Name), strings.Join(strings.Fields(detail), " "))
	}
	tw.Flush()
}

// stateLine says in one line what is happening now.
func stateLine(r *coordinator.Report, now time.Time) string {
	run := r.Run
	switch {
	case run != nil && run.Outcome == journal.Running && r.Holder != nil:
		s := "migrating: replica " + r.Holder.String()
		switch {
		case run.Name == engine.CommandStep && run.CurrentSince != nil:
			s += fmt.Sprintf(" is running the migrate command, for %s", now.Sub(*run.CurrentSince).Round(time.Second))
			if r.Command != "" {
				s += " (" + oneLine(r.Command) + ")"
			}
		case run.Name != "" && run.CurrentSince != nil:
			s += " is applying " + run.Name
			if r.Of > 0 {
				s += fmt.Sprintf(" (%d of %d)", r.Position, r.Of)
			}
			s += fmt.Sprintf(", for %s", now.Sub(*run.CurrentSince).Round(time.Second))
		default:
			s += " is preparing to migrate"
		}
		return s + fmt.Sprintf("; the run started %s", ago(run.StartedAt, now))
	case r.CutOff():
		s := fmt.Sprintf("cut off: replica %s's run stopped without finishing", run.Replica)
		switch {
		case run.Name == engine.CommandStep:
			s += " while the migrate command ran"
		case run.Name != "":
			s += " while applying " + run.Name
		}
		return s + fmt.Sprintf("; no replica holds the lock (the run started %s)", ago(run.StartedAt, now))
	case run != nil && run.Outcome == journal.Failed && !r.Status.Ready():
		what := strings.TrimSpace(run.Error)
		if run.Name != "" {
			what = run.Name + ": " + what // a run that refused to start names no migration
		}
		return fmt.Sprintf("failed: replica %s's run failed %s: %s", run.Replica, ago(*endOf(run), now), oneLine(what))
	case r.Status.Ready():
		return "ready"
	case r.Holder != nil:
		return "the lock is held by replica " + r.Holder.String()
	case r.NoFiles:
		return "read without the migration files"
	}
	return "behind, and no replica is migrating"
}

// endOf is when a run ended, or when it started while it runs.
func endOf(e *journal.Entry) *time.Time {
	if e.FinishedAt != nil {
		return e.FinishedAt
	}
	return &e.StartedAt
}

// runText describes a journal run.
func runText(run *journal.Entry, now time.Time) string {
	s := fmt.Sprintf("%s, started %s, version %d to %d", run.Outcome, ago(run.StartedAt, now), run.FromVersion, run.ToVersion)
	if run.FinishedAt != nil {
		s += fmt.Sprintf(", took %s", run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond))
	}
	if run.Error != "" {
		s += ": " + oneLine(run.Error)
	}
	return s
}

// waitingText names the replicas waiting for the migrator.
func waitingText(r *coordinator.Report) string {
	switch {
	case !r.WaitingKnown:
		return "not visible with this lock (with --lock raft the waiters hold no database connection)"
	case len(r.Waiting) == 0:
		return "none"
	case len(r.Waiting) > 8:
		return fmt.Sprintf("%d replicas: %s, …", len(r.Waiting), strings.Join(r.Waiting[:8], ", "))
	}
	return fmt.Sprintf("%d replica(s): %s", len(r.Waiting), strings.Join(r.Waiting, ", "))
}

// fleetText says how the fleet stands, in one line.
func fleetText(r *coordinator.Report) string {
	if r.Fleet == nil {
		return "not visible with this lock (with --lock raft, status joins no cluster)"
	}
	return r.Fleet.Summary
}

// maxFleetRows bounds the fleet's table: the summary counts them all.
const maxFleetRows = 30

// writeFleet lists the replicas of the fleet: this release's first, then by replica.
func writeFleet(w io.Writer, r *coordinator.Report, now time.Time) {
	members := slices.Clone(r.Fleet.Replicas)
	slices.SortStableFunc(members, func(a, b lock.Member) int {
		return cmp.Compare(b2i(a.MigrationSet != r.MigrationSet), b2i(b.MigrationSet != r.MigrationSet))
	})
	fmt.Fprintln(w, "fleet (by replica):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  REPLICA\tHOST\tRELEASE\tPHASE\tSINCE")
	for _, m := range members[:min(len(members), maxFleetRows)] {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", m.Replica, orDash(m.Host), coordinator.ShortSet(m.MigrationSet),
			orDash(m.Phase), ago(m.Since, now))
	}
	tw.Flush()
	if n := len(members) - maxFleetRows; n > 0 {
		fmt.Fprintf(w, "  … and %d more (status --output json lists them all)\n", n)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeApplied prints the applied migrations, newest first, and warns of any whose file changed
// since it was applied.
func writeApplied(w io.Writer, applied []coordinator.AppliedMigration, now time.Time) {
	fmt.Fprintln(w, "applied (newest first):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tMIGRATION\tAPPLIED\tBY\tRUN\tTOOK")
	var changed []string
	for i := len(applied) - 1; i >= 0; i-- {
		a := applied[i]
		run, took, when := "-", "-", "-"
		if a.RunID != 0 {
			run = fmt.Sprintf("#%d", a.RunID)
		}
		if a.Took > 0 {
			took = a.Took.String()
		}
		if !a.At.IsZero() {
			when = ago(a.At, now)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", versionText(a.Version, a.Label), orDash(a.Name), when,
			orDash(a.Replica), run, took)
		if a.Changed {
			changed = append(changed, a.Name)
		}
	}
	tw.Flush()
	for _, name := range changed {
		fmt.Fprintf(w, "warning: %s changed since it was applied: the database has what the old file said; "+
			"undo the edit and put the change into a new migration\n", name)
	}
}

// ago is a time as "38s ago (12:00:01 UTC)".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s ago (%s)", now.Sub(t).Round(time.Second), clock(t))
}

// clock is a time of day with its zone, and its date when it is not today.
func clock(t time.Time) string {
	t = t.Local()
	if t.Format(time.DateOnly) == time.Now().Format(time.DateOnly) {
		return t.Format("15:04:05 MST")
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

func versionText(v int64, label string) string {
	if label != "" {
		return label
	}
	return fmt.Sprint(v)
}

// printableWriter strips terminal escape sequences and control characters (but for newlines
// and tabs, which the layout uses) from what is written through it.
type printableWriter struct{ w io.Writer }

func (p printableWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, printable(string(b))); err != nil {
		return 0, err
	}
	return len(b), nil
}

// escapeSequence matches ANSI/VT escape sequences: CSI (ESC [ … final), OSC (ESC ] … BEL or
// ST), and two-byte escapes.
var escapeSequence = regexp.MustCompile(`\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])`)

// printable removes escape sequences and control characters other than newline and tab.
func printable(s string) string {
	s = escapeSequence.ReplaceAllString(s, "")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
