// Command goosepeer is one replica of an app that applies its migrations at start-up with
// goose's Provider, as goose documents it for several instances starting at once: a Postgres
// session locker (-lock session, the defaults of lock.NewPostgresSessionLocker), or no locker at
// all (-lock none, goose's default). It logs "ready" and exits 0 once Up returns without error,
// and logs "failed" and exits 1 otherwise.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/schemagate/schemagate/bench/peers/peer"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		peer.Log(os.Stderr, "failed", err)
		os.Exit(1)
	}
	peer.Log(os.Stderr, "ready", nil)
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("goosepeer", flag.ContinueOnError)
	databaseURL := fs.String("database-url", "", "database to migrate")
	dir := fs.String("dir", "", "directory of goose SQL migrations")
	locking := fs.String("lock", "session", "session (Postgres advisory lock) or none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dsn, err := peer.WithApplicationName(*databaseURL, "goose")
	if err != nil {
		return err
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var opts []goose.ProviderOption
	switch *locking {
	case "session":
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case "none":
	default:
		return fmt.Errorf("-lock: %q is not session or none", *locking)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS(*dir), opts...)
	if err != nil {
		return err
	}
	peer.Log(os.Stderr, "migrating", nil)
	_, err = provider.Up(ctx)
	return err
}
