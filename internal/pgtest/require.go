package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemagate/schemagate/internal/pgscratch"
)

// Tests that need PostgreSQL end, when it is not there, in one of two ways: skipped with a
// message saying what is missing, so that `go test ./coordinator/ ./journal/ ./lock/...` on a
// laptop without a server passes with what it can run; or, when the environment variable CI is
// set (to anything but the empty string), failed, so that a CI job whose database did not come
// up is red rather than green with nothing tested. `make test` starts a throwaway server when
// none answers (internal/pgtest/testdb), so the skip is for a bare `go test`.

// dialTimeout bounds the probe of the shared server: a host that drops packets must not cost a
// test binary more than this once.
const dialTimeout = 3 * time.Second

// probes caches, per URL, what the probe of the shared server found: a test binary dials once,
// not once per test.
var probes sync.Map // URL → probe

type probe struct{ err error }

// RequireServer returns the URL of the shared server's maintenance database (AdminURL), or ends
// the test when nothing answers there: skipped, or failed when CI is set.
func RequireServer(t testing.TB) string {
	t.Helper()
	url := AdminURL()
	p, ok := probes.Load(url)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		defer cancel()
		p, _ = probes.LoadOrStore(url, probe{err: Answers(ctx, url)})
	}
	if err := p.(probe).err; err != nil {
		Unavailable(t, "no PostgreSQL answers at SCHEMAGATE_TEST_DATABASE_URL (%s): %v; "+
			"point the variable at a server, or run make test, which starts a throwaway one", pgscratch.Redact(url), err)
	}
	return url
}

// Answers reports whether anything answers at the host and port rawURL names (a TCP port, or a
// Unix socket): nil when a connection opens. It does not log in, so a server that answers but
// refuses this user is not mistaken for a missing one: the test then fails on the refusal.
func Answers(ctx context.Context, rawURL string) error {
	cfg, err := pgconn.ParseConfig(rawURL)
	if err != nil {
		return fmt.Errorf("parse the URL: %w", err)
	}
	network, addr := pgconn.NetworkAddress(cfg.Host, cfg.Port)
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// ServerBinaries returns the directory of PostgreSQL's server programs (pg_config --bindir), or
// an error saying what is missing: pgscratch needs initdb and pg_ctl there.
func ServerBinaries(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
	if err != nil {
		return "", fmt.Errorf("pg_config --bindir: %w (the PostgreSQL server binaries are not installed)", err)
	}
	dir := strings.TrimSpace(string(out))
	for _, prog := range []string{"initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(dir, prog)); err != nil {
			return "", fmt.Errorf("%s is not in %s (pg_config --bindir): the PostgreSQL server package is not installed", prog, dir)
		}
	}
	return dir, nil
}

// CI reports whether the tests run in continuous integration (CI set and not empty), where a
// missing database fails the test instead of skipping it.
func CI() bool { return os.Getenv("CI") != "" }

// Unavailable ends t for want of something outside the test it needs (a server, the server
// binaries): skipped with the message, or, when CI is set, failed with it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (CI is set: failing instead of skipping)", msg)
	}
	t.Skipf("skipped: %s (with CI set, this fails)", msg)
}
