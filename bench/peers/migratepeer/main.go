// Command migratepeer is one replica of an app that applies its migrations at start-up with
// golang-migrate v4 and its pgx v5 driver, as the maintainers recommend for several instances
// starting at once (every instance calls Up; the driver's advisory lock serialises them), with
// the library's defaults (Migrate.LockTimeout 15 s). It logs "ready" and exits 0 once Up returns
// nil or ErrNoChange, and logs "failed" and exits 1 otherwise.
package main

import (
	"errors"
	"flag"
	"os"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	_ "github.com/golang-migrate/migrate/v4/source/file"

	"github.com/schemagate/schemagate/bench/peers/peer"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		peer.Log(os.Stderr, "failed", err)
		os.Exit(1)
	}
	peer.Log(os.Stderr, "ready", nil)
}

func run(args []string) error {
	fs := flag.NewFlagSet("migratepeer", flag.ContinueOnError)
	databaseURL := fs.String("database-url", "", "database to migrate (postgres://…)")
	dir := fs.String("dir", "", "directory of NNN_name.up.sql migrations")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn, err := peer.WithApplicationName(*databaseURL, "migrate")
	if err != nil {
		return err
	}
	// The pgx v5 driver registers the pgx5:// scheme.
	dsn = "pgx5://" + strings.TrimPrefix(strings.TrimPrefix(dsn, "postgres://"), "postgresql://")
	m, err := migrate.New("file://"+*dir, dsn)
	if err != nil {
		return err
	}
	peer.Log(os.Stderr, "migrating", nil)
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		// No Close here: after ErrLockTimeout the driver's pg_advisory_lock is still running
		// on its connection, and Close would wait for it. The process exits instead.
		return err
	}
	srcErr, dbErr := m.Close()
	return errors.Join(srcErr, dbErr)
}
