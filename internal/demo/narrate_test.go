package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// TestNarration feeds the narrator log lines as the coordinator writes them and checks what it
// tells and what it records.
func TestNarration(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lines := []struct{ replica, line string }{
		{"web-0", `{"level":"info","replica":"web-0","waited":"0s","holder":"web-1","holder_pid":7,"time":"2026-01-02T03:04:05.014Z","message":"waiting: the database has no migrations yet; this replica needs version 2; replica web-1 (pid 7) holds the lock, running for 0s: CREATE TABLE IF NOT EXISTS schemagate_journal ( id bigserial"}`},
		{"web-1", `{"level":"info","replica":"web-1","time":"2026-01-02T03:04:05.015Z","message":"this replica is the migrator"}`},
		{"web-1", `{"level":"info","replica":"web-1","db_version":0,"target_version":2,"pending":2,"time":"2026-01-02T03:04:05.016Z","message":"applying migrations"}`},
		{"web-2", `{"level":"info","replica":"web-2","waited":"0s","time":"2026-01-02T03:04:05.017Z","message":"waiting: the database has no migrations yet; this replica needs version 2; replica pid 0 on  is preparing to migrate (migrating since 03:04:05)"}`},
		{"web-1", `{"level":"info","replica":"web-1","version":1,"migration":"00001_a.sql","transactional":true,"time":"2026-01-02T03:04:05.020Z","message":"applying 00001_a.sql"}`},
		{"web-0", `{"level":"info","replica":"web-0","waited":"1s","holder":"web-1","holder_pid":7,"time":"2026-01-02T03:04:05.500Z","message":"waiting: replica web-1 (pid 7) is applying 00001_a.sql for 1s (migrating since 03:04:05)"}`},
		{"web-1", `{"level":"info","replica":"web-1","version":1,"migration":"00001_a.sql","took":"1.2s","time":"2026-01-02T03:04:06.220Z","message":"applied 00001_a.sql"}`},
		{"web-1", `{"level":"info","replica":"web-1","version":2,"migration":"00002_b.sql","took":"3ms","time":"2026-01-02T03:04:06.223Z","message":"applied 00002_b.sql"}`},
		{"web-1", `{"level":"info","replica":"web-1","db_version":2,"target_version":2,"elapsed":"1.21s","time":"2026-01-02T03:04:06.224Z","message":"schema ready: the database is at version 2, which this replica needs"}`},
		{"web-0", `{"level":"info","replica":"web-0","db_version":2,"target_version":2,"elapsed":"1.25s","time":"2026-01-02T03:04:06.250Z","message":"schema ready: the database is at version 2, which this replica needs"}`},
		{"web-3", `{"level":"info","replica":"web-3","db_version":2,"target_version":2,"elapsed":"2ms","time":"2026-01-02T03:04:06.300Z","message":"schema ready: the database is at version 2, which this replica needs"}`},
		{"web-3", `{"level":"warn","replica":"web-3","error":"boom","time":"2026-01-02T03:04:06.301Z","message":"could not release the lock"}`},
		{"web-3", `panic: not JSON`},
	}
	var out bytes.Buffer
	rec := &record{replicas: []string{"web-0", "web-1", "web-2", "web-3"}, ready: map[string]bool{}, exits: map[string]int{}}
	n := newNarrator(&out, start, rec)
	for _, l := range lines {
		n.tell(parse(l.replica, l.line, start.Add(2*time.Second)))
	}
	want := `
   +0.014s  web-0  waits: replica web-1 (pid 7) holds the lock
   +0.015s  web-1  wins the election: this replica is the migrator
   +0.016s  web-1  applies 2 pending migrations: version 0 → 2
   +0.017s  web-2  waits: another replica has just taken the lock
   +0.020s  web-1  applying 00001_a.sql …
   +1.220s  web-1  applied 00001_a.sql (1.2s)
   +1.223s  web-1  applied 00002_b.sql (3ms)
   +1.224s  web-1  ready: it migrated the database to version 2 (1.21s after it started)
   +1.250s  web-0  ready after waiting 1.25s: the database is at version 2
   +1.300s  web-3  ready at once: the database was already at version 2 (one read, no lock)
   +1.301s  web-3  warn: could not release the lock: boom
   +2.000s  web-3  printed: panic: not JSON
`
	if got := "\n" + out.String(); got != want {
		t.Errorf("narration:\n%s\nwant:%s", got, want)
	}
	if len(rec.migrators) != 1 || rec.migrators[0] != "web-1" || len(rec.applied) != 2 || !rec.ready["web-0"] || rec.ready["web-2"] {
		t.Errorf("record: %+v", rec)
	}
}

// TestCheck: the record's check catches what would make the demo's story false.
func TestCheck(t *testing.T) {
	migrations := []string{"00001_a.sql", "00002_b.sql", "00003_c.sql"}
	good := func() *record {
		return &record{number: 2, release: "v2", replicas: []string{"a", "b"}, migrations: migrations, from: 1,
			migrators: []string{"a"}, applied: []step{{"00002_b.sql", "a"}, {"00003_c.sql", "a"}},
			ready: map[string]bool{"a": true, "b": true}, exits: map[string]int{"a": 0, "b": 0}}
	}
	log := map[int64][]string{1: {"z"}, 2: {"a"}, 3: {"a"}}
	if p := good().check(log); len(p) != 0 {
		t.Fatalf("a good rollout has problems: %v", p)
	}
	cases := []struct {
		name   string
		mutate func(*record, map[int64][]string)
		want   string
	}{
		{"two migrators", func(r *record, _ map[int64][]string) { r.migrators = append(r.migrators, "b") }, "2 replicas migrated"},
		{"applied twice", func(r *record, _ map[int64][]string) { r.applied = append(r.applied, step{"00003_c.sql", "b"}) }, "applied twice"},
		{"old migration applied", func(r *record, _ map[int64][]string) { r.applied = append(r.applied, step{"00001_a.sql", "a"}) }, "not pending"},
		{"missing", func(r *record, _ map[int64][]string) { r.applied = r.applied[:1] }, "never applied"},
		{"not ready", func(r *record, _ map[int64][]string) { r.ready["b"] = false }, "without reporting ready"},
		{"failed", func(r *record, _ map[int64][]string) { r.exits["b"] = 3 }, "code 3"},
		{"twice in the database", func(_ *record, l map[int64][]string) { l[3] = []string{"a", "b"} }, "applied 2 times"},
		{"someone else in the database", func(_ *record, l map[int64][]string) { l[2] = []string{"b"} }, "the narration says a"},
		{"unknown version", func(_ *record, l map[int64][]string) { l[9] = []string{"b"} }, "does not have"},
		{"not killed", func(r *record, _ map[int64][]string) { r.kill = "00003_c.sql" }, "not killed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, l := good(), map[int64][]string{1: {"z"}, 2: {"a"}, 3: {"a"}}
			c.mutate(r, l)
			if p := strings.Join(r.check(l), "; "); !strings.Contains(p, c.want) {
				t.Errorf("problems %q, want one saying %q", p, c.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	env := func(url string) func(string) string {
		return func(k string) string {
			if k == "DATABASE_URL" {
				return url
			}
			return ""
		}
	}
	cases := []struct {
		args    []string
		url     string
		want    options
		wantErr string
	}{
		{args: nil, want: options{replicas: 5}},
		{args: []string{"--replicas", "3"}, url: "postgres://u@h/db", want: options{replicas: 3, databaseURL: "postgres://u@h/db"}},
		{args: []string{"--postgres"}, url: "postgres://u@h/db", want: options{replicas: 5, postgres: true}},
		{args: []string{"--replicas", "1"}, wantErr: "--replicas: 1 must be between 2 and 50"},
		{args: []string{"sqlite"}, wantErr: `unexpected argument "sqlite"`},
		{url: "sqlite:///tmp/app.db", wantErr: "DATABASE_URL: must be a PostgreSQL URL"},
	}
	for _, c := range cases {
		got, err := parseOptions(c.args, env(c.url), io.Discard)
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%v with DATABASE_URL=%q: error %v, want %q", c.args, c.url, err, c.wantErr)
		case c.wantErr == "" && (err != nil || got != c.want):
			t.Errorf("%v with DATABASE_URL=%q: %+v, %v; want %+v", c.args, c.url, got, err, c.want)
		}
	}
}
