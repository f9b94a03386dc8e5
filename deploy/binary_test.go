package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testVersion is what the binary under test is stamped with, in place of the Dockerfile's
// ${VERSION}.
const testVersion = "v0.0.0-deploy-test"

// imageBudget is the target for the whole image; distroless/static-debian12 takes
// about 2 MB of it. The binary gets the rest.
const (
	imageBudget    = 25_000_000
	baseImageBytes = 2_500_000
)

// dockerfileBuild returns the Dockerfile's `go build` step as a command to run here: the
// variables it assigns, and the go command line, with ${VAR} expanded from vars.
func dockerfileBuild(t *testing.T, vars map[string]string) (assign, argv []string) {
	t.Helper()
	_, stages := parseDockerfile(t, "../Dockerfile")
	_, run := find(stages[0], "RUN", "go build")
	if run.cmd == "" {
		t.Fatal("the Dockerfile's first stage has no RUN ... go build")
	}
	words, err := shellWords(run.args)
	if err != nil {
		t.Fatalf("RUN %s: %v", run.args, err)
	}
	for i, w := range words {
		words[i] = os.Expand(w, func(name string) string {
			v, ok := vars[name]
			if !ok {
				t.Fatalf("RUN %s: the test does not know ${%s}", run.args, name)
			}
			return v
		})
	}
	i := 0
	for i < len(words) && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[i]) {
		i++
	}
	if len(words) < i+2 || words[i] != "go" || words[i+1] != "build" {
		t.Fatalf("RUN %s: want NAME=value ... go build ...", run.args)
	}
	return words[:i], words[i:]
}

// shellWords splits a RUN line the way /bin/sh does for the simple words the build step uses:
// blanks separate words, double quotes group them. Anything more (single quotes, $( ), ;, &&,
// pipes) is refused, so that the test never builds something other than what the image builds.
func shellWords(line string) ([]string, error) {
	if strings.ContainsAny(line, "'`;&|<>") || strings.Contains(line, "$(") {
		return nil, fmt.Errorf("too much shell for this test to follow")
	}
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated double quote")
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	got, err := shellWords(`CGO_ENABLED=0 go build -ldflags "-s -w -X a.V=${VERSION}" -o /out/x  ./cmd/x`)
	want := []string{"CGO_ENABLED=0", "go", "build", "-ldflags", "-s -w -X a.V=${VERSION}", "-o", "/out/x", "./cmd/x"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("shellWords: %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{`go build && rm -rf /`, `go build '-ldflags=-s'`, `go build $(echo x)`, `go build "x`} {
		if _, err := shellWords(bad); err == nil {
			t.Errorf("shellWords(%q) accepted", bad)
		}
	}
}

// buildImageBinary builds ./cmd/schemagate into dir with the Dockerfile's own build step, as
// the image's build stage would for this machine's platform.
func buildImageBinary(t *testing.T, dir string) string {
	t.Helper()
	assign, argv := dockerfileBuild(t, map[string]string{
		"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "VERSION": testVersion,
	})
	out := filepath.Join(dir, "schemagate")
	o := slices.Index(argv, "-o")
	if o < 0 || o+1 >= len(argv) || filepath.Base(argv[o+1]) != "schemagate" {
		t.Fatalf("go build %q: want -o .../schemagate", argv)
	}
	argv = slices.Clone(argv)
	argv[o+1] = out
	// The golang image has a C compiler, so cgo is on there unless the step turns it off:
	// start from the same default here.
	env := []string{"CGO_ENABLED=1", "GOFLAGS=-mod=readonly", "GOWORK=off"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains([]string{"CGO_ENABLED", "GOFLAGS", "GOWORK", "GOOS", "GOARCH"}, k) {
			env = append(env, kv)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", argv[1:]...)
	cmd.Dir = ".."
	cmd.Env = append(env, assign...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s go %s: %v\n%s", strings.Join(assign, " "), strings.Join(argv[1:], " "), err, b)
	}
	return out
}

// TestImageBinary checks the binary the image would contain: built by the Dockerfile's own
// build step, it is static (the final stage has no libc), stripped, free of this machine's
// paths, small enough, stamped with the version, and runs as an arbitrary uid without a home
// or a writable directory besides $TMPDIR.
func TestImageBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image is a Linux image")
	}
	// Readable and executable by any uid (os.MkdirTemp makes 0700 directories).
	root, err := os.MkdirTemp("", "schemagate-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	bindir := filepath.Join(root, "bin")
	for _, d := range []string{root, bindir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := buildImageBinary(t, bindir)

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary has a PT_INTERP program header: it needs a dynamic loader, which the image lacks")
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil || len(libs) > 0 {
			t.Errorf("the binary needs shared libraries %q (%v): the image has none", libs, err)
		}
	})

	t.Run("stripped and trimmed", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, s := range f.Sections {
			if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
				t.Errorf("section %s: the binary is not stripped (-s -w)", s.Name)
			}
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		modroot, _ := filepath.Abs("..")
		modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{modroot + "/", strings.TrimSpace(string(modcache)) + "/"} {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("the binary holds the build machine's path %s: build with -trimpath", p)
			}
		}
	})

	t.Run("size", func(t *testing.T) {
		st, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > imageBudget-baseImageBytes {
			t.Errorf("the binary is %d bytes: with the base image's ~%d, over the image budget of %d",
				st.Size(), baseImageBytes, imageBudget)
		}
		t.Logf("binary: %.1f MB", float64(st.Size())/1e6)
	})

	t.Run("arbitrary uid, no home, writes only to TMPDIR", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("running as another uid needs root")
		}
		checkRunsAsArbitraryUID(t, root, bin)
	})
}

// The uid and gid the binary runs as: in no passwd file, as OpenShift assigns them.
const arbitraryUID = 12345

// checkRunsAsArbitraryUID runs the binary as arbitraryUID with no HOME, from a working
// directory it could write to, against a SQLite database in $TMPDIR: version, help, a real
// migrate and check, and a probe. Then nothing may have changed in its working directory, its
// own directory or the migrations it read. (The test cannot watch the whole file system; in
// the image, a read-only root filesystem enforces the rest. It watches where a careless
// program writes: the working directory, beside itself, beside its input, and $HOME, which is
// unset so that a program that needs one fails.)
func checkRunsAsArbitraryUID(t *testing.T, root, bin string) {
	mk := func(name string, owner int) string {
		d := filepath.Join(root, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, owner, owner); err != nil {
			t.Fatal(err)
		}
		return d
	}
	migrations := mk("migrations", 0)
	sql := "-- +goose Up\nCREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\n-- +goose Down\nDROP TABLE items;\n"
	if err := os.WriteFile(filepath.Join(migrations, "00001_create_items.sql"), []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	work, tmp := mk("work", arbitraryUID), mk("tmp", arbitraryUID)
	watched := map[string]string{}
	for _, d := range []string{work, filepath.Dir(bin), migrations} {
		watched[d] = listing(t, d)
	}

	db := "sqlite://" + filepath.Join(tmp, "app.db")
	env := []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
	for _, run := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"version"}, 0, "schemagate " + testVersion + " "},
		{[]string{"check", "--help"}, 0, "Read the schema once"},
		{[]string{"migrate", "--database-url", db, "--dir", migrations, "--timeout", "30s"}, 0, "applying 00001_create_items.sql"},
		{[]string{"check", "--database-url", db, "--dir", migrations}, 0, "ready: "},
		{[]string{"probe", "--url", "http://127.0.0.1:1/readyz"}, 1, ""},
	} {
		code, out := runAs(t, bin, work, env, run.args...)
		if code != run.code || !strings.Contains(out, run.want) {
			t.Errorf("schemagate %s as uid %d: exit %d, want %d with %q in:\n%s",
				strings.Join(run.args, " "), arbitraryUID, code, run.code, run.want, out)
		}
	}

	for d, before := range watched {
		if after := listing(t, d); after != before {
			t.Errorf("%s changed while schemagate ran:\nbefore:\n%s\nafter:\n%s", d, before, after)
		}
	}
	// The database proves the runs happened as the arbitrary uid, in $TMPDIR.
	st, err := os.Stat(filepath.Join(tmp, "app.db"))
	if err != nil {
		t.Fatalf("no database in TMPDIR: %v\n%s", err, listing(t, tmp))
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != arbitraryUID {
		t.Errorf("the database belongs to uid %d, want %d", uid, arbitraryUID)
	}
	t.Logf("TMPDIR after the runs:\n%s", listing(t, tmp))
}

// runAs runs the binary as arbitraryUID:arbitraryUID with no supplementary groups, and
// returns its exit code and combined output.
func runAs(t *testing.T, bin, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: arbitraryUID, Gid: arbitraryUID}}
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run schemagate %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// listing describes every file under dir: path, mode, owner, size and modification time.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		st := info.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d:%d %d %s\n", rel, info.Mode(), st.Uid, st.Gid, info.Size(), info.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
