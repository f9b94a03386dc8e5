package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/coordinator"
)

// Handler routes the probe, status and metrics endpoints on a mux of its own:
//
//	GET /livez    200 while the process runs; never touches the database
//	GET /readyz   200 when the schema satisfies this replica, 503 otherwise (?verbose: one line per check)
//	GET /healthz  the same as /readyz, for tools that only know that name
//	GET /status   the status document (as `schemagate status --output json`), from memory
//	GET /metrics  Prometheus metrics from reg
func Handler(m *Monitor, reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if verbose(r) {
			fmt.Fprint(w, "[+]process ok\nlivez check passed\n")
			return
		}
		fmt.Fprint(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", m.readyz)
	mux.HandleFunc("GET /healthz", m.readyz)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(m.state.Load().status)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func verbose(r *http.Request) bool { return r.URL.Query().Has("verbose") }

// readyz answers from the latest snapshot, in the Kubernetes API server's style: a status code
// for machines, and with ?verbose a [+]/[-] line per check for people.
func (m *Monitor) readyz(w http.ResponseWriter, r *http.Request) {
	s := m.state.Load().snap
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !s.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if !verbose(r) {
		if s.Ready {
			fmt.Fprint(w, "ok\n")
		} else {
			fmt.Fprintf(w, "not ready: %s\n", s.Reason)
		}
		return
	}
	var b strings.Builder
	switch {
	case s.Status == nil && s.Unreachable != nil:
		fmt.Fprintf(&b, "[-]database failed: unreachable since %s: %v\n", s.UnreachableSince.Format(time.TimeOnly), s.Unreachable)
	case s.Status == nil:
		b.WriteString("[-]database failed: not read yet\n")
	case s.Unreachable != nil:
		fmt.Fprintf(&b, "[+]database ok: unreachable for %s; the verdict stands from the read at %s\n",
			time.Since(s.UnreachableSince).Round(time.Second), s.ReadAt.Format(time.TimeOnly))
	default:
		fmt.Fprintf(&b, "[+]database ok: read %s ago\n", time.Since(s.ReadAt).Round(time.Millisecond))
	}
	switch {
	case s.Ready:
		fmt.Fprintf(&b, "[+]schema ok: %s\nreadyz check passed\n", s.Reason)
	case s.Phase == coordinator.PhaseDisagrees && s.Status != nil:
		fmt.Fprintf(&b, "[+]schema ok: %s\n[-]fleet failed: %s\nreadyz check failed\n", s.Status.Describe(), s.Reason)
	default:
		fmt.Fprintf(&b, "[-]schema failed: %s\nreadyz check failed\n", s.Reason)
	}
	w.Write([]byte(b.String()))
}

// Server is the HTTP server of the probes and metrics.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log zerolog.Logger
}

// Listen binds addr now, so that a port already in use is an error at start, not later.
func Listen(addr string, h http.Handler, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	return &Server{srv: srv, ln: ln, log: log}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then shuts down, waiting at most grace for requests in flight.
func (s *Server) Serve(ctx context.Context, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info().Str("listen", s.Addr()).Msg("serving /livez, /readyz, /status and /metrics")
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := s.srv.Shutdown(shutdown); err != nil {
		s.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
