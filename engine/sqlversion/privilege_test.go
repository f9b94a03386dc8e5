package sqlversion

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/schemagate/schemagate/internal/pgtest"
)

// TestPermissionDenied: a valid query on a table the role may not read is the database refusing
// a privilege, not a mistake in the query: no QueryError (exit 3, not 2).
func TestPermissionDenied(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	admin := pgtest.Connect(t, dbURL)
	pgtest.Exec(t, admin, "CREATE TABLE schema_migrations (version bigint, dirty boolean)")
	role := newRole(t, dbURL)
	u, _ := url.Parse(dbURL)
	u.User = url.User(role)
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	src, err := New(db, "SELECT version, dirty FROM schema_migrations", "1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Status(context.Background())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("Status as a role without SELECT: %v; want permission denied (42501)", err)
	}
	if errors.As(err, new(*QueryError)) {
		t.Errorf("permission denied is a QueryError (exit 2): %v", err)
	}
}

// newRole creates a login role with no privileges; it is dropped when the test ends.
func newRole(t *testing.T, dbURL string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	role := "sgtest_role_" + hex.EncodeToString(b)
	admin := pgtest.Connect(t, pgtest.AdminURL())
	pgtest.Exec(t, admin, "CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		ctx := context.Background()
		if c, err := pgx.Connect(ctx, dbURL); err == nil {
			_, _ = c.Exec(ctx, "DROP OWNED BY "+role)
			c.Close(ctx)
		}
		if _, err := admin.Exec(ctx, "DROP ROLE "+role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	return role
}
