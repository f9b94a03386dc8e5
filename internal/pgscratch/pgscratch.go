// Package pgscratch makes throwaway PostgreSQL: databases with random names on a server, and
// whole servers in a temporary directory on a free port of 127.0.0.1. The tests (through
// internal/pgtest), the soak run, the benchmark and the demo share it.
package pgscratch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// CreateDatabase creates an empty database named prefix plus a random suffix on the server
// adminURL names, and returns its name.
func CreateDatabase(ctx context.Context, adminURL, prefix string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	name := prefix + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", Redact(adminURL), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// DropDatabase drops database name, ending its sessions.
func DropDatabase(ctx context.Context, adminURL, name string) error {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// WithDatabase returns rawURL pointing at database name.
func WithDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Redact returns rawURL without its password, for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for a server that will
// listen on it. It is chosen at random below the kernel's ephemeral range: outgoing
// connections take their source ports from that range, so a port there that was free when
// checked can be taken by any connection made before the server binds it (a Raft member
// dialling a peer that has not started yet).
func FreePort() (int, error) {
	const lowest = 10000
	if first := ephemeralStart(); first > lowest+1000 {
		for range 100 {
			port := lowest + mathrand.IntN(first-lowest)
			if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
				l.Close()
				return port, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralStart is the first port of the kernel's ephemeral range, or 0 when unknown.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0
	}
	first, _ := strconv.Atoi(fields[0])
	return first
}

// ServerOptions shape a throwaway server.
type ServerOptions struct {
	// Settings are extra postgresql.conf lines, such as "max_connections = 20".
	Settings []string
	// Password, when set, is the postgres user's password, and the server requires it
	// (scram-sha-256) instead of trusting every local connection.
	Password string
	// DirPrefix names the temporary directory (default "sgcluster-").
	DirPrefix string
}

// Server is a PostgreSQL server of its own, started with the binaries `pg_config --bindir`
// names. Run as root, it runs as the postgres user (or nobody): PostgreSQL refuses root.
type Server struct {
	Dir      string
	Port     int
	bin      string
	cred     *syscall.Credential
	password string
}

// StartServer initialises and starts a server. On error, whatever was made is removed.
func StartServer(ctx context.Context, opts ServerOptions) (*Server, error) {
	out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
	if err != nil {
		return nil, fmt.Errorf("pg_config --bindir: %w (the PostgreSQL server binaries are needed)", err)
	}
	s := &Server{bin: strings.TrimSpace(string(out)), password: opts.Password}
	if s.cred, err = serverCredential(); err != nil {
		return nil, err
	}
	if s.Port, err = FreePort(); err != nil {
		return nil, err
	}
	prefix := opts.DirPrefix
	if prefix == "" {
		prefix = "sgcluster-"
	}
	if s.Dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	if err := s.init(ctx, opts); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

func (s *Server) init(ctx context.Context, opts ServerOptions) error {
	if s.cred != nil {
		if err := os.Chown(s.Dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	initdb := []string{"-D", s.data(), "-U", "postgres", "--no-sync", "-E", "UTF8", "-A", "trust"}
	if opts.Password != "" {
		pwfile := filepath.Join(s.Dir, "pwfile")
		if err := os.WriteFile(pwfile, []byte(opts.Password+"\n"), 0o644); err != nil {
			return err
		}
		initdb = append(initdb[:len(initdb)-2], "-A", "scram-sha-256", "--pwfile", pwfile)
	}
	if err := s.run(ctx, "initdb", initdb...); err != nil {
		return err
	}
	conf := append([]string{
		fmt.Sprintf("port = %d", s.Port),
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("unix_socket_directories = '%s'", s.Dir),
		"fsync = off",
		"logging_collector = off",
	}, opts.Settings...)
	f, err := os.OpenFile(filepath.Join(s.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.Start(ctx)
}

// serverCredential is whom the server runs as when this process is root; nil otherwise.
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
	return nil, errors.New("running as root needs a postgres (or nobody) user to run the server: PostgreSQL refuses to run as root")
}

func (s *Server) data() string { return filepath.Join(s.Dir, "data") }

func (s *Server) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.Dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// AdminURL is the URL of the server's maintenance database.
func (s *Server) AdminURL() string {
	who := "postgres"
	if s.password != "" {
		who += ":" + s.password
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", who, s.Port)
}

// Start starts the server (again) and waits until it accepts connections.
func (s *Server) Start(ctx context.Context) error {
	return s.run(ctx, "pg_ctl", "-D", s.data(), "-l", filepath.Join(s.Dir, "server.log"), "-w", "-t", "60", "start")
}

// Stop stops the server: mode "fast" ends sessions and rolls their transactions back,
// "immediate" drops everything at once.
func (s *Server) Stop(ctx context.Context, mode string) error {
	return s.run(ctx, "pg_ctl", "-D", s.data(), "-m", mode, "-w", "stop")
}

// Log returns the server log so far, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return string(b)
}

// Remove stops the server at once, if it runs, and removes its directory.
func (s *Server) Remove() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err == nil {
		_ = s.Stop(ctx, "immediate")
	}
	return os.RemoveAll(s.Dir)
}
