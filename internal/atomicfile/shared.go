package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Update changes a file that commands write and the daemon reads, under an
// exclusive lock (path + ".lock", so that two commands run at once do not
// lose each other's change): change gets the current content (nil when
// there is none) and returns the new. The file is replaced atomically with
// mode 0644 (what it holds is no secret) and, when root writes it, owned by
// the owner of its directory (the service's user), which is created when
// missing.
func Update(path string, change func(old []byte) ([]byte, error)) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b, err := change(old)
	if err != nil {
		return err
	}
	// Root writes the file for the service's user: the directory's owner.
	chown := func(tmp string) error {
		if os.Geteuid() != 0 {
			return nil
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			return os.Chown(tmp, int(st.Uid), int(st.Gid))
		}
		return nil
	}
	return Write(path, b, 0o644, chown)
}

// Watcher reads a file again only when it changed (its size or
// modification time), for a daemon that looks at it every cycle.
type Watcher struct {
	Path  string
	stamp string
}

// Changed reports whether the file changed since the last call (the first
// call: true); a file that does not exist is a state of its own.
func (w *Watcher) Changed() bool {
	stamp := Stamp(w.Path)
	if stamp == w.stamp {
		return false
	}
	w.stamp = stamp
	return true
}

// Stamp is the state of the file at path as Watcher tells it apart: its
// size and modification time, "absent", or the error reading them.
func Stamp(path string) string {
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	case errors.Is(err, fs.ErrNotExist):
		return "absent"
	}
	return "error " + err.Error()
}
