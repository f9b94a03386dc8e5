package postgres

import (
	"database/sql"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Pool is a small connection pool for an election that keeps no state in a session (Raft): it
// works through a transaction-mode pooler, sets no session parameters (through such a pooler
// they would leak to other clients), and closes idle connections after a second, or at once
// by ReleaseIdle, so that a waiting replica holds none.
type Pool struct {
	DB       *sql.DB
	Target   string
	Database string
	// Statements records what completes on the pool's connections.
	Statements *StatementLog
}

// OpenPool parses dsn and prepares the pool; it does no I/O.
func OpenPool(dsn string, cfg Config) (*Pool, error) {
	pgcfg, err := parseURL(dsn, cfg)
	if err != nil {
		return nil, err
	}
	// The simple protocol: no prepared statement that a transaction pooler could lose between
	// two statements.
	pgcfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	statements := &StatementLog{}
	pgcfg.Tracer = statements
	db := sql.OpenDB(stdlib.GetConnector(*pgcfg))
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(poolIdleConns)
	db.SetConnMaxIdleTime(time.Second)
	return &Pool{DB: db, Target: describeTarget(pgcfg), Database: pgcfg.Database, Statements: statements}, nil
}

// poolIdleConns is how many idle connections a Pool keeps (for at most a second).
const poolIdleConns = 2

// ReleaseIdle closes the pool's idle connections now, rather than up to two seconds later
// (database/sql looks for expired ones once a second). Connections in use are not touched.
func (p *Pool) ReleaseIdle() {
	p.DB.SetMaxIdleConns(0)
	p.DB.SetMaxIdleConns(poolIdleConns)
}
