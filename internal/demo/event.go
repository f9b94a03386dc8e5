package main

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// logLine is what the demo reads from a replica's JSON log line.
type logLine struct {
	Level     string    `json:"level"`
	Time      time.Time `json:"time"`
	Message   string    `json:"message"`
	Error     string    `json:"error"`
	Holder    string    `json:"holder"`
	DBVersion int64     `json:"db_version"`
	Target    int64     `json:"target_version"`
	Pending   int       `json:"pending"`
	Migration string    `json:"migration"`
	Took      string    `json:"took"`
	Elapsed   string    `json:"elapsed"`
}

// kind is what an event says happened.
type kind int

const (
	said     kind = iota // anything else a replica logged or printed
	elected              // this replica is the migrator
	started              // the migrator starts applying the pending migrations
	applying             // the migrator starts one migration
	applied              // the migrator committed one migration
	waiting              // a replica waits, and says for whom
	ready                // the schema is what the replica needs
	exited               // the process ended
	killed               // the demo SIGKILLed a replica
)

// event is one thing that happened during a rollout, with when and to whom.
type event struct {
	at      time.Time
	replica string
	kind    kind
	log     logLine
	// text is the raw line of a said event that is not a log line, or what the demo did.
	text string
	// code is an exited event's exit code (-1: killed by a signal).
	code int
}

// parse turns one line a replica printed into an event, read at now.
func parse(replica, line string, now time.Time) event {
	var l logLine
	if err := json.Unmarshal([]byte(line), &l); err != nil || l.Message == "" {
		return event{at: now, replica: replica, kind: said, text: line}
	}
	e := event{at: l.Time, replica: replica, kind: classify(l), log: l}
	if e.at.IsZero() {
		e.at = now
	}
	return e
}

// classify recognises the coordinator's messages.
func classify(l logLine) kind {
	m := l.Message
	switch {
	case m == "this replica is the migrator":
		return elected
	case m == "applying migrations":
		return started
	case l.Migration != "" && m == "applying "+l.Migration:
		return applying
	case l.Migration != "" && m == "applied "+l.Migration:
		return applied
	case strings.HasPrefix(m, "waiting: "):
		return waiting
	case strings.HasPrefix(m, "schema ready: "):
		return ready
	}
	return said
}

// tail reads what a replica printed, a complete line at a time.
type tail struct {
	r    *fleet.Replica
	read [2]int // bytes consumed of stdout and stderr
	// ended: the exit was reported.
	ended bool
}

// lines returns the complete lines printed since the last call; all of them, the last one
// included, once the process has ended.
func (t *tail) lines(ended bool) []string {
	var lines []string
	for i, s := range []string{t.r.Stdout.String(), t.r.Stderr.String()} {
		s = s[t.read[i]:]
		end := strings.LastIndexByte(s, '\n') + 1
		if ended {
			end = len(s)
		}
		t.read[i] += end
		for _, line := range strings.Split(s[:end], "\n") {
			if strings.TrimSpace(line) != "" {
				lines = append(lines, line)
			}
		}
	}
	return lines
}

// poll returns the events of the replica since the last call, its exit last.
func (t *tail) poll(now time.Time) []event {
	if t.ended {
		return nil
	}
	var ended bool
	select {
	case <-t.r.Done(): // the output is complete once the process is reaped
		ended = true
	default:
	}
	var events []event
	for _, line := range t.lines(ended) {
		events = append(events, parse(t.r.Name, line, now))
	}
	if ended {
		t.ended = true
		code, _ := t.r.Wait(time.Second) // at once: it has ended
		events = append(events, event{at: t.r.ExitedAt(), replica: t.r.Name, kind: exited, code: code})
	}
	return events
}
