package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/schemagate/schemagate"
)

// What `schemagate COMMAND --help` shows, so that a person at the prompt needs no other page:
// what the command does (its Long text), how it is usually run (Example), what each exit code
// means for it, and its flags under headings. Cobra knows no flag groups, so each shared flag
// carries its group in an annotation, and the usage function lists the flags group by group.

const (
	// groupAnnotation names the heading a flag is listed under in --help.
	groupAnnotation = "schemagate-group"
	// exitCodesAnnotation holds a command's exit codes, as its help shows them.
	exitCodesAnnotation = "schemagate-exit-codes"
	// envAnnotation names a flag's own environment variable, when it is not SCHEMAGATE_<FLAG>
	// (probe's).
	envAnnotation = "schemagate-env"
	// ignoredAnnotation marks a shared flag a command accepts and does not read: it is there so
	// that one command line, environment or config file serves every command (see abilities).
	ignoredAnnotation = "schemagate-ignored"
)

// The headings of the shared flags. A command's own flags have none: they are listed last,
// under "<Command> flags", where they stay in view above the prompt.
const (
	essentialFlags  = "Essential flags"
	migrationFlags  = "Migration flags"
	engineFlags     = "Engine flags (goose, or the app's own tool)"
	electionFlags   = "Election and journal flags"
	raftFlags       = "Raft flags (--lock raft)"
	waitingFlags    = "Waiting flags"
	fleetFlags      = "Fleet guard flags"
	connectionFlags = "Connection tuning flags (PostgreSQL)"
	outputFlags     = "Logging and output flags"
)

// flagGroups are the headings in the order --help lists them; "" stands for the command's own
// flags.
func flagGroups() []string {
	return []string{essentialFlags, migrationFlags, engineFlags, electionFlags, raftFlags, waitingFlags,
		fleetFlags, connectionFlags, outputFlags, ""}
}

// inGroup lists the named flags of fs under group in --help. A name fs does not have is a
// mistake in this package, found by any test that builds the commands.
func inGroup(fs *pflag.FlagSet, group string, names ...string) {
	for _, name := range names {
		if err := fs.SetAnnotation(name, groupAnnotation, []string{group}); err != nil {
			panic(err)
		}
	}
}

// exit is one line of a command's "Exit codes" help: a code and what it means for the command.
type exit struct {
	code    schemagate.ExitCode
	meaning string
}

// setExitCodes records the exit codes cmd's help lists. intro, when not empty, is a line
// before them (run: "COMMAND's own code once it ran; before that:").
func setExitCodes(cmd *cobra.Command, intro string, codes ...exit) {
	var b strings.Builder
	if intro != "" {
		b.WriteString("  " + intro + "\n")
	}
	for _, c := range codes {
		fmt.Fprintf(&b, "  %d  %s\n", int(c.code), c.meaning)
	}
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[exitCodesAnnotation] = strings.TrimRight(b.String(), "\n")
}

// examples formats example command lines for cobra's Example field: each indented by two
// spaces. A line starting with # is a comment on the next.
func examples(lines ...string) string {
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// helpSections is the part of a command's help below its usage line: examples and exit codes.
// docs/reference.md shows the same text.
func helpSections(cmd *cobra.Command) string {
	var parts []string
	if cmd.HasExample() {
		parts = append(parts, "Examples:\n"+strings.TrimRight(cmd.Example, "\n"))
	}
	if codes := cmd.Annotations[exitCodesAnnotation]; codes != "" {
		parts = append(parts, "Exit codes:\n"+codes)
	}
	return strings.Join(parts, "\n\n")
}

// writeUsage writes what --help shows after the description: the usage line, the examples,
// the exit codes, the subcommands and the flags by group. Flag descriptions are wrapped to
// width columns (0: not wrapped).
func writeUsage(w io.Writer, cmd *cobra.Command, width int) error {
	var b strings.Builder
	b.WriteString("Usage:")
	if cmd.Runnable() {
		b.WriteString("\n  " + cmd.UseLine())
	}
	if cmd.HasAvailableSubCommands() {
		b.WriteString("\n  " + cmd.CommandPath() + " [command]")
	}
	if s := helpSections(cmd); s != "" {
		b.WriteString("\n\n" + s)
	}
	if cmd.HasAvailableSubCommands() {
		b.WriteString("\n\nAvailable Commands:")
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(&b, "\n  %-*s %s", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	}
	for _, g := range groupedFlags(cmd) {
		fmt.Fprintf(&b, "\n\n%s:\n%s", g.title, strings.TrimRight(g.flags.FlagUsagesWrapped(width), " \n"))
	}
	if cmd.HasAvailableInheritedFlags() {
		fmt.Fprintf(&b, "\n\nGlobal flags:\n%s", strings.TrimRight(cmd.InheritedFlags().FlagUsagesWrapped(width), " \n"))
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\n\nUse \"%s [command] --help\" for more information about a command.", cmd.CommandPath())
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// flagSection is one heading of --help and the flags under it.
type flagSection struct {
	title string
	flags *pflag.FlagSet
}

// groupedFlags sorts the visible flags of cmd under their headings, in the order of flagGroups.
func groupedFlags(cmd *cobra.Command) []flagSection {
	byGroup := map[string]*pflag.FlagSet{}
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		group := ""
		if g := f.Annotations[groupAnnotation]; len(g) > 0 {
			group = g[0]
		}
		if byGroup[group] == nil {
			byGroup[group] = pflag.NewFlagSet(group, pflag.ContinueOnError)
		}
		byGroup[group].AddFlag(f)
	})
	var out []flagSection
	for _, group := range flagGroups() {
		fs := byGroup[group]
		if fs == nil {
			continue
		}
		title := group
		if group == "" {
			title = ownFlagsTitle(cmd, len(byGroup) > 1)
		}
		out = append(out, flagSection{title: title, flags: fs})
	}
	return out
}

// ownFlagsTitle heads a command's own flags: "Flags" when it has no others, else "Serve flags".
func ownFlagsTitle(cmd *cobra.Command, others bool) string {
	if !others || !cmd.HasParent() {
		return "Flags"
	}
	name := cmd.Name()
	return strings.ToUpper(name[:1]) + name[1:] + " flags"
}

// terminalWidth is the width of the terminal w writes to, or 0 when it is none (a pipe, a
// file): then help lines are not wrapped, and stay whole for grep.
func terminalWidth(w any) int {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
