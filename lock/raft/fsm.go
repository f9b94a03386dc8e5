package raft

import (
	"encoding/json"
	"io"
	"sync"

	hraft "github.com/hashicorp/raft"

	"github.com/schemagate/schemagate/lock"
)

// State is the replicated state: how the cluster's migration run stands. It is a hint for
// waiters; the database's version table stays the truth, checked by every replica before it
// reports ready.
type State struct {
	Phase       lock.Phase `json:"phase,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"`
	Migrator    string     `json:"migrator,omitempty"`
	Epoch       int64      `json:"epoch,omitempty"`
	Version     int64      `json:"version,omitempty"`
	Migration   string     `json:"migration,omitempty"`
	Error       string     `json:"error,omitempty"`
	// Index is the Raft log index of the last change.
	Index uint64 `json:"index,omitempty"`
}

// command is one replicated change.
type command struct {
	Op          string `json:"op"` // claim, progress, done, failed
	Replica     string `json:"replica"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Epoch       int64  `json:"epoch,omitempty"`
	Version     int64  `json:"version,omitempty"`
	Migration   string `json:"migration,omitempty"`
	Error       string `json:"error,omitempty"`
}

// fsm applies commands to the State and tells waiters, through onChange.
type fsm struct {
	mu       sync.Mutex
	st       State
	onChange func()
}

var _ hraft.FSM = (*fsm)(nil)

func newFSM(onChange func()) *fsm { return &fsm{onChange: onChange} }

func (f *fsm) Apply(l *hraft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return err
	}
	defer f.onChange()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case "claim":
		f.st = State{Phase: lock.PhaseMigrating, Fingerprint: c.Fingerprint, Migrator: c.Replica, Epoch: c.Epoch}
	case "progress":
		f.st.Version, f.st.Migration = c.Version, c.Migration
	case "done":
		f.st.Phase, f.st.Version, f.st.Migration, f.st.Error = lock.PhaseDone, c.Version, "", ""
	case "failed":
		f.st.Phase, f.st.Migration, f.st.Error = lock.PhaseFailed, c.Migration, c.Error
	}
	f.st.Index = l.Index
	return nil
}

// state returns the current state.
func (f *fsm) state() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.st)
	return snapshot(b), err
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st State
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return err
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	f.onChange()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink hraft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
