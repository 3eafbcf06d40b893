package diagnose

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
)

// TestHeartbeatCarriers: a subscriber that receives a provider's
// heartbeats through no subscription (once the provider has written them
// for carrierGrace), or through several, is told so on its node; one
// carrier, or a provider that writes none, is not.
func TestHeartbeatCarriers(t *testing.T) {
	provClock := t0.Add(time.Hour)
	for _, c := range []struct {
		name     string
		bend     func(w *world)
		contains string // "": no finding
	}{
		{"one carrier", func(*world) {}, ""},
		{"none", func(w *world) { w.s().ReplicationSets = []string{"default"} },
			"provider p writes heartbeats, but no subscription from it on s carries them (the set pglmon_heartbeat; its carrier dropped, set up again or stripped of the set since pglmon heartbeat install): heartbeats_lost is not measured for sub, sub2, and their replication_delay_seconds only from their slots; run pglmon heartbeat install"},
		{"none, the provider writing them for a minute (an install under way)", func(w *world) {
			w.s().ReplicationSets = []string{"default"}
			w.prov.Heartbeat.Nodes["prov"] = probe.HeartbeatSpan{Oldest: provClock.Add(-time.Minute), Newest: provClock}
		}, ""},
		{"none, nothing written yet", func(w *world) {
			w.s().ReplicationSets = []string{"default"}
			w.prov.Heartbeat.Nodes = map[string]probe.HeartbeatSpan{}
		}, ""},
		{"none, the provider writing none", func(w *world) {
			w.s().ReplicationSets = []string{"default"}
			w.prov.Heartbeat.Provides = false
		}, ""},
		{"none, the provider unreachable", func(w *world) {
			w.s().ReplicationSets = []string{"default"}
			w.prov.Err = errors.New("connection refused")
		}, ""},
		{"two", func(w *world) { w.sub.Subscriptions[1].ReplicationSets = []string{probe.HeartbeatSet} },
			"subscriptions sub, sub2 on s all carry the heartbeats of provider p (the set pglmon_heartbeat): each heartbeat is applied through each of them"},
		{"two, the provider writing none", func(w *world) {
			w.sub.Subscriptions[1].ReplicationSets = []string{probe.HeartbeatSet}
			w.prov.Heartbeat.Provides = false
		}, ""},
		{"from another provider", func(w *world) {
			w.sub.Subscriptions[1].ProviderNode = "other"
			w.s().ReplicationSets = []string{"default"}
		}, "not measured for sub, and"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := healthy()
			w.s().ReplicationSets = []string{"default", probe.HeartbeatSet}
			second := w.sub.Subscriptions[0]
			second.Name, second.SlotName, second.ReplicationSets = "sub2", "slot2", []string{"other"}
			w.sub.Subscriptions = append(w.sub.Subscriptions, second)
			w.prov.Heartbeat = &probe.Heartbeat{Clock: provClock, ReadAt: t0, Provides: true, Nodes: map[string]probe.HeartbeatSpan{
				"prov": {Oldest: provClock.Add(-time.Hour), Newest: provClock},
			}}
			w.sub.Heartbeat = &probe.Heartbeat{Clock: t0, ReadAt: t0, Nodes: map[string]probe.HeartbeatSpan{}}
			c.bend(w)
			r := w.run()
			f, ok := nodeFinding(r, "s", CodeHeartbeatCarriers)
			if c.contains == "" {
				if ok {
					t.Fatalf("finding: %+v", f)
				}
				return
			}
			if !ok || f.Severity != Warning || !f.Human || !strings.Contains(f.Message, c.contains) {
				t.Fatalf("finding %+v, want a warning containing %q", f, c.contains)
			}
			if _, ok := nodeFinding(r, "p", CodeHeartbeatCarriers); ok {
				t.Errorf("the provider has the finding too")
			}
		})
	}
}

// TestDelayFromTheSlot: a subscription that does not carry its provider's
// heartbeats has its delay read from how far its slot confirmed the
// provider's WAL, against the positions of the heartbeats written there.
func TestDelayFromTheSlot(t *testing.T) {
	provClock := t0.Add(time.Hour) // the provider's clock, an hour ahead
	tenAgo := provClock.Add(-10 * time.Minute)
	for _, c := range []struct {
		name     string
		slot     *probe.SlotHeartbeat // nil: no positions read
		delay    float64              // -1: not measured
		contains string               // the finding's; "": none
		disabled bool
	}{
		{"at or past the newest heartbeat", &probe.SlotHeartbeat{Newest: true, Confirmed: &provClock, Oldest: provClock.Add(-time.Hour)}, 0, "", false},
		{"between two: from the older", &probe.SlotHeartbeat{Confirmed: &tenAgo, Oldest: provClock.Add(-time.Hour)}, 600,
			"its slot " + slotName + " has confirmed p's WAL up to a heartbeat written 10m0s ago (it does not carry the heartbeats: read from its slot); it says replicating", false},
		{"disabled", &probe.SlotHeartbeat{Confirmed: &tenAgo, Oldest: provClock.Add(-time.Hour)}, 600, "; it is disabled", true},
		{"behind every heartbeat kept: from the oldest", &probe.SlotHeartbeat{Oldest: provClock.Add(-20 * time.Minute)}, 1200,
			"its slot " + slotName + " has not confirmed p's WAL up to any heartbeat kept there (the oldest written 20m0s ago) (it does not carry the heartbeats: read from its slot)", false},
		{"no positions (installed by an older pglmon, or not readable)", nil, -1, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := healthy()
			if c.disabled {
				w.s().Enabled, w.s().Status = false, probe.StatusDisabled
			}
			w.prov.Heartbeat = &probe.Heartbeat{Clock: provClock, ReadAt: t0, Provides: true, Nodes: map[string]probe.HeartbeatSpan{
				"prov": {Oldest: provClock.Add(-time.Hour), Newest: provClock},
			}}
			if c.slot != nil {
				w.prov.Heartbeat.Positions = true
				w.prov.Heartbeat.Slots = map[string]probe.SlotHeartbeat{slotName: *c.slot, "another": {Newest: true}}
			}
			th := thresholds
			th.ReplicationDelay, th.ReplicationDelayCritical = config.Duration(5*time.Minute), config.Duration(30*time.Minute)
			r := Diagnose(Input{Now: w.now, Thresholds: th, Snapshots: []probe.Snapshot{w.prov, w.sub}, History: w.hist})
			s, _ := r.Subscription("sub", "")
			if c.delay < 0 {
				if s.ReplicationDelaySeconds != nil {
					t.Fatalf("delay %v, want none", *s.ReplicationDelaySeconds)
				}
				return
			}
			if s.ReplicationDelaySeconds == nil || *s.ReplicationDelaySeconds != c.delay {
				t.Fatalf("delay %v, want %v", s.ReplicationDelaySeconds, c.delay)
			}
			if s.HeartbeatApplied != nil {
				t.Errorf("heartbeat applied %v", s.HeartbeatApplied)
			}
			f, ok := s.Finding(CodeReplicationDelayHigh)
			if c.contains == "" {
				if ok {
					t.Fatalf("finding %+v", f)
				}
				return
			}
			if !ok || !strings.Contains(f.Message, c.contains) {
				t.Fatalf("finding %+v, want it to contain %q", f, c.contains)
			}
		})
	}
}
