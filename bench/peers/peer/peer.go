// Package peer holds what the benchmark's peer replicas share: how they name their database
// session and how they log, so that the benchmark reads every tool's replicas the same way.
package peer

import (
	"encoding/json"
	"io"
	"net/url"
	"os"
	"time"
)

// Name is the replica's name, which the benchmark's fleet passes in SCHEMAGATE_REPLICA_ID.
func Name() string { return os.Getenv("SCHEMAGATE_REPLICA_ID") }

// WithApplicationName returns databaseURL with application_name set to app/name, so that
// pg_stat_activity shows which replica a session belongs to and the migration set's
// applied_log records who applied each migration.
func WithApplicationName(databaseURL, app string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("application_name", app+"/"+Name())
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Log writes one JSON line with a microsecond timestamp: {"time", "message", "error"}.
func Log(w io.Writer, message string, err error) {
	e := struct {
		Time    string `json:"time"`
		Message string `json:"message"`
		Error   string `json:"error,omitempty"`
	}{Time: time.Now().Format("2006-01-02T15:04:05.000000Z07:00"), Message: message}
	if err != nil {
		e.Error = err.Error()
	}
	line, _ := json.Marshal(e)
	w.Write(append(line, '\n'))
}
