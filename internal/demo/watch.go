package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// watch follows a rollout's replicas: it reads their output, kills the migrator when told
// to, and hands the events to the narrator in the order they happened.
type watch struct {
	n       *narrator
	tails   []*tail
	pending []event

	victim *fleet.Replica
	// since is when the victim started the migration it is killed in.
	since time.Time
	// killDone: the victim was killed, or finished the migration before it could be.
	killDone bool
}

func newWatch(n *narrator, rs []*fleet.Replica) *watch {
	w := &watch{n: n}
	for _, r := range rs {
		w.tails = append(w.tails, &tail{r: r})
	}
	return w
}

// run narrates until every replica has exited, ctx ends or the rollout times out.
func (w *watch) run(ctx context.Context) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	timeout := time.NewTimer(rolloutTimeout)
	defer timeout.Stop()
	for {
		now := time.Now()
		running := false
		for _, t := range w.tails {
			for _, e := range t.poll(now) {
				w.add(e)
			}
			running = running || !t.ended
		}
		w.maybeKill(now)
		if !running {
			w.emit(time.Time{})
			return nil
		}
		w.emit(now.Add(-holdBack))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return w.timedOut()
		case <-tick.C:
		}
	}
}

// add queues e, and notices the migrator starting the migration it is to be killed in.
func (w *watch) add(e event) {
	w.pending = append(w.pending, e)
	kill := w.n.rec.kill
	switch {
	case kill == "" || e.log.Migration != kill || w.killDone:
	case e.kind == applying && w.victim == nil:
		w.victim, w.since = w.replica(e.replica), e.at
	case e.kind == applied:
		w.killDone = true // too late: it finished first
	}
}

// maybeKill SIGKILLs the victim once it is due.
func (w *watch) maybeKill(now time.Time) {
	if w.victim == nil || w.killDone || now.Sub(w.since) < killAfter {
		return
	}
	w.killDone = true
	select {
	case <-w.victim.Done():
		return // it died on its own: the narration shows how
	default:
	}
	r := w.n.rec
	if err := w.victim.Signal(syscall.SIGKILL); err != nil {
		w.add(event{at: now, replica: "demo", kind: killed, text: fmt.Sprintf("could not kill %s: %v", w.victim.Name, err)})
		return
	}
	r.victim, r.killedIn, r.killedAt = w.victim.Name, r.kill, now
	text := fmt.Sprintf("SIGKILL %s, %s into %s", w.victim.Name, seconds(now.Sub(w.since)), r.kill)
	w.add(event{at: now, replica: "demo", kind: killed, text: text})
}

func (w *watch) replica(name string) *fleet.Replica {
	for _, t := range w.tails {
		if t.r.Name == name {
			return t.r
		}
	}
	return nil
}

// emit tells the pending events that happened before before (all of them when before is
// zero), in time order. A migration that started and finished within the hold-back gets one
// line, "applied …".
func (w *watch) emit(before time.Time) {
	sort.SliceStable(w.pending, func(i, j int) bool { return w.pending[i].at.Before(w.pending[j].at) })
	n := 0
	for n < len(w.pending) && (before.IsZero() || !w.pending[n].at.After(before)) {
		n++
	}
	for _, e := range w.pending[:n] {
		if e.kind == applying && w.finishes(e) {
			continue
		}
		w.n.tell(e)
	}
	w.pending = slices.Delete(w.pending, 0, n)
}

// finishes reports whether the migration e starts is already known to have been applied.
func (w *watch) finishes(e event) bool {
	return slices.ContainsFunc(w.pending, func(x event) bool {
		return x.kind == applied && x.replica == e.replica && x.log.Migration == e.log.Migration
	})
}

func (w *watch) timedOut() error {
	var stuck []string
	for _, t := range w.tails {
		if !t.ended {
			out := strings.TrimSpace(t.r.Output())
			stuck = append(stuck, fmt.Sprintf("%s (last said: %s)", t.r.Name, out[strings.LastIndexByte(out, '\n')+1:]))
		}
	}
	return fmt.Errorf("replicas still running after %s: %s", rolloutTimeout, strings.Join(stuck, "; "))
}
