package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate/coordinator"
)

// abilities is what a command may do. Each command declares them once, where it is built (see
// app.does); the shared settings it reads, those its --help shows, the checks on them and the
// warning for a setting it ignores all follow from the declaration.
type abilities struct {
	// migrates: it may become the migrator and apply migrations (migrate, serve, exec). The
	// settings of applying are its: --ddl-lock-timeout, --ddl-lock-retries, --migrate-command,
	// --migrate-env and --rerun-interrupted.
	migrates bool
	// waits: it waits, for a migrator or to take the election: --poll-interval and
	// --progress-interval.
	waits bool
	// serves: it keeps running once the schema is ready (serve): no deadline by default, and a
	// replica can be up and not ready (--when-ahead=unready).
	serves bool
	// readOnly: it reads and reports, writes nothing and takes part in no election (check,
	// status, validate): it ignores the Raft settings, and --when-ahead=unready means not ready.
	readOnly bool
	// administers: it records a person's decision, with --by and --reason, while holding the
	// election (resolve, abort, run). It judges no schema and refuses --lock raft, so its --help
	// leaves out those settings.
	administers bool

	// alsoReads are settings of an ability the command lacks that it reads all the same, for
	// a reason of its own: status shows the migrate command a holder runs.
	alsoReads []string
	// only, when set, are the only shared settings its --help shows: the others do not change
	// what it finds (validate).
	only []string
	// filesOptional: it can do without the migration files (status).
	filesOptional bool
}

// reads reports whether the command reads the shared setting flag. The settings of an ability
// it lacks are accepted, so that one command line, environment or config file serves every
// command, and ignored.
func (can abilities) reads(flag string) bool {
	if slices.Contains(can.alsoReads, flag) {
		return true
	}
	switch {
	case flag == "poll-interval", flag == "progress-interval":
		return can.waits
	case flag == "require-env", flag == "same-env":
		// What a replica of the app must have: the commands that gate one.
		return can.waits && !can.administers
	case flag == "ddl-lock-timeout", flag == "ddl-lock-retries", flag == "migrate-command", flag == "migrate-env",
		flag == "rerun-interrupted":
		return can.migrates
	case raftFlag(flag):
		return !can.readOnly
	}
	return true
}

// shows reports whether --help shows the shared setting flag: it does something for the
// command.
func (can abilities) shows(flag string) bool {
	switch {
	case !can.reads(flag):
		return false
	case can.only != nil:
		return slices.Contains(can.only, flag)
	case can.administers:
		// The Raft settings are read only to refuse --lock raft.
		return !raftFlag(flag) && flag != "target-version" && flag != "allow-out-of-order" && flag != "when-ahead"
	}
	return true
}

// allowsUnready reports whether --when-ahead=unready means something: the command keeps
// running, or only reports, so a replica can be up and not ready.
func (can abilities) allowsUnready() bool { return can.serves || can.readOnly }

func raftFlag(name string) bool { return strings.HasPrefix(name, "raft-") || name == "fence-table" }

// call is one run of a command: its arguments, what it may do, and its settings, bound once.
type call struct {
	cmd      *cobra.Command
	args     []string
	can      abilities
	settings *loader
}

// does declares what cmd may do. It adds the shared settings to cmd, hidden from --help where
// they do nothing and marked ignored where the command does not read them, and makes run the
// command's body, given its settings. A command's own flags are added after.
func (a *app) does(cmd *cobra.Command, can abilities, run func(*call) error) *cobra.Command {
	shared := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	addSharedFlags(shared, can)
	shared.VisitAll(func(f *pflag.Flag) {
		if !can.reads(f.Name) {
			if f.Annotations == nil {
				f.Annotations = map[string][]string{}
			}
			f.Annotations[ignoredAnnotation] = []string{"true"}
		}
		f.Hidden = !can.shows(f.Name)
	})
	cmd.Flags().AddFlagSet(shared)
	if err := cmd.RegisterFlagCompletionFunc("when-ahead", completeWhenAhead(can.allowsUnready())); err != nil {
		panic(err) // registered twice: a mistake in this package
	}
	if a.declared == nil {
		a.declared = map[*cobra.Command]abilities{}
	}
	a.declared[cmd] = can
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := a.call(cmd, args)
		if err != nil {
			return err
		}
		return run(c)
	}
	return cmd
}

// call binds a run of cmd: what it declared it may do, and its settings, read once. Its error
// is invalid input.
func (a *app) call(cmd *cobra.Command, args []string) (*call, error) {
	l, err := newLoader(cmd)
	if err != nil {
		return nil, &coordinator.InputError{Err: err}
	}
	return &call{cmd: cmd, args: args, can: a.declared[cmd], settings: l}, nil
}

// warnIgnored says which flags given on the command line the command ignores: they are
// accepted, so that a command line copied from another command still runs, but do nothing
// here. The environment and a config file serve every command, so their settings pass silently.
func (a *app) warnIgnored(c *call) {
	var names []string
	c.cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Annotations[ignoredAnnotation] != nil {
			names = append(names, "--"+f.Name)
		}
	})
	if len(names) == 0 {
		return
	}
	verb := "does"
	if len(names) > 1 {
		verb = "do"
	}
	msg := fmt.Sprintf("ignored: %s %s nothing for %s (schemagate %s --help lists what does)",
		strings.Join(names, ", "), verb, c.cmd.Name(), c.cmd.Name())
	if a.log != nil {
		a.log.Warn().Strs("ignored_flags", names).Msg(msg)
		return
	}
	fmt.Fprintf(a.stderr, "schemagate: %s\n", msg)
}
