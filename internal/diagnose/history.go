package diagnose

import (
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/probe"
)

// History remembers, across cycles, what a single snapshot cannot tell: since
// when a subscription is down, since when a table is not ready, and each
// node's pglogical name (to map subscriptions to a provider that is down).
type History struct {
	DownSince map[string]time.Time
	// UpSince is when a subscription that was down stopped being so, while
	// its DownSince is kept: for FlapWindow, a subscription down again
	// continues the same outage.
	UpSince       map[string]time.Time
	NotReadySince map[string]time.Time
	LocalNodes    map[string]string
	// Known keeps the last subscriptions seen on each subscriber, so they are
	// reported as unknown (not forgotten) while it is unreachable.
	Known map[string][]probe.Subscription
	// Copied is, per table not ready, how many rows its running copy had
	// and since when (a copy that moves is not stalled, however long).
	Copied map[string]CopyMark
	// Quiet is, per enabled subscription whose provider slot pglmon sees
	// inactive, since when nothing streams from it (see Quiet).
	Quiet map[string]Quiet
}

// Quiet is a period in which nothing streams from a subscription's slot on
// its provider, whatever pglogical's status says. pglogical says
// `replicating` as long as the apply worker process runs, also while it
// waits to connect: a connection that hangs (packets dropped on the way, a
// provider that accepts and never answers) looks like replication until
// it times out, then the worker is started again and hangs again.
type Quiet struct {
	Since time.Time
	// Longest is the oldest age seen of an apply worker saying replicating
	// with the slot inactive in this period (a running worker streams
	// from its slot once connected; it exits when the connection drops).
	Longest time.Duration
}

// Hung reports whether, in this period, an apply worker has run for
// FlapWindow or longer without streaming: a worker that can connect does
// within a second or two, and a crash loop's worker dies within one.
func (q Quiet) Hung() bool { return q.Longest >= FlapWindow }

// FlapWindow is how long a subscription must stay out of `down` before its
// outage is over. pglogical starts a crashed apply worker again about 5 s
// after the crash, and a worker that fails on the same change says
// `replicating` for a second or so before it crashes again: without the
// window each of those samples would start a new outage, under down_grace,
// and a crash loop would hardly ever be diagnosed past it (apply_error,
// stuck_down).
const FlapWindow = 15 * time.Second

// CopyMark is a table copy's rows, and when they last changed.
type CopyMark struct {
	Rows  int64
	Since time.Time
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{
		DownSince:     map[string]time.Time{},
		UpSince:       map[string]time.Time{},
		NotReadySince: map[string]time.Time{},
		LocalNodes:    map[string]string{},
		Known:         map[string][]probe.Subscription{},
		Copied:        map[string]CopyMark{},
		Quiet:         map[string]Quiet{},
	}
}

func subKey(subscriber, sub string) string { return subscriber + "/" + sub }

func tableKey(subscriber string, t probe.TableSync) string {
	return subscriber + "/" + t.Subscription + "/" + t.Schema + "." + t.Table
}

// Observe records the facts of one cycle. Facts of unreachable nodes are
// kept as they were.
func (h *History) Observe(snaps []probe.Snapshot, now time.Time) {
	for _, s := range snaps {
		if !s.Up() {
			continue
		}
		h.observeQuiet(s, snaps, now)
		h.LocalNodes[s.Node] = s.LocalNode
		h.Known[s.Node] = s.Subscriptions
		prefix := s.Node + "/"
		down := map[string]bool{}
		for _, sub := range s.Subscriptions {
			if sub.Enabled && sub.Status == probe.StatusDown {
				k := subKey(s.Node, sub.Name)
				down[k] = true
				if _, ok := h.DownSince[k]; !ok {
					h.DownSince[k] = now
				}
				delete(h.UpSince, k)
			}
		}
		for k := range h.DownSince {
			if !strings.HasPrefix(k, prefix) || down[k] {
				continue
			}
			up, ok := h.UpSince[k]
			if !ok {
				h.UpSince[k] = now
				continue
			}
			if now.Sub(up) >= FlapWindow {
				delete(h.DownSince, k)
				delete(h.UpSince, k)
			}
		}
		notReady := map[string]bool{}
		for _, t := range s.TableSync {
			k := tableKey(s.Node, t)
			notReady[k] = true
			if _, ok := h.NotReadySince[k]; !ok {
				h.NotReadySince[k] = now
			}
			if t.CopiedRows != nil {
				if m, ok := h.Copied[k]; !ok || m.Rows != *t.CopiedRows {
					h.Copied[k] = CopyMark{Rows: *t.CopiedRows, Since: now}
				}
			}
		}
		for k := range h.NotReadySince {
			if strings.HasPrefix(k, prefix) && !notReady[k] {
				delete(h.NotReadySince, k)
				delete(h.Copied, k)
			}
		}
	}
}

// Forget drops what is remembered about nodes no longer configured.
func (h *History) Forget(keep map[string]bool) {
	for n := range h.LocalNodes {
		if !keep[n] {
			delete(h.LocalNodes, n)
			delete(h.Known, n)
		}
	}
	for k := range h.Quiet {
		if node, _, _ := strings.Cut(k, "/"); !keep[node] {
			delete(h.Quiet, k)
		}
	}
	for _, m := range []map[string]time.Time{h.DownSince, h.UpSince, h.NotReadySince} {
		for k := range m {
			if node, _, _ := strings.Cut(k, "/"); !keep[node] {
				delete(m, k)
			}
		}
	}
	for k := range h.Copied {
		if node, _, _ := strings.Cut(k, "/"); !keep[node] {
			delete(h.Copied, k)
		}
	}
}

// observeQuiet follows, for each subscription of subscriber s, whether its
// slot streams. A period goes on while the provider cannot be seen (nothing
// is known then) and ends when the slot is seen active, the slot is gone
// (slot_missing tells that) or the subscription is disabled.
func (h *History) observeQuiet(s probe.Snapshot, snaps []probe.Snapshot, now time.Time) {
	prefix := s.Node + "/"
	seen := map[string]bool{}
	for _, sub := range s.Subscriptions {
		k := subKey(s.Node, sub.Name)
		seen[k] = true
		if !sub.Enabled || sub.Status == probe.StatusDisabled {
			delete(h.Quiet, k)
			continue
		}
		var prov *probe.Snapshot
		for i := range snaps {
			if snaps[i].Up() && snaps[i].LocalNode == sub.ProviderNode && sub.ProviderNode != "" {
				prov = &snaps[i]
			}
		}
		if prov == nil {
			continue // unknown: keep what was
		}
		slot, ok := prov.Slot(sub.SlotName)
		if !ok || slot.Active {
			delete(h.Quiet, k)
			continue
		}
		q, ok := h.Quiet[k]
		if !ok {
			q = Quiet{Since: now}
		}
		if sub.Status == probe.StatusReplicating && sub.WorkerAgeSeconds != nil {
			q.Longest = max(q.Longest, time.Duration(*sub.WorkerAgeSeconds*float64(time.Second)))
		}
		h.Quiet[k] = q
	}
	for k := range h.Quiet {
		if strings.HasPrefix(k, prefix) && !seen[k] {
			delete(h.Quiet, k)
		}
	}
}
