package locktest

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/schemagate/schemagate/lock"
)

// Presence of a Memory election: each replica's entry lives as long as the replica, and a Kill
// takes it away, as a crash takes away a PostgreSQL session's entry.

var _ lock.Presence = (*Locker)(nil)

// Show publishes this replica's entry, replacing the one it showed before.
func (l *Locker) Show(ctx context.Context, m lock.Member) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := l.m
	e.mu.Lock()
	defer e.mu.Unlock()
	m.Fingerprints = maps.Clone(m.Fingerprints)
	if e.members == nil {
		e.members = map[string]lock.Member{}
	}
	e.members[l.replica] = m
	e.shows = append(e.shows, m)
	return nil
}

// Fleet lists the entries of the replicas alive now, by replica.
func (l *Locker) Fleet(ctx context.Context) ([]lock.Member, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := l.m
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]lock.Member, 0, len(e.members))
	for _, m := range e.members {
		m.Fingerprints = maps.Clone(m.Fingerprints)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b lock.Member) int { return strings.Compare(a.Replica, b.Replica) })
	return out, nil
}

// Shows returns every entry replica showed so far, oldest first: how often it showed itself.
func (m *Memory) Shows(replica string) []lock.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []lock.Member
	for _, s := range m.shows {
		if s.Replica == replica {
			out = append(out, s)
		}
	}
	return out
}

// Vanish takes replica's entry away, as the end of its process would, whether or not it holds
// the election.
func (m *Memory) Vanish(replica string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, replica)
}
