package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/schemagate/schemagate"
)

// commands are the commands a person runs; "" is schemagate itself.
var commands = []string{"", "migrate", "wait", "serve", "exec", "probe", "check", "status", "validate", "resolve", "abort",
	"run", "install", "version"}

// help returns the output of schemagate COMMAND --help, which must exit 0 and write nothing to
// stderr.
func help(t *testing.T, command string) string {
	t.Helper()
	args := []string{"--help"}
	if command != "" {
		args = []string{command, "--help"}
	}
	code, out, errOut := runBinary(t, "", nil, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("schemagate %s --help: exit %d, stderr %q", command, code, errOut)
	}
	return out
}

// section returns the lines under heading ("Examples:") up to the next blank line.
func section(text, heading string) []string {
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		return nil
	}
	body := text[i+len(heading)+2:]
	if end := strings.Index(body, "\n\n"); end >= 0 {
		body = body[:end]
	}
	return strings.Split(strings.TrimRight(body, "\n"), "\n")
}

var exitLine = regexp.MustCompile(`^  (\d+)  \S`)

// TestHelpOfEveryCommand: every command's --help says what it does, shows at least two command
// lines to start from, and lists its exit codes, each one that package schemagate defines; the
// root lists every code under the name the README's table gives it.
func TestHelpOfEveryCommand(t *testing.T) {
	for _, command := range commands {
		t.Run("schemagate "+command, func(t *testing.T) {
			out := help(t, command)
			description, _, ok := strings.Cut(out, "\nUsage:\n")
			if !ok || len(strings.Fields(description)) < 20 {
				t.Errorf("no description of a few sentences before the usage line:\n%s", out)
			}
			var examples int
			for _, l := range section(out, "Examples:") {
				if strings.Contains(l, "schemagate ") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
					examples++
				}
			}
			if examples < 2 {
				t.Errorf("%d example command lines, want at least 2:\n%s", examples, out)
			}
			codes := section(out, "Exit codes:")
			var listed []int
			for _, l := range codes {
				m := exitLine.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				n, _ := strconv.Atoi(m[1])
				if !slices.Contains(schemagate.ExitCodes(), schemagate.ExitCode(n)) {
					t.Errorf("exit code %d: package schemagate has no such code", n)
				}
				listed = append(listed, n)
			}
			if len(listed) == 0 {
				t.Errorf("no exit codes listed:\n%s", out)
			}
			if command != "" {
				return
			}
			for _, c := range schemagate.ExitCodes() {
				want := fmt.Sprintf("  %d  %s: ", int(c), c)
				if !slices.ContainsFunc(codes, func(l string) bool { return strings.HasPrefix(l, want) }) {
					t.Errorf("schemagate --help does not list %q", want)
				}
			}
		})
	}
}

// TestHelpGroupsFlags: a gate command's flags are listed under headings, in a fixed order, each
// flag under its own: the essential ones first, the command's own last.
func TestHelpGroupsFlags(t *testing.T) {
	out := help(t, "migrate")
	headings := []string{"Essential flags:", "Migration flags:", "Engine flags", "Election and journal flags:",
		"Raft flags (--lock raft):", "Waiting flags:", "Connection tuning flags (PostgreSQL):", "Logging and output flags:",
		"Migrate flags:"}
	at := -1
	for _, h := range headings {
		i := strings.Index(out, "\n"+h)
		if i < 0 {
			t.Fatalf("no heading %q in migrate --help:\n%s", h, out)
		}
		if i < at {
			t.Errorf("heading %q is out of order", h)
		}
		at = i
	}
	under := map[string][]string{
		"Essential flags:": {"--database-url", "--dir", "--timeout", "--replica-id"},
		"Migration flags:": {"--target-version", "--when-ahead", "--ddl-lock-timeout", "--rerun-interrupted"},
		"Engine flags (goose, or the app's own tool):": {"--engine", "--version-source", "--migrate-command"},
		"Election and journal flags:":                  {"--lock", "--lock-namespace", "--journal-table"},
		"Raft flags (--lock raft):":                    {"--raft-peers", "--raft-secret-file", "--fence-table"},
		"Waiting flags:":                               {"--poll-interval", "--progress-interval"},
		"Connection tuning flags (PostgreSQL):":        {"--keepalive-idle", "--connect-timeout"},
		"Logging and output flags:":                    {"--log-format", "--log-level"},
		"Migrate flags:":                               {"--help"},
	}
	for heading, flags := range under {
		lines := strings.Join(section(out, heading), "\n")
		for _, f := range flags {
			if !strings.Contains(lines, f+" ") && !strings.Contains(lines, f+"[") {
				t.Errorf("%s is not listed under %q", f, heading)
			}
		}
	}
	if probe := help(t, "probe"); !strings.Contains(probe, "\nFlags:\n") || strings.Contains(probe, "Essential flags:") {
		t.Errorf("probe, which has only flags of its own, lists them under headings:\n%s", probe)
	}
}
