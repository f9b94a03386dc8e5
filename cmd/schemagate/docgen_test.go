package main

// The generator of the sections of docs/reference.md between the "generated" markers. It is
// test code, not part of the binary: TestReferenceDoc compares the sections with what it
// renders from the command tree, and rewrites them with -update.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate"
)

// documented returns the commands a person runs, in the order cobra lists them: not the hidden
// ones, nor cobra's own.
func documented(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, cmd := range root.Commands() {
		if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" {
			continue
		}
		out = append(out, cmd)
	}
	return out
}

// visibleFlags calls fn for each flag of cmd that its --help shows: not the hidden ones, which
// it accepts and does nothing with.
func visibleFlags(cmd *cobra.Command, fn func(*pflag.Flag)) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			fn(f)
		}
	})
}

// defaultOf is a flag's default as the tables show it: "—" for none.
func defaultOf(f *pflag.Flag) string {
	def := f.DefValue
	if def == "" || def == "0" && f.Value.Type() == "int64" {
		return "—"
	}
	return def
}

// flagEnv is the environment variable of a flag: its own when the command names one (probe's
// flags are SCHEMAGATE_PROBE_*, so that the gate's settings in the same container do not reach
// it), else SCHEMAGATE_<FLAG>.
func flagEnv(f *pflag.Flag) string {
	if v := f.Annotations[envAnnotation]; len(v) > 0 {
		return v[0]
	}
	return envName(f.Name)
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

// cell makes s safe inside a Markdown table cell: no column breaks, and no text a renderer
// would take for an HTML tag (<file>, <table>).
func cell(s string) string {
	return strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;").Replace(s)
}

// typeNames says how each pflag type is written in a config file or an environment variable.
var typeNames = map[string]string{
	"string":      "string",
	"bool":        "true or false",
	"duration":    "duration",
	"int":         "whole number",
	"int64":       "whole number",
	"stringArray": "list (repeat the flag; commas in the environment or a config file)",
}

func typeName(f *pflag.Flag) string {
	if name, ok := typeNames[f.Value.Type()]; ok {
		return name
	}
	return f.Value.Type()
}

// commandReference renders, for every command, its synopsis, its help text (description,
// examples, exit codes) and a table of the flags its --help shows: flag, environment variable,
// type, default and description. docs/reference.md carries it between markers, and a test
// fails when the two differ.
func commandReference(root *cobra.Command) string {
	var b strings.Builder
	cmds := documented(root)
	b.WriteString("| command | what it does |\n|---|---|\n")
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "| [`%s`](#schemagate-%s) | %s |\n", cmd.Name(), cmd.Name(), cell(cmd.Short))
	}
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "\n### schemagate %s\n\n%s.\n\n```text\n%s\n```\n", cmd.Name(), cmd.Short, cmd.UseLine())
		var text []string
		if long := strings.TrimSpace(cmd.Long); long != "" {
			text = append(text, long)
		}
		if s := helpSections(cmd); s != "" {
			text = append(text, s)
		}
		if len(text) > 0 {
			fmt.Fprintf(&b, "\n```text\n%s\n```\n", strings.Join(text, "\n\n"))
		}
		var rows []string
		visibleFlags(cmd, func(f *pflag.Flag) {
			name := "`--" + f.Name + "`"
			if f.Shorthand != "" {
				name = "`-" + f.Shorthand + "`, " + name
			}
			rows = append(rows, fmt.Sprintf("| %s | `%s` | %s | %s | %s |\n", name, flagEnv(f), typeName(f),
				code(defaultOf(f)), cell(f.Usage)))
		})
		if len(rows) == 0 {
			b.WriteString("\nNo flags.\n")
			continue
		}
		b.WriteString("\n| flag | environment | type | default | description |\n|---|---|---|---|---|\n")
		for _, r := range rows {
			b.WriteString(r)
		}
	}
	return b.String()
}

// keyReference renders every config-file key and the commands that use it. A file given to a
// command may hold the keys of every command: the others ignore a key they do not use.
func keyReference(root *cobra.Command) string {
	cmds := documented(root)
	byKey := map[string][]string{}
	types := map[string]string{}
	for _, cmd := range cmds {
		if cmd.Flags().Lookup("config") == nil {
			continue // probe: it reads no config file
		}
		visibleFlags(cmd, func(f *pflag.Flag) {
			if f.Name == "config" {
				return // a config file cannot name another
			}
			byKey[f.Name] = append(byKey[f.Name], cmd.Name())
			types[f.Name] = typeName(f)
		})
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("| key | type | used by |\n|---|---|---|\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k, types[k], strings.Join(byKey[k], ", "))
	}
	return b.String()
}

// exitCodeReference renders every exit code of package schemagate: number, name, whether an
// orchestrator should retry, and what it means. describe gives each code's meaning (the test
// takes it from the constants' doc comments).
func exitCodeReference(describe func(schemagate.ExitCode) string) string {
	var b strings.Builder
	b.WriteString("| code | name | retry? | meaning |\n|---|---|---|---|\n")
	for _, c := range schemagate.ExitCodes() {
		retry := "no"
		switch {
		case c == schemagate.ExitReady || c == schemagate.ExitNotReady:
			retry = "—"
		case c.Retryable():
			retry = "yes"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", int(c), c, retry, cell(describe(c)))
	}
	return b.String()
}
