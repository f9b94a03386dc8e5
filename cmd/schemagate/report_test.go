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
