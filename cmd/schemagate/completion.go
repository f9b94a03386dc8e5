package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Shell completion: cobra's `schemagate completion bash|zsh|fish|powershell` prints the script,
// and the script asks the binary (`schemagate __complete …`) what fits where the cursor is.
// Left to itself, cobra offers file names for every flag's value; here a flag with a fixed set
// of values offers those, --dir offers directories, the flags that name a file offer files,
// and every other flag offers nothing rather than file names that cannot be right.

// takesArguments reports whether the command's positional arguments are files or a command
// line: the shell's own completion (files, commands) serves them. The others take no arguments.
func takesArguments(command string) bool {
	return command == "exec" || command == "run" || command == "install"
}

// registerCompletions adds cobra's completion command to root and sets how the arguments and
// flag values of every command under it complete.
func registerCompletions(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			if sub.Name() == "completion" || sub.Name() == "help" || sub.Hidden {
				continue
			}
			if sub.ValidArgsFunction == nil && !takesArguments(sub.Name()) {
				sub.ValidArgsFunction = cobra.NoFileCompletions
			}
			sub.Flags().VisitAll(func(f *pflag.Flag) {
				if _, ok := sub.GetFlagCompletionFunc(f.Name); ok {
					return // the command's own (--when-ahead's, from what it may do)
				}
				if complete := flagCompletion(f); complete != nil {
					if err := sub.RegisterFlagCompletionFunc(f.Name, complete); err != nil {
						panic(err) // registered twice: a mistake in this package
					}
				}
			})
			walk(sub)
		}
	}
	walk(root)
}

// flagCompletion is how the value of f completes: nil for a flag that takes no value.
func flagCompletion(f *pflag.Flag) cobra.CompletionFunc {
	switch f.Name {
	case "dir":
		return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		}
	case "config":
		// The file's extension says how it is read.
		return cobra.FixedCompletions([]cobra.Completion{"yaml", "yml", "json", "toml"}, cobra.ShellCompDirectiveFilterFileExt)
	case "database-url-file", "lock-file", "raft-secret-file":
		return cobra.FixedCompletions(nil, cobra.ShellCompDirectiveDefault)
	case "version-source":
		return completeVersionSource
	}
	if values := flagValues(f.Name); values != nil {
		return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveKeepOrder)
	}
	if f.NoOptDefVal != "" {
		return nil // a bool: --flag alone, or --flag=false
	}
	return cobra.NoFileCompletions
}

// flagValues are the values of a flag that takes one of a fixed set, each with what it does;
// nil for any other flag.
func flagValues(flag string) []cobra.Completion {
	switch flag {
	case "log-format":
		return []cobra.Completion{"auto\tconsole on a terminal, else json", "json\tone JSON object per line",
			"console\tfor a person to read"}
	case "log-level":
		return []cobra.Completion{"debug", "info", "warn", "error"}
	case "engine":
		return []cobra.Completion{"goose\tapply the goose files in --dir",
			"command\trun --migrate-command, the app's own migration tool"}
	case "lock":
		return []cobra.Completion{"postgres\tadvisory lock (default for PostgreSQL)",
			"file\tflock beside a SQLite file (default for SQLite)", "raft\tthe replicas elect a leader among themselves"}
	case "output":
		return []cobra.Completion{"text", "json"}
	case "serve-detail":
		return []cobra.Completion{"full\terror texts, the holder's statement and address",
			"summary\tphases, versions and reasons only"}
	}
	return nil
}

// completeWhenAhead offers the --when-ahead policies a command takes: unready only where a
// replica keeps running or only reports (abilities.allowsUnready).
func completeWhenAhead(allowsUnready bool) cobra.CompletionFunc {
	values := []cobra.Completion{"ready\trun anyway", "exit\trefuse with exit code 6"}
	if allowsUnready {
		values = append(values, "unready\tstay up, but not ready")
	}
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveKeepOrder)
}

// completeVersionSource offers goose, sql and alembic:, then the directories after alembic:.
func completeVersionSource(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	const alembic = "alembic:"
	if dir, ok := strings.CutPrefix(toComplete, alembic); ok {
		var out []cobra.Completion
		for _, d := range subdirectories(dir) {
			out = append(out, alembic+d)
		}
		return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, c := range []cobra.Completion{"goose\tthe goose files in --dir", alembic + "\tan Alembic script or versions directory",
		"sql\t--version-query and --target-version"} {
		if strings.HasPrefix(c, toComplete) {
			out = append(out, c)
		}
	}
	directive := cobra.ShellCompDirectiveNoFileComp
	if len(out) == 1 && strings.HasPrefix(out[0], alembic) {
		directive |= cobra.ShellCompDirectiveNoSpace // the directory follows
	}
	return out, directive
}

// subdirectories lists the directories whose path begins with typed, each with a trailing
// slash, so that the next tab goes one level deeper. Hidden ones only when typed asks for them.
func subdirectories(typed string) []string {
	parent, prefix := filepath.Split(typed)
	read := parent
	if read == "" {
		read = "."
	}
	entries, err := os.ReadDir(read)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || strings.HasPrefix(name, ".") && !strings.HasPrefix(prefix, ".") {
			continue
		}
		if info, err := os.Stat(filepath.Join(read, name)); err == nil && info.IsDir() {
			out = append(out, parent+name+"/")
		}
	}
	return out
}
