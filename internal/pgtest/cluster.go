package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL server of a test's own, in a temporary directory, on a free port. It
// is stopped when the test ends. Tests that restart or break the server use one, never the
// shared server.
type Cluster struct {
	t        testing.TB
	dir      string
	Port     int
	bin      string
	cred     *syscall.Credential
	password string
}

// ClusterOptions shape a test cluster.
type ClusterOptions struct {
	// Settings are extra postgresql.conf lines, such as "max_connections = 20".
	Settings []string
	// Password, when set, is the postgres user's password, and the cluster requires it
	// (scram-sha-256) instead of trusting every local connection.
	Password string
}

// StartCluster initialises and starts a cluster with extra postgresql.conf settings.
func StartCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Settings: settings})
}

// StartClusterWith initialises and starts a cluster shaped by opts.
func StartClusterWith(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	settings := opts.Settings
	bin, err := exec.Command("pg_config", "--bindir").Output()
	if err != nil {
		t.Fatalf("pg_config --bindir: %v (PostgreSQL server binaries are needed)", err)
	}
	c := &Cluster{t: t, bin: strings.TrimSpace(string(bin)), Port: FreePort(t), password: opts.Password}
	c.cred = serverCredential(t)
	dir, err := os.MkdirTemp("", "sgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := []string{"-D", data, "-U", "postgres", "--no-sync", "-E", "UTF8", "-A", "trust"}
	if opts.Password != "" {
		pwfile := filepath.Join(dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(opts.Password+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		initdb = append(initdb[:len(initdb)-2], "-A", "scram-sha-256", "--pwfile", pwfile)
	}
	c.run("initdb", initdb...)
	conf := []string{
		fmt.Sprintf("port = %d", c.Port),
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("unix_socket_directories = '%s'", dir),
		"fsync = off",
		"logging_collector = off",
	}
	conf = append(conf, settings...)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() { c.stop("immediate") })
	return c
}

// serverCredential returns the postgres user's credential when the test runs as root (the
// server refuses to run as root), or nil.
func serverCredential(t testing.TB) *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root needs a postgres user to own the test cluster: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// AdminURL is the URL of the cluster's maintenance database.
func (c *Cluster) AdminURL() string {
	user := "postgres"
	if c.password != "" {
		user += ":" + c.password
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", user, c.Port)
}

// NewDatabase creates a database on the cluster and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, c.AdminURL())
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start")
}

// Stop stops the server in fast mode: sessions are terminated, their transactions roll back.
func (c *Cluster) Stop() { c.stop("fast") }

func (c *Cluster) stop(mode string) {
	cmd := exec.Command(filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", mode, "-w", "stop")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	_ = cmd.Run()
}

// Restart stops and starts the server.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.Start()
}

// Log returns the server log so far, for failure messages.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	return string(b)
}

// WaitReady waits until the server accepts a connection.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for {
		conn, err := pgx.Connect(ctx, c.AdminURL())
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
