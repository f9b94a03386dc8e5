package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/lock"
)

// The fleet: every replica that gates or serves shows itself (lock.Presence) when its phase
// changes, and the fleet guard (--same-env) holds back a replica whose fingerprint of a
// variable differs from the one the ready replicas of its release show.

// presence is what a replica last showed of itself to its fleet.
type presence struct {
	p lock.Presence
	// phase is the replica's phase as last published, since when; shown says whether the
	// fleet got it.
	phase Phase
	since time.Time
	shown bool
}

// readySince is when this replica became ready, as it showed itself, or the zero time while it
// is not ready.
func (f *presence) readySince() time.Time {
	if f.phase != PhaseReady {
		return time.Time{}
	}
	return f.since
}

// show tells the fleet the replica's phase when it changed, or, with retry, when the last
// change could not be shown. A failure is logged once per change and never stops the replica.
// The starting phase is not shown: nothing has been read yet, and the database may not answer.
func (c *Coordinator) show(ctx context.Context, phase Phase, retry bool) {
	f := c.presence
	if f == nil || phase == PhaseStarting || ctx.Err() != nil {
		return
	}
	changed := phase != f.phase
	if !changed && (f.shown || !retry) {
		return
	}
	if changed {
		f.phase, f.since, f.shown = phase, time.Now().UTC(), false
	}
	err := f.p.Show(ctx, c.member(phase, f.since))
	if err == nil {
		f.shown = true
		return
	}
	if changed && ctx.Err() == nil {
		c.deps.Log.Warn().Err(err).Str("phase", string(phase)).
			Msg("could not show this replica to its fleet (status and the other replicas do not see it until it can)")
	}
}

// member is this replica as the fleet sees it. Its fingerprints are there once the guard
// needed them (as the replica becomes ready): before, no replica compares with it.
func (c *Coordinator) member(phase Phase, since time.Time) lock.Member {
	return lock.Member{Replica: c.cfg.ReplicaID, Host: c.cfg.Host, MigrationSet: c.deps.Engine.Plan().Fingerprint,
		Phase: string(phase), Since: since, Fingerprints: c.fingerprints}
}

// ownFingerprints gets this replica's fingerprints of the --same-env values, once: the first
// call may wait for them to be computed.
func (c *Coordinator) ownFingerprints(ctx context.Context) error {
	if c.fingerprints != nil {
		return nil
	}
	fps, err := c.deps.Fingerprints(ctx)
	if err != nil {
		return fmt.Errorf("--same-env: %w", err)
	}
	for _, name := range c.cfg.SameEnv {
		if fps[name] == "" {
			return fmt.Errorf("--same-env: no fingerprint of %s", name)
		}
	}
	c.fingerprints = fps
	return nil
}

// fleet reads the fleet: the replicas alive now that share this election. known is false when
// the election cannot show it.
func (c *Coordinator) fleet(ctx context.Context) (members []lock.Member, known bool, err error) {
	if c.presence == nil {
		return nil, false, nil
	}
	members, err = c.presence.p.Fleet(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("read the fleet: %w", err)
	}
	return members, true, nil
}

// withSelf is fleet with this replica's entry as it last showed it, which a fleet read before
// the replica showed its new phase does not have yet.
func (c *Coordinator) withSelf(fleet []lock.Member) []lock.Member {
	f := c.presence
	if f == nil || !f.shown {
		return fleet
	}
	me := c.member(f.phase, f.since)
	out := slices.DeleteFunc(slices.Clone(fleet), func(m lock.Member) bool { return m.Replica == me.Replica })
	out = append(out, me)
	slices.SortFunc(out, func(a, b lock.Member) int { return strings.Compare(a.Replica, b.Replica) })
	return out
}

// guarding reports whether the fleet guard is on (--same-env).
func (c *Coordinator) guarding() bool { return len(c.cfg.SameEnv) > 0 && c.presence != nil }

// disagreement compares this replica's fingerprints (ownFingerprints got them) with those of
// the ready replicas of its release (same migration set) in fleet, and returns the
// differences, or nil. A replica ready
// since readySince compares only with those ready before it (ties go to the smaller replica
// id), so that of two ready replicas that disagree the later one yields, never both; one not
// ready (the zero readySince) compares with every ready replica. Fingerprints of different
// versions (or of a variable the other does not fingerprint) are not compared.
func (c *Coordinator) disagreement(fleet []lock.Member, readySince time.Time) *DisagreeError {
	mine := c.deps.Engine.Plan().Fingerprint
	var diffs []Difference
	for _, name := range slices.Sorted(slices.Values(c.cfg.SameEnv)) {
		own := c.fingerprints[name]
		var others []string
		for _, m := range fleet {
			if m.Replica == c.cfg.ReplicaID || m.Phase != string(PhaseReady) || m.MigrationSet != mine ||
				!before(m, readySince, c.cfg.ReplicaID) {
				continue
			}
			if theirs := m.Fingerprints[name]; comparable(own, theirs) && theirs != own {
				others = append(others, m.Replica)
			}
		}
		if len(others) > 0 {
			diffs = append(diffs, Difference{Variable: name, Replicas: others})
		}
	}
	if diffs == nil {
		return nil
	}
	return &DisagreeError{Differences: diffs}
}

// before reports whether m became ready before a replica ready since readySince (zero: not
// ready), named replica.
func before(m lock.Member, readySince time.Time, replica string) bool {
	switch {
	case readySince.IsZero():
		return true
	case m.Since.Equal(readySince):
		return m.Replica < replica
	}
	return m.Since.Before(readySince)
}

// comparable reports whether two fingerprints can be compared: both given, of one version
// ("v1:…").
func comparable(a, b string) bool {
	va, _, _ := strings.Cut(a, ":")
	vb, _, _ := strings.Cut(b, ":")
	return a != "" && b != "" && va == vb
}

// agree is the fleet guard at the moment the gate would declare the replica ready: it reads
// the fleet and returns a *DisagreeError when a ready replica of this release holds another
// value. Without the guard it reads nothing.
func (g *gate) agree(ctx context.Context) error {
	c := g.c
	if !c.guarding() {
		return nil
	}
	if err := c.ownFingerprints(ctx); err != nil {
		return err
	}
	fleet, known, err := c.fleet(ctx)
	if err != nil {
		return fmt.Errorf("--same-env: %w", err)
	}
	g.fleet, g.fleetKnown = fleet, known
	if d := c.disagreement(fleet, time.Time{}); d != nil {
		return d
	}
	return nil
}

// DisagreeError is a replica held back by the fleet guard (--same-env): the value of a variable
// its fleet must agree on differs from the one the ready replicas of its release hold. Exit
// code 8; serve stays up, unready, and becomes ready when the fleet comes to agree.
type DisagreeError struct {
	Differences []Difference
}

// Difference is one variable whose value differs from the one on some ready replicas.
type Difference struct {
	Variable string
	// Replicas are the ready replicas of this release that hold another value.
	Replicas []string
}

func (e *DisagreeError) Error() string {
	parts := make([]string, len(e.Differences))
	for i, d := range e.Differences {
		n := len(d.Replicas)
		names := d.Replicas
		if n > 8 {
			names = append(names[:8:8], "…")
		}
		parts[i] = fmt.Sprintf("%s differs from the value on %d ready %s (%s); %s", d.Variable, n, plural(n, "replica"),
			strings.Join(names, ", "), Consequence(d.Variable))
	}
	return strings.Join(parts, "; ")
}

func (e *DisagreeError) ExitCode() schemagate.ExitCode { return schemagate.ExitFleetDisagrees }

// consequences say what goes wrong when replicas disagree on a variable that apps commonly use.
var consequences = map[string]string{
	"WEBUI_SECRET_KEY":  "users would be logged out when their requests move between replicas",
	"SECRET_KEY":        "sessions and signed values from one replica would be rejected by another",
	"SESSION_SECRET":    "users would be logged out when their requests move between replicas",
	"JWT_SECRET":        "tokens issued by one replica would be rejected by another",
	"JWT_SECRET_KEY":    "tokens issued by one replica would be rejected by another",
	"SECRET_KEY_BASE":   "sessions and signed cookies from one replica would be rejected by another",
	"ENCRYPTION_KEY":    "data encrypted by one replica could not be read by another",
	"DJANGO_SECRET_KEY": "sessions and signed values from one replica would be rejected by another",
}

// Consequence says what goes wrong when replicas disagree on the variable name.
func Consequence(name string) string {
	if c, ok := consequences[name]; ok {
		return c
	}
	return "replicas would behave differently depending on which one serves a request"
}

// fleetReport reads the fleet for a report; nil where the election cannot show it. A failed
// read is said in the summary: the rest of the report stands without it.
func (c *Coordinator) fleetReport(ctx context.Context, mine string) *FleetReport {
	fleet, known, err := c.fleet(ctx)
	switch {
	case err != nil:
		return &FleetReport{Replicas: []lock.Member{}, Summary: "could not be read: " + c.redact(err.Error())}
	case !known:
		return nil
	}
	return NewFleetReport(fleet, mine)
}

// FleetReport is the fleet as a replica last read it: the replicas alive that share its
// election, and a summary for people.
type FleetReport struct {
	Replicas []lock.Member `json:"replicas"`
	// Summary counts the replicas by release and phase: "20 replicas: 18 ready and 2 waiting on
	// release 3f2a1b2c… (this one)".
	Summary string `json:"summary"`
	// Releases, when replicas of more than one release are present, names them with their
	// counts: "2 releases: 18 replicas on 3f2a1b2c… (this one), 1 on 91bc4d5e…".
	Releases string `json:"releases,omitempty"`
}

// NewFleetReport summarizes fleet for a replica whose migration set is mine ("" when unknown).
func NewFleetReport(fleet []lock.Member, mine string) *FleetReport {
	r := &FleetReport{Replicas: slices.Clone(fleet)}
	if r.Replicas == nil {
		r.Replicas = []lock.Member{}
	}
	if len(fleet) == 0 {
		r.Summary = "no replica shows itself now (replicas show themselves while they gate or serve)"
		return r
	}
	releases := groupReleases(fleet, mine)
	parts := make([]string, len(releases))
	counts := make([]string, len(releases))
	for i, rel := range releases {
		parts[i] = rel.phases() + " on release " + rel.name(mine)
		counts[i] = fmt.Sprintf("%d on %s", len(rel.members), rel.name(mine))
	}
	r.Summary = fmt.Sprintf("%d %s: %s", len(fleet), plural(len(fleet), "replica"), strings.Join(parts, "; "))
	if len(releases) > 1 {
		counts[0] = fmt.Sprintf("%d %s on %s", len(releases[0].members), plural(len(releases[0].members), "replica"),
			releases[0].name(mine))
		r.Releases = fmt.Sprintf("%d releases: %s", len(releases), strings.Join(counts, ", "))
	}
	return r
}

// release is the replicas of one migration set.
type release struct {
	set     string
	members []lock.Member
}

// groupReleases groups fleet by migration set: mine first, then the others by size.
func groupReleases(fleet []lock.Member, mine string) []release {
	by := map[string][]lock.Member{}
	for _, m := range fleet {
		by[m.MigrationSet] = append(by[m.MigrationSet], m)
	}
	var out []release
	for set, ms := range by {
		out = append(out, release{set: set, members: ms})
	}
	slices.SortFunc(out, func(a, b release) int {
		if (a.set == mine) != (b.set == mine) {
			if a.set == mine {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(len(b.members), len(a.members)), strings.Compare(a.set, b.set))
	})
	return out
}

// name is the release's short name, marked when it is this replica's.
func (r release) name(mine string) string {
	s := ShortSet(r.set)
	if mine != "" && r.set == mine {
		s += " (this one)"
	}
	return s
}

// phaseOrder is the order phases are counted in: the good news first.
var phaseOrder = []Phase{PhaseReady, PhaseMigrating, PhaseWaiting, PhaseStarting, PhaseUnready, PhaseDisagrees, PhaseFailed}

// phases counts the release's replicas by phase: "18 ready and 2 waiting".
func (r release) phases() string {
	count := map[string]int{}
	for _, m := range r.members {
		count[m.Phase]++
	}
	names := slices.Sorted(maps.Keys(count))
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(phaseRank(a), phaseRank(b)) })
	parts := make([]string, len(names))
	for i, p := range names {
		parts[i] = fmt.Sprintf("%d %s", count[p], orUnknown(p))
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func phaseRank(p string) int {
	if i := slices.Index(phaseOrder, Phase(p)); i >= 0 {
		return i
	}
	return len(phaseOrder)
}

func orUnknown(phase string) string {
	if phase == "" {
		return "of unknown phase"
	}
	return phase
}

// ShortSet shortens a migration set's fingerprint for people: its first 8 hex digits, after a
// prefix such as "alembic-".
func ShortSet(set string) string {
	prefix, rest := "", set
	if i := strings.LastIndexByte(set, '-'); i >= 0 {
		prefix, rest = set[:i+1], set[i+1:]
	}
	if len(rest) <= 10 {
		return set
	}
	return prefix + rest[:8] + "…"
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
