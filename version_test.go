package schemagate

import (
	"archive/zip"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	main := func(path, v string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: path, Version: v}}
	}
	dep := func(m debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "example.com/app", Version: "v3.0.0"}, Deps: []*debug.Module{&m}}
	}
	for _, c := range []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"stamped by -ldflags", "v1.2.3", main(modulePath, "v9.9.9"), "v1.2.3"},
		{"go install …@v1.2.3", "", main(modulePath, "v1.2.3"), "v1.2.3"},
		{"go install …@main", "", main(modulePath, "v1.2.4-0.20261201120000-4cda9b2c0e1d"), "v1.2.4-0.20261201120000-4cda9b2c0e1d"},
		{"a checkout without version control information", "", main(modulePath, "(devel)"), "dev"},
		{"imported by another program", "", dep(debug.Module{Path: modulePath, Version: "v1.2.3"}), "v1.2.3"},
		{"imported and replaced by a release", "", dep(debug.Module{Path: modulePath, Version: "v1.2.3",
			Replace: &debug.Module{Path: "example.com/fork", Version: "v1.2.4"}}), "v1.2.4"},
		{"imported and replaced by a directory", "", dep(debug.Module{Path: modulePath, Version: "v0.0.0",
			Replace: &debug.Module{Path: "../schemagate"}}), "dev"},
		{"neither main module nor dependency", "", main("example.com/app", "v3.0.0"), "dev"},
		{"no build info", "", nil, "dev"},
	} {
		if got := version(c.stamped, c.info, c.info != nil); got != c.want {
			t.Errorf("%s: version %q, want %q", c.name, got, c.want)
		}
	}
}

// installVersion is the release the install test pretends to publish.
const installVersion = "v1.98.7"

// TestGoInstallReportsTheVersion installs the command as a user would, with
// `go install github.com/schemagate/schemagate/cmd/schemagate@v1.98.7`, from a module proxy in a
// directory that serves this tree as that release, and runs `schemagate version`. Nothing
// stamps the binary: the version comes from its build info.
func TestGoInstallReportsTheVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	gomodcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	// Whatever of the command's dependencies the module cache lacks, fetched as for any build.
	if out, err := exec.Command("go", "list", "-e", "-deps", "./cmd/schemagate").CombinedOutput(); err != nil {
		t.Fatalf("go list -e -deps ./cmd/schemagate: %v\n%s", err, out)
	}
	tmp := t.TempDir()
	proxy := filepath.Join(tmp, "proxy")
	publish(t, proxy, installVersion)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := filepath.Join(tmp, "bin")
	cmd := exec.CommandContext(ctx, "go", "install", modulePath+"/cmd/schemagate@"+installVersion)
	cmd.Dir = tmp
	// The dependencies come from this machine's module cache, which is laid out as a proxy:
	// nothing is fetched, and the fake release never reaches the real cache.
	cmd.Env = append(os.Environ(),
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(strings.TrimSpace(string(gomodcache)), "cache", "download")),
		"GOMODCACHE="+filepath.Join(tmp, "modcache"),
		"GOBIN="+bin,
		"GOSUMDB=off",
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		// -trimpath as a release builds, which also lets the build cache serve the dependencies.
		"GOFLAGS=-modcacherw -trimpath",
		"CGO_ENABLED=0",
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install …@%s: %v\n%s", installVersion, err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "schemagate"), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("schemagate version: %v\n%s", err, out)
	}
	if want := "schemagate " + installVersion + " "; !strings.HasPrefix(string(out), want) {
		t.Errorf("schemagate version printed %q, want it to start with %q", out, want)
	}
}

// publish lays out the module in this directory as release version of a module proxy
// (https://go.dev/ref/mod#goproxy-protocol): its list, .info, .mod and .zip. The zip holds
// go.mod, go.sum and the Go files, leaving out the directories of other modules (bench,
// deploy).
func publish(t *testing.T, proxy, version string) {
	t.Helper()
	dir := filepath.Join(proxy, filepath.FromSlash(modulePath), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("list", []byte(version+"\n"))
	write(version+".info", []byte(`{"Version":"`+version+`","Time":"2026-12-01T12:00:00Z"}`))
	write(version+".mod", gomod)

	f, err := os.Create(filepath.Join(dir, version+".zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z := zip.NewWriter(f)
	prefix := modulePath + "@" + version + "/"
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "." {
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !(path == "go.mod" || path == "go.sum" ||
			strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		w, err := z.Create(prefix + filepath.ToSlash(path))
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
}
