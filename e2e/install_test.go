package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInstall: install copies the running binary into a directory (as DIR/schemagate) or to a
// file path, executable, leaving no temporary file; a destination that cannot be written is
// exit 2 with one line.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	r := start(t, "install", []string{"install", dir})
	if code := r.wait(t, time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, r.output())
	}
	out, err := exec.Command(filepath.Join(dir, "schemagate"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "schemagate ") {
		t.Errorf("the installed binary does not run: %v: %s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the destination, want 1 (no temporary file left)", len(entries))
	}
	named := filepath.Join(dir, "sg")
	if code := start(t, "install-file", []string{"install", named}).wait(t, time.Minute); code != 0 {
		t.Errorf("install to a file path: exit %d", code)
	}
	if info, err := os.Stat(named); err != nil || info.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s: %v, %v", named, info, err)
	}
	bad := start(t, "install-bad", []string{"install", "/nonexistent/dir/schemagate"})
	if code := bad.wait(t, time.Minute); code != 2 || strings.Count(strings.TrimSpace(bad.output()), "\n") != 0 {
		t.Errorf("an unwritable destination: exit %d, %q; want 2 and one line", code, bad.output())
	}
}
