package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSharedConfigFile: one config file serves every command (a ConfigMap mounted into the
// sidecar, the Job and the health check): keys another command takes are ignored, a key no
// command takes is still refused, and probe, which takes no config file, ignores
// SCHEMAGATE_CONFIG. check with --timeout 0 has no deadline rather than none left.
func TestSharedConfigFile(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	cfg := filepath.Join(t.TempDir(), "schemagate.yaml")
	body := "database-url: " + d.url + "\ndir: " + dir + "\nlisten: \":9999\"\npoll-interval: 2s\ntimeout: 0s\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := start(t, "migrate", []string{"migrate", "--config", cfg}).wait(t, time.Minute); code != 0 {
		t.Fatalf("migrate with the shared file: exit %d", code)
	}
	check := start(t, "check", []string{"check", "--config", cfg})
	if code := check.wait(t, time.Minute); code != 0 {
		t.Errorf("check with serve's and wait's keys and --timeout 0: exit %d:\n%s", code, check.output())
	}
	// The gate's variables in the same container do not reach probe: SCHEMAGATE_TIMEOUT=0
	// (serve's "no deadline") would otherwise be an invalid probe timeout.
	probe := start(t, "probe", []string{"probe"}, "SCHEMAGATE_CONFIG="+cfg, "SCHEMAGATE_TIMEOUT=0",
		"SCHEMAGATE_PROBE_URL=http://127.0.0.1:1/readyz", "SCHEMAGATE_PROBE_TIMEOUT=1s")
	if code := probe.wait(t, time.Minute); code != 1 || !strings.Contains(probe.output(), "127.0.0.1:1") {
		t.Errorf("probe: exit %d, %q; want 1 for the refused connection to its own URL", code, probe.output())
	}
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	os.WriteFile(typo, []byte("lisen: \":9999\"\n"), 0o644)
	bad := start(t, "typo", []string{"check", "--config", typo, "--database-url", d.url, "--dir", dir})
	if code := bad.wait(t, time.Minute); code != 2 || !strings.Contains(bad.output(), `unknown key "lisen"`) {
		t.Errorf("a misspelt key: exit %d, %q", code, bad.output())
	}
	// probe reads no config file, so its url is a key nothing reads.
	probeKey := filepath.Join(t.TempDir(), "probe.yaml")
	os.WriteFile(probeKey, []byte("url: http://127.0.0.1:9090/readyz\n"), 0o644)
	unread := start(t, "unread", []string{"check", "--config", probeKey, "--database-url", d.url, "--dir", dir})
	if code := unread.wait(t, time.Minute); code != 2 || !strings.Contains(unread.output(), `unknown key "url"`) {
		t.Errorf("probe's url in a config file: exit %d, %q; want 2, as no command reads it", code, unread.output())
	}
}
