package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// record is one rollout as the narration told it; check holds it against the invariants and
// the database.
type record struct {
	number  int
	release string
	// replicas are the names of the replicas started.
	replicas []string
	// migrations are the release's migration files, in order; the first from of them were
	// applied before the rollout.
	migrations []string
	from       int

	elected   []string // replicas that won the election, in order
	migrators []string // replicas that started applying migrations, in order
	applied   []step
	ready     map[string]bool
	exits     map[string]int

	// victim is the migrator the demo killed, in killedIn, at killedAt; takeover is how long
	// after the kill the next replica won the election.
	victim   string
	killedIn string
	killedAt time.Time
	takeover time.Duration
	// kill names the migration whose migrator the demo was to kill, if any.
	kill string

	took time.Duration
}

// step is one migration applied by one replica.
type step struct{ migration, replica string }

func newRecord(number int, rel release, replicas, migrations []string, from int) *record {
	r := &record{number: number, release: rel.name, replicas: replicas, migrations: migrations, from: from,
		ready: map[string]bool{}, exits: map[string]int{}}
	if rel.kill > 0 && rel.kill <= len(migrations) {
		r.kill = migrations[rel.kill-1]
	}
	return r
}

// newMigrations are the migrations this rollout was to apply.
func (r *record) newMigrations() []string { return r.migrations[r.from:] }

// appliedBy lists what replica applied, in order.
func (r *record) appliedBy(replica string) []string {
	var names []string
	for _, s := range r.applied {
		if s.replica == replica {
			names = append(names, s.migration)
		}
	}
	return names
}

// story is the rollout in one line: who migrated what, who was killed and replaced, who ended
// ready.
func (r *record) story() string {
	var parts []string
	for i, m := range r.migrators {
		s := m + " migrated: " + strings.Join(r.appliedBy(m), " ")
		if i > 0 && r.migrators[i-1] == r.victim {
			s = fmt.Sprintf("%s took over after %s and migrated: %s", m, brief(r.takeover), strings.Join(r.appliedBy(m), " "))
		}
		if m == r.victim {
			s += ", killed during " + r.killedIn
		}
		parts = append(parts, s)
	}
	if len(r.migrators) == 0 {
		parts = append(parts, "nobody migrated")
	}
	others, fine := 0, 0
	for _, name := range r.replicas {
		if name == r.victim {
			continue
		}
		others++
		if code, ok := r.exits[name]; r.ready[name] && ok && code == 0 {
			fine++
		}
	}
	parts = append(parts, fmt.Sprintf("%d of %d %s ready, exited 0", fine, others, map[bool]string{true: "survivors", false: "replicas"}[r.victim != ""]))
	return fmt.Sprintf("rollout %d (release %s): %s", r.number, r.release, strings.Join(parts, "; "))
}

// check returns what contradicts the invariants in the narration or in the database's
// applied_log (version → who applied it, once per application): none when all is well.
func (r *record) check(log map[int64][]string) []string {
	problems := r.checkMigrators()
	problems = append(problems, r.checkApplied()...)
	for _, name := range r.replicas {
		code, ok := r.exits[name]
		switch {
		case name == r.victim:
		case !ok:
			problems = append(problems, name+" never exited")
		case code != 0 || !r.ready[name]:
			problems = append(problems, fmt.Sprintf("%s exited with code %d without reporting ready", name, code))
		}
	}
	return append(problems, r.checkLog(log)...)
}

func (r *record) checkMigrators() []string {
	if r.kill == "" {
		if len(r.migrators) != 1 {
			return []string{fmt.Sprintf("%d replicas migrated (%s), want exactly one", len(r.migrators), strings.Join(r.migrators, ", "))}
		}
		return nil
	}
	switch {
	case r.victim == "":
		return []string{"the migrator was not killed during " + r.kill}
	case len(r.migrators) != 2 || r.migrators[0] != r.victim:
		return []string{fmt.Sprintf("migrators %v: want the killed %s, then one replacement", r.migrators, r.victim)}
	}
	return nil
}

func (r *record) checkApplied() []string {
	var problems []string
	seen := map[string]string{}
	for _, s := range r.applied {
		if first, dup := seen[s.migration]; dup {
			problems = append(problems, fmt.Sprintf("%s applied twice, by %s and by %s", s.migration, first, s.replica))
		}
		seen[s.migration] = s.replica
		if !slices.Contains(r.newMigrations(), s.migration) {
			problems = append(problems, fmt.Sprintf("%s applied %s, which was not pending", s.replica, s.migration))
		}
	}
	for _, m := range r.newMigrations() {
		if _, ok := seen[m]; !ok {
			problems = append(problems, m+" was never applied")
		}
	}
	return problems
}

// checkLog holds the database's applied_log against the release: every migration applied
// exactly once, and, where the log knows it (PostgreSQL), by the replica the narration named.
func (r *record) checkLog(log map[int64][]string) []string {
	var problems []string
	for v := range log {
		if v < 1 || int(v) > len(r.migrations) {
			problems = append(problems, fmt.Sprintf("applied_log holds version %d, which release %s does not have", v, r.release))
		}
	}
	for i, name := range r.migrations {
		who := log[int64(i+1)]
		if len(who) != 1 {
			problems = append(problems, fmt.Sprintf("applied_log: %s applied %d times, want once", name, len(who)))
			continue
		}
		if i < r.from || who[0] == "" {
			continue
		}
		if told := r.applier(name); who[0] != told {
			problems = append(problems, fmt.Sprintf("applied_log: %s applied by %s, but the narration says %s", name, who[0], told))
		}
	}
	return problems
}

func (r *record) applier(migration string) string {
	for _, s := range r.applied {
		if s.migration == migration {
			return s.replica
		}
	}
	return ""
}
