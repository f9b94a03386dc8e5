package postgres

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
)

// statementLogSize is how many completed statements a StatementLog remembers.
const statementLogSize = 1024

// StatementLog records the statements that complete on a session's or pool's connections (a
// pgx tracer), so that a non-transactional migration cut off midway can say which of its
// statements had completed, and stay applied.
type StatementLog struct {
	mu    sync.Mutex
	count uint64
	last  []string // the newest last
}

var _ pgx.QueryTracer = (*StatementLog)(nil)

type statementKey struct{}

// TraceQueryStart remembers the statement until it ends.
func (l *StatementLog) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, statementKey{}, data.SQL)
}

// TraceQueryEnd records a statement that completed.
func (l *StatementLog) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if data.Err != nil {
		return
	}
	sql, _ := ctx.Value(statementKey{}).(string)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	l.last = append(l.last, sql)
	if len(l.last) > statementLogSize {
		l.last = append(l.last[:0:0], l.last[len(l.last)-statementLogSize:]...)
	}
}

// Mark returns a position to ask Since about.
func (l *StatementLog) Mark() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// Since returns the statements that completed after mark, oldest first; complete is false when
// more completed than the log remembers.
func (l *StatementLog) Since(mark uint64) (statements []string, complete bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.count - mark
	if n > uint64(len(l.last)) {
		return append([]string(nil), l.last...), false
	}
	return append([]string(nil), l.last[uint64(len(l.last))-n:]...), true
}
