package postgres

import (
	"context"
	"net"
	"syscall"
)

// dialer returns the function pgx dials with. On TCP it turns on the client's own keepalives and
// TCP_USER_TIMEOUT (where the platform has it) with the same bounds the server gets, so that a
// replica also notices a vanished server in seconds instead of hanging in a read for hours.
func dialer(cfg Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     cfg.KeepaliveIdle,
			Interval: cfg.KeepaliveInterval,
			Count:    cfg.KeepaliveCount,
		},
		Control: func(network, _ string, raw syscall.RawConn) error {
			if network != "tcp" && network != "tcp4" && network != "tcp6" {
				return nil
			}
			return setUserTimeout(raw, cfg.TCPUserTimeout)
		},
	}
	return d.DialContext
}
