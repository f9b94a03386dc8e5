package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// refused runs schemagate with args and fails the test unless it exits with code and its last
// line contains every one of want. Invalid input (2) must be reported in one line (besides the
// start line, and a "did you mean" hint).
func refused(t *testing.T, name string, args []string, code int, want ...string) {
	t.Helper()
	refusedWith(t, name, nil, args, code, want...)
}

// refusedWith is refused with the extra environment env.
func refusedWith(t *testing.T, name string, env, args []string, code int, want ...string) {
	t.Helper()
	r := start(t, name, args, env...)
	got := r.wait(t, time.Minute)
	out := r.output()
	lines, _ := reportLines(r.Stderr.String())
	last := message(lines[len(lines)-1])
	switch {
	case got != code:
		t.Errorf("%s: exit %d, want %d; output:\n%s", name, got, code, out)
	case !containsAll(last, want...):
		t.Errorf("%s: last line %q does not contain %q", name, last, want)
	case code == 2 && len(lines) != 1:
		t.Errorf("%s: invalid input printed %d lines, want 1:\n%s", name, len(lines), out)
	}
}

// TestRefuseWritingVersionQuery: --version-query is read, never written through. A query that
// would write (a data-modifying WITH, SELECT … INTO) is refused before it runs; one that writes
// through a function (nextval, a volatile function) fails in its read-only transaction. Each
// exits 2, and the tables and the sequence are as they were.
func TestRefuseWritingVersionQuery(t *testing.T) {
	d := newDB(t)
	if _, err := d.conn.Exec(t.Context(), `CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
		INSERT INTO schema_migrations VALUES (3, false);
		CREATE SEQUENCE version_seq;
		CREATE FUNCTION sneak() RETURNS bigint LANGUAGE plpgsql VOLATILE AS
			$$ BEGIN DELETE FROM schema_migrations; RETURN 3; END $$`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, query, want string }{
		{"delete in WITH", "WITH gone AS (DELETE FROM schema_migrations RETURNING version) SELECT max(version) FROM gone", "contains DELETE"},
		{"update in WITH", "WITH x AS (UPDATE schema_migrations SET version = 9 RETURNING version) SELECT version FROM x", "contains UPDATE"},
		{"select into", "SELECT version INTO copied FROM schema_migrations", "contains INTO"},
		{"nextval", "SELECT nextval('version_seq')", "read-only"},
		{"volatile function", "SELECT sneak()", "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := d.snapshot(t)
			refused(t, "query", []string{"migrate", "--database-url", d.url, "--engine", "command", "--migrate-command", "true",
				"--version-source", "sql", "--version-query", tc.query, "--target-version", "3"}, 2, "version-query", tc.want)
			if after := d.snapshot(t); after != before {
				t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
			if n := d.int(t, "SELECT count(*) FROM schema_migrations WHERE version = 3"); n != 1 {
				t.Errorf("schema_migrations lost its row")
			}
			if n := d.int(t, "SELECT count(*) FROM version_seq WHERE is_called"); n != 0 {
				t.Errorf("the sequence advanced")
			}
		})
	}
}

// newRole creates a login role with no privileges, dropped (with what it was granted in d)
// when the test ends, and returns its name and d's URL for it.
func newRole(t *testing.T, d *db) (role, roleURL string) {
	t.Helper()
	role = fmt.Sprintf("sgtest_role_%d", time.Now().UnixNano())
	admin := pgtest.Connect(t, pgtest.AdminURL())
	pgtest.Exec(t, admin, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := d.conn.Exec(ctx, "DROP OWNED BY "+role); err != nil {
			t.Logf("drop owned by %s: %v", role, err)
		}
		if _, err := admin.Exec(ctx, "DROP ROLE "+role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	u, err := url.Parse(d.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, e2ePassword)
	return role, u.String()
}

// TestRefusePrivilege: a role that lacks a privilege fails with exit 3 and the database's
// "permission denied", on every path: creating the journal, creating goose's version table,
// and reading the version with --version-query. A malformed query stays exit 2.
func TestRefusePrivilege(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	pgtest.Exec(t, d.conn, "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)")
	role, roleURL := newRole(t, d)
	pgtest.Exec(t, d.conn, "CREATE SCHEMA own AUTHORIZATION "+role)
	sqlSource := []string{"--engine", "command", "--migrate-command", "true", "--version-source", "sql", "--target-version", "1"}

	refused(t, "journal", []string{"migrate", "--database-url", roleURL, "--dir", dir}, 3,
		"create journal table", "permission denied")
	refused(t, "version-table", []string{"migrate", "--database-url", roleURL, "--dir", dir, "--journal-table", "own.journal"}, 3,
		"version table", "permission denied")
	read := append([]string{"--database-url", roleURL, "--version-query", "SELECT version, dirty FROM schema_migrations"}, sqlSource...)
	refused(t, "version-query", append([]string{"migrate"}, read...), 3, "version-query", "permission denied for table schema_migrations")
	refused(t, "check", append([]string{"check"}, read...), 3, "permission denied for table schema_migrations")
	refused(t, "malformed", append([]string{"migrate", "--database-url", roleURL, "--version-query", "SELECT versoin FROM schema_migrations"}, sqlSource...), 2,
		"version-query", "versoin")
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"); n != 0 {
		t.Errorf("the role created %d tables in public", n)
	}
}

// TestRefuseTableNames: a table name PostgreSQL would fold to lower case (MyVersions becomes
// myversions, which a later release then fails to find) or a reserved word (user, order) is
// refused, for --table, --journal-table and --fence-table, with exit 2, the reason, and
// nothing written. The first release must fail, not every later one.
func TestRefuseTableNames(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	for _, tc := range []struct {
		flag, name string
		want       []string
	}{
		{"--table", "MyVersions", []string{`table: "MyVersions"`, "lower case", "myversions"}},
		{"--table", "Public.goose_db_version", []string{"table:", "lower case"}},
		{"--table", "order", []string{`table: "order"`, "reserved word"}},
		{"--table", "public.select", []string{"table:", "reserved word"}},
		{"--journal-table", "user", []string{`journal-table: "user"`, "reserved word"}},
		{"--journal-table", "Journal", []string{"journal-table:", "lower case"}},
		{"--table", strings.Repeat("v", 64), []string{"table:", "63 bytes"}},
	} {
		t.Run(tc.flag+" "+tc.name, func(t *testing.T) {
			before := d.snapshot(t)
			refused(t, "table", d.args("migrate", dir, tc.flag, tc.name), 2, tc.want...)
			if after := d.snapshot(t); after != before {
				t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	port := pgtest.FreePort(t)
	for _, name := range []string{"group", "Fence"} {
		refusedWith(t, "fence", []string{"SCHEMAGATE_RAFT_SECRET=" + raftSecret},
			d.args("migrate", dir, "--lock", "raft", "--replica-id", "r1", "--raft-peers", fmt.Sprintf("r1=127.0.0.1:%d", port),
				"--raft-listen", fmt.Sprintf("127.0.0.1:%d", port), "--fence-table", name), 2, `fence-table: "`+name+`"`)
	}
	if n := d.int(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("the database was touched: %d tables", n)
	}
	// A lower-case name works, again and again.
	for i := range 2 {
		r := start(t, fmt.Sprintf("lower-%d", i), d.args("migrate", dir, "--table", "my_versions"))
		if code := r.wait(t, time.Minute); code != 0 {
			t.Fatalf("--table my_versions, run %d: exit %d:\n%s", i, code, r.output())
		}
	}
}

// TestRefuseLockFile: the file lock takes only a regular file of its own. A lock path that is a
// symbolic link, a named pipe, a directory, a device or a file with other data is refused with
// exit 2, left as it was, and the database is not created; so is --lock file with PostgreSQL,
// where flock would not reach the replicas on other hosts.
func TestRefuseLockFile(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1, SQLite: true})
	refused(t, "postgres", []string{"migrate", "--database-url", d.url, "--dir", dir, "--lock", "file",
		"--lock-file", filepath.Join(t.TempDir(), "lock")}, 2, "lock: file", "SQLite")

	tmp := t.TempDir()
	victim := filepath.Join(tmp, "victim.txt")
	const content = "precious data, not a lock\n"
	writeFile(t, tmp, "victim.txt", content)
	link := filepath.Join(tmp, "link.lock")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(tmp, "fifo.lock")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, lockFile, want string }{
		{"symbolic link", link, "is a symbolic link"},
		{"named pipe", fifo, "is a named pipe"},
		{"directory", t.TempDir(), "is a directory"},
		{"device", "/dev/null", "is a device"},
		{"other data", victim, "holds other data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "app.db")
			refused(t, "lockfile", []string{"migrate", "--database-url", "sqlite:///" + db, "--dir", dir, "--lock-file", tc.lockFile},
				2, "lock-file: "+tc.lockFile, tc.want)
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the database was created: %v", err)
			}
		})
	}
	// The default lock file, beside the database, replaced by a link to another file.
	db := filepath.Join(t.TempDir(), "app.db")
	if err := os.Symlink(victim, db+".schemagate-lock"); err != nil {
		t.Fatal(err)
	}
	refused(t, "default", []string{"migrate", "--database-url", "sqlite:///" + db, "--dir", dir}, 2, "is a symbolic link")
	if b, err := os.ReadFile(victim); err != nil || string(b) != content {
		t.Errorf("the file behind the lock path changed: %q, %v", b, err)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the named pipe changed: %v, %v", fi, err)
	}
}

// TestRefuseReplicaID: a replica id goes into PostgreSQL's application_name (which keeps 63
// bytes; a longer id is shortened there with a hash), logs and the journal. One longer than 63
// bytes (a host name's limit), or with characters other than letters, digits, '.', '_' and '-',
// is refused with exit 2 naming the rule, before anything is written. Host names and
// Kubernetes pod names pass.
func TestRefuseReplicaID(t *testing.T) {
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	for _, id := range []string{"web/1", "web 1", "wéb-1", "web-1;drop", strings.Repeat("r", 64)} {
		t.Run(id, func(t *testing.T) {
			before := d.snapshot(t)
			refused(t, "id", d.args("migrate", dir, "--replica-id", id), 2, "replica-id", "letters, digits", "63 bytes")
			if after := d.snapshot(t); after != before {
				t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	for _, id := range []string{"web-7d9f8b6c5d-x2kqz", "app_web.2.x1y2z3", strings.Repeat("r", 63)} {
		r := start(t, "ok", d.args("check", dir, "--replica-id", id))
		if code := r.wait(t, time.Minute); code != 1 {
			t.Errorf("--replica-id %s: exit %d, want 1 (not ready):\n%s", id, code, r.output())
		}
	}
}

// TestRefuseHostNameAsReplicaID: without --replica-id the host name is the id, under the same
// rule; a host name that breaks it is refused with exit 2, and the message says to set
// --replica-id. The host name is changed in a UTS namespace of the process's own.
func TestRefuseHostNameAsReplicaID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give schemagate a host name of its own (unshare --uts)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare")
	}
	d := newDB(t)
	dir := writeMigrations(t, migrationSet{N: 1})
	before := d.snapshot(t)
	for _, host := range []string{"host/with:colon", strings.Repeat("h", 64)} {
		cmd := exec.Command("unshare", append([]string{"--uts", "sh", "-c", `printf %s "$HOSTNAME_FOR_TEST" > /proc/sys/kernel/hostname && exec "$@"`,
			"sh", binary}, d.args("migrate", dir)...)...)
		cmd.Env = append(os.Environ(), "HOSTNAME_FOR_TEST="+host)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("host name %q: %v, want exit 2:\n%s", host, err, stderr.String())
			continue
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if msg := message(lines[len(lines)-1]); len(lines) != 1 || !containsAll(msg, "replica-id", host, "--replica-id") {
			t.Errorf("host name %q: %q; want one line naming the host name and --replica-id", host, stderr.String())
		}
	}
	if after := d.snapshot(t); after != before {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestSQLiteURLNamesOneFile: a SQLite URL's path is percent-decoded, like any URL's, and names
// one file for the database and, beside it, the lock file: "my%20app%231%3F.db" is the file
// "my app#1?.db". A raw # (which would start a URL fragment) is refused with exit 2, before any
// file is made.
func TestSQLiteURLNamesOneFile(t *testing.T) {
	dir := writeMigrations(t, migrationSet{N: 2, SQLite: true})
	data := t.TempDir()
	const name = "my app#1?.db"
	u := "sqlite:///" + filepath.Join(data, "my%20app%231%3F.db")
	for i := range 2 {
		r := start(t, fmt.Sprintf("worker-%d", i), []string{"migrate", "--database-url", u, "--dir", dir})
		if code := r.wait(t, time.Minute); code != 0 {
			t.Fatalf("exit %d:\n%s", code, r.output())
		}
	}
	entries, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	want := []string{name, name + ".schemagate-lock", name + ".schemagate-lock.hosts", name + ".schemagate-lock.presence"}
	if !slices.Equal(files, want) {
		t.Errorf("files %q, want %q", files, want)
	}
	check := start(t, "check", []string{"check", "--database-url", "sqlite:///" + filepath.Join(data, "my app%231%3F.db"), "--dir", dir})
	if code := check.wait(t, time.Minute); code != 0 {
		t.Errorf("check through the same file, spelt otherwise: exit %d:\n%s", code, check.output())
	}

	empty := t.TempDir()
	refused(t, "fragment", []string{"migrate", "--database-url", "sqlite:///" + filepath.Join(empty, "app#1.db"), "--dir", dir}, 2,
		"database URL is not valid", "%23")
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("a refused URL made %d files", len(entries))
	}
}
