package maintenance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUpdateLoadAndExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "maintenance.json")
	if ws, err := Load(path); err != nil || ws != nil {
		t.Fatalf("no file: %v, %v", ws, err)
	}
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	add := func(w Window) func([]Window) ([]Window, error) {
		return func(ws []Window) ([]Window, error) { return append(ws, w), nil }
	}
	if _, err := Update(path, now, add(Window{Node: "b", Since: now, Until: now.Add(2 * time.Hour), Reason: "upgrade", By: "alice@h"})); err != nil {
		t.Fatal(err)
	}
	if _, err := Update(path, now, add(Window{Node: "a", Since: now, Until: now.Add(time.Hour), Reason: "reboot", By: "bob@h"})); err != nil {
		t.Fatal(err)
	}
	ws, err := Load(path)
	if err != nil || len(ws) != 2 || ws[0].Node != "a" || ws[1].Node != "b" {
		t.Fatalf("after two starts: %+v, %v", ws, err)
	}
	act := ActiveAt(ws, now.Add(90*time.Minute))
	if _, ok := act["a"]; ok || act["b"].Reason != "upgrade" {
		t.Errorf("active 90 min later: %+v", act)
	}
	if len(ActiveAt(ws, now.Add(-time.Minute))) != 0 {
		t.Error("active before it started")
	}
	// A later update drops what expired.
	ws, err = Update(path, now.Add(90*time.Minute), func(ws []Window) ([]Window, error) { return ws, nil })
	if err != nil || len(ws) != 1 || ws[0].Node != "b" {
		t.Errorf("expired window kept: %+v, %v", ws, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v: the daemon must be able to read it", fi.Mode(), err)
	}
	// A failing change writes nothing.
	if _, err := Update(path, now, func([]Window) ([]Window, error) { return nil, fmt.Errorf("no") }); err == nil {
		t.Error("a failing change succeeded")
	}
	if ws, _ := Load(path); len(ws) != 1 {
		t.Errorf("a failing change was written: %+v", ws)
	}
}

// Two writers at once: both windows are kept (the file is locked).
func TestConcurrentUpdatesKeepBoth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maintenance.json")
	now := time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := Update(path, now, func(ws []Window) ([]Window, error) {
				return append(ws, Window{Node: fmt.Sprintf("n%02d", i), Since: now, Until: now.Add(time.Hour)}), nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ws, err := Load(path); err != nil || len(ws) != 20 {
		t.Errorf("%d windows, want 20 (%v)", len(ws), err)
	}
}

func TestWatcherKeepsTheLastGoodContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "maintenance.json")
	w := Watcher{Path: path}
	if ws, err := w.Windows(); err != nil || len(ws) != 0 {
		t.Fatalf("no file: %v %v", ws, err)
	}
	now := time.Now()
	if _, err := Update(path, now, func(ws []Window) ([]Window, error) {
		return append(ws, Window{Node: "a", Since: now, Until: now.Add(time.Hour)}), nil
	}); err != nil {
		t.Fatal(err)
	}
	if ws, err := w.Windows(); err != nil || len(ws) != 1 {
		t.Fatalf("after a start: %v %v", ws, err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, err := w.Windows()
	if err == nil || !strings.Contains(err.Error(), path) || len(ws) != 1 {
		t.Errorf("a broken file: %v %v (want the last windows and an error naming the file)", ws, err)
	}
	// The same file is not read again: no second error, the same windows.
	if ws, err := w.Windows(); err != nil || len(ws) != 1 {
		t.Errorf("the same broken file again: %v %v", ws, err)
	}
}
