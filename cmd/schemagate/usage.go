package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate"
)

// usageError is a problem with the command line itself (an unknown command or flag, a stray
// argument): invalid input, exit 2. hint, when set, is printed on a line of its own after the
// error: what the person most likely meant.
type usageError struct {
	err  error
	hint string
}

func (e *usageError) Error() string                 { return e.err.Error() }
func (e *usageError) Unwrap() error                 { return e.err }
func (e *usageError) ExitCode() schemagate.ExitCode { return schemagate.ExitInvalidInput }

// migrationToolHint says what to do instead of a command of a migration tool (goose's) that
// people type by habit; "" for any other word.
func migrationToolHint(verb string) string {
	switch verb {
	case "up", "apply":
		return "schemagate migrate applies the pending migrations, with one migrator per rollout"
	case "up-by-one", "up-to":
		return "schemagate migrate --target-version VERSION applies the pending migrations up to VERSION"
	case "down", "rollback":
		return "rolling back is goose's own command (goose down); schemagate only applies, see docs/operations.md#rolling-back-by-hand"
	case "down-to":
		return "rolling back is goose's own command (goose down-to); schemagate only applies, see docs/operations.md#rolling-back-by-hand"
	case "redo":
		return "goose redo is goose's own command; schemagate only applies, see docs/operations.md#rolling-back-by-hand"
	case "reset":
		return "goose reset is goose's own command; schemagate only applies, see docs/operations.md#rolling-back-by-hand"
	case "create":
		return "goose create writes a new migration file; schemagate only applies them"
	case "fix":
		return "goose fix renumbers migration files; schemagate only applies them"
	}
	return ""
}

// knownCommand refuses a first argument that names no command, before anything runs: a typo
// (schemagate stauts) or another tool's verb (up, down, create) is invalid input, with what was
// most likely meant.
func knownCommand(root *cobra.Command, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return nil
	}
	name := args[0]
	for _, c := range root.Commands() {
		if c.Name() == name || slices.Contains(c.Aliases, name) {
			return nil
		}
	}
	// cobra's own: help, and what a shell's completion script calls (schemagate __complete …).
	if name == "help" || name == cobra.ShellCompRequestCmd || name == cobra.ShellCompNoDescRequestCmd {
		return nil
	}
	err := &usageError{err: fmt.Errorf("unknown command %q", name)}
	if hint := migrationToolHint(name); hint != "" {
		err.hint = hint
		return err
	}
	var visible []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			visible = append(visible, c.Name())
		}
	}
	if best := closest(name, visible); best != "" {
		err.hint = "did you mean: schemagate " + best
	} else {
		err.hint = "commands: " + strings.Join(visible, ", ") + " (schemagate --help)"
	}
	return err
}

// flagError turns a flag the command does not know into invalid input, with the flag it most
// likely meant.
func flagError(cmd *cobra.Command, err error) error {
	var missing *pflag.NotExistError
	if !errors.As(err, &missing) || missing.GetSpecifiedName() == "" {
		return &usageError{err: err}
	}
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	u := &usageError{err: err}
	if best := closest(missing.GetSpecifiedName(), names); best != "" {
		u.hint = "did you mean: --" + best
	} else {
		u.hint = cmd.CommandPath() + " --help lists its flags"
	}
	return u
}

// closest returns the candidate nearest to typed (by edit distance, at most a third of its
// length and at least 2, or one it begins), or "" when none is near.
func closest(typed string, candidates []string) string {
	best, bestDistance := "", max(2, len(typed)/3)+1
	for _, c := range candidates {
		d := distance(typed, c)
		if strings.HasPrefix(c, typed) && len(typed) >= 3 {
			d = min(d, 1)
		}
		if d < bestDistance {
			best, bestDistance = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b, counting a swap of neighbours as one edit.
func distance(a, b string) int {
	prev2, prev, cur := make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
