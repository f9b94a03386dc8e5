package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// newLogger builds the process's one logger: JSON, or human console output when format is
// "console" (or "auto" and stderr is a terminal).
func newLogger(w io.Writer, format, level, replica string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	if format == "auto" {
		format = "json"
		if f, ok := w.(interface{ Fd() uintptr }); ok && isatty.IsTerminal(f.Fd()) {
			format = "console"
		}
	}
	out := w
	if format == "console" {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Str("replica", replica).Logger()
}

func nopLogger() zerolog.Logger { return zerolog.Nop() }

// scrubber replaces secrets in everything written through it. Secrets are never formatted on
// purpose; this is the second line of defence, for a message from a library that quotes what it
// was given.
type scrubber struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
}

func newScrubber(w io.Writer) *scrubber { return &scrubber{w: w} }

// hide adds secrets to scrub. Very short strings are skipped: replacing them would garble
// ordinary text while protecting little.
func (s *scrubber) hide(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, secret := range secrets {
		if len(secret) >= 4 {
			s.secrets = append(s.secrets, []byte(secret))
		}
	}
}

func (s *scrubber) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := p
	for _, secret := range s.secrets {
		out = bytes.ReplaceAll(out, secret, []byte("********"))
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Fd lets the terminal check see through the scrubber.
func (s *scrubber) Fd() uintptr {
	if f, ok := s.w.(*os.File); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}

// messageLine squeezes an error message onto one line.
func messageLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
