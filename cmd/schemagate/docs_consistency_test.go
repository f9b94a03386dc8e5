package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/health"
)

// Names the documentation mentions that are not schemagate's, and so exist in no code of
// this repository. Keep these lists short: everything else a page names must exist.
var (
	// Flags quoted in prose without the command they belong to (a flag on a command line of
	// helm, kubectl, docker, … is recognized as that program's by the command line itself).
	foreignFlags = map[string]string{
		"wait-for-jobs": "Helm's: `helm upgrade --wait` does not wait for Jobs; `--wait-for-jobs` does",
		"tiemout":       "the misspelling in the error troubleshooting.md quotes",
	}
	// Variables with the SCHEMAGATE_ prefix that no code reads.
	foreignEnv = map[string]string{
		"SCHEMAGATE_DATABSE_URL": "the misspelt variable reference.md says is silently ignored",
	}
	// Commands quoted that schemagate does not have.
	foreignCommands = map[string]string{
		"up": "goose's verb, which operations.md says schemagate refuses",
	}
	// Code spans of one path segment that are files, not endpoints of serve.
	filePaths = map[string]string{
		"/migrations": "the migration files' directory in the examples",
		"/proc":       "the kernel's process file system",
	}
	// Programs whose flags the documentation shows on their own command lines.
	foreignPrograms = []string{
		"alembic", "bash", "bundle", "cosign", "COPY", "CMD", "curl", "docker", "ENTRYPOINT",
		"flyway", "FROM", "git", "go", "goose", "HEALTHCHECK", "helm", "install", "kubectl",
		"make", "npx", "pg_config", "pg_ctlcluster", "pg_dump", "podman", "prisma", "psql",
		"python", "python3", "rails", "RUN", "sh", "sha256sum", "shasum", "sudo", "tar",
		"unshare",
	}
)

// TestDocsNameWhatExists fails when README.md or a page under docs/ names a flag, an
// environment variable, an exit code, a command or an endpoint of serve that the code no
// longer has: a rename must reach every page that mentions the old name. The generated tables
// are checked against the code by TestReferenceDoc; this test
// reads the prose and the examples.
func TestDocsNameWhatExists(t *testing.T) {
	k := knownNames(t)
	files := docFiles(t)
	for _, file := range files {
		rel, _ := filepath.Rel("../..", file)
		for _, problem := range k.check(readDoc(t, file)) {
			t.Errorf("%s:%s", rel, problem)
		}
	}
}

// TestDocsCheckerFindsStaleNames guards the checker: each of these lines names something
// schemagate does not have.
func TestDocsCheckerFindsStaleNames(t *testing.T) {
	k := knownNames(t)
	for _, doc := range []string{
		"Run `schemagate migrate --timout 5m`.",
		"```sh\nschemagate serve --dir /migrations \\\n  --serve-details summary\n```",
		"```yaml\nargs: [\"wait\", \"--poll-intervall\", \"2s\"]\n```",
		"`schemagate status --listen :9090`",
		"Set `SCHEMAGATE_TIMEOUTS=5m`.",
		"`check` exits 9 when the moon is full.",
		"| code | meaning |\n|---|---|\n| 12 | gone |",
		"The sidecar serves `/statusz`.",
		"```yaml\nreadinessProbe:\n  httpGet: { path: /ready, port: 9090 }\n```",
		"`curl http://127.0.0.1:9090/health`",
		"`schemagate stauts`",
	} {
		if problems := k.check(parseDoc(doc)); len(problems) == 0 {
			t.Errorf("no problem found in %q", doc)
		}
	}
	for _, doc := range []string{
		"```sh\nhelm upgrade --install app charts/schemagate --set image.tag=1.0.0 --wait\n```",
		"```sh\nschemagate exec --env A=b -- bash start.sh --port 8080\n```",
		"```dockerfile\nHEALTHCHECK --interval=5s --start-period=10m CMD [\"schemagate\", \"probe\", \"--timeout\", \"2s\"]\n```",
		"```sh\ndocker run --rm ghcr.io/schemagate/schemagate:1.0.0 migrate --dir /migrations\n```",
		"A process killed by a signal exits with 128 + the signal number (137 for SIGKILL).",
		"`SCHEMAGATE_PROBE_*` and `SCHEMAGATE_DATABASE_URL`; `/readyz?verbose`; exit codes 2, 3 and 7",
	} {
		if problems := k.check(parseDoc(doc)); len(problems) > 0 {
			t.Errorf("%q: %q", doc, problems)
		}
	}
}

// known is what the code has: the command tree's commands and flags, the environment
// variables it reads, its exit codes and the routes of serve's handler.
type known struct {
	root     *cobra.Command
	flags    map[string][]string // flag name -> the commands that take it
	env      map[string]bool
	codes    map[int]bool
	endpoint func(path string) bool
}

func knownNames(t *testing.T) *known {
	t.Helper()
	k := &known{root: testRoot(), flags: map[string][]string{}, env: map[string]bool{}, codes: map[int]bool{}}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.InitDefaultHelpFlag()
		cmd.InitDefaultVersionFlag()
		visit := func(f *pflag.Flag) {
			if !slices.Contains(k.flags[f.Name], cmd.Name()) {
				k.flags[f.Name] = append(k.flags[f.Name], cmd.Name())
			}
			k.env[flagEnv(f)] = true
		}
		cmd.Flags().VisitAll(visit)
		cmd.InheritedFlags().VisitAll(visit)
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(k.root)
	for _, name := range envReadByCode(t) {
		k.env[name] = true
	}
	for _, c := range schemagate.ExitCodes() {
		k.codes[int(c)] = true
	}
	reg := prometheus.NewRegistry()
	h := health.Handler(health.NewMonitor(coordinator.Identity{}, reg,
		health.Options{Detail: health.DetailFull, Redact: func(s string) string { return s }}), reg)
	k.endpoint = func(path string) bool {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed
	}
	return k
}

// envReadByCode lists the SCHEMAGATE_ variables the module's programs read with os.Getenv or
// os.LookupEnv, besides those of flags (SCHEMAGATE_TEST_DATABASE_URL).
func envReadByCode(t *testing.T) []string {
	t.Helper()
	var names []string
	fset := token.NewFileSet()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "../.." && (strings.HasPrefix(d.Name(), ".") || exists(filepath.Join(path, "go.mod"))) {
				return filepath.SkipDir // another module (bench, deploy), or .git
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv") {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "os" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, "SCHEMAGATE_") {
					names = append(names, s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "SCHEMAGATE_TEST_DATABASE_URL") {
		t.Fatalf("found no os.Getenv(\"SCHEMAGATE_TEST_DATABASE_URL\") in the module, only %q", names)
	}
	return names
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// docFiles are README.md and every page under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../../README.md"}
	err := filepath.WalkDir("../../docs", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// segment is a piece of a page read on its own: one inline code span, one command line of a
// code block (its continuation lines joined), or one paragraph of prose.
type segment struct {
	line int
	text string
	code bool
	// httpGet: a code line that is, or follows, a Kubernetes probe's httpGet.
	httpGet bool
	// theirs: a code line of a container whose image is not schemagate's: its args and
	// command are that image's.
	theirs bool
}

func readDoc(t *testing.T, path string) []segment {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseDoc(string(b))
}

var (
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	inlineCode = regexp.MustCompile("`([^`]+)`")
	// A comment of a shell, YAML or Dockerfile line.
	comment = regexp.MustCompile(`(^|\s)#.*$`)
	// A container's image, and the lines that hold its arguments (args:, command:, - item).
	yamlImage = regexp.MustCompile(`^\s*(?:-\s+)?image:\s*"?([^\s"]+)`)
	ourImage  = regexp.MustCompile(`(^|/)schemagate(:|@|$)`)
	yamlArgs  = regexp.MustCompile(`^\s*(?:-\s+)?(?:args|command):|^\s*-\s`)
)

// parseDoc splits a Markdown page into segments.
func parseDoc(doc string) []segment {
	var segs []segment
	lines := strings.Split(doc, "\n")
	inFence, httpGet, otherImage := false, 0, false
	var para []string
	paraStart := 0
	flush := func() {
		if len(para) == 0 {
			return
		}
		text := strings.Join(para, "\n")
		for _, loc := range inlineCode.FindAllStringSubmatchIndex(text, -1) {
			segs = append(segs, segment{line: paraStart + strings.Count(text[:loc[0]], "\n"), text: text[loc[2]:loc[3]], code: true})
		}
		segs = append(segs, segment{line: paraStart, text: inlineCode.ReplaceAllString(text, " ")})
		para = nil
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if fence.MatchString(line) {
			flush()
			inFence, httpGet, otherImage = !inFence, 0, false
			continue
		}
		if inFence {
			start := i
			for strings.HasSuffix(line, "\\") && i+1 < len(lines) && !fence.MatchString(lines[i+1]) {
				i++
				line = strings.TrimSuffix(line, "\\") + " " + lines[i]
			}
			line = comment.ReplaceAllString(line, "")
			if strings.Contains(line, "httpGet") {
				httpGet = 3
			}
			if m := yamlImage.FindStringSubmatch(line); m != nil {
				otherImage = !ourImage.MatchString(m[1])
			}
			segs = append(segs, segment{line: start + 1, text: line, code: true, httpGet: httpGet > 0,
				theirs: otherImage && yamlArgs.MatchString(line)})
			httpGet--
			continue
		}
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if len(para) == 0 {
			paraStart = i + 1
		}
		para = append(para, line)
	}
	flush()
	return segs
}

var (
	// A shell command ends at these; the next one starts with its own program.
	commandSeparator = regexp.MustCompile(`&&|\|\||[|;]`)
	proseWord        = regexp.MustCompile("[^\\s\"'\\[\\](),{}`]+")
	flagPattern      = regexp.MustCompile(`^--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?:=.*)?[.:]?$`)
	envPattern       = regexp.MustCompile(`SCHEMAGATE_[A-Z0-9]+(?:_[A-Z0-9]+)*(_?\*)?`)
	// The binary by its path, or the image by its name: what follows is schemagate's.
	binaryPath = regexp.MustCompile(`^(?:/|\./|\.\./|bin/)(?:[\w.-]+/)*schemagate$`)
	imageName  = regexp.MustCompile(`^(?:[\w.-]+(?::\d+)?/)*schemagate/schemagate(?::[\w.-]+|@sha256:[0-9a-f]+)?$`)
	// exit 3, exits 0, exit code 2, exit codes 2, 3 and 6, non-zero exit (3), exit_code=5.
	exitPattern = regexp.MustCompile(`(?i)\bexit(?:s|ed|ing)?(?:\s+with)?(?:\s+(?:code|status)s?)?\s*[(:]?\s*(?:code\s+)?(\d+)((?:\s*(?:,|and|or)\s*\d+)*)|exit_code"?\s*[=:]\s*(\d+)`)
	listNumber  = regexp.MustCompile(`\d+`)
	// A table of exit codes: its header's first cell is "code" or "exit code".
	codeTable = regexp.MustCompile(`(?im)^\|\s*(?:exit )?code\s*\|.*\n\|[-| :]+\|\n((?:\|.*\n?)*)`)
	codeRow   = regexp.MustCompile(`(?m)^\|\s*(\d+)\s*\|`)
	// GET /x, http://host:9090/x (serve's default --listen), a probe's path: /x.
	getPattern  = regexp.MustCompile(`\bGET\s+(/[a-z][\w-]*)`)
	urlPattern  = regexp.MustCompile(`https?://[\w.-]+:9090(/[a-z][\w-]*)`)
	pathPattern = regexp.MustCompile(`\bpath:\s*"?(/[a-z][\w-]*)`)
	loneSegment = regexp.MustCompile(`^(/[a-z][\w-]*)(?:\?[\w=&]*)?$`)
	commandWord = regexp.MustCompile(`^[a-z]+$`)
	// Words before a command line's program: a prompt, a YAML list's dash or key, a variable
	// assignment, a prefix command.
	leadingWord = regexp.MustCompile(`^(\$|-|[\w-]+:|[A-Za-z_][A-Za-z0-9_]*=\S*|exec|sudo|time|CMD|ENTRYPOINT|RUN)$`)
)

// check returns one problem per name the segments use that the code does not have.
func (k *known) check(segs []segment) []string {
	var problems []string
	report := func(s segment, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%d: %s", s.line, fmt.Sprintf(format, args...)))
	}
	for _, s := range segs {
		for _, command := range commandSeparator.Split(s.text, -1) {
			k.checkCommand(s, command, report)
		}
		for _, m := range envPattern.FindAllStringSubmatch(s.text, -1) {
			if m[1] != "" { // SCHEMAGATE_PROBE_*: a prefix some variable has
				prefix := strings.TrimSuffix(m[0], "*")
				if !slices.ContainsFunc(mapKeys(k.env), func(e string) bool { return strings.HasPrefix(e, prefix) }) {
					report(s, "%s: no environment variable starts with %s", m[0], prefix)
				}
			} else if !k.env[m[0]] && foreignEnv[m[0]] == "" {
				report(s, "%s: no flag has this environment variable, and no code reads it", m[0])
			}
		}
		for _, m := range exitPattern.FindAllStringSubmatch(s.text, -1) {
			numbers := listNumber.FindAllString(m[1]+" "+m[2]+" "+m[3], -1)
			for _, n := range numbers {
				k.checkCode(s, n, report)
			}
		}
		var paths []string
		for _, re := range []*regexp.Regexp{getPattern, urlPattern} {
			for _, m := range re.FindAllStringSubmatch(s.text, -1) {
				paths = append(paths, m[1])
			}
		}
		if s.httpGet {
			for _, m := range pathPattern.FindAllStringSubmatch(s.text, -1) {
				paths = append(paths, m[1])
			}
		}
		if m := loneSegment.FindStringSubmatch(s.text); s.code && m != nil && filePaths[m[1]] == "" {
			paths = append(paths, m[1])
		}
		for _, p := range paths {
			if !k.endpoint(p) {
				report(s, "%s: serve has no such endpoint", p)
			}
		}
	}
	// Tables of exit codes, read from the prose segments, which hold the pages' tables.
	for _, s := range segs {
		if s.code {
			continue
		}
		for _, table := range codeTable.FindAllStringSubmatch(s.text+"\n", -1) {
			for _, row := range codeRow.FindAllStringSubmatch(table[1], -1) {
				k.checkCode(s, row[1], report)
			}
		}
	}
	return problems
}

// checkCode: a number documented as an exit code is one of schemagate's. Codes from 128 up
// are deaths by signal (128 + the signal's number), the shell's and the kernel's.
func (k *known) checkCode(s segment, number string, report func(segment, string, ...any)) {
	n, err := strconv.Atoi(number)
	if err != nil || n >= 128 || k.codes[n] {
		return
	}
	report(s, "exit code %d: package schemagate has no such code", n)
}

// checkCommand follows one command line word by word: the flags after `schemagate`, the binary's
// path or the image's name are schemagate's, as are those of a line whose program is not
// known (an args list of a manifest, a flag quoted in prose); those after a known other
// program, or after `--`, are not.
func (k *known) checkCommand(s segment, command string, report func(segment, string, ...any)) {
	const (
		unknown = iota
		ours
		theirs
	)
	owner, expectCommand, first := unknown, false, true
	if s.theirs {
		owner = theirs
	}
	var sub *cobra.Command
	for _, word := range words(command, s.code) {
		if first && leadingWord.MatchString(word) {
			continue
		}
		switch {
		case !s.code: // prose: every flag it quotes is schemagate's, unless listed above
		case word == "--":
			owner = theirs // exec's -- COMMAND, or kubectl exec's
		case word == "schemagate" || binaryPath.MatchString(word) || imageName.MatchString(word):
			// A command follows the program at the start of a command line, or the binary's
			// path or the image's name anywhere: not "schemagate" in a sentence.
			owner, sub, expectCommand, first = ours, nil, s.code && (first || word != "schemagate"), false
			continue
		case slices.Contains(foreignPrograms, word) && (owner != ours || sub != nil || !expectCommand):
			owner = theirs
		case flagPattern.MatchString(word):
			if owner == theirs {
				break
			}
			name := flagPattern.FindStringSubmatch(word)[1]
			commands, ok := k.flags[name]
			switch {
			case !ok && foreignFlags[name] == "":
				report(s, "--%s: no command has this flag", name)
			case ok && sub != nil && !slices.Contains(commands, sub.Name()):
				report(s, "--%s: schemagate %s has no such flag (%s have)", name, sub.Name(), strings.Join(commands, ", "))
			}
		case s.code && owner == ours && expectCommand && commandWord.MatchString(word):
			if sub = commandNamed(k.root, word); sub == nil && foreignCommands[word] == "" {
				report(s, "schemagate %s: no such command", word)
			}
		}
		expectCommand, first = false, false
	}
}

// words splits a command line as a shell does, a quoted string being one word, and takes off
// what wraps a word in a JSON or YAML list: ["serve", "--dir"] is serve, --dir. Prose is
// split at quotes, which are apostrophes there.
func words(line string, code bool) []string {
	if !code {
		return proseWord.FindAllString(line, -1)
	}
	var out []string
	var w strings.Builder
	quote := rune(0)
	end := func() {
		word := strings.Trim(w.String(), "[](){},;")
		if len(word) >= 2 && (word[0] == '"' || word[0] == '\'') && word[len(word)-1] == word[0] {
			word = word[1 : len(word)-1]
		}
		if word != "" {
			out = append(out, word)
		}
		w.Reset()
	}
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == ' ' || r == '\t' || r == '\n':
			end()
			continue
		}
		w.WriteRune(r)
	}
	end()
	return out
}

func commandNamed(root *cobra.Command, name string) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

func mapKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
