package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagReference renders every flag of every command as a Markdown table: flag, environment
// variable, default, the commands that take it, and what it does. The README carries it between
// markers, and a test fails when the two differ.
func flagReference(root *cobra.Command) string {
	type entry struct {
		flag     *pflag.Flag
		commands []string
	}
	// A flag that means the same on several commands is one row; one whose default or meaning
	// differs by command (--timeout) gets a row per variant.
	entries := map[string]*entry{}
	var names []string
	for _, cmd := range root.Commands() {
		if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" {
			continue
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			key := f.Name + "\x00" + f.DefValue + "\x00" + f.Usage
			e, ok := entries[key]
			if !ok {
				e = &entry{flag: f}
				entries[key] = e
				names = append(names, key)
			}
			e.commands = append(e.commands, cmd.Name())
		})
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("| flag | environment | default | commands | description |\n|---|---|---|---|---|\n")
	for _, key := range names {
		e := entries[key]
		name := e.flag.Name
		def := e.flag.DefValue
		if def == "" || def == "0" && e.flag.Value.Type() == "int64" {
			def = "—"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s | %s |\n", name, envName(name), code(def),
			strings.Join(e.commands, ", "), strings.ReplaceAll(e.flag.Usage, "|", "\\|"))
	}
	return b.String()
}

func envName(flag string) string {
	return "SCHEMAGATE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func code(s string) string {
	if s == "—" {
		return s
	}
	return "`" + s + "`"
}
