package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
	"github.com/schemagate/schemagate/internal/redact"
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

// addRows adds every row of table, as JSON, to the sink name.
func (s *sinks) addRows(t *testing.T, d *db, name, table string) {
	t.Helper()
	var rows string
	if err := d.conn.QueryRow(t.Context(), "SELECT coalesce(string_agg(row_to_json(r)::text, E'\\n'), '') FROM "+table+" r").Scan(&rows); err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	s.add(name, rows)
}

// holdNone fails the test for every sink that holds one of forms, the spellings of what it
// names.
func (s *sinks) holdNone(t *testing.T, what string, forms []string) {
	t.Helper()
	for name, text := range s.text {
		for _, form := range forms {
			if strings.Contains(text, form) {
				t.Errorf("%s holds %s, spelled %q:\n%s", name, what, form, text)
			}
		}
	}
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
			all.addRows(t, d, "journal rows", "schemagate_journal")
			for _, secret := range []string{sinkPassword, sinkToken, rolePassword} {
				all.holdNone(t, "a secret", spellingsOf(secret))
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

// The values of TestNoSameEnvValueInAnySink's --same-env variable: the fleet's, and a stray
// replica's. Each holds a quote, a backslash and percent signs (%41 decodes to A) and ends in a
// marker of its own, which no sink may show even where the rest was mangled.
const (
	sameEnvValue  = `se"cr\et%41%:k7Qm2vX9`
	sameEnvMarker = "k7Qm2vX9"
	strayValue    = `se"cr\et%41%:w3Zp8nB4`
	strayMarker   = "w3Zp8nB4"
)

// TestNoSameEnvValueInAnySink: the value of a --same-env variable, which the migrate command
// prints (to stdout and stderr) and whose run fails once, reaches no sink: not stderr in either
// log format, not the journal, not the NOTIFY payloads, not the presence table (its fingerprints
// column holds v1 fingerprints), not /status, /readyz?verbose, /healthz?verbose, /livez or
// /metrics, not `status` as text or JSON. A stray replica with another such value is held back
// (migrate exits 8, serve answers 503) with a message that names the variable and the ready
// replicas and prints neither value. Every sink that carries the command's output shows the
// mask, and every sink that shows the fleet shows the guard at work, so that the check cannot
// pass vacuously.
func TestNoSameEnvValueInAnySink(t *testing.T) {
	d := newDB(t)
	all := &sinks{text: map[string]string{}}
	namespace := "same-env-sinks"
	all.listen(t, d, namespace)
	pgtest.Exec(t, d.conn, "CREATE TABLE versions (v int)")
	fixed := filepath.Join(t.TempDir(), "fixed")
	// The command prints the value; it fails until the test creates fixed.
	args := func(command string, extra ...string) []string {
		return append([]string{command, "--engine", "command", "--version-source", "sql",
			"--version-query", "SELECT coalesce(max(v), 0) FROM versions", "--target-version", "1",
			"--lock-namespace", namespace,
			"--migrate-command", `printf 'signing with %s\n' "$WEBUI_SECRET_KEY"; printf 'key: %s\n' "$WEBUI_SECRET_KEY" >&2; ` +
				`test -e ` + fixed + ` || exit 1; psql -X -q -c 'INSERT INTO versions VALUES (1)' "$DATABASE_URL"`}, extra...)
	}
	guard := []string{"--same-env", "WEBUI_SECRET_KEY", "--poll-interval", "200ms"}
	watch := []string{"--watch-interval", "200ms"}
	fleetEnv := []string{"DATABASE_URL=" + d.url, "WEBUI_SECRET_KEY=" + sameEnvValue}
	strayEnv := []string{"DATABASE_URL=" + d.url, "WEBUI_SECRET_KEY=" + strayValue}
	collect := func(when string, eps map[string]endpoint) {
		for name, ep := range eps {
			for _, path := range []string{"/status", "/readyz?verbose", "/healthz?verbose", "/livez", "/metrics"} {
				_, body := ep.get(path)
				all.add(path+" "+when, "("+name+") "+body+"\n")
			}
		}
		for _, output := range []string{"json", "text"} {
			st := start(t, "status-"+output, args("status", "--same-env", "WEBUI_SECRET_KEY", "--output", output), fleetEnv...)
			if code := st.wait(t, time.Minute); code != 0 && code != 1 {
				t.Fatalf("status exited %d:\n%s", code, st.output())
			}
			all.add("status --output "+output+" "+when, st.output())
		}
	}
	var rs []*replica
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range rs {
				t.Logf("%s:\n%s", r.name, r.output())
			}
		}
	})

	// The first run fails, quoting the command's last output.
	job := start(t, "sink-job", args("migrate", guard...), fleetEnv...)
	if code := job.wait(t, time.Minute); code != 3 {
		t.Fatalf("the failing run exited %d, want 3:\n%s", code, job.output())
	}
	addr, watchEp := listenAddr(t)
	watcher := start(t, "sink-watch", args("serve", append(guard, append(watch, "--listen", addr, "--never-migrate")...)...),
		append(fleetEnv, "SCHEMAGATE_LOG_FORMAT=console")...)
	await(t, time.Minute, "the watcher to report the failure", func() bool {
		_, body := watchEp.get("/status")
		return strings.Contains(body, `"phase": "failed"`)
	})
	collect("after the failure", map[string]endpoint{"sink-watch": watchEp})
	watcher.signal(t, syscall.SIGTERM)
	watcher.wait(t, 30*time.Second)
	rs = append(rs, job, watcher)

	// Fixed: three sidecars with the value migrate and become ready; one reads --same-env from
	// SCHEMAGATE_SAME_ENV.
	if err := os.WriteFile(fixed, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eps := map[string]endpoint{}
	for i, format := range []string{"json", "console", "json"} {
		name := fmt.Sprintf("sink-%d", i)
		addr, ep := listenAddr(t)
		env := append(slices.Clone(fleetEnv), "SCHEMAGATE_LOG_FORMAT="+format)
		extra := append(slices.Concat(guard, watch), "--listen", addr)
		if i == 2 {
			env, extra = append(env, "SCHEMAGATE_SAME_ENV=WEBUI_SECRET_KEY"), append(slices.Clone(watch), "--listen", addr)
		}
		rs = append(rs, start(t, name, args("serve", extra...), env...))
		eps[name] = ep
	}
	for name, ep := range eps {
		await(t, time.Minute, name+" to be ready", func() bool {
			code, _ := ep.get("/readyz")
			return code == 200
		})
	}

	// A stray value: held back, naming the variable and the ready replicas, never a value.
	want := "WEBUI_SECRET_KEY differs from the value on 3 ready replicas (sink-0, sink-1, sink-2); " +
		"users would be logged out when their requests move between replicas"
	stray := start(t, "stray-job", args("migrate", guard...), strayEnv...)
	if code := stray.wait(t, time.Minute); code != 8 {
		t.Fatalf("the stray replica exited %d, want 8:\n%s", code, stray.output())
	}
	if got := lastMessage(stray.output()); got != want {
		t.Errorf("the stray's exit message:\n%s\nwant:\n%s", got, want)
	}
	addr, strayEp := listenAddr(t)
	straySidecar := start(t, "stray-web", args("serve", append(guard, append(watch, "--listen", addr)...)...),
		append(strayEnv, "SCHEMAGATE_LOG_FORMAT=console")...)
	await(t, time.Minute, "the stray sidecar to say why it is unready", func() bool {
		code, body := strayEp.get("/readyz?verbose")
		return code == 503 && strings.Contains(body, "[-]fleet failed: "+want)
	})
	rs = append(rs, stray, straySidecar)
	eps["stray-web"] = strayEp
	collect("with the stray", eps)

	all.addRows(t, d, "presence rows", "schemagate_presence")
	presence := all.text["presence rows"]
	// The three ready and the stray held back, and perhaps the stray migrate's row, whose session
	// is gone but whose row the next replica to show itself may not have deleted yet.
	shown := d.int(t, "SELECT count(*) FROM schemagate_presence WHERE phase IN ('ready', 'disagrees')")
	fingerprinted := d.int(t, `SELECT count(*) FROM schemagate_presence WHERE phase IN ('ready', 'disagrees')
		AND fingerprints ~ '^\{"WEBUI_SECRET_KEY":"v1:[0-9a-f]{32}"\}$'`)
	if shown < 4 || fingerprinted != shown {
		t.Errorf("%d presence rows of replicas ready or held back, %d of them with a v1 fingerprint of WEBUI_SECRET_KEY alone; "+
			"want 4 or more, all:\n%s", shown, fingerprinted, presence)
	}
	if n := d.int(t, "SELECT count(DISTINCT fingerprints) FROM schemagate_presence"); n != 2 {
		t.Errorf("%d distinct fingerprints, want 2, the fleet's and the stray's:\n%s", n, presence)
	}
	for _, r := range rs {
		r.Stop()
		all.add("stderr ("+r.name+")", r.output())
	}
	all.addRows(t, d, "journal rows", "schemagate_journal")
	all.holdNone(t, "the fleet's --same-env value", append(spellingsOf(sameEnvValue), sameEnvMarker))
	all.holdNone(t, "the stray's --same-env value", append(spellingsOf(strayValue), strayMarker))
	var migrator string
	d.conn.QueryRow(t.Context(), "SELECT replica FROM schemagate_journal WHERE kind = 'run' AND outcome = 'succeeded'").Scan(&migrator)
	evidence := map[string]string{
		"journal rows":                           redact.Mask,
		"NOTIFY payloads":                        redact.Mask,
		"/status after the failure":              redact.Mask,
		"/readyz?verbose after the failure":      redact.Mask,
		"status --output text after the failure": redact.Mask,
		"status --output json after the failure": redact.Mask,
		"stderr (sink-job)":                      "signing with " + redact.Mask,
		"stderr (" + migrator + ")":              "signing with " + redact.Mask,
		"/status with the stray":                 redact.Mask,
		"/readyz?verbose with the stray":         "[-]fleet failed: WEBUI_SECRET_KEY differs",
		"/healthz?verbose with the stray":        "[-]fleet failed: WEBUI_SECRET_KEY differs",
		"/metrics with the stray":                `phase="disagrees"`,
		"status --output json with the stray":    `"WEBUI_SECRET_KEY": "v1:`,
		"status --output text with the stray":    "disagrees",
		"stderr (stray-job)":                     "WEBUI_SECRET_KEY differs",
		"stderr (stray-web)":                     "WEBUI_SECRET_KEY differs",
	}
	for name, want := range evidence {
		if !strings.Contains(all.text[name], want) {
			t.Errorf("%s does not show %q: the value never reached it, and the test proves nothing:\n%s", name, want, all.text[name])
		}
	}
}
