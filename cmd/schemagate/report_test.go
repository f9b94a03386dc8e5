package main

import (
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// TestReportIsPrintable: text others wrote (a migrate command's output in a journal error, the
// holder's statement) reaches the terminal without escape sequences or control characters.
func TestReportIsPrintable(t *testing.T) {
	evil := "boom\x1b[2J\x1b]0;pwned\x07\x1b[31mred\x1b[0m\rover\x08written\x00"
	r := &coordinator.Report{
		Summary: "not ready: " + evil,
		Holder:  &lock.Holder{Replica: "web-1", State: "active", Query: "SELECT " + evil, QueryStart: time.Now()},
		Journal: []journal.Entry{{ID: 1, Kind: journal.KindRun, Replica: "web-1", Outcome: journal.Failed, Error: evil}},
	}
	var b strings.Builder
	writeReport(&b, r)
	out := b.String()
	for _, bad := range []string{"\x1b", "\x07", "\r", "\x08", "\x00"} {
		if strings.Contains(out, bad) {
			t.Errorf("the report holds %q:\n%q", bad, out)
		}
	}
	if !strings.Contains(out, "boomred") {
		t.Errorf("the text itself was lost:\n%s", out)
	}
}

// TestReportShowsTheFleet: status prints the fleet's summary, the releases when there are
// several, and a row per replica, this release's first.
func TestReportShowsTheFleet(t *testing.T) {
	const mine, old = "3f2a1b2c3d4e5f60", "91bc4d5e6f708192"
	now := time.Now()
	fleet := []lock.Member{
		{Replica: "old-0", Host: "node-9", MigrationSet: old, Phase: "ready", Since: now.Add(-time.Hour)},
		{Replica: "web-0", Host: "node-1", MigrationSet: mine, Phase: "ready", Since: now.Add(-time.Minute)},
		{Replica: "web-1", Host: "node-2", MigrationSet: mine, Phase: "waiting", Since: now.Add(-time.Second)},
	}
	r := &coordinator.Report{Identity: coordinator.Identity{MigrationSet: mine}, ReadAt: now,
		Fleet: coordinator.NewFleetReport(fleet, mine)}
	var b strings.Builder
	writeReport(&b, r)
	out := b.String()
	for _, want := range []string{
		"fleet:           3 replicas: 1 ready and 1 waiting on release 3f2a1b2c… (this one); 1 ready on release 91bc4d5e…",
		"\n                 2 releases: 2 replicas on 3f2a1b2c… (this one), 1 on 91bc4d5e…\n",
		"fleet (by replica):", "web-0    node-1  3f2a1b2c…  ready",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "old-0") < strings.Index(out, "web-1") {
		t.Errorf("another release's replica is listed before this one's:\n%s", out)
	}
	r.Fleet = nil
	b.Reset()
	writeReport(&b, r)
	if !strings.Contains(b.String(), "fleet:           not visible with this lock") {
		t.Errorf("status without a fleet:\n%s", b.String())
	}
}
