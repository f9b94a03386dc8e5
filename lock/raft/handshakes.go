package raft

import (
	"container/list"
	"net"
	"sync"
	"time"
)

// authTimeout bounds the TLS handshake of an accepted connection and its first byte: until
// then the peer is unknown, and holds a goroutine and a descriptor. A member needs a few
// milliseconds.
const authTimeout = 2 * time.Second

// maxHandshakes is how many accepted connections may be authenticating at once.
const maxHandshakes = 64

// The accept loop's pause after a failed accept doubles from minAcceptPause to maxAcceptPause,
// as net/http's Server does.
const (
	minAcceptPause = 5 * time.Millisecond
	maxAcceptPause = time.Second
)

// handshakes holds the accepted connections that have not authenticated yet, at most max of
// them, oldest first. A connection beyond max closes the oldest one: connections that never
// authenticate (a scan, a flood) each lose their place to the next ones, so they cannot hold
// the port shut, while a member, which authenticates within milliseconds, completes unless
// max newer connections arrive meanwhile.
type handshakes struct {
	max     int
	mu      sync.Mutex
	pending list.List // of *handshake
	closed  bool
}

// handshake is one accepted connection being authenticated.
type handshake struct {
	conn    net.Conn
	el      *list.Element
	evicted bool // closed by admit or closeAll
}

// admit records conn as being authenticated. With max already pending, it evicts the oldest
// and returns it, closed; once closeAll ran, it evicts conn itself.
func (h *handshakes) admit(conn net.Conn) (hs, evicted *handshake) {
	hs = &handshake{conn: conn}
	h.mu.Lock()
	switch {
	case h.closed:
		hs.evicted, evicted = true, hs
	case h.pending.Len() >= h.max:
		evicted = h.pending.Remove(h.pending.Front()).(*handshake)
		evicted.evicted = true
		fallthrough
	default:
		hs.el = h.pending.PushBack(hs)
	}
	h.mu.Unlock()
	if evicted != nil {
		evicted.conn.Close()
	}
	return hs, evicted
}

// done removes hs once its connection authenticated or failed to. It reports whether hs was
// evicted meanwhile: its connection is closed then, and must not be served.
func (h *handshakes) done(hs *handshake) (evicted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !hs.evicted {
		h.pending.Remove(hs.el)
	}
	return hs.evicted
}

// closeAll closes every pending connection, and every one admitted from now on.
func (h *handshakes) closeAll() {
	h.mu.Lock()
	h.closed = true
	var conns []net.Conn
	for e := h.pending.Front(); e != nil; e = e.Next() {
		hs := e.Value.(*handshake)
		hs.evicted = true
		conns = append(conns, hs.conn)
	}
	h.pending.Init()
	h.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// throttle lets a repeated warning through at most once per period.
type throttle struct {
	period time.Duration
	mu     sync.Mutex
	last   time.Time
	held   int
}

// allow reports whether to log now and, if so, how many it held back since it last did.
func (t *throttle) allow() (ok bool, held int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && time.Since(t.last) < t.period {
		t.held++
		return false, 0
	}
	held, t.held, t.last = t.held, 0, time.Now()
	return true, held
}
