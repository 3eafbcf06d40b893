package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := Write(path, []byte("one\n"), 0o600, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("two\n"), 0o644, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if err != nil || string(b) != "two\n" || fi.Mode().Perm() != 0o644 {
		t.Errorf("content %q mode %v err %v", b, fi.Mode(), err)
	}
	// A failing prepare leaves the old content and no temporary file.
	if err := Write(path, []byte("three\n"), 0o644, func(string) error { return errors.New("no") }); err == nil {
		t.Error("a failing prepare succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Errorf("after a failed write: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}
