// Package verified keeps what verifications run by hand (`pglmon verify`)
// found equal, in a JSON file next to the daemon's audit log, for the
// daemon: a person who puts rows right and verifies them clears the
// findings that stand until then (a failed table copy read from the log, a
// data_divergence of the last scheduled verification) without waiting for
// the next scheduled one.
package verified

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
	"github.com/pglmon/pglmon/internal/verify"
)

// Entry says that a verification that started at Since found Table of the
// subscription equal on both sides; Table "": every table of it.
type Entry struct {
	Subscriber   string    `json:"subscriber"`
	Subscription string    `json:"subscription"`
	Table        string    `json:"table"`
	Since        time.Time `json:"since"`
}

// Key is how the daemon looks an entry up: subscriber/subscription/table.
func (e Entry) Key() string { return e.Subscriber + "/" + e.Subscription + "/" + e.Table }

type file struct {
	Version int     `json:"version"`
	Equal   []Entry `json:"equal"`
}

// Entries is what the run r of a verification that started at started
// shows equal: each table compared whole in checksum mode and found equal,
// and, when whole (every table of the subscription was meant, not one
// named), the subscription when all of them were. A count is no proof
// (it cannot see a changed row), nor is a comparison that started at a key.
func Entries(r verify.Result, started time.Time, whole bool) []Entry {
	var out []Entry
	all := whole && r.Error == "" && len(r.Tables) > 0
	for _, t := range r.Tables {
		if t.Mode != verify.ModeChecksum || t.Error != "" || !t.Equal || t.ResumedFrom != nil {
			all = false
			continue
		}
		out = append(out, Entry{Subscriber: r.Subscriber, Subscription: r.Subscription, Table: t.Table, Since: started})
	}
	if all {
		out = append(out, Entry{Subscriber: r.Subscriber, Subscription: r.Subscription, Since: started})
	}
	return out
}

// Tell records entries (Record) for the daemon whose state directory holds
// path; on a host without that directory there is no daemon to tell, and
// nothing is written.
func Tell(path string, entries []Entry) error {
	if _, err := os.Stat(filepath.Dir(path)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return Record(path, entries)
}

// Record adds entries to the file at path, under a lock (two runs at once
// keep both); of two entries for one table, the later stands.
func Record(path string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	err := atomicfile.Update(path, func(old []byte) ([]byte, error) {
		f, err := parse(path, old)
		if err != nil {
			return nil, err
		}
		byKey := map[string]Entry{}
		for _, e := range append(f.Equal, entries...) {
			if prev, ok := byKey[e.Key()]; !ok || e.Since.After(prev.Since) {
				byKey[e.Key()] = e
			}
		}
		f = file{Version: 1}
		for _, e := range byKey {
			f.Equal = append(f.Equal, e)
		}
		slices.SortFunc(f.Equal, func(a, b Entry) int { return strings.Compare(a.Key(), b.Key()) })
		b, err := json.MarshalIndent(f, "", "  ")
		return append(b, '\n'), err
	})
	if err != nil {
		return fmt.Errorf("record the verification in %s: %w", path, err)
	}
	return nil
}

func parse(path string, b []byte) (file, error) {
	f := file{Version: 1}
	if len(b) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return file{}, fmt.Errorf("%s is not pglmon's JSON: %w", path, err)
	}
	if f.Version != 1 {
		return file{}, fmt.Errorf("%s: version %d, this pglmon reads version 1", path, f.Version)
	}
	return f, nil
}

// Watcher follows the file for the daemon: it reads it again only when it
// changed, and keeps the last good content when it cannot be read.
type Watcher struct {
	Path string

	file  atomicfile.Watcher
	since map[string]time.Time
}

// Since returns, by Entry.Key, when the last verification run by hand that
// found the table (or the whole subscription) equal started; err is set
// (once per change) when the file could not be read, the previous content
// then being kept.
func (w *Watcher) Since() (map[string]time.Time, error) {
	w.file.Path = w.Path
	if !w.file.Changed() {
		return w.since, nil
	}
	b, err := os.ReadFile(w.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return w.since, err
	}
	f, err := parse(w.Path, b)
	if err != nil {
		return w.since, err
	}
	since := map[string]time.Time{}
	for _, e := range f.Equal {
		since[e.Key()] = e.Since
	}
	w.since = since
	return since, nil
}
