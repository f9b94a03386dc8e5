package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cluster is a throwaway PostgreSQL server in a temporary directory, on a free port of
// 127.0.0.1, started with the server binaries `pg_config --bindir` names. Run as root, the
// server runs as the postgres user (or nobody), as PostgreSQL refuses to run as root. It
// mirrors internal/pgtest's test cluster, without the testing package.
type cluster struct {
	bin  string
	dir  string
	port int
	cred *syscall.Credential
}

// startCluster initialises and starts a cluster. On error, whatever was started is stopped.
func startCluster(ctx context.Context) (*cluster, error) {
	out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
	if err != nil {
		return nil, fmt.Errorf("--postgres needs the PostgreSQL server binaries (pg_config --bindir): %w", err)
	}
	c := &cluster{bin: strings.TrimSpace(string(out))}
	if c.cred, err = serverCredential(); err != nil {
		return nil, err
	}
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	if c.dir, err = os.MkdirTemp("", "schemagate-demo-pg-"); err != nil {
		return nil, err
	}
	if err := c.init(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) init(ctx context.Context) error {
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(c.dir, "data")
	if err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "--no-sync", "-E", "UTF8", "-A", "trust"); err != nil {
		return err
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"+
		"fsync = off\nlogging_collector = off\n", c.port, c.dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return c.run(ctx, "pg_ctl", "-D", data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start")
}

// serverCredential is whom the server runs as when the demo runs as root; nil otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("--postgres as root needs a postgres (or nobody) user to run the server: PostgreSQL refuses to run as root")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *cluster) run(ctx context.Context, name string, args ...string) error {
	if out, err := c.command(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

// adminURL is the URL of the cluster's maintenance database.
func (c *cluster) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// stop stops the server at once (its data is thrown away) and removes its directory.
func (c *cluster) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := filepath.Join(c.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		_ = c.run(ctx, "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
	}
	return os.RemoveAll(c.dir)
}
