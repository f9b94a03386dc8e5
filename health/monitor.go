// Package health serves what a long-running replica (schemagate serve) knows: liveness,
// readiness and the status document over HTTP, and Prometheus metrics.
//
// The probes answer from memory. The coordinator's goroutines read the database and report
// every change to a Monitor (it is a coordinator.Observer); a probe only loads the latest
// snapshot. So a probe costs microseconds, never queries the database, and never waits behind a
// long migration.
package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
)

// Monitor keeps the latest state of one replica for the probes, and its metrics.
type Monitor struct {
	id      coordinator.Identity
	opts    Options
	metrics *metrics
	state   atomic.Pointer[state]
}

// Detail says how much /status and /readyz reveal to whoever reaches the probe port.
type Detail string

const (
	// DetailFull serves everything the replica knows: error texts, the lock holder's
	// statement and address, the journal's errors.
	DetailFull Detail = "full"
	// DetailSummary serves phases, versions and reasons, but no error text, statement or
	// address: those stay in the replica's log and `schemagate status`.
	DetailSummary Detail = "summary"
)

// ParseDetail reads a --serve-detail value.
func ParseDetail(s string) (Detail, error) {
	switch d := Detail(s); d {
	case DetailFull, DetailSummary:
		return d, nil
	}
	return "", fmt.Errorf("serve-detail: %q must be full or summary", s)
}

// Options tune what a Monitor serves.
type Options struct {
	// Detail is how much to reveal; default DetailFull.
	Detail Detail
	// Redact hides secrets in everything served; nil for none.
	Redact func(string) string
}

// state is one snapshot, with the status document already encoded.
type state struct {
	snap   coordinator.Snapshot
	status []byte
}

var _ coordinator.Observer = (*Monitor)(nil)

// NewMonitor returns a monitor for the replica id, registering its metrics with reg.
func NewMonitor(id coordinator.Identity, reg prometheus.Registerer, opts Options) *Monitor {
	if opts.Detail == "" {
		opts.Detail = DetailFull
	}
	if opts.Redact == nil {
		opts.Redact = func(s string) string { return s }
	}
	m := &Monitor{id: id, opts: opts, metrics: newMetrics(reg)}
	m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseStarting, Role: coordinator.RoleWaiter,
		Reason: "starting: the schema has not been read yet"})
	return m
}

// Observe stores s for the probes and updates the gauges.
func (m *Monitor) Observe(s coordinator.Snapshot) {
	m.metrics.observe(s)
	s = m.served(s)
	doc, err := json.MarshalIndent(coordinator.NewReport(m.id, s), "", "  ")
	if err != nil {
		doc = []byte(`{"error":"the status document could not be encoded"}`)
	}
	doc = []byte(m.opts.Redact(string(doc)))
	m.state.Store(&state{snap: s, status: append(doc, '\n')})
}

// served is what of s the probe server shows: redacted, and under DetailSummary without error
// text, statements or addresses.
func (m *Monitor) served(s coordinator.Snapshot) coordinator.Snapshot {
	redact := m.opts.Redact
	s.Reason = redact(s.Reason)
	if s.Unreachable != nil {
		s.Unreachable = errors.New(redact(s.Unreachable.Error()))
	}
	if s.Holder != nil {
		h := *s.Holder
		h.Name, h.Query = redact(h.Name), redact(h.Query)
		s.Holder = &h
	}
	s.Journal = slices.Clone(s.Journal)
	for i := range s.Journal {
		s.Journal[i].Error = redact(s.Journal[i].Error)
	}
	if m.opts.Detail == DetailSummary {
		s = summarize(s)
	}
	return s
}

// withheld stands for text DetailSummary does not serve.
const withheld = "details withheld (--serve-detail summary): see the replica's log or schemagate status"

// summarize strips s of error texts, statements and addresses.
func summarize(s coordinator.Snapshot) coordinator.Snapshot {
	switch {
	case s.Phase == coordinator.PhaseFailed:
		s.Reason = "the migration run failed; " + withheld
	case s.Phase == coordinator.PhaseMigrating:
		s.Reason = "this replica is migrating"
	case s.Status != nil:
		s.Reason = s.Status.Describe()
	default:
		s.Reason = string(s.Phase)
	}
	if s.Unreachable != nil {
		s.Unreachable = errors.New(withheld)
	}
	if s.Holder != nil {
		s.Holder = &lock.Holder{Replica: s.Holder.Replica, PID: s.Holder.PID, SessionStart: s.Holder.SessionStart,
			State: s.Holder.State}
	}
	if s.Phase == coordinator.PhaseDisagrees {
		s.Reason = "the fleet disagrees (--same-env); " + withheld
	}
	fleet := make([]lock.Member, len(s.Fleet))
	for i, r := range s.Fleet {
		fleet[i] = lock.Member{Replica: r.Replica, MigrationSet: r.MigrationSet, Phase: r.Phase, Since: r.Since}
	}
	s.Fleet = fleet
	for i := range s.Journal {
		if s.Journal[i].Error != "" {
			s.Journal[i].Error = withheld
		}
	}
	return s
}

// Elected records how long this replica waited before it became the migrator.
func (m *Monitor) Elected(waited time.Duration) { m.metrics.lockWait.Observe(waited.Seconds()) }

// Migrated records one migration applied or failed.
func (m *Monitor) Migrated(mig engine.Migration, took time.Duration, err error) {
	m.metrics.migrated(mig, took, err)
}

// Gated records how long the replica waited until the schema was ready.
func (m *Monitor) Gated(waited time.Duration) { m.metrics.wait.Observe(waited.Seconds()) }
