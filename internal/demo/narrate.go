package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// narrator tells a rollout's events as they happen, one line each, and keeps the record of
// what it told.
type narrator struct {
	out   io.Writer
	start time.Time
	width int // of the replica column
	rec   *record
	// holder is whom each waiting replica last said it waits for.
	holder map[string]string
}

func newNarrator(out io.Writer, start time.Time, rec *record) *narrator {
	n := &narrator{out: out, start: start, width: len("demo"), rec: rec, holder: map[string]string{}}
	for _, name := range rec.replicas {
		n.width = max(n.width, len(name))
	}
	return n
}

// tell narrates e, unless it adds nothing to what was told.
func (n *narrator) tell(e event) {
	text := n.describe(e)
	if text == "" {
		return
	}
	fmt.Fprintf(n.out, "  %8s  %-*s  %s\n", relative(e.at.Sub(n.start)), n.width, e.replica, text)
}

// describe is the line for e, after recording it.
func (n *narrator) describe(e event) string {
	r, l := n.rec, e.log
	switch e.kind {
	case elected:
		r.elected = append(r.elected, e.replica)
		if r.victim != "" && e.replica != r.victim {
			r.takeover = e.at.Sub(r.killedAt)
			return fmt.Sprintf("takes over: this replica is the migrator now, %s after the kill", brief(r.takeover))
		}
		return "wins the election: this replica is the migrator"
	case started:
		r.migrators = append(r.migrators, e.replica)
		return fmt.Sprintf("applies %s: version %d → %d", count(l.Pending, "pending migration"), l.DBVersion, l.Target)
	case applying:
		return "applying " + l.Migration + " …"
	case applied:
		r.applied = append(r.applied, step{migration: l.Migration, replica: e.replica})
		return fmt.Sprintf("applied %s (%s)", l.Migration, l.Took)
	case waiting:
		return n.waiting(e)
	case ready:
		r.ready[e.replica] = true
		return n.ready(e)
	case exited:
		r.exits[e.replica] = e.code
		if e.code == 0 || e.replica == r.victim {
			return "" // the ready line said it, or the kill did
		}
		return fmt.Sprintf("exited with code %d", e.code)
	case killed:
		return e.text
	}
	return other(e)
}

// waiting is the line for a waiting replica: whom it waits for, when that changed.
func (n *narrator) waiting(e event) string {
	if last, ok := n.holder[e.replica]; ok && last == e.log.Holder {
		return ""
	}
	n.holder[e.replica] = e.log.Holder
	msg := strings.TrimPrefix(e.log.Message, "waiting: ")
	if e.log.Holder == "" && strings.Contains(msg, "; replica pid 0 ") {
		// The file lock was taken a moment ago, and its holder has not written its name yet.
		return "waits: another replica has just taken the lock"
	}
	// "the database …; replica web-2 (pid 7) is applying 00002_x.sql for 0s (migrating since …)"
	if i := strings.Index(msg, "replica "+e.log.Holder+" "); e.log.Holder != "" && i >= 0 {
		msg = msg[i:]
		for _, cut := range []string{" (migrating since", ", running for"} {
			if j := strings.Index(msg, cut); j >= 0 {
				msg = msg[:j] // what follows changes by the second, or is a long statement
			}
		}
	}
	return "waits: " + msg
}

// ready is the line for a replica that found the schema ready: how it got there.
func (n *narrator) ready(e event) string {
	r, l := n.rec, e.log
	switch {
	case slices.Contains(r.migrators, e.replica):
		return fmt.Sprintf("ready: it migrated the database to version %d (%s after it started)", l.DBVersion, l.Elapsed)
	case slices.Contains(r.elected, e.replica):
		return fmt.Sprintf("ready: it won the lock after the work was done; the database is at version %d", l.DBVersion)
	case hasKey(n.holder, e.replica):
		return fmt.Sprintf("ready after waiting %s: the database is at version %d", l.Elapsed, l.DBVersion)
	}
	return fmt.Sprintf("ready at once: the database was already at version %d (one read, no lock)", l.DBVersion)
}

// other is the line for anything else a replica printed.
func other(e event) string {
	if e.text != "" {
		return "printed: " + e.text
	}
	s := e.log.Message
	if e.log.Error != "" {
		s += ": " + e.log.Error
	}
	if e.log.Level == "warn" || e.log.Level == "error" {
		return e.log.Level + ": " + s
	}
	return s
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// relative formats an offset from the start of a rollout: "+1.234s".
func relative(d time.Duration) string {
	return fmt.Sprintf("+%.3fs", max(d, 0).Seconds())
}

// seconds formats a duration for a sentence: "1.2s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// brief formats a short duration: "35ms", "1.2s".
func brief(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return seconds(d)
}

// count is "1 pending migration", "3 pending migrations".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
