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
}

// stateFile is a JSON file replaced whole (written aside, then renamed), so
// a crash leaves the old state or the new one, never half of one.
type stateFile struct{ path string }

// load reads the state; a missing file is an empty state.
func (f *stateFile) load() (verifyState, error) {
	var st verifyState
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return verifyState{}, fmt.Errorf("%s: %w", f.path, err)
	}
	if st.Version != 1 {
		return verifyState{}, fmt.Errorf("%s: version %d, this pglmon reads version 1", f.path, st.Version)
	}
	return st, nil
}

func (f *stateFile) save(st verifyState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(f.path, append(b, '\n'), 0o600, nil)
}
