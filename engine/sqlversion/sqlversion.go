// Package sqlversion reads a schema version with a query, for migration tools schemagate
// does not parse (golang-migrate, Flyway, Prisma, Rails…): the query returns the database's
// version, and optionally whether it is dirty; the replica needs one target version.
//
// The query only reads: one that would write is refused before it runs, and it runs in a
// read-only transaction (PRAGMA query_only on SQLite), where a write hidden in a function fails.
package sqlversion

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/tablename"
)

// Source is a version query and the version the replica needs.
type Source struct {
	db     *sql.DB
	query  string
	target string
	// numeric: the target is an integer, and the database's version is compared as one.
	numeric bool
	plan    engine.Plan
}

// New checks the query and target; it does no I/O.
func New(db *sql.DB, query, target string) (*Source, error) {
	query, target = strings.TrimSpace(query), strings.TrimSpace(target)
	switch {
	case query == "":
		return nil, errors.New("version-query: not set; --version-source sql needs the query that returns the database's version")
	case target == "":
		return nil, errors.New("target-version: not set; --version-source sql needs the version this replica needs")
	}
	if err := checkQuery(query); err != nil {
		return nil, err
	}
	s := &Source{db: db, query: query, target: target}
	sum := sha256.Sum256([]byte(query + "\x00" + target))
	s.plan = engine.Plan{Fingerprint: "sql-" + hex.EncodeToString(sum[:6])}
	if v, err := strconv.ParseInt(target, 10, 64); err == nil && v > 0 {
		s.numeric = true
		s.plan.Target = v
	} else {
		s.plan.Target = 1
	}
	m := engine.Migration{Version: s.plan.Target, Name: "version " + target, Transactional: true}
	s.plan.Migrations, s.plan.All = []engine.Migration{m}, []engine.Migration{m}
	return s, nil
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Plan is the one target version.
func (s *Source) Plan() engine.Plan { return s.plan }

// Status runs the query. No row, a NULL version, or a table that does not exist yet means
// nothing is applied. A second column that is true (golang-migrate's dirty) blocks readiness.
func (s *Source) Status(ctx context.Context) (engine.Status, error) {
	st := engine.Status{TableExists: true, Target: s.plan.Target, TargetLabel: s.target}
	version, dirty, err := s.read(ctx)
	switch {
	case err != nil && tablename.Missing(err):
		st.TableExists = false
		st.Pending = s.plan.Migrations
		return st, nil
	case err != nil:
		return st, err
	case version == "":
		st.Pending = s.plan.Migrations
		st.CurrentLabel = "none"
		return st, nil
	}
	st.CurrentLabel = version
	switch c := s.compare(version); {
	case c < 0:
		st.Pending = s.plan.Migrations
	case c > 0:
		st.Unknown = []int64{s.plan.Target + 1}
		if s.numeric {
			st.Unknown[0], _ = strconv.ParseInt(version, 10, 64)
		}
	}
	st.Current = s.current(version, st)
	if dirty {
		st.Blocked = fmt.Sprintf("version %s is marked dirty: a migration failed midway; repair the schema by hand, "+
			"then clear the flag (golang-migrate: migrate force VERSION)", version)
	}
	return st, nil
}

// current is the number metrics show: the version itself when numeric, else 1 at or above the
// target and 0 below it.
func (s *Source) current(version string, st engine.Status) int64 {
	if s.numeric {
		v, _ := strconv.ParseInt(version, 10, 64)
		return v
	}
	if len(st.Pending) == 0 {
		return s.plan.Target
	}
	return 0
}

// read runs the query where it cannot write: in a read-only transaction on PostgreSQL, with
// PRAGMA query_only on SQLite.
func (s *Source) read(ctx context.Context) (version string, dirty bool, err error) {
	if _, ok := s.db.Driver().(*sqlite.Driver); ok {
		return s.readSQLite(ctx)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return "", false, err
	}
	defer func() { _ = tx.Rollback() }() // nothing was written: the rollback only ends it
	return s.scan(ctx, tx)
}

// readSQLite runs the query on a connection of its own with query_only on, and turns it off
// before the connection goes back to the pool. A connection that cannot be turned back is
// discarded.
func (s *Source) readSQLite(ctx context.Context) (string, bool, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return "", false, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = ON"); err != nil {
		return "", false, err
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA query_only = OFF"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return s.scan(ctx, conn)
}

func (s *Source) scan(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (version string, dirty bool, err error) {
	rows, err := q.QueryContext(ctx, lock.Internal(s.query))
	if err != nil {
		return "", false, queryError(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", false, err
	}
	if len(cols) < 1 || len(cols) > 2 {
		return "", false, &QueryError{fmt.Errorf("version-query returns %d columns; want the version, and optionally a dirty flag", len(cols))}
	}
	if !rows.Next() {
		return "", false, queryError(rows.Err())
	}
	var v sql.NullString
	var d sql.NullBool
	dest := []any{&v}
	if len(cols) == 2 {
		dest = append(dest, &d)
	}
	if err := rows.Scan(dest...); err != nil {
		return "", false, &QueryError{fmt.Errorf("version-query: %w", err)}
	}
	if rows.Next() {
		return "", false, &QueryError{errors.New("version-query returns more than one row; add ORDER BY … DESC LIMIT 1")}
	}
	return strings.TrimSpace(v.String), d.Valid && d.Bool, queryError(rows.Err())
}

// queryError makes err a QueryError when the query itself is at fault.
func queryError(err error) error {
	switch {
	case err == nil:
		return nil
	case writeRefused(err):
		return &QueryError{fmt.Errorf("version-query: must only read, but it writes (refused in a read-only transaction): %w", err)}
	case badQuery(err):
		return &QueryError{fmt.Errorf("version-query: %w", err)}
	case denied(err):
		return fmt.Errorf("version-query: %w", err) // the role must change, not the query
	}
	return err
}

// QueryError is a version query whose result cannot be read: a mistake in the settings, not an
// unavailable database. It is invalid input (exit code 2).
type QueryError struct{ Err error }

func (e *QueryError) Error() string                 { return e.Err.Error() }
func (e *QueryError) Unwrap() error                 { return e.Err }
func (e *QueryError) ExitCode() schemagate.ExitCode { return schemagate.ExitInvalidInput }

// badQuery: the query itself is wrong (PostgreSQL's class 42, syntax error or access rule
// violation, but for a missing table and a missing privilege; SQLite's syntax errors and
// unknown columns). A missing privilege is the database refusing a valid query: the role must
// change, not the query.
func badQuery(err error) bool {
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		code := coded.SQLState()
		return strings.HasPrefix(code, "42") && code != "42P01" && !denied(err)
	}
	msg := err.Error()
	return strings.Contains(msg, "syntax error") || strings.Contains(msg, "no such column")
}

// denied: the role lacks a privilege the query needs (PostgreSQL's insufficient_privilege).
func denied(err error) bool {
	var coded interface{ SQLState() string }
	return errors.As(err, &coded) && coded.SQLState() == "42501"
}

// writeRefused: the query tried to write in its read-only transaction (PostgreSQL's
// read_only_sql_transaction, 25006), or under SQLite's query_only (SQLITE_READONLY).
func writeRefused(err error) bool {
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		return coded.SQLState() == "25006"
	}
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY
}

// compare orders the database's version against the target: integers as numbers, dotted
// versions (Flyway's 1.2.10) part by part, anything else (Prisma's 20240101120000_init) first by
// its leading digits, then as text.
func (s *Source) compare(version string) int {
	return Compare(version, s.target)
}

// Compare orders two versions as Status does.
func Compare(a, b string) int {
	pa, pb := parts(a), parts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if c := comparePart(pa[i], pb[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	return 0
}

// parts splits a version into its runs of digits and of other characters, dropping dots.
func parts(v string) []string {
	var out []string
	start := 0
	for i := 1; i <= len(v); i++ {
		if i == len(v) || isDigit(v[i]) != isDigit(v[i-1]) {
			if p := v[start:i]; p != "." {
				out = append(out, p)
			}
			start = i
		}
	}
	return out
}

func comparePart(a, b string) int {
	if a != "" && b != "" && isDigit(a[0]) && isDigit(b[0]) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
