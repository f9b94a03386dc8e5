package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemagate/schemagate/lock"
)

// statementLogSize is how many completed statements a StatementLog remembers.
const statementLogSize = 1024

// StatementLog records the statements that run on a session's or pool's connections (a pgx
// tracer): which are under way, which completed and which failed, so that a migration that
// fails or is cut off midway can say which statement failed and which completed (and stay
// applied, without a transaction).
type StatementLog struct {
	mu sync.Mutex
	// seq numbers the statements as they end.
	seq       uint64
	completed []ended // the newest last
	failed    ended   // the last statement that failed
	// running are the statements under way, by connection.
	running map[*pgx.Conn]runningStatement
	// lastEnd is when the last statement ended.
	lastEnd time.Time
}

type ended struct {
	seq uint64
	sql string
}

type runningStatement struct {
	sql   string
	since time.Time
}

var _ pgx.QueryTracer = (*StatementLog)(nil)

type statementKey struct{}

// TraceQueryStart remembers the statement until it ends.
func (l *StatementLog) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running == nil {
		l.running = map[*pgx.Conn]runningStatement{}
	}
	l.running[conn] = runningStatement{sql: data.SQL, since: time.Now()}
	return context.WithValue(ctx, statementKey{}, data.SQL)
}

// TraceQueryEnd records how a statement ended.
func (l *StatementLog) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	sql, _ := ctx.Value(statementKey{}).(string)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.running, conn)
	l.lastEnd = time.Now()
	l.seq++
	if data.Err != nil {
		l.failed = ended{seq: l.seq, sql: sql}
		return
	}
	l.completed = append(l.completed, ended{seq: l.seq, sql: sql})
	if len(l.completed) > statementLogSize {
		l.completed = append(l.completed[:0:0], l.completed[len(l.completed)-statementLogSize:]...)
	}
}

// quietSince is when the last statement ended, with ok false while one runs.
func (l *StatementLog) quietSince() (since time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastEnd, len(l.running) == 0
}

// Mark returns a position to ask Since and FailedSince about.
func (l *StatementLog) Mark() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Since returns the statements that completed after mark, oldest first; complete is false when
// more completed than the log remembers.
func (l *StatementLog) Since(mark uint64) (statements []string, complete bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	complete = len(l.completed) < statementLogSize || l.completed[0].seq <= mark+1
	for _, e := range l.completed {
		if e.seq > mark {
			statements = append(statements, e.sql)
		}
	}
	return statements, complete
}

// FailedSince returns the last statement that failed after mark.
func (l *StatementLog) FailedSince(mark uint64) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed.seq > mark {
		return l.failed.sql, true
	}
	return "", false
}

// Running returns the longest-running statement under way that is not one of schemagate's own
// (lock.IsInternal), and since when; ok is false when there is none.
func (l *StatementLog) Running() (sql string, since time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.running {
		if !lock.IsInternal(r.sql) && (!ok || r.since.Before(since)) {
			sql, since, ok = r.sql, r.since, true
		}
	}
	return sql, since, ok
}
