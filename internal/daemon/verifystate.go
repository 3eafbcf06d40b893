package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
)

// verifyState is what the verifier keeps across restarts: its findings,
// when its last cycle finished, and how far an interrupted cycle got.
type verifyState struct {
	Version int       `json:"version"`
	Last    time.Time `json:"last_finished"`
	// Complete is when the last cycle that verified every subscription finished.
	Complete time.Time   `json:"last_complete"`
	Results  []subResult `json:"findings,omitempty"`
	Cycle    *cycle      `json:"cycle,omitempty"`
	// Equal is verifier.equal: when the last verification that found a
	// table (or every table of a subscription) equal started. What clears
	// a failed table copy read from the log; kept so that a restart does
	// not bring such a finding back.
	Equal map[string]time.Time `json:"equal_since,omitempty"`
}

func (s verifyState) version() int { return s.Version }

// stateFile is a JSON file replaced whole (written aside, then renamed), so
// a crash leaves the old state or the new one, never half of one.
type stateFile struct{ path string }

// load reads the state; a missing file is an empty state.
func (f *stateFile) load() (verifyState, error) { return loadState[verifyState](f.path) }

func (f *stateFile) save(st verifyState) error { return saveState(f.path, st) }

// loadState reads a state file of version 1; a missing file is the zero T.
func loadState[T interface{ version() int }](path string) (T, error) {
	var st, zero T
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	if v := st.version(); v != 1 {
		return zero, fmt.Errorf("%s: version %d, this pglmon reads version 1", path, v)
	}
	return st, nil
}

// saveState replaces the state file at path with st (mode 0600).
func saveState(path string, st any) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600, nil)
}
