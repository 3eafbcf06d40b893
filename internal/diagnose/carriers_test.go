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
			"provider p writes heartbeats, but no subscription from it on s carries them (the set pglmon_heartbeat; its carrier dropped, set up again or stripped of the set since pglmon heartbeat install): heartbeats_lost is not measured for sub, sub2, and their replication_delay_seconds only from their slots, by the daemon; run pglmon heartbeat install"},
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
// provider's WAL, against the heartbeats the daemon wrote there.
func TestDelayFromTheSlot(t *testing.T) {
	provClock := t0.Add(time.Hour) // the provider's clock, an hour ahead
	for _, c := range []struct {
		name      string
		confirmed probe.LSN
		marks     bool
		delay     float64 // -1: not measured
		contains  string  // the finding's; "": none
		disabled  bool
	}{
		{"past the newest heartbeat", 3000, true, 0, "", false},
		{"at the newest", 2500, true, 0, "", false},
		{"between two: from the older", 2400, true, 600, "its slot " + slotName + " has confirmed p's WAL up to a heartbeat written 10m0s ago (it does not carry the heartbeats: read from its slot); it says replicating", false},
		{"at the oldest", 1000, true, 1200, "written 20m0s ago", false},
		{"at the oldest, disabled", 1000, true, 1200, "; it is disabled", true},
		{"behind every heartbeat written", 999, true, -1, "", false},
		{"no heartbeat written (pglmon status)", 3000, false, -1, "", false},
		{"the slot never confirmed", 0, true, -1, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := healthy()
			w.slot().ConfirmedFlushLSN = c.confirmed
			if c.disabled {
				w.s().Enabled, w.s().Status = false, probe.StatusDisabled
			}
			w.prov.Heartbeat = &probe.Heartbeat{Clock: provClock, ReadAt: t0, Provides: true, Nodes: map[string]probe.HeartbeatSpan{
				"prov": {Oldest: provClock.Add(-time.Hour), Newest: provClock},
			}}
			if c.marks {
				for _, m := range []probe.HeartbeatMark{
					{TS: provClock.Add(-2 * time.Hour), LSN: 10}, // older than an hour before the newest: dropped
					{TS: provClock.Add(-20 * time.Minute), LSN: 1000},
					{TS: provClock.Add(-10 * time.Minute), LSN: 2000},
					{TS: provClock.Add(-time.Second), LSN: 2500},
				} {
					w.hist.Mark("p", m)
				}
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
	h := NewHistory()
	h.Mark("p", probe.HeartbeatMark{TS: t0, LSN: 1})
	h.Mark("p", probe.HeartbeatMark{TS: t0.Add(61 * time.Minute), LSN: 2})
	if len(h.Marks["p"]) != 1 {
		t.Errorf("marks kept: %+v", h.Marks["p"])
	}
	// A provider put back to an earlier position: the marks past it go.
	h.Mark("p", probe.HeartbeatMark{TS: t0.Add(62 * time.Minute), LSN: 3})
	h.Mark("p", probe.HeartbeatMark{TS: t0.Add(63 * time.Minute), LSN: 2})
	if got := h.Marks["p"]; len(got) != 1 || got[0].LSN != 2 || !got[0].TS.Equal(t0.Add(63*time.Minute)) {
		t.Errorf("marks after a rewind: %+v", got)
	}
	h.Forget(map[string]bool{})
	if len(h.Marks) != 0 {
		t.Errorf("marks of a node no longer configured: %+v", h.Marks)
	}
}
