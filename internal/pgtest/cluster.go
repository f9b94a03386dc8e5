package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemagate/schemagate/internal/pgscratch"
)

// Cluster is a PostgreSQL server of a test's own, in a temporary directory, on a free port. It
// is stopped when the test ends. Tests that restart or break the server use one, never the
// shared server.
type Cluster struct {
	t      testing.TB
	server *pgscratch.Server
	Port   int
}

// ClusterOptions shape a test cluster.
type ClusterOptions = pgscratch.ServerOptions

// StartCluster initialises and starts a cluster with extra postgresql.conf settings.
func StartCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Settings: settings})
}

// StartClusterWith initialises and starts a cluster shaped by opts. Without PostgreSQL's server
// binaries the test is skipped (failed with CI set).
func StartClusterWith(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ServerBinaries(ctx); err != nil {
		Unavailable(t, "a test cluster needs PostgreSQL's server binaries: %v", err)
	}
	s, err := pgscratch.StartServer(ctx, opts)
	if err != nil {
		t.Fatalf("start a test cluster: %v", err)
	}
	t.Cleanup(func() { s.Remove() })
	return &Cluster{t: t, server: s, Port: s.Port}
}

// AdminURL is the URL of the cluster's maintenance database.
func (c *Cluster) AdminURL() string { return c.server.AdminURL() }

// NewDatabase creates a database on the cluster and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, c.AdminURL())
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.server.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
}

// Stop stops the server in fast mode: sessions are terminated, their transactions roll back.
func (c *Cluster) Stop() { _ = c.server.Stop(context.Background(), "fast") }

// Restart stops and starts the server.
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.Start()
}

// Log returns the server log so far, for failure messages.
func (c *Cluster) Log() string { return c.server.Log() }

// WaitReady waits until the server accepts a connection.
func (c *Cluster) WaitReady(ctx context.Context) error {
	for {
		conn, err := pgx.Connect(ctx, c.AdminURL())
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := pgscratch.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
