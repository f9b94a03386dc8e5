package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// summary retells the rollouts in one line each, holds the narration against schemagate's
// journal, and shows `schemagate status`.
func (d *demo) summary(ctx context.Context) error {
	runs, err := d.db.runs(ctx)
	if err != nil {
		return fmt.Errorf("read the journal: %w", err)
	}
	fmt.Fprintln(d.out, "\nSummary")
	for _, rec := range d.records {
		fmt.Fprintf(d.out, "  %s\n", rec.story())
	}
	fmt.Fprintf(d.out, "  database: applied_log holds migrations 1–%d, each applied exactly once\n", d.version)
	fmt.Fprintf(d.out, "  journal: %s\n", describeRuns(runs))
	if problems := d.checkJournal(runs); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(d.out, "  ✗ %s\n", p)
		}
		return fmt.Errorf("the journal contradicts the narration: %s", strings.Join(problems, "; "))
	}
	fmt.Fprintf(d.out, "  ✓ one migrator at a time, nothing applied twice, the killed migrator replaced after %s\n",
		brief(d.records[len(d.records)-1].takeover))
	return d.status(ctx)
}

func describeRuns(runs []journalRun) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("%s %s (%d→%d)", r.Replica, r.Outcome, r.From, r.To)
	}
	return strings.Join(parts, ", ")
}

// checkJournal holds the journal's runs against the narration: one run per migrator it told of,
// in the same order, each succeeded but the killed one's, which its successor marked abandoned.
func (d *demo) checkJournal(runs []journalRun) []string {
	var want []journalRun
	for _, rec := range d.records {
		for _, m := range rec.migrators {
			outcome := "succeeded"
			if m == rec.victim {
				outcome = "abandoned"
			}
			want = append(want, journalRun{Replica: m, Outcome: outcome})
		}
	}
	got := make([]journalRun, len(runs))
	for i, r := range runs {
		got[i] = journalRun{Replica: r.Replica, Outcome: r.Outcome}
	}
	if !slices.Equal(got, want) {
		return []string{fmt.Sprintf("the journal has runs %s; the narration told of %s", describe(got), describe(want))}
	}
	return nil
}

func describe(runs []journalRun) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = r.Replica + " " + r.Outcome
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// status prints what `schemagate status` says about the database now.
func (d *demo) status(ctx context.Context) error {
	rel := filepath.Base(d.dir)
	fmt.Fprintf(d.out, "\n$ schemagate status --dir %s\n", rel)
	cmd := exec.CommandContext(ctx, d.bin, "status", "--database-url", d.db.url, "--dir", d.dir, "--log-format", "json")
	cmd.Env = append(os.Environ(), "SCHEMAGATE_REPLICA_ID=demo")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("schemagate status: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		fmt.Fprintf(d.out, "  %s\n", line)
	}
	return nil
}
