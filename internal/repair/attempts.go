package repair

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// OutcomeInterrupted is the outcome of an attempt whose log has a "started"
// line and no "finished" line: pglmon stopped in the middle of it, and the
// next `pglmon run` or `pglmon repair` of the subscription finishes it.
const OutcomeInterrupted = "interrupted"

// OutcomeRunning is, as MarkRunning finds, an attempt without "finished"
// line whose last line a process still running on this host wrote.
const OutcomeRunning = "running"

// Attempt is one repair attempt as the audit log tells it: its lines
// (started, started again on resume, finished) joined by their ID.
type Attempt struct {
	ID           string `json:"id"`
	Actor        string `json:"actor"`
	Remedy       string `json:"remedy"`
	Subscription string `json:"subscription,omitempty"`
	Subscriber   string `json:"subscriber,omitempty"`
	Provider     string `json:"provider,omitempty"`
	Slot         string `json:"slot,omitempty"`
	LSN          string `json:"lsn,omitempty"`
	Node         string `json:"node,omitempty"`
	// Started is the time of the first line; Finished of the "finished"
	// line (nil while interrupted).
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	// Outcome is success, failed, refused or interrupted.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// ResumedBy lists the actors that resumed it after an interruption.
	ResumedBy          []string     `json:"resumed_by,omitempty"`
	Steps              []StepResult `json:"steps"`
	DurationMS         int64        `json:"duration_ms"`
	ReplicatingAfterMS int64        `json:"replicating_after_ms,omitempty"`
	Host               string       `json:"host,omitempty"`
	// PID is, for an attempt running now (MarkRunning), the process
	// running it.
	PID int `json:"pid,omitempty"`

	// last is who wrote the attempt's last line, and when.
	last struct {
		host string
		pid  int
		at   time.Time
	}
}

// BadLine is a line of the audit log that is not an entry (a write cut
// short by a crash, or an edit by hand).
type BadLine struct {
	Line int
	Err  error
}

func (b BadLine) Error() string {
	return fmt.Sprintf("line %d is not an audit entry: %v", b.Line, b.Err)
}

// ReadLog reads every entry of the audit log at path, with the lines that
// are not entries. A log that does not exist yet has no entries.
func ReadLog(path string) ([]Entry, []BadLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	var out []Entry
	var bad []BadLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			bad = append(bad, BadLine{n, err})
			continue
		}
		if e.ID == "" || e.Phase == "" {
			bad = append(bad, BadLine{n, errors.New("no id or phase")})
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, bad, fmt.Errorf("read audit log %s: %w", path, err)
	}
	return out, bad, nil
}

// Attempts joins the entries of each attempt, in the order the attempts
// started.
func Attempts(entries []Entry) []Attempt {
	byID := map[string]*Attempt{}
	var order []string
	for _, e := range entries {
		a, ok := byID[e.ID]
		if !ok {
			a = &Attempt{ID: e.ID, Actor: e.Actor, Remedy: e.Remedy, Subscription: e.Subscription, Subscriber: e.Subscriber,
				Provider: e.Provider, Slot: e.Slot, LSN: e.LSN, Node: e.Node, Started: e.Time, Outcome: OutcomeInterrupted, Host: e.Host}
			byID[e.ID] = a
			order = append(order, e.ID)
		}
		switch e.Phase {
		case "started":
			if ok && e.Actor != "" {
				a.ResumedBy = append(a.ResumedBy, e.Actor)
			}
		case "finished":
			t := e.Time
			a.Finished, a.Outcome, a.Reason = &t, e.Outcome, e.Reason
			a.DurationMS, a.ReplicatingAfterMS = e.DurationMS, e.ReplicatingAfterMS
			if e.Host != "" {
				a.Host = e.Host
			}
		}
		if len(e.Steps) > 0 {
			a.Steps = e.Steps
		}
		a.last.host, a.last.pid, a.last.at = e.Host, e.PID, e.Time
	}
	out := make([]Attempt, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	slices.SortStableFunc(out, func(a, b Attempt) int { return a.Started.Compare(b.Started) })
	return out
}
