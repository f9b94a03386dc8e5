package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestContainerFleetGuard: the fleet guard with replicas run as containers run them: each PID 1
// of a PID namespace of its own, as nobody, in a working directory it cannot write, with
// --same-env and --require-env. Three serve replicas with the same WEBUI_SECRET_KEY become
// ready. A migrate and an exec with another value exit 8 naming the variable and the three (the
// app never starts), and a serve with it answers /readyz 503 saying the same; the three stay
// ready, and a migrate and an exec with their value pass (the app runs as PID 1). A replica
// without a --require-env variable exits 2 in every mode without a single connection to the
// database, counted by a proxy in front of it; given the variable, the same command line
// connects through that proxy and passes.
func TestContainerFleetGuard(t *testing.T) {
	needContainers(t)
	readOnly := sharedDir(t)
	if err := os.Chmod(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	apps := sharedDir(t) // where the apps exec starts write their pid: nobody's
	if err := os.Chown(apps, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	nobody := fleet.Container{PID1: true, UID: 65534, GID: 65534, Dir: readOnly}
	d := newDB(t)
	dir := sharedDir(t)
	if err := (migrationSet{N: 3}).Write(dir); err != nil {
		t.Fatal(err)
	}
	const why = "configuration changes reach the other replicas through it"
	guard := []string{"--same-env", "WEBUI_SECRET_KEY", "--require-env", "REDIS_URL=" + why}
	gate := func(url, command string, extra ...string) []string {
		if command == "serve" {
			extra = append(extra, "--watch-interval", "500ms")
		}
		return append([]string{command, "--database-url", url, "--dir", dir}, append(guard, extra...)...)
	}
	app := func(name string) []string {
		return []string{"--", "sh", "-c", "echo $$ > " + filepath.Join(apps, name)}
	}
	const redis = "REDIS_URL=redis://cache:6379/0"
	agreed := []string{"WEBUI_SECRET_KEY=" + fleetSecret, redis}
	differs := []string{"WEBUI_SECRET_KEY=" + otherSecret, redis}

	var sidecars []*replica
	var eps []endpoint
	for i := range 3 {
		addr, ep := listenAddr(t)
		sidecars = append(sidecars, startIn(t, nobody, fmt.Sprintf("web-%d", i), gate(d.url, "serve", "--listen", addr), agreed...))
		eps = append(eps, ep)
	}
	for _, ep := range eps {
		ep.awaitStatus(t, time.Minute, "/readyz", 200)
	}
	d.assertAppliedOnce(t, 3)

	want := "WEBUI_SECRET_KEY differs from the value on 3 ready replicas (web-0, web-1, web-2); " +
		"users would be logged out when their requests move between replicas"
	strays := []*replica{
		startIn(t, nobody, "stray-job", gate(d.url, "migrate"), differs...),
		startIn(t, nobody, "stray-app", append(gate(d.url, "exec"), app("stray-app")...), differs...),
	}
	for _, r := range strays {
		if code := r.wait(t, time.Minute); code != 8 {
			t.Fatalf("%s, with another value, exited %d, want 8:\n%s", r.name, code, r.output())
		}
		if got := lastMessage(r.output()); got != want {
			t.Errorf("%s's exit message:\n%s\nwant:\n%s", r.name, got, want)
		}
		if !strings.Contains(r.output(), `"exit_reason":"fleet disagrees"`) {
			t.Errorf("%s's exit reason is not fleet disagrees:\n%s", r.name, r.output())
		}
	}
	if _, err := os.Stat(filepath.Join(apps, "stray-app")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the app of the exec held back started (%v)", err)
	}

	addr, strayEp := listenAddr(t)
	straySidecar := startIn(t, nobody, "stray-web", gate(d.url, "serve", "--listen", addr), differs...)
	strayEp.awaitStatus(t, time.Minute, "/readyz?verbose", 503)
	await(t, time.Minute, "the stray sidecar to say why it is unready", func() bool {
		_, body := strayEp.get("/readyz?verbose")
		return containsAll(body, "[+]schema ok", "[-]fleet failed: "+want)
	})

	// The held-back sidecar does not count as ready: a replica with the fleet's value passes.
	agreeing := []*replica{
		startIn(t, nobody, "job", gate(d.url, "migrate"), agreed...),
		startIn(t, nobody, "app", append(gate(d.url, "exec"), app("app")...), agreed...),
	}
	waitAll(t, agreeing, time.Minute, 0)
	if b, err := os.ReadFile(filepath.Join(apps, "app")); err != nil || string(b) != "1\n" {
		t.Errorf("the app of the agreeing exec reported pid %q (%v), want 1", b, err)
	}
	for i, ep := range eps {
		if code, body := ep.get("/readyz"); code != 200 {
			t.Errorf("web-%d is no longer ready after the stray replicas came: %d %s", i, code, body)
		}
	}

	// Without REDIS_URL (unset, or empty): refused in every mode before a connection is made.
	if _, set := os.LookupEnv("REDIS_URL"); set {
		t.Fatal("REDIS_URL is set in the test's environment: the replicas would inherit it")
	}
	proxied, dialed := countingProxy(t, d.url)
	refusal := "require-env: REDIS_URL (" + why + ") is not set or empty in this replica's environment; every replica must have it"
	for _, mode := range []string{"migrate", "wait", "exec", "serve"} {
		for _, env := range [][]string{{"WEBUI_SECRET_KEY=" + fleetSecret}, {"WEBUI_SECRET_KEY=" + fleetSecret, "REDIS_URL="}} {
			name := "unset-" + mode
			if len(env) == 2 {
				name = "empty-" + mode
			}
			args := gate(proxied, mode)
			switch mode {
			case "exec":
				args = append(args, app(name)...)
			case "serve":
				args = append(args, "--listen", "127.0.0.1:0")
			}
			r := startIn(t, nobody, name, args, env...)
			if code := r.wait(t, 30*time.Second); code != 2 {
				t.Errorf("%s: exit %d, want 2:\n%s", name, code, r.output())
				continue
			}
			if lines, _ := reportLines(r.output()); len(lines) != 1 || !strings.Contains(lines[0], refusal) {
				t.Errorf("%s: the refusal is not one line naming the variable and why:\n%s", name, r.output())
			}
		}
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("replicas without REDIS_URL connected %d times to the database", n)
	}
	if _, err := os.Stat(filepath.Join(apps, "unset-exec")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the app of an exec without REDIS_URL started (%v)", err)
	}
	// The proxy sees the connections of a replica that has the variable.
	through := startIn(t, nobody, "proxied-job", gate(proxied, "migrate"), agreed...)
	if code := through.wait(t, time.Minute); code != 0 {
		t.Fatalf("through the proxy, with every variable set: exit %d\n%s", code, through.output())
	}
	if dialed.Load() == 0 {
		t.Error("the proxy counted no connection of a replica that migrated through it: it proves nothing")
	}

	for _, r := range append(sidecars, straySidecar) {
		r.signal(t, syscall.SIGTERM)
	}
	waitAll(t, append(sidecars, straySidecar), 30*time.Second, 0)
	noSecretIn(t, append(append(sidecars, straySidecar), append(strays, agreeing...)...)...)
}

// countingProxy forwards the connections made to 127.0.0.1:port to the test server, and counts
// them: a replica that connects to the database through it cannot go unseen, however briefly
// it stays. It returns dsn pointed at the proxy.
func countingProxy(t *testing.T, dsn string) (string, *atomic.Int32) {
	t.Helper()
	host, port := pgtest.ServerAddress(t)
	target := net.JoinHostPort(host, strconv.Itoa(int(port)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		dialed atomic.Int32
		mu     sync.Mutex
		open   []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	track := func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
		}
		open = append(open, c)
	}
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			track(client)
			track(server)
			wg.Go(func() { io.Copy(server, client); server.Close() })
			wg.Go(func() { io.Copy(client, server); client.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return pgtest.WithPort(t, dsn, ln.Addr().(*net.TCPAddr).Port), &dialed
}
