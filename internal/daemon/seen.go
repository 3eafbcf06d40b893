package daemon

import (
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/seen"
)

// seenWatch remembers the subscriptions the daemon sees (package seen) and
// reports as subscription_missing one its subscriber no longer has.
type seenWatch struct {
	file     atomicfile.Watcher           // read again when pglmon forget changed it
	subs     map[string]seen.Subscription // what the file holds
	lastSeen map[string]time.Time         // by subscriber/subscription, this run
	told     map[string]bool              // missing ones already logged
	err      string                       // the file's last error, logged once
}

func (w *seenWatch) annotate(d *Daemon, r *diagnose.Report) {
	now := time.Now()
	if w.lastSeen == nil {
		w.lastSeen, w.told = map[string]time.Time{}, map[string]bool{}
	}
	for _, s := range r.Subscriptions {
		if s.Status != diagnose.StatusMissing && s.Status != "" {
			key := s.Subscriber + "/" + s.Name
			w.lastSeen[key] = now
			delete(w.told, key)
		}
	}
	path := d.cfg.Load().SeenFile()
	if w.file.Path != path {
		w.file, w.subs = atomicfile.Watcher{Path: path}, nil
	}
	var err error
	if w.file.Changed() || w.subs == nil {
		w.subs, err = seen.Read(path)
	}
	if err == nil && seen.Changes(w.subs, *r) {
		w.subs, err = seen.Note(path, *r, now) // read again next cycle: a forget may have come in between
	}
	if err != nil {
		if w.err != err.Error() {
			d.log.Error("cannot keep the subscriptions seen: one dropped would not be reported", "file", path, keyError, err.Error())
		}
		w.err, w.subs = err.Error(), nil
		return
	}
	w.err = ""
	before := len(r.Subscriptions)
	seen.AddMissing(r, w.subs, w.lastSeen)
	for _, s := range r.Subscriptions[before:] {
		if key := s.Subscriber + "/" + s.Name; !w.told[key] {
			d.log.Warn("a subscription pglmon saw no longer exists", keySubscriber, s.Subscriber, keySubscription, s.Name)
			w.told[key] = true
		}
	}
}
