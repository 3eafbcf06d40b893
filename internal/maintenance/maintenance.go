// Package maintenance keeps maintenance windows: nodes under planned work
// (a major-version upgrade, a parameter change and reboot) until a time,
// with a reason and who declared them, in a JSON file that `pglmon
// maintenance` writes and the daemon and `pglmon status` read. While a node
// is in one, the daemon neither repairs the subscriptions it serves or
// subscribes nor posts them to Slack; it still probes, diagnoses, logs and
// exports everything.
package maintenance

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
)

// Window is one node's maintenance.
type Window struct {
	Node   string    `json:"node"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	// By is who declared it: user@host.
	By string `json:"by"`
}

// Active reports whether the window holds at t.
func (w Window) Active(t time.Time) bool { return !t.Before(w.Since) && t.Before(w.Until) }

type file struct {
	Windows []Window `json:"windows"`
}

// Load reads the windows in path; a file that does not exist holds none.
// An error names the file.
func Load(path string) ([]Window, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the maintenance file %s: %w", path, err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("the maintenance file %s is not pglmon's JSON: %w", path, err)
	}
	return f.Windows, nil
}

// ActiveAt returns the windows that hold at t, by node.
func ActiveAt(ws []Window, t time.Time) map[string]Window {
	out := map[string]Window{}
	for _, w := range ws {
		if w.Active(t) {
			out[w.Node] = w
		}
	}
	return out
}

// Declarer is who runs this process, as user@host.
func Declarer() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if s := os.Getenv("SUDO_USER"); s != "" {
		name = s
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// Update changes the windows in path under an exclusive lock: change gets
// the windows still active at now (expired ones are dropped) and returns
// the new list. The file is replaced atomically, readable by the daemon
// (mode 0644; its content is no secret) and, when written by root, owned
// by the owner of its directory (the service's user).
func Update(path string, now time.Time, change func([]Window) ([]Window, error)) ([]Window, error) {
	var ws []Window
	err := atomicfile.Update(path, func([]byte) ([]byte, error) {
		var err error
		if ws, err = Load(path); err != nil {
			return nil, err
		}
		ws = slices.DeleteFunc(ws, func(w Window) bool { return !now.Before(w.Until) })
		if ws, err = change(ws); err != nil {
			return nil, err
		}
		slices.SortFunc(ws, func(a, b Window) int { return cmp.Compare(a.Node, b.Node) })
		b, err := json.MarshalIndent(file{Windows: ws}, "", "  ")
		return append(b, '\n'), err
	})
	if err != nil {
		return nil, fmt.Errorf("update the maintenance file %s: %w", path, err)
	}
	return ws, nil
}

// Watcher follows the maintenance file for the daemon: it reads the file
// again only when it changed, and keeps the last good content when it
// cannot be read.
type Watcher struct {
	Path string

	file    atomicfile.Watcher
	windows []Window
}

// Windows returns the windows in the file, reading it again when it
// changed; err is set (once per change) when it could not be read, the
// previous windows then being kept.
func (w *Watcher) Windows() ([]Window, error) {
	w.file.Path = w.Path
	if !w.file.Changed() {
		return w.windows, nil
	}
	got, err := Load(w.Path)
	if err != nil {
		return w.windows, err
	}
	w.windows = got
	return got, nil
}
