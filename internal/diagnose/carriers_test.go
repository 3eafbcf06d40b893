package diagnose

import (
	"errors"
	"strings"
	"testing"
	"time"

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
			"provider p writes heartbeats, but no subscription from it on s carries them (the set pglmon_heartbeat; its carrier dropped, set up again or stripped of the set since pglmon heartbeat install): replication_delay_seconds and heartbeats_lost are not measured for sub, sub2, and their alerts cannot fire; run pglmon heartbeat install"},
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
