package health_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/health"
	"github.com/schemagate/schemagate/lock"
)

func fleetOf(members ...[3]string) []lock.Member {
	var out []lock.Member
	for _, m := range members {
		out = append(out, lock.Member{Replica: m[0], MigrationSet: m[1], Phase: m[2], Host: "node-" + m[0],
			Since: time.Now(), Fingerprints: map[string]string{"SECRET_KEY": "v1:00"}})
	}
	return out
}

// TestFleetMetrics: /metrics counts the fleet by release and phase as last read; a release or
// phase nobody has any more disappears, and a snapshot without a read of the fleet leaves the
// counts alone.
func TestFleetMetrics(t *testing.T) {
	p := newProbe(t, health.DetailFull)
	p.m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseReady, Ready: true, Status: readyStatus, FleetKnown: true,
		Fleet: fleetOf([3]string{"a", "new", "ready"}, [3]string{"b", "new", "ready"}, [3]string{"c", "new", "waiting"},
			[3]string{"d", "old", "ready"})})
	got := p.metrics(t)
	for name, want := range map[string]string{
		`schemagate_fleet_replicas{migration_set="new",phase="ready"}`:   "2",
		`schemagate_fleet_replicas{migration_set="new",phase="waiting"}`: "1",
		`schemagate_fleet_replicas{migration_set="old",phase="ready"}`:   "1",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %s", name, got[name], want)
		}
	}
	p.m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseReady, Ready: true, Status: readyStatus, FleetKnown: true,
		Fleet: fleetOf([3]string{"a", "new", "ready"}, [3]string{"c", "new", "ready"})})
	p.m.Observe(coordinator.Snapshot{Phase: coordinator.PhaseReady, Ready: true, Status: readyStatus})
	got = p.metrics(t)
	if v := got[`schemagate_fleet_replicas{migration_set="new",phase="ready"}`]; v != "2" {
		t.Errorf("after the old release left: new/ready = %q, want 2", v)
	}
	for _, gone := range []string{`schemagate_fleet_replicas{migration_set="new",phase="waiting"}`,
		`schemagate_fleet_replicas{migration_set="old",phase="ready"}`} {
		if v, ok := got[gone]; ok {
			t.Errorf("%s = %s is still exported", gone, v)
		}
	}
}

// TestFleetStatusAndReadyz: /status carries the fleet and its summary; a replica the fleet
// guard holds back answers /readyz 503 and says which check fails and why; under
// --serve-detail summary, hosts and fingerprints are withheld.
func TestFleetStatusAndReadyz(t *testing.T) {
	reason := "SECRET_KEY differs from the value on 1 ready replica (a); sessions and signed values from one replica would be rejected by another"
	snap := coordinator.Snapshot{Phase: coordinator.PhaseDisagrees, Status: readyStatus, Reason: reason, ReadAt: time.Now(),
		FleetKnown: true, Fleet: fleetOf([3]string{"a", "set-1", "ready"}, [3]string{"web-1", "set-1", "disagrees"})}
	for _, detail := range []health.Detail{health.DetailFull, health.DetailSummary} {
		p := newProbe(t, detail)
		p.m.Observe(snap)
		code, body, _ := p.get(t, "/readyz?verbose")
		if code != 503 || !strings.Contains(body, "[+]schema ok: ") || !strings.Contains(body, "[-]fleet failed: ") {
			t.Errorf("%s: /readyz?verbose: %d\n%s", detail, code, body)
		}
		if strings.Contains(body, "SECRET_KEY differs") != (detail == health.DetailFull) {
			t.Errorf("%s: /readyz?verbose reveals the reason: %v\n%s", detail, detail == health.DetailFull, body)
		}
		_, body, _ = p.get(t, "/status")
		var doc struct {
			Fleet struct {
				Replicas []lock.Member `json:"replicas"`
				Summary  string        `json:"summary"`
			} `json:"fleet"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Fleet.Replicas) != 2 || doc.Fleet.Summary != "2 replicas: 1 ready and 1 disagrees on release set-1" {
			t.Errorf("%s: /status fleet: %+v", detail, doc.Fleet)
		}
		withheld := detail == health.DetailSummary
		if r := doc.Fleet.Replicas[0]; (r.Host == "") != withheld || (r.Fingerprints == nil) != withheld {
			t.Errorf("%s: /status shows replica %+v", detail, r)
		}
	}
}
