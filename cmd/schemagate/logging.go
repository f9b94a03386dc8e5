package main

import (
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/schemagate/schemagate/internal/redact"
)

// newLogger builds the process's one logger: JSON, or human console output when format is
// "console" (or "auto" and stderr is a terminal).
func newLogger(w io.Writer, format, level, replica string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	f, ok := w.(interface{ Fd() uintptr })
	terminal := ok && isatty.IsTerminal(f.Fd())
	if format == "auto" {
		format = "json"
		if terminal {
			format = "console"
		}
	}
	out := w
	if format == "console" {
		// Colours only for a person at a terminal: escape sequences garble a file or a pipe.
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !terminal}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Str("replica", replica).Logger()
}

// scrubber hides secrets in everything written through it (see package redact). Secrets are
// never formatted on purpose; this is the last line of defence, for a message from a library
// or a migrate command that quotes what it was given, in any format: JSON log lines escape a
// password's quotes and backslashes, and the redactor knows those spellings too.
type scrubber struct {
	mu sync.Mutex
	w  io.Writer
	r  *redact.Redactor
}

func newScrubber(w io.Writer) *scrubber { return &scrubber{w: w} }

// use makes r the redactor of everything written from now on.
func (s *scrubber) use(r *redact.Redactor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r = r
}

func (s *scrubber) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(s.r.Bytes(p)); err != nil {
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
