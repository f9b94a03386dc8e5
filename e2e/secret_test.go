package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/lock/postgres"
)

// The secrets of TestNoSecretInAnySink hold every character that URLs, JSON and Go spell
// differently: a quote, a backslash, a percent sign, an at sign, a colon and a space.
const (
	sinkPassword = `db"pa\ss%wo@rd: 42`
	sinkToken    = `to"ken\v%al@ue: 7`
	rolePassword = "r0le-pa55word-91"
)

// spellingsOf lists the ways s may leak: as is, percent-encoded, escaped for JSON (once and
// twice) and quoted as Go quotes it. Each is long enough that it cannot match by chance.
func spellingsOf(s string) []string {
	j1, _ := json.Marshal(s)
	j2, _ := json.Marshal(string(j1))
	q := strconv.Quote(s)
	return []string{s, url.QueryEscape(s), url.PathEscape(s), strings.TrimPrefix(url.UserPassword("", s).String(), ":"),
		string(j1[1 : len(j1)-1]), string(j2[1 : len(j2)-1]), q[1 : len(q)-1]}
}

// sinks gathers everything a fleet wrote or served, by where it went.
type sinks struct {
	mu   sync.Mutex
	text map[string]string
}

func (s *sinks) add(name, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.text[name] += text
}

// listen collects the NOTIFY payloads of the lock namespace's channel, as any role that can
// connect could.
func (s *sinks) listen(t *testing.T, d *db, namespace string) {
	t.Helper()
	conn := pgtest.Connect(t, d.url)
	channel := fmt.Sprintf("schemagate_%016x", postgres.Key(namespace))
	pgtest.Exec(t, conn, "LISTEN "+channel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
	})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			s.add("NOTIFY payloads", n.Payload+"\n")
		}
	}()
}

// TestNoSecretInAnySink: a database password, a secret passed to the migrate command and a role
// password written in a migration, each holding quotes, backslashes and percent signs, reach no
// sink, through either engine and either lock backend, whatever the migration or the migrate
// command printed: not stderr in either log format, not the journal, not the NOTIFY payloads a
// LISTENing session receives, not /status, /readyz?verbose or /metrics, not `status` as text or
// JSON. Each sink must show the mask where the secret was, so that the check cannot pass
// vacuously.
func TestNoSecretInAnySink(t *testing.T) {
	for _, tc := range []struct {
		name  string
		raft  bool
		goose bool
	}{
		{name: "goose", goose: true},
		{name: "command"},
		{name: "command-raft", raft: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := openDB(t, withPassword(t, pgtest.NewDatabase(t), sinkPassword))
			all := &sinks{text: map[string]string{}}
			namespace := "secret-sinks"
			all.listen(t, d, namespace)
			common := []string{"--lock-namespace", namespace}
			waits := []string{"--progress-interval", "200ms", "--poll-interval", "200ms"}
			var args func(command string, extra ...string) []string
			env := []string{"DATABASE_URL=" + d.url, "PASSWORD_FOR_TEST=" + sinkPassword}
			if tc.goose {
				role := fmt.Sprintf("sink_role_%d", time.Now().UnixNano())
				pgtest.Exec(t, d.conn, "CREATE ROLE "+role)
				t.Cleanup(func() { d.conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
				// The second migration fails with an error that quotes a URL with the password,
				// the way a tool that echoes its connection string would.
				dir := writeFiles(t, map[string]string{
					"00001_role.sql": "-- +goose Up\n-- +goose StatementBegin\nALTER ROLE " + role + " PASSWORD '" + rolePassword +
						"'; SELECT pg_sleep(3);\n-- +goose StatementEnd\n",
					"00002_fails.sql": "-- +goose Up\nDO $$ BEGIN RAISE EXCEPTION USING MESSAGE = " +
						"'cannot reach postgres://app:" + sinkPassword + "@db/app'; END $$;\n",
				})
				args = func(command string, extra ...string) []string {
					return d.args(command, dir, append(common, extra...)...)
				}
			} else {
				pgtest.Exec(t, d.conn, "CREATE TABLE versions (v int)")
				source := []string{"--engine", "command", "--version-source", "sql",
					"--version-query", "SELECT coalesce(max(v), 0) FROM versions", "--target-version", "1",
					"--migrate-env", "API_TOKEN=" + sinkToken,
					"--migrate-command", `printf 'connecting to %s\n' "$DATABASE_URL"; printf 'password %s\n' "$PASSWORD_FOR_TEST"; ` +
						`printf 'token %s\n' "$API_TOKEN" >&2; exit 1`}
				args = func(command string, extra ...string) []string {
					return append(append([]string{command}, source...), append(common, extra...)...)
				}
			}
			var rs []*replica
			var eps []endpoint
			if tc.raft {
				c := newRaftCluster(t, "sink", 3)
				for i := range 3 {
					addr, ep := listenAddr(t)
					eps = append(eps, ep)
					format := []string{"json", "console", "json"}[i]
					rs = append(rs, start(t, c.names[i], append(args("serve", append(waits, "--listen", addr)...), c.args(i, c.peers())...),
						append(env, "SCHEMAGATE_RAFT_SECRET="+raftSecret, "SCHEMAGATE_LOG_FORMAT="+format)...))
				}
			} else {
				addr, ep := listenAddr(t)
				eps = append(eps, ep)
				rs = append(rs,
					start(t, "sink-json", args("migrate", waits...), env...),
					start(t, "sink-console", args("migrate", waits...), append(env, "SCHEMAGATE_LOG_FORMAT=console")...),
					start(t, "sink-serve", args("serve", append(waits, "--listen", addr, "--never-migrate")...), env...))
				if tc.goose {
					await(t, time.Minute, "the ALTER ROLE statement to run", func() bool {
						return d.int(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'ALTER ROLE%'") == 1
					})
					for _, output := range []string{"json", "text"} {
						st := start(t, "status-"+output, args("status", "--output", output), env...)
						st.wait(t, time.Minute)
						all.add("status --output "+output+" during the migration", st.output())
					}
				}
			}
			for _, ep := range eps {
				body := ep.awaitStatus(t, time.Minute, "/status", 200)
				deadline := time.Now().Add(time.Minute)
				for _, body = ep.get("/status"); !strings.Contains(body, `"phase": "failed"`); _, body = ep.get("/status") {
					if time.Now().After(deadline) {
						t.Fatalf("/status does not report the failure:\n%s", body)
					}
					time.Sleep(50 * time.Millisecond)
				}
				all.add("/status", body)
				_, verbose := ep.get("/readyz?verbose")
				all.add("/readyz?verbose", verbose)
				_, metrics := ep.get("/metrics")
				all.add("/metrics", metrics)
			}
			for _, output := range []string{"json", "text"} {
				st := start(t, "status-"+output, args("status", "--output", output), env...)
				st.wait(t, time.Minute)
				all.add("status --output "+output, st.output())
			}
			for _, r := range rs {
				if r.name == "sink-json" || r.name == "sink-console" {
					if code := r.wait(t, time.Minute); code != 3 {
						t.Errorf("%s exited %d, want 3", r.name, code)
					}
				}
				r.Stop()
				all.add("stderr ("+r.name+")", r.output())
			}
			var journal string
			d.conn.QueryRow(t.Context(), "SELECT coalesce(string_agg(row_to_json(j)::text, E'\\n'), '') FROM schemagate_journal j").Scan(&journal)
			all.add("journal rows", journal)

			for name, text := range all.text {
				for _, secret := range []string{sinkPassword, sinkToken, rolePassword} {
					for _, form := range spellingsOf(secret) {
						if strings.Contains(text, form) {
							t.Errorf("%s holds a secret, spelled %q:\n%s", name, form, text)
						}
					}
				}
			}
			// The secrets were there to leak: every sink that carries error text shows the mask.
			masked := []string{"journal rows", "/status", "/readyz?verbose", "status --output json", "status --output text"}
			if !tc.raft {
				masked = append(masked, "NOTIFY payloads") // Raft announces through its own log
			}
			if tc.goose {
				masked = append(masked, "status --output text during the migration")
			}
			for _, name := range masked {
				if !strings.Contains(all.text[name], "********") {
					t.Errorf("%s shows no mask: the secret never reached it, and the test proves nothing:\n%s", name, all.text[name])
				}
			}
		})
	}
}
