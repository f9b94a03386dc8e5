package schemagate

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// coded is an error that knows its exit code, wrapping another error or none.
type coded struct {
	code ExitCode
	err  error
}

func (e *coded) Error() string      { return fmt.Sprintf("coded %d", e.code) }
func (e *coded) Unwrap() error      { return e.err }
func (e *coded) ExitCode() ExitCode { return e.code }

// TestExitCodeOf: the rules of the one classification, whatever package the error comes from.
// The real errors of every engine and backend are in cmd/schemagate's TestExitCodeTable.
func TestExitCodeOf(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want ExitCode
	}{
		{"no error", nil, ExitReady},
		{"an error that knows its code", &coded{code: ExitAhead}, ExitAhead},
		{"wrapped by fmt.Errorf", fmt.Errorf("read the schema: %w", &coded{code: ExitUnreachable}), ExitUnreachable},
		{"the outermost code decides", &coded{code: ExitMigrationFailed, err: &coded{code: ExitInvalidInput}}, ExitMigrationFailed},
		{"either branch of errors.Join", errors.Join(errors.New("plain"), &coded{code: ExitNotReady}), ExitNotReady},
		{"a stop", fmt.Errorf("apply: %w", context.Canceled), ExitTimeout},
		{"a code beside a stop", &coded{code: ExitUnreachable, err: context.Canceled}, ExitUnreachable},
		{"nobody classified it", errors.New("permission denied for table goose_db_version"), ExitMigrationFailed},
	} {
		if got := ExitCodeOf(c.err); got != c.want {
			t.Errorf("%s: ExitCodeOf(%v) = %d (%s), want %d (%s)", c.name, c.err, got, got, c.want, c.want)
		}
	}
}
