package raft

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// A watch is how a member outside the Raft configuration follows the cluster: one
// authenticated connection to a voter, over which the voter sends its view at once, again each
// time its state or leader changes, and at least every watchTimeout. The watcher answers every
// view with one line: an acknowledgement, which tells the voter that the watcher is still
// there, and which carries the watcher's presence entry when it shows a new one. The voter
// holds that entry for as long as the watch lasts (presence.go).

// watchTimeout is the longest a watch goes without a view.
const watchTimeout = 10 * time.Second

// watchSilence is how long either end of a watch waits to hear from the other before it takes
// the other for gone (cut off, frozen): a view comes at least every watchTimeout, and its
// acknowledgement right after it.
const watchSilence = watchTimeout + handshakeTimeout

// maxWatchLine bounds one line a watcher sends, and so the presence entry a voter holds for
// each watch.
const maxWatchLine = 64 << 10

// upLine is one line a watcher sends: an acknowledgement of a view, or, with Show, its
// presence entry, newly shown or sent again on a new watch.
type upLine struct {
	Show *shown `json:"show,omitempty"`
}

// serveWatch streams this node's views to a watcher until it goes away or the node closes,
// and holds the presence entry the watcher shows for as long as the watch lasts.
func (s *stream) serveWatch(conn net.Conn) {
	s.watches.Add(1)
	s.watching.Add(1)
	defer s.watching.Add(-1)
	id := s.roster.open()
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		s.readWatcher(conn, id)
	}()
	defer func() {
		conn.Close()
		<-gone // no entry held after the drop
		s.roster.drop(id)
	}()
	enc := json.NewEncoder(conn)
	var last *hello
	for {
		h, more := s.view(last, gone)
		select {
		case <-gone:
			return
		default:
		}
		conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
		if err := enc.Encode(h); err != nil || !more {
			return
		}
		last = &h
	}
}

// readWatcher reads a watcher's lines until the watch ends, and holds the presence entry the
// watcher shows as watch id's. It returns when the watcher closes, sends a line that is too
// long or not one, or sends nothing for watchSilence.
func (s *stream) readWatcher(conn net.Conn, id uint64) {
	r := bufio.NewReader(conn)
	for {
		conn.SetReadDeadline(time.Now().Add(watchSilence))
		line, err := readLine(r, maxWatchLine)
		if err != nil {
			return
		}
		var l upLine
		if err := json.Unmarshal(line, &l); err != nil {
			return
		}
		if l.Show != nil {
			s.roster.hold(id, *l.Show)
		}
	}
}

// errLongLine is readLine's answer to a line longer than it allows.
var errLongLine = errors.New("line too long")

// readLine reads one line of at most limit bytes, newline included.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, errLongLine
		}
		line = append(line, frag...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// upstream is a watcher's end of a watch, for what it sends: acknowledgements, from the
// watch's goroutine, and presence entries, from Show.
type upstream struct {
	mu   sync.Mutex
	conn net.Conn
	enc  *json.Encoder
}

// send writes one line, by deadline.
func (u *upstream) send(l upLine, deadline time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.conn.SetWriteDeadline(deadline)
	return u.enc.Encode(l)
}

// watchViews hands see each view the node at address streams, until see returns false, the
// stream ends (an error says why) or ctx is done, and acknowledges each view see keeps
// watching after. opened, when set, is handed the watch's upstream as soon as the watch is
// open; the upstream is closed when watchViews returns.
func (s *stream) watchViews(ctx context.Context, address string, opened func(*upstream) error, see func(hello) bool) error {
	conn, err := s.dial(ctx, address, kindWatch, handshakeTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	up := &upstream{conn: conn, enc: json.NewEncoder(conn)}
	if opened != nil {
		if err := opened(up); err != nil {
			return fmt.Errorf("watch %s: %w", address, err)
		}
	}
	dec := json.NewDecoder(conn)
	for {
		conn.SetReadDeadline(time.Now().Add(watchSilence))
		var h hello
		if err := dec.Decode(&h); err != nil {
			return fmt.Errorf("watch %s: %w", address, err)
		}
		if !see(h) {
			return nil
		}
		if err := up.send(upLine{}, time.Now().Add(handshakeTimeout)); err != nil {
			return fmt.Errorf("watch %s: acknowledge a view: %w", address, err)
		}
	}
}
