package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// logLines decodes a replica's JSON log lines.
func logLines(t *testing.T, r *replica) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(r.Stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// linesWith returns the log lines whose message starts with prefix.
func linesWith(lines []map[string]any, prefix string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if msg, _ := l["message"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestProgress: a replica says once, at start, what it gates; during a 9 s migration the
// migrator logs a heartbeat (what it applies, for how long, the statement, how many wait) and
// the waiters log whom they wait for, with the migration and its elapsed time as fields, both
// at growing intervals rather than every --progress-interval.
func TestProgress(t *testing.T) {
	d := newDB(t)
	dir := writeFiles(t, map[string]string{
		// The migrator counts the waiters as each migration starts; the first one lasts long
		// enough for the others to have queued by the time the second starts.
		"00001_a.sql": "-- +goose Up\nSELECT pg_sleep(0.5);\nCREATE TABLE a (id int);\n",
		"00002_b.sql": "-- +goose Up\nSELECT pg_sleep(9) AS progress_sleeps;\nCREATE TABLE b (id int);\n",
	})
	rs := startAll(t, 3, "progress", d.args("migrate", dir, "--progress-interval", "1s"))
	waitAll(t, rs, time.Minute, 0)
	for _, r := range rs {
		lines := logLines(t, r)
		start := linesWith(lines, "schemagate ")
		if len(start) != 1 || start[0]["command"] != "migrate" || start[0]["target"] != "2" || start[0]["dir"] != dir {
			t.Errorf("%s: the start line is %v", r.name, start)
		}
		if beats := linesWith(lines, "still applying 00002_b.sql"); len(beats) > 0 {
			if len(beats) > 5 {
				t.Errorf("%s: %d heartbeats in 9 s at --progress-interval 1s: they should back off", r.name, len(beats))
			}
			if b := beats[0]; b["migration"] != "00002_b.sql" || !strings.Contains(b["statement"].(string), "pg_sleep(9)") ||
				b["waiting"] != float64(2) {
				t.Errorf("%s: heartbeat %v lacks the migration, statement or waiters", r.name, b)
			}
			continue
		}
		waits := linesWith(lines, "waiting: ")
		if len(waits) < 2 || len(waits) > 6 {
			t.Errorf("%s: %d progress lines in 9 s at --progress-interval 1s; want a few, backing off", r.name, len(waits))
		}
		var carries bool
		for _, w := range waits {
			if w["migration"] == "00002_b.sql" && w["migration_elapsed"] != nil && w["holder"] != nil {
				carries = true
			}
		}
		if !carries {
			t.Errorf("%s: no waiting line carries the migration and its elapsed time as fields: %v", r.name, waits)
		}
	}
}

// TestFailureNamesTheStatement: a failed migration names its failing statement and line, and the
// version the database stays at.
func TestFailureNamesTheStatement(t *testing.T) {
	d := newDB(t)
	dir := writeFiles(t, map[string]string{
		"00001_a.sql": "-- +goose Up\nCREATE TABLE a (id int);\n",
		"00002_b.sql": "-- +goose Up\nCREATE TABLE b (id int);\n\nINSERT INTO b VALUES (1);\nINSERT INTO missing VALUES (1);\n",
	})
	r := start(t, "fails", d.args("migrate", dir))
	if code := r.wait(t, time.Minute); code != 3 {
		t.Fatalf("exit %d:\n%s", code, r.output())
	}
	if out := r.output(); !containsAll(out, "00002_b.sql", `relation \"missing\" does not exist`,
		"the statement at line 5: INSERT INTO missing VALUES (1)", "the database stays at version 1") {
		t.Errorf("the failure does not name the statement, its line and where the database stays:\n%s", out)
	}
}
