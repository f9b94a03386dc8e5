package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/health"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// secret stands for a password that reached a reason, a statement or an error; the monitor's
// Redact hides it.
const secret = "hunter22"

func redact(s string) string { return strings.ReplaceAll(s, secret, "********") }

// probe serves one monitor's endpoints, as serve does.
type probe struct {
	m   *health.Monitor
	srv *httptest.Server
}

func newProbe(t *testing.T, detail health.Detail) *probe {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := health.NewMonitor(coordinator.Identity{Replica: "web-1", Database: "app"}, reg,
		health.Options{Detail: detail, Redact: redact})
	srv := httptest.NewServer(health.Handler(m, reg))
	t.Cleanup(srv.Close)
	return &probe{m: m, srv: srv}
}

// get returns the status code, the body and the headers of GET path.
func (p *probe) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := p.srv.Client().Get(p.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

var (
	readyStatus  = &engine.Status{TableExists: true, Current: 3, Target: 3}
	behindStatus = &engine.Status{TableExists: true, Current: 1, Target: 3,
		Pending: []engine.Migration{{Version: 2, Name: "00002_b.sql"}, {Version: 3, Name: "00003_c.sql"}}}
	unavailable = errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")
)

// TestReadyz: /readyz (and /healthz) answer from the last snapshot: 200 only when it is ready,
// and with ?verbose one line per check, in the Kubernetes API server's style.
func TestReadyz(t *testing.T) {
	readAt := time.Now().Add(-2 * time.Second)
	cases := []struct {
		name    string
		snap    *coordinator.Snapshot // nil: the monitor as it starts
		code    int
		body    string
		verbose []string // regular expressions, one per line
	}{
		{
			name: "starting", code: http.StatusServiceUnavailable,
			body: "not ready: starting: the schema has not been read yet\n",
			verbose: []string{`\[-\]database failed: not read yet`, `\[-\]schema failed: starting: the schema has not been read yet`,
				`readyz check failed`},
		},
		{
			name: "ready",
			snap: &coordinator.Snapshot{Phase: coordinator.PhaseReady, Ready: true, Reason: readyStatus.Describe(),
				Status: readyStatus, ReadAt: readAt},
			code: http.StatusOK, body: "ok\n",
			verbose: []string{`\[\+\]database ok: read 2\.\d+s ago`,
				`\[\+\]schema ok: the database is at version 3, which this replica needs`, `readyz check passed`},
		},
		{
			name: "waiting",
			snap: &coordinator.Snapshot{Phase: coordinator.PhaseWaiting, Reason: "waiting: " + behindStatus.Describe(),
				Status: behindStatus, ReadAt: readAt},
			code: http.StatusServiceUnavailable,
			body: "not ready: waiting: the database is at version 1; this replica needs 3 (2 pending, next 00002_b.sql)\n",
			verbose: []string{`\[\+\]database ok: read`, `\[-\]schema failed: waiting: the database is at version 1`,
				`readyz check failed`},
		},
		{
			name: "unreachable before the first read",
			snap: &coordinator.Snapshot{Phase: coordinator.PhaseStarting, Reason: "the schema has not been read yet",
				Unreachable: unavailable, UnreachableSince: readAt},
			code: http.StatusServiceUnavailable, body: "not ready: the schema has not been read yet\n",
			verbose: []string{`\[-\]database failed: unreachable since \d\d:\d\d:\d\d: dial tcp 10.0.0.5:5432: connect: connection refused`,
				`\[-\]schema failed: the schema has not been read yet`, `readyz check failed`},
		},
		{
			name: "unreachable after a ready read: the verdict stands",
			snap: &coordinator.Snapshot{Phase: coordinator.PhaseReady, Ready: true, Reason: readyStatus.Describe(),
				Status: readyStatus, ReadAt: readAt, Unreachable: unavailable, UnreachableSince: readAt},
			code: http.StatusOK, body: "ok\n",
			verbose: []string{`\[\+\]database ok: unreachable for 2s; the verdict stands from the read at \d\d:\d\d:\d\d`,
				`\[\+\]schema ok: the database is at version 3`, `readyz check passed`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProbe(t, health.DetailFull)
			if tc.snap != nil {
				p.m.Observe(*tc.snap)
			}
			for _, path := range []string{"/readyz", "/healthz"} {
				code, body, h := p.get(t, path)
				if code != tc.code || body != tc.body {
					t.Errorf("%s: %d %q, want %d %q", path, code, body, tc.code, tc.body)
				}
				if h.Get("Cache-Control") != "no-store" {
					t.Errorf("%s: Cache-Control %q", path, h.Get("Cache-Control"))
				}
			}
			code, body, _ := p.get(t, "/readyz?verbose")
			lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
			if code != tc.code || len(lines) != len(tc.verbose) {
				t.Fatalf("/readyz?verbose: %d\n%s", code, body)
			}
			for i, re := range tc.verbose {
				if !regexp.MustCompile("^" + re).MatchString(lines[i]) {
					t.Errorf("/readyz?verbose line %d: %q, want %s", i+1, lines[i], re)
				}
			}
		})
	}
}

// TestLivez: /livez answers while the process runs, whatever the database.
func TestLivez(t *testing.T) {
	p := newProbe(t, health.DetailFull)
	p.m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseFailed, Reason: "migration failed", Unreachable: unavailable})
	if code, body, _ := p.get(t, "/livez"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/livez: %d %q", code, body)
	}
	if code, body, _ := p.get(t, "/livez?verbose"); code != http.StatusOK || body != "[+]process ok\nlivez check passed\n" {
		t.Errorf("/livez?verbose: %d %q", code, body)
	}
	if code, _, _ := p.get(t, "/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d", code)
	}
}

// migrating is a waiter's snapshot while another replica migrates, with a secret in everything
// that quotes text others wrote.
func migrating() coordinator.Snapshot {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return coordinator.Snapshot{
		Phase: coordinator.PhaseWaiting, Role: coordinator.RoleWaiter,
		Reason: "waiting: replica web-7 is applying 00002_b.sql; statement: ALTER ROLE app PASSWORD '" + secret + "'",
		Status: behindStatus, ReadAt: started,
		Holder: &lock.Holder{Replica: "web-7", Name: "schemagate/web-7", PID: 4242, Address: "10.0.0.7",
			State: "active", Query: "ALTER ROLE app PASSWORD '" + secret + "'"},
		Journal: []journal.Entry{
			{ID: 2, Kind: journal.KindRun, Replica: "web-7", Outcome: journal.Running, Name: "00002_b.sql", StartedAt: started},
			{ID: 1, Kind: journal.KindRun, Replica: "web-3", Outcome: journal.Failed, Error: "password " + secret + " rejected",
				StartedAt: started},
		},
		Unreachable: errors.New("connect as app:" + secret + ": timeout"), UnreachableSince: started,
	}
}

// TestStatus: /status serves the status document from the last snapshot, redacted, and under
// --serve-detail summary without error texts, statements or addresses.
func TestStatus(t *testing.T) {
	cases := []struct {
		detail health.Detail
		check  func(t *testing.T, r coordinator.Report)
	}{
		{health.DetailFull, func(t *testing.T, r coordinator.Report) {
			if r.Holder.Query != "ALTER ROLE app PASSWORD '********'" || r.Holder.Address != "10.0.0.7" {
				t.Errorf("holder %+v", r.Holder)
			}
			if r.Journal[1].Error != "password ******** rejected" {
				t.Errorf("journal error %q", r.Journal[1].Error)
			}
			if !strings.HasPrefix(r.Summary, "waiting: replica web-7 is applying 00002_b.sql") {
				t.Errorf("summary %q", r.Summary)
			}
			if r.Unreachable != "connect as app:********: timeout" || r.UnreachableSince == nil {
				t.Errorf("unreachable %q since %v", r.Unreachable, r.UnreachableSince)
			}
		}},
		{health.DetailSummary, func(t *testing.T, r coordinator.Report) {
			if r.Holder.Query != "" || r.Holder.Address != "" || r.Holder.Replica != "web-7" || r.Holder.PID != 4242 {
				t.Errorf("holder %+v; want its replica and pid only", r.Holder)
			}
			if !strings.HasPrefix(r.Journal[1].Error, "details withheld") {
				t.Errorf("journal error %q", r.Journal[1].Error)
			}
			if r.Summary != behindStatus.Describe() {
				t.Errorf("summary %q, want the status only", r.Summary)
			}
			if !strings.HasPrefix(r.Unreachable, "details withheld") {
				t.Errorf("unreachable %q", r.Unreachable)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(string(tc.detail), func(t *testing.T) {
			p := newProbe(t, tc.detail)
			p.m.Observe(migrating())
			code, body, h := p.get(t, "/status")
			if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
				t.Fatalf("/status: %d, %s", code, h.Get("Content-Type"))
			}
			if strings.Contains(body, secret) {
				t.Errorf("/status serves the secret:\n%s", body)
			}
			var r coordinator.Report
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatalf("/status is not a report: %v\n%s", err, body)
			}
			if r.Replica != "web-1" || r.Ready || r.Phase != coordinator.PhaseWaiting || r.Role != coordinator.RoleWaiter ||
				r.Current != 1 || r.Target != 3 || len(r.Pending) != 2 || len(r.Journal) != 2 || r.Holder == nil {
				t.Fatalf("report %+v", r)
			}
			tc.check(t, r)
			for _, path := range []string{"/readyz", "/readyz?verbose"} {
				if _, body, _ := p.get(t, path); strings.Contains(body, secret) {
					t.Errorf("%s serves the secret: %q", path, body)
				}
			}
		})
	}
}

// TestSummaryOfAFailure: under --serve-detail summary, a failed run's reason is withheld.
func TestSummaryOfAFailure(t *testing.T) {
	p := newProbe(t, health.DetailSummary)
	p.m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseFailed, Reason: "migration 00002_b.sql failed: syntax error at PASSWORD"})
	_, body, _ := p.get(t, "/readyz")
	if !strings.HasPrefix(body, "not ready: the migration run failed; details withheld") || strings.Contains(body, "syntax") {
		t.Errorf("/readyz: %q", body)
	}
	p.m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseMigrating, Reason: "migrating: this replica is applying 00002_b.sql"})
	if _, body, _ := p.get(t, "/readyz"); body != "not ready: this replica is migrating\n" {
		t.Errorf("/readyz while migrating: %q", body)
	}
}

// metrics returns the samples /metrics serves, by name with labels.
func (p *probe) metrics(t *testing.T) map[string]string {
	t.Helper()
	code, body, _ := p.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	samples := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, _ := strings.Cut(line, " ")
		samples[name] = value
	}
	return samples
}

// TestMetrics: the gauges follow the snapshots, the counters and histograms the coordinator's
// reports; a read that fails leaves the verdict and says the database is unreachable.
func TestMetrics(t *testing.T) {
	p := newProbe(t, health.DetailFull)
	finished := time.Unix(1767000000, 0)
	ready := coordinator.Snapshot{Phase: coordinator.PhaseReady, Role: coordinator.RoleMigrator, Ready: true,
		Status: readyStatus, ReadAt: time.Unix(1767000100, 0),
		Journal: []journal.Entry{{Kind: journal.KindRun, Outcome: journal.Succeeded, StartedAt: time.Unix(1766999000, 0), FinishedAt: &finished}}}
	p.m.Elected(2 * time.Second)
	p.m.Migrated(engine.Migration{Name: "00001_a.sql"}, time.Second, nil)
	p.m.Migrated(engine.Migration{Name: "00002_b.sql"}, time.Second, nil)
	p.m.Migrated(engine.Migration{Name: "00003_c.sql"}, time.Second, errors.New("boom"))
	p.m.Gated(3 * time.Second)
	p.m.Observe(ready)
	want := map[string]string{
		"schemagate_ready":                                               "1",
		`schemagate_role{role="migrator"}`:                               "1",
		`schemagate_role{role="waiter"}`:                                 "0",
		"schemagate_db_version":                                          "3",
		"schemagate_target_version":                                      "3",
		"schemagate_pending_migrations":                                  "0",
		"schemagate_database_ahead":                                      "0",
		"schemagate_database_reachable":                                  "1",
		"schemagate_migrations_applied_total":                            "2",
		"schemagate_migration_failures_total":                            "1",
		"schemagate_lock_wait_seconds_count":                             "1",
		"schemagate_wait_seconds_count":                                  "1",
		"schemagate_last_success_timestamp_seconds":                      "1.7670001e+09",
		`schemagate_last_run{outcome="succeeded"}`:                       "1",
		`schemagate_last_run{outcome="failed"}`:                          "0",
		"schemagate_last_run_timestamp_seconds":                          "1.767e+09",
		`schemagate_migration_duration_seconds_count{outcome="applied"}`: "2",
		`schemagate_migration_duration_seconds_count{outcome="failed"}`:  "1",
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		got := p.metrics(t)
		for name, value := range want {
			if got[name] != value {
				t.Errorf("%s: %s = %q, want %s", when, name, got[name], value)
			}
		}
	}
	check("ready", want)

	unreachable := ready
	unreachable.Unreachable, unreachable.UnreachableSince = unavailable, time.Now()
	unreachable.ReadAt = time.Unix(1767000200, 0)
	p.m.Observe(unreachable)
	check("unreachable", map[string]string{"schemagate_ready": "1", "schemagate_database_reachable": "0",
		"schemagate_last_success_timestamp_seconds": "1.7670001e+09"})

	behind := coordinator.Snapshot{Phase: coordinator.PhaseUnready, Role: coordinator.RoleWaiter, Status: behindStatus,
		Journal: []journal.Entry{{Kind: journal.KindMigration, Outcome: journal.Interrupted},
			{Kind: journal.KindRun, Outcome: journal.Failed, StartedAt: time.Unix(1767000300, 0)}}}
	p.m.Observe(behind)
	check("behind after a failed run", map[string]string{"schemagate_ready": "0", `schemagate_role{role="waiter"}`: "1",
		`schemagate_role{role="migrator"}`: "0", "schemagate_db_version": "1", "schemagate_pending_migrations": "2",
		"schemagate_database_reachable": "1", `schemagate_last_run{outcome="failed"}`: "1",
		`schemagate_last_run{outcome="succeeded"}`: "0", "schemagate_last_run_timestamp_seconds": "1.7670003e+09"})
}

// TestParseDetail: --serve-detail takes full or summary, and says so otherwise.
func TestParseDetail(t *testing.T) {
	for _, s := range []string{"full", "summary"} {
		if d, err := health.ParseDetail(s); err != nil || string(d) != s {
			t.Errorf("ParseDetail(%q) = %q, %v", s, d, err)
		}
	}
	if _, err := health.ParseDetail("verbose"); err == nil || err.Error() != `serve-detail: "verbose" must be full or summary` {
		t.Errorf("ParseDetail(verbose): %v", err)
	}
}

// TestServer: the server binds at Listen, so a busy port is an error at start; it serves until
// its context ends, then shuts down.
func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := health.NewMonitor(coordinator.Identity{}, reg, health.Options{})
	s, err := health.Listen("127.0.0.1:0", health.Handler(m, reg), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := health.Listen(s.Addr(), health.Handler(m, reg), zerolog.Nop()); err == nil || !strings.HasPrefix(err.Error(), "listen: ") {
		t.Errorf("a second Listen on %s: %v, want an error", s.Addr(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, time.Second) }()
	resp, err := http.Get("http://" + s.Addr() + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/livez: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := http.Get("http://" + s.Addr() + "/livez"); err == nil {
		t.Error("the server still answers after it shut down")
	}
}
