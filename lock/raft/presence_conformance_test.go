package raft

import (
	"fmt"
	"testing"

	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/lock/locktest"
)

// TestPresenceConformance: the shared presence contract, with every member a voter, and with
// one voter and every other member following it.
func TestPresenceConformance(t *testing.T) {
	for name, voters := range map[string]int{"voters": 5, "followers": 1} {
		t.Run(name, func(t *testing.T) {
			locktest.TestPresence(t, locktest.Backend{
				Group: func(t *testing.T, n int) []lock.Locker {
					c := newTestCluster(t, n, func(_ int, cfg *Config) { cfg.Voters = voters })
					ls := make([]lock.Locker, n)
					for i := range ls {
						ls[i] = c.nodes[fmt.Sprintf("replica-%d", i)]
					}
					return ls
				},
				Kill: func(t *testing.T, l lock.Locker) { l.(*Node).kill() },
			})
		})
	}
}
