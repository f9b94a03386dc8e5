package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// grid is the comparison table: one column per tool, one row per measurement, in the order
// rows were first set, and notes on why replicas failed.
type grid struct {
	cols  []string
	rows  []string
	cells map[string]map[string]string
	notes []string
}

func newGrid() *grid { return &grid{cells: map[string]map[string]string{}} }

func (g *grid) set(row, col, value string) {
	if g.cells[row] == nil {
		g.cells[row] = map[string]string{}
		g.rows = append(g.rows, row)
	}
	g.cells[row][col] = value
	fmt.Fprintf(os.Stderr, "  %-28s %-60s %s\n", col, row, value)
}

// note records why replicas of col failed in a herd of n.
func (g *grid) note(col string, n int, reasons []string) {
	if len(reasons) > 0 {
		g.notes = append(g.notes, fmt.Sprintf("%s, herd of %d, all runs: %s", col, n, summarize(reasons)))
	}
}

func (g *grid) print(w io.Writer) {
	fmt.Fprintf(w, "| measurement | %s |\n", strings.Join(g.cols, " | "))
	fmt.Fprintf(w, "|---%s|\n", strings.Repeat("|---", len(g.cols)))
	for _, r := range g.rows {
		vals := make([]string, len(g.cols))
		for i, c := range g.cols {
			vals[i] = g.cells[r][c]
			if vals[i] == "" {
				vals[i] = "-"
			}
		}
		fmt.Fprintf(w, "| %s | %s |\n", r, strings.Join(vals, " | "))
	}
	if len(g.notes) > 0 {
		fmt.Fprintln(w, "\nWhy replicas exited non-zero:")
		for _, n := range g.notes {
			fmt.Fprintf(w, "\n- %s", strings.ReplaceAll(n, "|", "\\|"))
		}
		fmt.Fprintln(w)
	}
}
