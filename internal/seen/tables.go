package seen

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
	"github.com/pglmon/pglmon/internal/drift"
)

// Tables keeps, in the file at its path, the tables pglmon has seen in
// each subscription's replication sets (monitor.SetTables): the daemon's
// writes it; pglmon status and repair, run beside the daemon, only read
// it. The file is read again when it changed (pglmon forget --table).
type Tables struct {
	path  string
	write bool
	file  atomicfile.Watcher
	subs  map[string]Subscription
}

// NewTables keeps the tables in the file at path; write false only reads
// it (what Note adds and Drop takes off then counts for the call only).
func NewTables(path string, write bool) *Tables {
	return &Tables{path: path, write: write, file: atomicfile.Watcher{Path: path}}
}

func (t *Tables) read() error {
	if !t.file.Changed() && t.subs != nil {
		return nil
	}
	subs, err := Read(t.path)
	if err != nil {
		t.subs = nil
		return err
	}
	t.subs = subs
	return nil
}

// Version changes when the file does (a table forgotten, or one added).
func (t *Tables) Version() string { return atomicfile.Stamp(t.path) }

// Note adds now, the tables subscription's sets hold now, to those seen
// for it on subscriber, and returns them all.
func (t *Tables) Note(subscriber, subscription string, now []drift.Relation, at time.Time) ([]drift.Relation, error) {
	if err := t.read(); err != nil {
		return nil, err
	}
	key := subscriber + "/" + subscription
	held := t.subs[key].Tables
	all := union(held, now)
	if len(all) == len(held) || !t.write {
		return all, nil
	}
	err := t.update(func(subs map[string]Subscription) {
		s, ok := subs[key]
		if !ok {
			s = Subscription{Subscriber: subscriber, Subscription: subscription, FirstSeen: at}
		}
		s.Tables = union(s.Tables, now)
		subs[key] = s
	})
	return all, err
}

// Drop takes gone, tables the subscriber no longer has, off those seen for
// subscription on subscriber.
func (t *Tables) Drop(subscriber, subscription string, gone []drift.Relation) error {
	if !t.write || len(gone) == 0 {
		return nil
	}
	key := subscriber + "/" + subscription
	return t.update(func(subs map[string]Subscription) {
		if s, ok := subs[key]; ok {
			drop := map[drift.Relation]bool{}
			for _, r := range gone {
				drop[r] = true
			}
			s.Tables = slices.DeleteFunc(s.Tables, func(r drift.Relation) bool { return drop[r] })
			subs[key] = s
		}
	})
}

// update changes the file under its lock and keeps what it holds then.
func (t *Tables) update(change func(map[string]Subscription)) error {
	return atomicfile.Update(t.path, func(old []byte) ([]byte, error) {
		subs, err := parse(t.path, old)
		if err != nil {
			return nil, err
		}
		change(subs)
		t.subs = subs
		return encode(subs)
	})
}

// ForgetTables takes tables (each schema and name; a table with Schema ""
// in any schema) off those seen in the sets of subscription (on
// subscriber; "": on any), once each was taken out of them on purpose: the
// tables taken off, by subscriber/subscription.
func ForgetTables(path, subscriber, subscription string, tables []drift.Relation) (map[string][]drift.Relation, error) {
	gone := map[string][]drift.Relation{}
	err := atomicfile.Update(path, func(old []byte) ([]byte, error) {
		subs, err := parse(path, old)
		if err != nil {
			return nil, err
		}
		for k, s := range subs {
			if s.Subscription != subscription || (subscriber != "" && s.Subscriber != subscriber) {
				continue
			}
			s.Tables = slices.DeleteFunc(s.Tables, func(r drift.Relation) bool {
				for _, f := range tables {
					if r.Name == f.Name && (f.Schema == "" || r.Schema == f.Schema) {
						gone[k] = append(gone[k], r)
						return true
					}
				}
				return false
			})
			subs[k] = s
		}
		return encode(subs)
	})
	return gone, err
}

// union is a and the tables of b it lacks, sorted.
func union(a, b []drift.Relation) []drift.Relation {
	out := slices.Clone(a)
	have := make(map[drift.Relation]bool, len(a))
	for _, r := range a {
		have[r] = true
	}
	for _, r := range b {
		if !have[r] {
			out, have[r] = append(out, r), true
		}
	}
	slices.SortFunc(out, func(x, y drift.Relation) int {
		return cmp.Or(strings.Compare(x.Schema, y.Schema), strings.Compare(x.Name, y.Name))
	})
	return out
}
