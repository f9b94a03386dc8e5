package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestRetryable: connection-level failures are retryable (the session is gone, the lock with
// it), even after a migration tool flattened them into its own message; server errors that
// mean a bad migration are not.
func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("conn closed; conn closed"), true}, // goose's rollback + exec errors, formatted
		{fmt.Errorf("migration 3: %v", errors.New("conn closed")), true},
		{&pgconn.PgError{Code: "53300"}, true},  // too many connections
		{&pgconn.PgError{Code: "57P01"}, true},  // admin shutdown
		{&pgconn.PgError{Code: "22012"}, false}, // division by zero: the migration's fault
		{&pgconn.PgError{Code: "42P07"}, false}, // relation exists
		{errors.New("syntax error at or near"), false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
