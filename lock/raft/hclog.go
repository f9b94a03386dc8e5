package raft

import (
	"encoding/json"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// newHCLogger returns an hclog.Logger for hashicorp/raft that writes through log, so that Raft's
// messages come out in schemagate's format. Raft reports every failed heartbeat, and every peer
// going away, as a warning or an error, so all of it goes to debug (with Raft's own level in
// raft_level); schemagate logs the leadership changes that matter itself, at info.
func newHCLogger(log zerolog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      hclog.Debug,
		JSONFormat: true,
		Output:     hcWriter{log: log},
	})
}

// hcWriter turns hclog's JSON lines into zerolog events.
type hcWriter struct{ log zerolog.Logger }

func (w hcWriter) Write(p []byte) (int, error) {
	var entry map[string]any
	if err := json.Unmarshal(p, &entry); err != nil {
		w.log.Debug().Msg(strings.TrimSpace(string(p)))
		return len(p), nil
	}
	msg, _ := entry["@message"].(string)
	level, _ := entry["@level"].(string)
	ev := w.log.Debug().Str("raft_level", level)
	for k, v := range entry {
		if !strings.HasPrefix(k, "@") {
			ev = ev.Interface(k, v)
		}
	}
	if module, ok := entry["@module"].(string); ok {
		ev = ev.Str("module", module)
	}
	ev.Msg(msg)
	return len(p), nil
}
