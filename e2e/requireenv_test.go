package e2e

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRequireEnv: a replica without a variable its fleet needs is refused before it touches
// the database: exit 2, one line naming the variable and why, and no connection attempt at all
// (the database URL points at a listener that counts them). With the variable set, the same
// command line migrates.
func TestRequireEnv(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialed atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			c.Close()
		}
	}()
	dir := writeMigrations(t, migrationSet{N: 1})
	watched := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", ln.Addr())
	for _, env := range [][]string{nil, {"REDIS_URL="}} {
		r := start(t, "web-1", []string{"migrate", "--database-url", watched, "--dir", dir, "--timeout", "5s",
			"--require-env", "WEBUI_SECRET_KEY", "--require-env", "REDIS_URL=config changes sync through it, between replicas"},
			append([]string{"WEBUI_SECRET_KEY=set"}, env...)...)
		if code := r.wait(t, 30*time.Second); code != 2 {
			t.Fatalf("missing REDIS_URL (%q): exit %d, want 2\n%s", env, code, r.output())
		}
		lines, _ := reportLines(r.output())
		want := "require-env: REDIS_URL (config changes sync through it, between replicas) is not set or empty"
		if len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Errorf("the refusal is not one line naming the variable and why:\n%s", r.output())
		}
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("a refused replica connected %d times to the database", n)
	}

	d := newDB(t)
	ok := start(t, "web-2", append(d.args("migrate", dir), "--require-env", "WEBUI_SECRET_KEY,REDIS_URL"),
		"WEBUI_SECRET_KEY=set", "REDIS_URL=redis://127.0.0.1:6379/0")
	if code := ok.wait(t, time.Minute); code != 0 {
		t.Fatalf("every variable set: exit %d\n%s", code, ok.output())
	}
}
