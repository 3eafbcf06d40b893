// Package seen remembers the subscriptions pglmon's daemon has seen, in a
// file beside its audit log, so that one that disappears (dropped by hand,
// by an upgrade prepare never restored, lost with a restored snapshot) is
// reported as subscription_missing, not simply gone from the report with
// its alerts resolved; `pglmon forget` takes one dropped on purpose off.
// Subscriptions the configuration describes (subscriptions:) are reported
// missing by the diagnosis itself. With each, it keeps the tables seen in
// its replication sets (Tables), so that one taken out of them is known
// even where pglogical keeps nothing of it on the subscriber.
package seen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/atomicfile"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/shellword"
)

// Subscription is one subscription seen on its subscriber.
type Subscription struct {
	Subscriber   string    `json:"subscriber"`
	Subscription string    `json:"subscription"`
	Provider     string    `json:"provider,omitempty"`
	Sets         []string  `json:"replication_sets,omitempty"`
	FirstSeen    time.Time `json:"first_seen"`
	// Tables are the tables pglmon has seen in its replication sets on
	// the provider, and the subscriber still has (Tables: one taken out
	// of them is table_left_set, whether pglogical copied it or not).
	Tables []drift.Relation `json:"set_tables,omitempty"`
}

// Key is subscriber/subscription.
func (s Subscription) Key() string { return s.Subscriber + "/" + s.Subscription }

type file struct {
	Version       int            `json:"version"`
	Subscriptions []Subscription `json:"subscriptions"`
}

// Read returns the subscriptions of the file at path, by Key (none when
// it does not exist).
func Read(path string) (map[string]Subscription, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Subscription{}, nil
	}
	if err != nil {
		return nil, err
	}
	return parse(path, b)
}

func parse(path string, b []byte) (map[string]Subscription, error) {
	out := map[string]Subscription{}
	if len(b) == 0 {
		return out, nil
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, s := range f.Subscriptions {
		out[s.Key()] = s
	}
	return out, nil
}

func encode(subs map[string]Subscription) ([]byte, error) {
	f := file{Version: 1, Subscriptions: []Subscription{}}
	for _, s := range subs {
		f.Subscriptions = append(f.Subscriptions, s)
	}
	slices.SortFunc(f.Subscriptions, func(a, b Subscription) int { return strings.Compare(a.Key(), b.Key()) })
	b, err := json.MarshalIndent(f, "", "  ")
	return append(b, '\n'), err
}

// Note adds the subscriptions of r that exist (not missing), under the
// file's lock, keeping when each was first seen, and returns what the file
// holds then. Call it when Changes says r has one it does not hold as it is.
func Note(path string, r diagnose.Report, now time.Time) (map[string]Subscription, error) {
	var out map[string]Subscription
	err := atomicfile.Update(path, func(old []byte) ([]byte, error) {
		subs, err := parse(path, old)
		if err != nil {
			return nil, err
		}
		for _, s := range r.Subscriptions {
			if s.Status == diagnose.StatusMissing || s.Status == "" {
				continue
			}
			n := Subscription{Subscriber: s.Subscriber, Subscription: s.Name, Provider: s.Provider, Sets: s.ReplicationSets, FirstSeen: now}
			if prev, ok := subs[n.Key()]; ok {
				n.FirstSeen, n.Tables = prev.FirstSeen, prev.Tables
			}
			subs[n.Key()] = n
		}
		out = subs
		return encode(subs)
	})
	return out, err
}

// Changes reports whether r has an existing subscription subs does not
// hold as it is (new, or with another provider or sets).
func Changes(subs map[string]Subscription, r diagnose.Report) bool {
	for _, s := range r.Subscriptions {
		if s.Status == diagnose.StatusMissing || s.Status == "" {
			continue
		}
		prev, ok := subs[s.Subscriber+"/"+s.Name]
		if !ok || prev.Provider != s.Provider || !slices.Equal(prev.Sets, s.ReplicationSets) {
			return true
		}
	}
	return false
}

// Forget takes subscription (on subscriber; "": on any) off the file:
// the subscriptions taken off, none when it held none of that name.
func Forget(path, subscriber, subscription string) ([]Subscription, error) {
	var gone []Subscription
	err := atomicfile.Update(path, func(old []byte) ([]byte, error) {
		subs, err := parse(path, old)
		if err != nil {
			return nil, err
		}
		for k, s := range subs {
			if s.Subscription == subscription && (subscriber == "" || s.Subscriber == subscriber) {
				gone = append(gone, s)
				delete(subs, k)
			}
		}
		return encode(subs)
	})
	slices.SortFunc(gone, func(a, b Subscription) int { return strings.Compare(a.Key(), b.Key()) })
	return gone, err
}

// AddMissing adds to r, as subscription_missing, each subscription of subs
// that its subscriber, which answers, no longer has; one the report lists
// already (described by the configuration) is left to it. lastSeen, when
// known, is when pglmon last saw each (by Key).
func AddMissing(r *diagnose.Report, subs map[string]Subscription, lastSeen map[string]time.Time) {
	up := map[string]bool{}
	for _, n := range r.Nodes {
		up[n.Name] = n.Up
	}
	listed := map[string]bool{}
	for _, s := range r.Subscriptions {
		listed[s.Subscriber+"/"+s.Name] = true
	}
	var keys []string
	for k, s := range subs {
		if !listed[k] && up[s.Subscriber] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := subs[k]
		when := "since " + s.FirstSeen.UTC().Format(time.RFC3339)
		if t, ok := lastSeen[k]; ok {
			when = "until " + t.UTC().Format(time.RFC3339)
		}
		from := s.Provider
		if from == "" {
			from = "a provider pglmon is not configured for"
		}
		r.Subscriptions = append(r.Subscriptions, diagnose.Subscription{Name: s.Subscription, Subscriber: s.Subscriber, Provider: s.Provider,
			ReplicationSets: s.Sets, Status: diagnose.StatusMissing, Health: diagnose.Critical,
			Findings: []diagnose.Finding{{Code: diagnose.CodeSubscriptionMissing, Severity: diagnose.Critical, Human: true,
				Message: fmt.Sprintf("subscription %s, which pglmon saw on %s %s (from %s, sets %s), no longer exists there: nothing of those sets replicates to it (dropped by hand or by upgrade prepare, lost with a restored snapshot); after upgrade prepare, pglmon upgrade restore puts it back without copying data; if it was dropped on purpose: pglmon forget --config FILE --subscription %s --subscriber %s",
					s.Subscription, s.Subscriber, when, from, strings.Join(s.Sets, ", "), shellword.Quote(s.Subscription), shellword.Quote(s.Subscriber))}}})
		r.Health = diagnose.Worst(r.Health, diagnose.Critical)
	}
}
