package raft

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/rs/zerolog"
)

// The first byte a client sends after the TLS handshake says what the connection is for.
const (
	kindRaft  byte = 'R' // a Raft RPC stream
	kindHello byte = 'H' // one hello: the server answers with its view, then closes
	// kindWatch is a stream of hellos: the server sends its view at once, again each time its
	// state or its leader changes, and at least every watchTimeout, until either side closes;
	// the client acknowledges each, and shows its presence entry on it (watch.go). It is how a
	// member outside the configuration follows the cluster without polling, and without a
	// handshake per change.
	kindWatch byte = 'S'
	// kindProgress is a hello from a leader checking how far a voter has applied: answered
	// like one, but it is not a follower polling, so the voter does not linger for it.
	kindProgress byte = 'P'
	// kindFleet asks for the presence entries the server holds (see presence.go): answered
	// with the list, then closed.
	kindFleet byte = 'F'
)

// handshakeTimeout bounds a dial and its TLS handshake, a hello's answer, and a watch's write.
// (An accepted connection has authTimeout to authenticate.)
const handshakeTimeout = 5 * time.Second

// stream is the Raft transport's StreamLayer: TLS connections authenticated by the cluster key,
// sharing one port with the hello protocol.
type stream struct {
	ln        net.Listener
	creds     *credentials
	advertise net.Addr
	localIP   net.IP
	hello     func() hello
	view      func(last *hello, gone <-chan struct{}) (hello, bool)
	log       zerolog.Logger
	// roster holds this node's presence entry and those of the members watching it.
	roster roster

	conns      chan net.Conn
	handshakes handshakes
	closeOnce  sync.Once
	closed     chan struct{}
	wg         sync.WaitGroup
	// Warnings of refused and dropped connections and of failed accepts, each at most
	// every few seconds: a flood must not flood the log too.
	refusedLog, droppedLog, acceptLog throttle
	// lastHello is when this node last answered a hello (UnixNano), a leader's progress
	// checks aside; watching counts the watches held open: followers still following;
	// watches counts every watch this node has served.
	lastHello atomic.Int64
	watching  atomic.Int64
	watches   atomic.Int64
}

var _ hraft.StreamLayer = (*stream)(nil)

func newStream(listen string, advertise *net.TCPAddr, creds *credentials, helloFn func() hello,
	viewFn func(last *hello, gone <-chan struct{}) (hello, bool), log zerolog.Logger) (*stream, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("raft-listen: %w", err)
	}
	s := &stream{ln: ln, creds: creds, advertise: advertise, localIP: advertise.IP, hello: helloFn, view: viewFn, log: log,
		conns: make(chan net.Conn), closed: make(chan struct{}), handshakes: handshakes{max: maxHandshakes},
		refusedLog: throttle{period: 10 * time.Second}, droppedLog: throttle{period: 5 * time.Second},
		acceptLog: throttle{period: 5 * time.Second}}
	if advertise.IP.IsUnspecified() {
		s.localIP = nil
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// acceptLoop serves each accepted connection until the stream closes. A failed accept (the
// process or the system out of descriptors, a connection aborted before it was accepted) is
// retried after a pause that doubles from minAcceptPause to maxAcceptPause: a member that runs
// out of descriptors for a while serves again once it has some.
func (s *stream) acceptLoop() {
	defer s.wg.Done()
	var pause time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, minAcceptPause), maxAcceptPause)
			s.acceptFailed(err, pause)
			select {
			case <-time.After(pause):
				continue
			case <-s.closed:
				return
			}
		}
		pause = 0
		hs, evicted := s.handshakes.admit(raw)
		if evicted == hs { // closing
			continue
		}
		if evicted != nil {
			s.dropped(evicted.conn.RemoteAddr())
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(hs)
		}()
	}
}

// serve authenticates one accepted connection and routes it by its first byte.
func (s *stream) serve(hs *handshake) {
	conn := tls.Server(hs.conn, s.creds.server())
	conn.SetDeadline(time.Now().Add(authTimeout))
	var kind [1]byte
	err := conn.Handshake()
	refused := err != nil
	if err == nil {
		_, err = io.ReadFull(conn, kind[:])
	}
	if evicted := s.handshakes.done(hs); evicted || err != nil {
		if refused && !evicted {
			s.refused(hs.conn.RemoteAddr(), err)
		}
		hs.conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	switch kind[0] {
	case kindRaft:
		select {
		case s.conns <- conn:
		case <-s.closed:
			conn.Close()
		}
	case kindHello, kindProgress:
		if kind[0] == kindHello {
			s.lastHello.Store(time.Now().UnixNano())
		}
		conn.SetDeadline(time.Now().Add(handshakeTimeout))
		json.NewEncoder(conn).Encode(s.hello())
		conn.Close()
	case kindWatch:
		s.serveWatch(conn)
	case kindFleet:
		conn.SetDeadline(time.Now().Add(handshakeTimeout))
		json.NewEncoder(conn).Encode(s.roster.entries())
		conn.Close()
	default:
		conn.Close()
	}
}

// refused logs a peer that failed to authenticate, at most every 10 s.
func (s *stream) refused(from net.Addr, err error) {
	if ok, _ := s.refusedLog.allow(); ok {
		s.log.Warn().Str("from", from.String()).Str("reason", err.Error()).
			Msg("refused a Raft connection: the peer does not hold this cluster's secret, or belongs to another release")
	}
}

// dropped logs, at most every 5 s, that a connection still authenticating was closed to make
// room for a newer one.
func (s *stream) dropped(from net.Addr) {
	if ok, held := s.droppedLog.allow(); ok {
		s.log.Warn().Str("from", from.String()).Int("limit", maxHandshakes).Int("suppressed", held).
			Msg("dropped a Raft connection that had not authenticated yet: too many connections were authenticating at once (a scan or a flood of the Raft port?)")
	}
}

// acceptFailed logs, at most every 5 s, that the Raft port could not accept a connection.
func (s *stream) acceptFailed(err error, pause time.Duration) {
	if ok, held := s.acceptLog.allow(); ok {
		s.log.Warn().Err(err).Str("retry_in", pause.String()).Int("suppressed", held).
			Msg("the Raft port cannot accept connections (out of file descriptors?); retrying")
	}
}

// Accept hands Raft the next authenticated Raft connection.
func (s *stream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *stream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.ln.Close()
		s.handshakes.closeAll()
	})
	return err
}

// wait waits for the accept loop and the connections being authenticated to finish.
func (s *stream) wait() { s.wg.Wait() }

func (s *stream) Addr() net.Addr { return s.advertise }

// Dial opens an authenticated Raft connection to address.
func (s *stream) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(context.Background(), string(address), kindRaft, timeout)
}

func (s *stream) dial(ctx context.Context, address string, kind byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if s.localIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: s.localIP}
	}
	raw, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, s.creds.client())
	conn.SetDeadline(within(ctx, timeout))
	// A peer that is frozen (SIGSTOP) still accepts the connection in its kernel but never
	// answers the handshake: ctx bounds the wait, not only the timeout.
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("authenticate to %s: %w", address, err)
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// askHello asks the node at address for its view.
func (s *stream) askHello(ctx context.Context, address string) (hello, error) {
	return s.ask(ctx, address, kindHello)
}

// askProgress asks the voter at address for its view, as its leader.
func (s *stream) askProgress(ctx context.Context, address string) (hello, error) {
	return s.ask(ctx, address, kindProgress)
}

// askFleet asks the member at address for the presence entries it holds.
func (s *stream) askFleet(ctx context.Context, address string) ([]shown, error) {
	var entries []shown
	err := s.request(ctx, address, kindFleet, "presence entries", &entries)
	return entries, err
}

func (s *stream) ask(ctx context.Context, address string, kind byte) (hello, error) {
	var h hello
	if err := s.request(ctx, address, kind, "hello", &h); err != nil {
		return hello{}, err
	}
	return h, nil
}

// request opens a connection of kind to address and decodes its one answer, what, into v.
func (s *stream) request(ctx context.Context, address string, kind byte, what string, v any) error {
	conn, err := s.dial(ctx, address, kind, handshakeTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(within(ctx, handshakeTimeout))
	if err := json.NewDecoder(conn).Decode(v); err != nil {
		return fmt.Errorf("%s from %s: %w", what, address, err)
	}
	return nil
}

// within is the deadline d from now, or ctx's deadline when that comes first.
func within(ctx context.Context, d time.Duration) time.Time {
	deadline := time.Now().Add(d)
	if c, ok := ctx.Deadline(); ok && c.Before(deadline) {
		return c
	}
	return deadline
}
