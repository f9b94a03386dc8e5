package e2e

import (
	"fmt"
	"path/filepath"
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

// flagListed reports whether a --help output lists flag as one of the command's flags.
func flagListed(out, flag string) bool {
	return regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(flag) + `\b`).MatchString(out)
}

// TestHelpHidesWhatDoesNothing: a command's --help leaves out the flags that do nothing for it,
// and keeps those that do.
func TestHelpHidesWhatDoesNothing(t *testing.T) {
	for _, tc := range []struct {
		command      string
		hidden, kept []string
	}{
		{"status", []string{"--raft-peers", "--raft-secret", "--fence-table", "--poll-interval", "--progress-interval",
			"--ddl-lock-timeout", "--ddl-lock-retries", "--migrate-env"},
			[]string{"--database-url", "--dir", "--lock", "--when-ahead", "--migrate-command", "--output", "--applied"}},
		{"check", []string{"--raft-peers", "--fence-table", "--poll-interval", "--ddl-lock-timeout", "--migrate-command",
			"--migrate-env"}, []string{"--database-url", "--dir", "--when-ahead", "--target-version", "--timeout"}},
		{"validate", []string{"--raft-peers", "--poll-interval", "--ddl-lock-timeout", "--migrate-env", "--lock"},
			[]string{"--dir", "--database-url", "--output", "--allow-out-of-order"}},
		{"wait", []string{"--ddl-lock-timeout", "--migrate-command", "--migrate-env"},
			[]string{"--raft-peers", "--poll-interval", "--when-ahead"}},
		{"resolve", []string{"--raft-peers", "--raft-listen", "--fence-table", "--ddl-lock-timeout", "--when-ahead"},
			[]string{"--dir", "--migration", "--reason", "--lock", "--poll-interval"}},
		{"abort", []string{"--raft-peers", "--fence-table", "--poll-interval", "--migrate-command"},
			[]string{"--dir", "--grace", "--reason", "--lock-namespace"}},
		{"run", []string{"--raft-peers", "--fence-table", "--ddl-lock-timeout", "--migrate-command"},
			[]string{"--dir", "--reason", "--migrate-env", "--poll-interval"}},
		{"migrate", nil, []string{"--raft-peers", "--fence-table", "--poll-interval", "--ddl-lock-timeout", "--migrate-env"}},
	} {
		out := help(t, tc.command)
		for _, f := range tc.hidden {
			if flagListed(out, f) {
				t.Errorf("%s --help lists %s, which does nothing for it", tc.command, f)
			}
		}
		for _, f := range tc.kept {
			if !flagListed(out, f) {
				t.Errorf("%s --help does not list %s", tc.command, f)
			}
		}
	}
}

// TestHiddenFlagsStillAccepted: a flag hidden from a command's help is still accepted there, on
// the command line, in the environment and in a config file, so that the settings of a sidecar
// serve status and check too; it is read where it does something (wait), and ignored where it
// does not. A flag no command has is still refused.
func TestHiddenFlagsStillAccepted(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	cfg := filepath.Join(t.TempDir(), "schemagate.yaml")
	writeFile(t, filepath.Dir(cfg), "schemagate.yaml", "fence-table: fences\nddl-lock-retries: 3\nraft-voters: 3\n")
	sidecar := []string{"--lock", "postgres", "--raft-peers", "a=127.0.0.1:9091", "--raft-secret", "s3cret-shared",
		"--poll-interval", "1s", "--ddl-lock-timeout", "5s", "--migrate-env", "A=b", "--config", cfg}
	env := []string{"SCHEMAGATE_PROGRESS_INTERVAL=not-a-duration", "SCHEMAGATE_RAFT_EXPECT=many"}

	code, out, errOut := runBinary(t, "", env, d.args("status", dir, sidecar...)...)
	if code != 0 || !strings.Contains(out, "pending:") {
		t.Errorf("status with a sidecar's flags: exit %d, want 0 and the report:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runBinary(t, "", env, d.args("check", dir, sidecar...)...)
	if code != 1 || !strings.HasPrefix(out, "not ready:") {
		t.Errorf("check with a sidecar's flags: exit %d, want 1, not ready:\n%s%s", code, out, errOut)
	}
	// wait reads the progress interval: the same bad value stops it before it connects.
	code, _, errOut = runBinary(t, "", env, d.args("wait", dir, "--timeout", "5s")...)
	if code != 2 || !strings.Contains(errOut, `progress-interval: "not-a-duration" is not a duration`) {
		t.Errorf("wait with SCHEMAGATE_PROGRESS_INTERVAL=not-a-duration: exit %d, want 2 naming it:\n%s", code, errOut)
	}
	code, _, errOut = runBinary(t, "", nil, d.args("status", dir, "--raft-peerz", "x")...)
	if code != 2 || !strings.Contains(errOut, "unknown flag: --raft-peerz") {
		t.Errorf("status --raft-peerz: exit %d, want 2, unknown flag:\n%s", code, errOut)
	}
	if strings.Contains(errOut, "did you mean: --raft-peers") {
		t.Errorf("status suggests a flag its help does not show:\n%s", errOut)
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("status and check wrote to the database: %d tables", n)
	}
}
