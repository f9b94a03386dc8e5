package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runBinary runs schemagate with args and the extra environment env to its end, and returns its
// exit code and what it wrote to stdout and stderr. The environment holds no SCHEMAGATE_ variable
// of the test's own.
func runBinary(t *testing.T, dir string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SCHEMAGATE_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatalf("schemagate %s: %v", strings.Join(args, " "), err)
	}
	return 0, out.String(), errOut.String()
}

// TestVersionFlag: schemagate --version prints what schemagate version prints.
func TestVersionFlag(t *testing.T) {
	code, flag, errOut := runBinary(t, "", nil, "--version")
	if code != 0 || errOut != "" {
		t.Fatalf("schemagate --version: exit %d, stderr %q", code, errOut)
	}
	_, command, _ := runBinary(t, "", nil, "version")
	if flag != command || !strings.HasPrefix(flag, "schemagate ") {
		t.Errorf("schemagate --version printed %q; schemagate version prints %q", flag, command)
	}
}

// completion asks the binary what completes the last of args, as a shell's completion script
// does, and returns the candidates and the directive.
func completion(t *testing.T, dir string, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	code, out, errOut := runBinary(t, dir, nil, append([]string{cobra.ShellCompRequestCmd}, args...)...)
	if code != 0 {
		t.Fatalf("schemagate __complete %q: exit %d:\n%s%s", args, code, out, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	d, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if !strings.HasPrefix(last, ":") || err != nil {
		t.Fatalf("schemagate __complete %q: no directive in %q", args, out)
	}
	var values []string
	for _, l := range lines[:len(lines)-1] {
		value, _, _ := strings.Cut(l, "\t")
		values = append(values, value)
	}
	return values, cobra.ShellCompDirective(d)
}

// TestCompletion: the shell completion scripts are there, and the binary completes each enum
// flag with its values, --dir with directories only, a flag that names a file with files, and
// every other flag with nothing rather than file names.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runBinary(t, "", nil, "completion", shell)
		if code != 0 || !strings.Contains(out, cobra.ShellCompRequestCmd) {
			t.Errorf("schemagate completion %s: exit %d, no script:\n%.300s%s", shell, code, out, errOut)
		}
	}
	enums := []struct {
		args []string
		want []string
	}{
		{[]string{"migrate", "--log-format", ""}, []string{"auto", "json", "console"}},
		{[]string{"status", "--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"migrate", "--when-ahead", ""}, []string{"ready", "exit"}},
		{[]string{"check", "--when-ahead", ""}, []string{"ready", "exit", "unready"}},
		{[]string{"wait", "--engine", ""}, []string{"goose", "command"}},
		{[]string{"serve", "--lock", ""}, []string{"postgres", "file", "raft"}},
		{[]string{"exec", "--version-source", ""}, []string{"goose", "alembic:", "sql"}},
		{[]string{"status", "--output", ""}, []string{"text", "json"}},
		{[]string{"validate", "--output", ""}, []string{"text", "json"}},
		{[]string{"serve", "--serve-detail", ""}, []string{"full", "summary"}},
	}
	for _, e := range enums {
		values, directive := completion(t, "", e.args...)
		if !slices.Equal(values, e.want) || directive&cobra.ShellCompDirectiveNoFileComp == 0 {
			t.Errorf("%q: %q, directive %d; want %q and no file names", e.args, values, directive, e.want)
		}
	}
	if values, directive := completion(t, "", "migrate", "--dir", ""); len(values) != 0 ||
		directive != cobra.ShellCompDirectiveFilterDirs {
		t.Errorf("--dir: %q, directive %d; want directories only (%d)", values, directive, cobra.ShellCompDirectiveFilterDirs)
	}
	if values, directive := completion(t, "", "migrate", "--config", ""); !slices.Equal(values, []string{"yaml", "yml", "json", "toml"}) ||
		directive != cobra.ShellCompDirectiveFilterFileExt {
		t.Errorf("--config: %q, directive %d; want files by extension", values, directive)
	}
	for _, flag := range []string{"--database-url-file", "--lock-file", "--raft-secret-file"} {
		if _, directive := completion(t, "", "serve", flag, ""); directive != cobra.ShellCompDirectiveDefault {
			t.Errorf("%s: directive %d; want files (%d)", flag, directive, cobra.ShellCompDirectiveDefault)
		}
	}
	for _, args := range [][]string{{"migrate", "--timeout", ""}, {"migrate", "--database-url", ""}, {"serve", "--listen", ""},
		{"probe", "--url", ""}, {"status", ""}} {
		if _, directive := completion(t, "", args...); directive&cobra.ShellCompDirectiveNoFileComp == 0 {
			t.Errorf("%q: directive %d offers file names", args, directive)
		}
	}
	// alembic: is followed by the directories where the command runs.
	work := t.TempDir()
	for _, d := range []string{"alembic/versions", "app", ".hidden"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, work, "alembic.ini", "")
	if values, directive := completion(t, work, "migrate", "--version-source", "alembic:"); !slices.Equal(values,
		[]string{"alembic:alembic/", "alembic:app/"}) || directive&cobra.ShellCompDirectiveNoSpace == 0 {
		t.Errorf("alembic:: %q, directive %d; want the directories, without a space after", values, directive)
	}
	if values, _ := completion(t, work, "migrate", "--version-source", "alembic:alembic/"); !slices.Equal(values,
		[]string{"alembic:alembic/versions/"}) {
		t.Errorf("alembic:alembic/: %q", values)
	}
	// Hidden flags are not offered.
	if values, _ := completion(t, "", "status", "--raft"); len(values) != 0 {
		t.Errorf("status --raft completes to %q, flags its help does not show", values)
	}
}

// TestMistypedCommandWithCompletion: enabling completion keeps a mistyped command invalid input
// with a hint, the completion command among those hinted at.
func TestMistypedCommandWithCompletion(t *testing.T) {
	for _, tc := range []struct{ typed, hint string }{
		{"stauts", "did you mean: schemagate status"},
		{"completoin", "did you mean: schemagate completion"},
	} {
		code, _, errOut := runBinary(t, "", nil, tc.typed)
		if code != 2 || !strings.Contains(errOut, `unknown command "`+tc.typed+`"`) || !strings.Contains(errOut, tc.hint) {
			t.Errorf("schemagate %s: exit %d, %q; want 2 and %q", tc.typed, code, errOut, tc.hint)
		}
	}
}
