package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/schemagate/schemagate/coordinator"
)

// writeReport prints the status report for a person at a terminal. Text that others wrote (a
// migration's name, the holder's statement, a migrate command's output in a journal error) is
// printed without terminal escape sequences or control characters: it must not repaint or
// retitle the terminal of whoever reads it.
func writeReport(w io.Writer, r *coordinator.Report) {
	w = printableWriter{w}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	ready := "yes"
	if !r.Ready {
		ready = "no"
	}
	fmt.Fprintf(tw, "database:\t%s\n", r.Database)
	fmt.Fprintf(tw, "replica:\t%s\n", r.Replica)
	fmt.Fprintf(tw, "lock:\t%s\n", r.Lock)
	fmt.Fprintf(tw, "migration set:\t%s\n", r.MigrationSet)
	fmt.Fprintf(tw, "target version:\t%d\n", r.Target)
	fmt.Fprintf(tw, "db version:\t%d\n", r.Current)
	fmt.Fprintf(tw, "ready:\t%s: %s\n", ready, r.Summary)
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
	if h := r.Holder; h != nil {
		fmt.Fprintf(tw, "lock holder:\t%s from %s, session since %s, %s\n", h.String(), orDash(h.Address),
			h.SessionStart.Local().Format(time.DateTime), orDash(h.State))
		if h.Query != "" {
			fmt.Fprintf(tw, "  statement:\t%s (since %s)\n", strings.Join(strings.Fields(h.Query), " "),
				h.QueryStart.Local().Format(time.DateTime))
		}
	} else {
		fmt.Fprintf(tw, "lock holder:\tnone\n")
	}
	tw.Flush()
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
			e.StartedAt.Local().Format(time.DateTime), orDash(e.Name), strings.Join(strings.Fields(detail), " "))
	}
	tw.Flush()
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
