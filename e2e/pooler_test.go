package e2e

import (
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

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/pgtest"
)

// startPgBouncer runs a PgBouncer in front of the shared server in the given pool mode and
// returns its port. It stops when the test ends.
func startPgBouncer(t *testing.T, mode string) int {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			t.Skip("pgbouncer is not installed (apt-get install pgbouncer)")
		}
		bin = "/usr/sbin/pgbouncer"
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := pgtest.FreePort(t)
	serverHost, serverPort := pgtest.ServerAddress(t)
	conf := fmt.Sprintf(`[databases]
* = host=%s port=%d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/userlist.txt
pool_mode = %s
default_pool_size = 20
max_client_conn = 200
logfile = %s/pgbouncer.log
`, serverHost, serverPort, port, dir, mode, dir)
	writeFile(t, dir, "pgbouncer.ini", conf)
	writeFile(t, dir, "userlist.txt", `"postgres" ""`+"\n")
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	if os.Geteuid() == 0 {
		// PgBouncer refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running pgbouncer as root needs a postgres user")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	var out fleet.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	await(t, 10*time.Second, "pgbouncer to listen", func() bool {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Fatalf("pgbouncer exited:\n%s\n%s", out.String(), log)
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

// TestTransactionPoolerRefused points schemagate at PgBouncer in transaction mode, where
// session advisory locks and LISTEN silently break: it refuses with exit 2 and says what to do,
// and the database is untouched.
func TestTransactionPoolerRefused(t *testing.T) {
	d := newDB(t)
	port := startPgBouncer(t, "transaction")
	dir := writeMigrations(t, migrationSet{N: 3})
	before := d.snapshot(t)
	r := start(t, "pooled", []string{"migrate", "--database-url", pgtest.WithPort(t, d.url, port), "--dir", dir, "--timeout", "30s"})
	if code := r.wait(t, time.Minute); code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, r.output())
	}
	if out := r.output(); !strings.Contains(out, "transaction mode") || !strings.Contains(out, "point the database URL at PostgreSQL") {
		t.Errorf("the refusal does not explain itself:\n%s", out)
	}
	if after := d.snapshot(t); after != before {
		t.Errorf("the database changed: %s -> %s", before, after)
	}
}

// TestSessionPoolerWorks: through PgBouncer in session mode the lock is sound, so schemagate
// runs normally.
func TestSessionPoolerWorks(t *testing.T) {
	d := newDB(t)
	port := startPgBouncer(t, "session")
	dir := writeMigrations(t, migrationSet{N: 5, Slow: map[int]float64{2: 1}})
	rs := startAll(t, 4, "session", []string{"migrate", "--database-url", pgtest.WithPort(t, d.url, port), "--dir", dir})
	waitAll(t, rs, time.Minute, 0)
	d.assertAppliedOnce(t, 5)
}
