package repair

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// StepResult is what happened to one step.
type StepResult struct {
	Node   string `json:"node"`
	Action string `json:"action"`
	SQL    string `json:"sql"`
	Args   []any  `json:"args"`
	// Result is ok, skipped (already done), failed or not-run.
	Result     string `json:"result"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Entry is one line of the audit log. Each attempt that executes SQL writes a
// "started" line before its first step and a "finished" line at the end; an
// attempt that is refused writes one "finished" line. A "started" line with no
// "finished" line is a repair interrupted by a crash, finished by the next run.
type Entry struct {
	Time         time.Time `json:"time"`
	ID           string    `json:"id"`
	Phase        string    `json:"phase"`
	Actor        string    `json:"actor"`
	Remedy       string    `json:"remedy"`
	Subscription string    `json:"subscription,omitempty"`
	Subscriber   string    `json:"subscriber,omitempty"`
	Provider     string    `json:"provider,omitempty"`
	Slot         string    `json:"slot,omitempty"`
	// LSN is skip-transaction's commit LSN.
	LSN string `json:"lsn,omitempty"`
	// Node is the node an upgrade prepare or restore worked on.
	Node       string       `json:"node,omitempty"`
	Steps      []StepResult `json:"steps,omitempty"`
	Outcome    string       `json:"outcome,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	DurationMS int64        `json:"duration_ms"`
	// ReplicatingAfterMS is the time from the first step to `replicating`.
	ReplicatingAfterMS int64  `json:"replicating_after_ms,omitempty"`
	Host               string `json:"host,omitempty"`
	PID                int    `json:"pid,omitempty"`
}

// Audit appends entries to a JSON-lines file.
type Audit struct {
	path string
	mu   sync.Mutex
}

// NewAudit returns an audit log at path, creating its directory.
func NewAudit(path string) (*Audit, error) {
	if path == "" {
		return nil, errors.New("repair.audit_log is not set")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create audit log directory: %w", err)
	}
	return &Audit{path: path}, nil
}

// Append writes one entry with a single write and syncs it to disk, so it
// survives a crash right after.
func (a *Audit) Append(e Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Host == "" {
		e.Host, _ = os.Hostname()
	}
	if e.PID == 0 {
		e.PID = os.Getpid()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	f, err := os.OpenFile(a.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return f.Sync()
}

// Entries reads every entry of the log; lines that are not entries (see
// ReadLog) are left out.
func (a *Audit) Entries() ([]Entry, error) {
	entries, _, err := ReadLog(a.path)
	return entries, err
}

// Unfinished returns the repairs that started and never finished.
func (a *Audit) Unfinished() ([]Entry, error) {
	entries, err := a.Entries()
	if err != nil {
		return nil, err
	}
	started := map[string]Entry{}
	var order []string
	for _, e := range entries {
		if !Resumable(e.Remedy) {
			continue
		}
		switch e.Phase {
		case "started":
			if _, ok := started[e.ID]; !ok {
				order = append(order, e.ID)
			}
			started[e.ID] = e
		case "finished", "resumed":
			delete(started, e.ID)
		}
	}
	var out []Entry
	for _, id := range order {
		if e, ok := started[id]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// Entries reads every entry of the audit log at path.
func Entries(path string) ([]Entry, error) { return (&Audit{path: path}).Entries() }
