package goose

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/pressly/goose/v3"
)

// transactionModes learns which migrations run in a transaction, and checks that every SQL file
// parses, by letting goose itself apply each migration to a recorder: a database/sql driver
// that accepts every statement and remembers whether a transaction was opened. goose's parser
// is internal to goose; running it this way keeps its exact rules (annotations, ENVSUB,
// statement splitting) without copying them. Nothing here touches a database.
//
// It also returns the statements of each non-transactional migration, in the order goose runs
// them: one interrupted midway can then say which had completed.
func transactionModes(opts Options) (map[int64]bool, map[int64][]string, error) {
	rec := &recorder{}
	db := sql.OpenDB(rec)
	defer db.Close()
	p, err := newProvider(db, goose.DialectPostgres, opts, goose.WithDisableVersioning(true))
	if err != nil {
		return nil, nil, &InputError{Err: describeProviderError(err)}
	}
	modes := make(map[int64]bool)
	statements := make(map[int64][]string)
	for _, src := range p.ListSources() {
		rec.began, rec.statements = false, nil
		if _, err := p.ApplyVersion(context.Background(), src.Version, true); err != nil {
			return nil, nil, inputErrorf("migration file %s: %s", src.Path, parseReason(err))
		}
		modes[src.Version] = rec.began
		if !rec.began {
			statements[src.Version] = rec.statements
		}
	}
	return modes, statements, nil
}

// parseReason keeps goose's reason for rejecting a file, on one line.
func parseReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "failed to prepare migration") {
		msg = msg[strings.Index(msg, ": ")+2:]
	}
	return strings.Join(strings.Fields(msg), " ")
}

// recorder is a database/sql connector whose connections accept every statement and do nothing,
// remembering whether a transaction was opened and the statements.
type recorder struct {
	began      bool
	statements []string
}

func (r *recorder) Connect(context.Context) (driver.Conn, error) { return recorderConn{r}, nil }
func (r *recorder) Driver() driver.Driver                        { return recorderDriver{} }

type recorderDriver struct{}

func (recorderDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("the recorder is used through its connector only")
}

type recorderConn struct{ r *recorder }

func (c recorderConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("the recorder does not prepare statements")
}
func (c recorderConn) Close() error              { return nil }
func (c recorderConn) Begin() (driver.Tx, error) { c.r.began = true; return recorderTx{}, nil }
func (c recorderConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	return c.Begin()
}
func (c recorderConn) ExecContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Result, error) {
	c.r.statements = append(c.r.statements, query)
	return driver.RowsAffected(0), nil
}

type recorderTx struct{}

func (recorderTx) Commit() error   { return nil }
func (recorderTx) Rollback() error { return nil }
