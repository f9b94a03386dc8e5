package e2e

import (
	"testing"
	"time"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestMoreReplicasThanConnections starts 40 replicas against a server that accepts 20
// connections. The replicas it refuses ("too many clients", SQLSTATE 53300) back off with
// jitter and try again until their deadline instead of failing: all 40 exit 0.
func TestMoreReplicasThanConnections(t *testing.T) {
	c := pgtest.StartCluster(t, "max_connections = 20")
	d := openDB(t, c.NewDatabase(t))
	dir := writeMigrations(t, migrationSet{N: 8, Slow: map[int]float64{4: 2}})
	rs := startAll(t, 40, "crowd", d.args("migrate", dir, "--timeout", "3m"))
	waitAll(t, rs, 3*time.Minute, 0)
	d.assertAppliedOnce(t, 8)
	refused := 0
	for _, r := range rs {
		if containsAll(r.output(), "database unavailable", "53300") {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no replica was refused a connection; the test did not exercise the limit")
	}
	t.Logf("%d of 40 replicas were refused a connection at least once", refused)
}
