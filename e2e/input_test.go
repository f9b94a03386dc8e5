package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

const secret = "Pa55w0rd-s3cret"

// withPassword returns rawURL with the user's password set to secret: the shared server trusts
// every local connection, so any password gets in, and every output can be searched for it.
func withPassword(t testing.TB, rawURL, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

// snapshot describes everything in the database's public schema, to show a command left it as
// it was.
func (d *db) snapshot(t *testing.T) string {
	t.Helper()
	rows, err := d.conn.Query(t.Context(), `SELECT relname || ':' || relkind::text FROM pg_class
		WHERE relnamespace = 'public'::regnamespace ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s)
	}
	for _, table := range []string{"goose_db_version", "schemagate_journal"} {
		var n int64
		if err := d.conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = $1", table).Scan(&n); err == nil && n > 0 {
			parts = append(parts, fmt.Sprintf("%s rows=%d", table, d.int(t, "SELECT count(*) FROM "+table)))
		}
	}
	return strings.Join(parts, ",")
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput runs schemagate with bad flags, configuration, URLs and migration files. Each
// case gets its exit code and one clear line naming the problem; the database is untouched;
// the password never appears in any output.
func TestBadInput(t *testing.T) {
	d := newDB(t)
	good := writeMigrations(t, migrationSet{N: 3})
	dbURL := withPassword(t, d.url, secret)

	// A database already migrated by a newer release, for the "ahead" case.
	ahead := newDB(t)
	aheadURL := withPassword(t, ahead.url, secret)
	if code := start(t, "newer", []string{"migrate", "--database-url", aheadURL, "--dir", good}).wait(t, time.Minute); code != 0 {
		t.Fatalf("setting up the newer schema exited %d", code)
	}
	older := t.TempDir()
	copyMigration(t, good, older, "00001_step_1.sql")
	copyMigration(t, good, older, "00002_step_2.sql")

	empty := t.TempDir()
	writeFile(t, empty, "README.md", "no migrations here")
	dup := t.TempDir()
	writeFile(t, dup, "001_a.sql", "-- +goose Up\nSELECT 1;\n")
	writeFile(t, dup, "1_b.sql", "-- +goose Up\nSELECT 1;\n")
	badName := t.TempDir()
	writeFile(t, badName, "00001_ok.sql", "-- +goose Up\nSELECT 1;\n")
	writeFile(t, badName, "add_users.sql", "-- +goose Up\nSELECT 1;\n")
	badSQL := t.TempDir()
	writeFile(t, badSQL, "00001_a.sql", "CREATE TABLE nope (id int);\n")
	unclosed := t.TempDir()
	writeFile(t, unclosed, "00001_a.sql", "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE nope (id int);\n")
	notADir := filepath.Join(t.TempDir(), "file.sql")
	writeFile(t, filepath.Dir(notADir), "file.sql", "x")
	urlFile := filepath.Join(t.TempDir(), "url")
	writeFile(t, filepath.Dir(urlFile), "url", dbURL)
	config := filepath.Join(t.TempDir(), "schemagate.yaml")
	writeFile(t, filepath.Dir(config), "schemagate.yaml", "timout: 5m\n")

	closedPort := pgtest.FreePort(t)
	unreachable := pgtest.WithPort(t, dbURL, closedPort)

	cases := []struct {
		name string
		args []string
		env  []string
		code int
		want string
		db   *db
	}{
		{"missing URL", []string{"migrate", "--dir", good}, nil, 2, "database-url: not set", d},
		{"garbled URL", []string{"migrate", "--dir", good, "--database-url", "postgres://postgres:" + secret + "@127.0.0.1:x5432/db"}, nil, 2, "database URL is not valid", d},
		{"unknown URL scheme", []string{"migrate", "--dir", good, "--database-url", strings.Replace(dbURL, "postgres://", "mysql://", 1)}, nil, 2, `scheme "mysql"`, d},
		{"unknown URL parameter", []string{"migrate", "--dir", good, "--database-url", dbURL + "&sslmdoe=require"}, nil, 2, "sslmdoe", d},
		{"garbled keyword URL", []string{"migrate", "--dir", good, "--database-url", "host=127.0.0.1 port=five password=" + secret}, nil, 2, "database URL is not valid", d},
		{"unreachable host", []string{"migrate", "--dir", good, "--database-url", unreachable, "--timeout", "2s"}, nil, 5, "connection refused", d},
		{"unknown role", []string{"migrate", "--dir", good, "--database-url", strings.Replace(dbURL, "://postgres:", "://nobody:", 1)}, nil, 5, `role "nobody" does not exist`, d},
		{"missing dir", []string{"migrate", "--database-url", dbURL, "--dir", "/nonexistent/migrations"}, nil, 2, "dir: /nonexistent/migrations cannot be read", d},
		{"dir is a file", []string{"migrate", "--database-url", dbURL, "--dir", notADir}, nil, 2, "is not a directory", d},
		{"empty dir", []string{"migrate", "--database-url", dbURL, "--dir", empty}, nil, 2, "no migrations found", d},
		{"duplicate versions", []string{"migrate", "--database-url", dbURL, "--dir", dup}, nil, 2, "version 1 is also", d},
		{"malformed file name", []string{"migrate", "--database-url", dbURL, "--dir", badName}, nil, 2, "add_users.sql", d},
		{"no Up annotation", []string{"migrate", "--database-url", dbURL, "--dir", badSQL}, nil, 2, "00001_a.sql", d},
		{"unclosed statement block", []string{"migrate", "--database-url", dbURL, "--dir", unclosed}, nil, 2, "StatementEnd", d},
		{"unknown flag", []string{"migrate", "--database-url", dbURL, "--dir", good, "--lock-timeout", "5s"}, nil, 2, "unknown flag: --lock-timeout", d},
		{"stray argument", []string{"migrate", "--database-url", dbURL, "--dir", good, "now"}, nil, 2, `unexpected argument "now"`, d},
		{"negative timeout", []string{"migrate", "--database-url", dbURL, "--dir", good, "--timeout", "-3s"}, nil, 2, `timeout: "-3s" must be positive`, d},
		{"zero poll interval", []string{"wait", "--database-url", dbURL, "--dir", good, "--poll-interval", "0s"}, nil, 2, `poll-interval: "0s" must be positive`, d},
		{"fractional keepalive", []string{"migrate", "--database-url", dbURL, "--dir", good, "--keepalive-idle", "500ms"}, nil, 2, "keepalive-idle", d},
		{"duration without unit in env", []string{"migrate", "--database-url", dbURL, "--dir", good}, []string{"SCHEMAGATE_TIMEOUT=90"}, 2, `timeout: "90" is not a duration`, d},
		{"conflicting URL flags", []string{"migrate", "--database-url", dbURL, "--database-url-file", urlFile, "--dir", good}, nil, 2, "both set", d},
		{"missing URL file", []string{"migrate", "--database-url-file", "/nonexistent/url", "--dir", good}, nil, 2, "database-url-file: /nonexistent/url cannot be read", d},
		{"bad when-ahead", []string{"migrate", "--database-url", dbURL, "--dir", good, "--when-ahead", "ignore"}, nil, 2, `when-ahead: "ignore" must be ready, unready or exit`, d},
		{"unready for a one-shot command", []string{"migrate", "--database-url", dbURL, "--dir", good, "--when-ahead", "unready"}, nil, 2, "when-ahead: unready applies to serve and check", d},
		{"target not in dir", []string{"migrate", "--database-url", dbURL, "--dir", good, "--target-version", "7"}, nil, 2, "target-version: 7 is not a migration", d},
		{"bad table name", []string{"migrate", "--database-url", dbURL, "--dir", good, "--table", "goose; DROP TABLE x"}, nil, 2, "is not a table name", d},
		{"unknown config key", []string{"migrate", "--database-url", dbURL, "--dir", good, "--config", config}, nil, 2, `unknown key "timout"`, d},
		{"database ahead, when-ahead=exit", []string{"migrate", "--database-url", aheadURL, "--dir", older, "--when-ahead", "exit"}, nil, 6, "ahead of this replica", ahead},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := c.db.snapshot(t)
			r := start(t, "bad", c.args, c.env...)
			code := r.wait(t, 30*time.Second)
			out := r.output()
			if code != c.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, c.code, out)
			}
			lines, _ := reportLines(r.Stderr.String())
			last := message(lines[len(lines)-1])
			if !strings.Contains(last, c.want) {
				t.Errorf("last line %q does not contain %q", last, c.want)
			}
			if c.code == 2 && len(lines) != 1 {
				t.Errorf("invalid input printed %d lines, want 1:\n%s", len(lines), out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("the password appears in the output:\n%s", out)
			}
			if after := c.db.snapshot(t); after != before {
				t.Errorf("the database changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func copyMigration(t *testing.T, from, to, name string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(from, name))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, name, string(b))
}

// TestWrongPassword runs against a server that checks passwords: the wrong one is refused at
// once (exit 5) with the server's reason, and neither password is printed.
func TestWrongPassword(t *testing.T) {
	c := pgtest.StartClusterWith(t, pgtest.ClusterOptions{Password: "right-" + secret})
	u := c.NewDatabase(t)
	dir := writeMigrations(t, migrationSet{N: 2})
	wrong := withPassword(t, u, "wrong-"+secret)
	r := start(t, "wrongpw", []string{"migrate", "--database-url", wrong, "--dir", dir, "--timeout", "1m"})
	begin := time.Now()
	if code := r.wait(t, 30*time.Second); code != 5 {
		t.Fatalf("exit %d, want 5:\n%s", code, r.output())
	}
	if took := time.Since(begin); took > 20*time.Second {
		t.Errorf("a refused password took %s to report; it must not be retried until the deadline", took)
	}
	out := r.output()
	if !strings.Contains(out, "password authentication failed") {
		t.Errorf("the output does not give the server's reason:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("a password appears in the output:\n%s", out)
	}
	right := start(t, "rightpw", []string{"migrate", "--database-url", u, "--dir", dir})
	if code := right.wait(t, time.Minute); code != 0 {
		t.Fatalf("with the right password: exit %d:\n%s", code, right.output())
	}
}

// message returns the text of a log line: the "message" of a JSON line, or the line itself.
func message(line string) string {
	var entry struct {
		Message string `json:"message"`
	}
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &entry) == nil {
		return entry.Message
	}
	return line
}

// reportLines are the lines of stderr that report an error: everything but the one start line
// a gate command logs once its settings are read ("schemagate VERSION migrate: gating …"), which
// comes before any error the database finds. A "did you mean" hint on the line after an error is
// part of that error's report; it is returned as hint.
func reportLines(stderr string) (lines []string, hint string) {
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		m := message(l)
		if strings.HasPrefix(m, "schemagate ") && strings.Contains(m, ": gating ") {
			continue
		}
		lines = append(lines, l)
	}
	if n := len(lines); n > 1 && strings.HasPrefix(lines[n-1], "did you mean") {
		return lines[:n-1], lines[n-1]
	}
	return lines, ""
}
