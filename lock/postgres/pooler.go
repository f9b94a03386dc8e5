package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrTransactionPooler is returned when the database URL leads to a pooler in transaction
// (or statement) mode, such as PgBouncer with pool_mode=transaction. Session advisory locks
// and LISTEN do not work through it.
var ErrTransactionPooler = errors.New("the database URL leads to a connection pooler in transaction mode " +
	"(such as PgBouncer with pool_mode=transaction): session advisory locks and LISTEN do not work through it; " +
	"point the database URL at PostgreSQL itself or at a session-mode pool")

// checkPooler refuses a connection that goes through a pooler in transaction or statement mode.
// pid is what pg_backend_pid() returned on conn.
//
// PostgreSQL tells a client its backend pid at start-up; a pooler such as PgBouncer makes one up
// instead. When the two agree there is no pooler. When they differ, a second client tells
// session pooling (our server connection stays ours) from transaction pooling (the server
// connection we just used is handed to the next client that asks, here the second one).
// All queries here use the simple protocol: prepared statements do not survive transaction
// pooling, and the check must give its answer, not fail on them.
func (s *Session) checkPooler(ctx context.Context, conn *pgx.Conn, pid int32) error {
	if uint32(pid) == conn.PgConn().PID() {
		return nil
	}

	second, err := pgx.ConnectConfig(ctx, s.pgcfg.Copy())
	if err != nil {
		return fmt.Errorf("check for a connection pooler: %w", err)
	}
	defer second.Close(context.WithoutCancel(ctx))
	if _, err := second.Exec(ctx, "BEGIN", pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("check for a connection pooler: %w", err)
	}
	otherPID, err := backendPID(ctx, second)
	if err != nil {
		return err
	}
	againPID, err := backendPID(ctx, conn)
	if err != nil {
		return err
	}
	if otherPID == pid || againPID != pid {
		return ErrTransactionPooler
	}
	s.proxyMsg.Do(func() {
		s.log.Info().Str("database", s.target).
			Msg("connected through a session-mode pooler: the lock works, but how fast a vanished migrator " +
				"loses it depends on the pooler's own keepalive settings")
	})
	return nil
}

func backendPID(ctx context.Context, conn *pgx.Conn) (int32, error) {
	var pid int32
	err := conn.QueryRow(ctx, "SELECT pg_backend_pid()", pgx.QueryExecModeSimpleProtocol).Scan(&pid)
	if err != nil {
		return 0, fmt.Errorf("read backend pid: %w", err)
	}
	return pid, nil
}
