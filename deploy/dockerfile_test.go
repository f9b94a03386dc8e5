package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // FROM, RUN, ... in capitals
	args string
}

// parseDockerfile returns the instructions of each build stage, in order.
func parseDockerfile(t *testing.T, path string) (globalArgs map[string]string, stages [][]instruction) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	globalArgs = map[string]string{}
	var line strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if line.Len() == 0 && (text == "" || strings.HasPrefix(text, "#")) {
			continue
		}
		if strings.HasSuffix(text, "\\") {
			line.WriteString(strings.TrimSuffix(text, "\\") + " ")
			continue
		}
		line.WriteString(text)
		cmd, args, _ := strings.Cut(line.String(), " ")
		line.Reset()
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			stages = append(stages, []instruction{in})
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			globalArgs[k] = v
		case len(stages) > 0:
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return globalArgs, stages
}

func find(stage []instruction, cmd string, contains string) (int, instruction) {
	for i, in := range stage {
		if in.cmd == cmd && strings.Contains(in.args, contains) {
			return i, in
		}
	}
	return -1, instruction{}
}

func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t, "../Dockerfile")
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a builder and the final image", len(stages))
	}
	build, final := stages[0], stages[1]

	// The builder's Go is the one go.mod asks for.
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("no go directive in ../go.mod")
	}
	if !strings.Contains(build[0].args, "golang:${GO_VERSION}") || args["GO_VERSION"] != string(m[1]) {
		t.Errorf("builder %q with GO_VERSION=%s; go.mod says go %s", build[0].args, args["GO_VERSION"], m[1])
	}

	// Modules are downloaded in their own layer, before the sources are copied.
	mods, _ := find(build, "COPY", "go.mod go.sum")
	download, _ := find(build, "RUN", "go mod download")
	sources, _ := find(build, "COPY", ". .")
	if !(mods >= 0 && mods < download && download < sources) {
		t.Errorf("COPY go.mod go.sum (%d), RUN go mod download (%d), COPY . . (%d): want in that order", mods, download, sources)
	}
	// The build step, word by word (variables left as written): cgo off, so the binary is
	// static; paths trimmed; stripped; the version stamped into package schemagate.
	// TestImageBinary runs this very step and checks what it produces.
	literal := map[string]string{}
	for _, v := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
		literal[v] = "${" + v + "}"
	}
	assign, argv := dockerfileBuild(t, literal)
	if !slices.Contains(assign, "CGO_ENABLED=0") {
		t.Errorf("go build runs with %q, want CGO_ENABLED=0 (the final stage has no libc)", assign)
	}
	for _, want := range []string{"-trimpath", "./cmd/schemagate"} {
		if !slices.Contains(argv, want) {
			t.Errorf("go build %q lacks %s", argv, want)
		}
	}
	if i := slices.Index(argv, "-ldflags"); i < 0 || i+1 >= len(argv) ||
		!hasSequence(strings.Fields(argv[i+1]), "-s", "-w") ||
		!hasSequence(strings.Fields(argv[i+1]), "-X", "github.com/schemagate/schemagate.Version=${VERSION}") {
		t.Errorf("go build %q: want -ldflags \"-s -w -X github.com/schemagate/schemagate.Version=${VERSION}\"", argv)
	}
	out := argv[slices.Index(argv, "-o")+1]

	// A variable is seen in a stage only after an ARG (or ENV) there declares it; without one,
	// ${VERSION} would quietly be empty.
	checkStageVariables(t, "build", build)
	checkStageVariables(t, "final", final)

	if final[0].args != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %q, want gcr.io/distroless/static-debian12:nonroot", final[0].args)
	}
	if i, _ := find(final, "RUN", ""); i >= 0 {
		t.Errorf("the final stage has a RUN: distroless has no shell to run it")
	}
	// The user: numeric (runAsNonRoot can verify it), the last USER, and the one the chart runs as.
	_, user := find(final, "USER", "")
	if user.args != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532 (numeric, for runAsNonRoot)", user.args)
	}
	users := 0
	for _, in := range final {
		if in.cmd == "USER" {
			users++
		}
	}
	if users != 1 {
		t.Errorf("%d USER instructions in the final stage, want one", users)
	}
	chart, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"podSecurityContext", "containerSecurityContext"} {
		sc, _ := chart.Table(key)
		if got := fmt.Sprintf("%v:%v", sc["runAsUser"], sc["runAsGroup"]); got != user.args {
			t.Errorf("the chart's %s runs as %s, the image's USER is %s", key, got, user.args)
		}
	}
	_, binary := find(final, "COPY", "--from=build "+out+" ")
	dest := strings.Fields(binary.args)
	if len(dest) != 3 {
		t.Fatalf("the final stage does not copy %s from the build stage", out)
	}
	_, entry := find(final, "ENTRYPOINT", "")
	var entrypoint []string
	if err := json.Unmarshal([]byte(entry.args), &entrypoint); err != nil || len(entrypoint) == 0 || entrypoint[0] != dest[2] {
		t.Errorf("ENTRYPOINT %q: want the exec form (there is no shell) running %s, where the binary is copied", entry.args, dest[2])
	}
	labels := map[string]string{}
	for _, in := range final {
		if in.cmd != "LABEL" {
			continue
		}
		for _, kv := range regexp.MustCompile(`([\w./-]+)="([^"]*)"`).FindAllStringSubmatch(in.args, -1) {
			labels[kv[1]] = kv[2]
		}
	}
	for _, k := range []string{"source", "version", "revision", "licenses", "title", "description"} {
		if labels["org.opencontainers.image."+k] == "" {
			t.Errorf("LABEL org.opencontainers.image.%s missing", k)
		}
	}
	if labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
		t.Errorf("licenses label %q, want Apache-2.0", labels["org.opencontainers.image.licenses"])
	}
}

// checkStageVariables: every ${VAR} a stage's instructions use is declared before, in that
// stage, by ARG or ENV (an ARG before the first FROM is seen only by FROM lines).
func checkStageVariables(t *testing.T, name string, stage []instruction) {
	t.Helper()
	declared := map[string]bool{}
	ref := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	for _, in := range stage[1:] {
		switch in.cmd {
		case "ARG", "ENV":
			for _, f := range strings.Fields(in.args) {
				k, _, _ := strings.Cut(f, "=")
				declared[k] = true
			}
		default:
			for _, m := range ref.FindAllStringSubmatch(in.args, -1) {
				if !declared[m[1]] {
					t.Errorf("stage %s: %s uses ${%s}, which no ARG of the stage declares before it", name, in.cmd, m[1])
				}
			}
		}
	}
}

// .dockerignore must keep every file the binary is built from in the build context.
func TestDockerignoreKeepsTheSources(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		"{{if not .Standard}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .SFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}",
		"./cmd/schemagate")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, _ := filepath.Abs("..")
	files := []string{"go.mod", "go.sum"}
	for _, l := range strings.Split(string(out), "\n") {
		fields := strings.Fields(l)
		if len(fields) < 2 || !strings.HasPrefix(fields[0], root+string(filepath.Separator)) {
			continue // a module dependency, downloaded in the image
		}
		rel, _ := filepath.Rel(root, fields[0])
		for _, f := range fields[1:] {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if !slices.Contains(files, "cmd/schemagate/main.go") {
		t.Fatalf("go list found no sources of ./cmd/schemagate: %q", files)
	}
	for _, f := range files {
		if p := ignoredBy(patterns, f); p != "" {
			t.Errorf(".dockerignore pattern %q drops %s, which the binary is built from", p, f)
		}
	}
}

// ignoredBy returns the .dockerignore pattern that excludes path (or one of its parent
// directories), "" if none does. Enough of the syntax for this file: globs, a leading **/, and
// ! exceptions.
func ignoredBy(patterns []string, path string) string {
	hit := ""
	for _, p := range patterns {
		exclude := !strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		if matchesPathOrParent(p, path) {
			if exclude {
				hit = p
			} else {
				hit = ""
			}
		}
	}
	return hit
}

func matchesPathOrParent(pattern, path string) bool {
	parts := strings.Split(path, "/")
	for i := 1; i <= len(parts); i++ {
		prefix := strings.Join(parts[:i], "/")
		if ok, _ := filepath.Match(pattern, prefix); ok {
			return true
		}
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			for j := 0; j < i; j++ {
				if ok, _ := filepath.Match(rest, strings.Join(parts[j:i], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}
