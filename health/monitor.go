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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
)

// Monitor keeps the latest state of one replica for the probes, and its metrics.
type Monitor struct {
	id      coordinator.Identity
	metrics *metrics
	state   atomic.Pointer[state]
}

// state is one snapshot, with the status document already encoded.
type state struct {
	snap   coordinator.Snapshot
	status []byte
}

var _ coordinator.Observer = (*Monitor)(nil)

// NewMonitor returns a monitor for the replica id, registering its metrics with reg.
func NewMonitor(id coordinator.Identity, reg prometheus.Registerer) *Monitor {
	m := &Monitor{id: id, metrics: newMetrics(reg)}
	m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseStarting, Role: coordinator.RoleWaiter,
		Reason: "starting: the schema has not been read yet"})
	return m
}

// Observe stores s for the probes and updates the gauges.
func (m *Monitor) Observe(s coordinator.Snapshot) {
	doc, err := json.MarshalIndent(coordinator.NewReport(m.id, s), "", "  ")
	if err != nil {
		doc = []byte(`{"error":"the status document could not be encoded"}`)
	}
	m.state.Store(&state{snap: s, status: append(doc, '\n')})
	m.metrics.observe(s)
}

// Elected records how long this replica waited before it became the migrator.
func (m *Monitor) Elected(waited time.Duration) { m.metrics.lockWait.Observe(waited.Seconds()) }

// Migrated records one migration applied or failed.
func (m *Monitor) Migrated(mig engine.Migration, took time.Duration, err error) {
	m.metrics.migrated(mig, took, err)
}

// Gated records how long the replica waited until the schema was ready.
func (m *Monitor) Gated(waited time.Duration) { m.metrics.wait.Observe(waited.Seconds()) }

// Snapshot returns the latest state.
func (m *Monitor) Snapshot() coordinator.Snapshot { return m.state.Load().snap }
