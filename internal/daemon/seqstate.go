package daemon

import (
	"maps"

	"github.com/pglmon/pglmon/internal/monitor"
)

// sequenceState is what the daemon keeps across restarts of the sequences
// a subscriber lacks its provider's value of (monitor.SequencesShort):
// without it, a restart would put sequence_behind off by its grace again.
type sequenceState struct {
	Version int `json:"version"`
	// Short is by subscriber/subscription, then by sequence.
	Short map[string]map[string]monitor.SequenceShort `json:"sequences_short,omitempty"`
}

func (s sequenceState) version() int { return s.Version }

// sequenceKeeper writes the monitor's sequence state to its file when it
// changed.
type sequenceKeeper struct {
	kept map[string]map[string]monitor.SequenceShort // as last written or read
	err  string                                      // the last write's error, logged once
}

// restore reads the state file into d's monitor; one that cannot be read
// is moved aside.
func (k *sequenceKeeper) restore(d *Daemon, path string) {
	st, err := loadState[sequenceState](path)
	if err != nil {
		d.setAside("sequence", path, err)
		return
	}
	d.mon.RestoreSequencesShort(st.Short)
	k.kept = st.Short
}

// keep writes d's monitor's sequence state when it changed since last
// written.
func (k *sequenceKeeper) keep(d *Daemon) {
	short := d.mon.SequencesShort()
	if maps.EqualFunc(short, k.kept, func(a, b map[string]monitor.SequenceShort) bool {
		return maps.EqualFunc(a, b, func(x, y monitor.SequenceShort) bool { return x.Value == y.Value && x.Since.Equal(y.Since) })
	}) {
		return
	}
	path := d.cfg.Load().SequenceStateFile()
	if err := saveState(path, sequenceState{Version: 1, Short: short}); err != nil {
		if k.err != err.Error() {
			d.log.Warn("cannot keep since when sequences have been behind: a restart puts sequence_behind off again", "file", path, keyError, err.Error())
		}
		k.err = err.Error()
		return
	}
	k.kept, k.err = short, ""
}
