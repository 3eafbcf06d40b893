package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/probe"
)

func TestOriginStatesCopies(t *testing.T) {
	o := &probe.OriginStates{Max: 6, Held: []string{"a", "a_0badcafe", "b_1234abcd", "c_12345678", "c", "d_XYZ01234"}}
	got := o.Copies()
	// b's copy without b's own state is not a copy's (a subscription
	// named so); nor is an origin without 8 lowercase hex digits.
	if len(got) != 2 || len(got["a"]) != 1 || got["a"][0] != "a_0badcafe" || len(got["c"]) != 1 {
		t.Errorf("copies: %v", got)
	}
	if !o.Full() || (&probe.OriginStates{Max: 7, Held: o.Held}).Full() || (*probe.OriginStates)(nil).Full() {
		t.Error("Full")
	}
}

func TestOriginSlotsExhausted(t *testing.T) {
	other := slotName + "x"
	full := func(w *world, held ...string) {
		w.sub.Origins = &probe.OriginStates{Max: len(held), Held: held}
	}
	nodeFinding := func(r Report) (Finding, bool) {
		for _, n := range r.Nodes {
			if n.Name == "s" {
				for _, f := range n.Findings {
					if f.Code == CodeReplicationCapacityLow {
						return f, true
					}
				}
			}
		}
		return Finding{}, false
	}

	// Every state held, one by the subscription: a warning on the node only.
	w := healthy()
	full(w, slotName, other)
	r := w.run()
	if f, ok := nodeFinding(r); !ok || !strings.Contains(f.Message, "subscriber s has no replication origin state left (2 of max_replication_slots 2 replication origin states held, every database's: "+slotName+" (subscription sub), "+other+" (no subscription of this database)):") {
		t.Errorf("node: %+v", r.Nodes)
	}
	if len(r.Subscriptions[0].Findings) != 0 {
		t.Errorf("subscription: %+v", r.Subscriptions[0].Findings)
	}
	// A state left: nothing.
	w.sub.Origins.Max = 3
	if _, ok := nodeFinding(w.run()); ok {
		t.Error("one state left: reported")
	}

	// A table to copy while another subscription's copy holds a state:
	// a warning (its end frees one); with none under way, critical.
	w = healthy()
	w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "t", Status: "i"}}
	full(w, slotName, other, other+"_0badcafe")
	f, ok := w.run().Subscriptions[0].Finding(CodeOriginSlotsExhausted)
	if !ok || f.Severity != Warning || !strings.Contains(f.Message, "until a copy under way ("+other+"_0badcafe) ends") || !strings.HasPrefix(f.Message, "table public.t of sub cannot be copied: ") {
		t.Errorf("another copy under way: %+v", f)
	}
	full(w, slotName, other)
	if f, ok := w.run().Subscriptions[0].Finding(CodeOriginSlotsExhausted); !ok || f.Severity != Critical || strings.Contains(f.Message, "under way") {
		t.Errorf("no copy under way: %+v", f)
	}
	// The subscription's own first copy, which its apply worker makes: nothing.
	w.s().SyncStatus = "d"
	if f, ok := w.run().Subscriptions[0].Finding(CodeOriginSlotsExhausted); ok {
		t.Errorf("during the subscription's first copy: %+v", f)
	}
	w.s().SyncStatus = "r"
	// Copied, waiting for the apply worker to mark it ready: nothing.
	w.sub.TableSync[0].Status = "y"
	if f, ok := w.run().Subscriptions[0].Finding(CodeOriginSlotsExhausted); ok {
		t.Errorf("a table copied (y): %+v", f)
	}
	w.sub.TableSync[0].Status = "i"
	// Its own copy holds one: it runs.
	full(w, slotName, slotName+"_0badcafe")
	if f, ok := w.run().Subscriptions[0].Finding(CodeOriginSlotsExhausted); ok {
		t.Errorf("its own copy runs: %+v", f)
	}
	// Long not ready for want of a state: the cause, not table_sync_stalled.
	full(w, slotName, other)
	w.hist.Observe([]probe.Snapshot{w.prov, w.sub}, w.now.Add(-time.Hour))
	if sub := w.run().Subscriptions[0]; len(sub.Findings) != 1 || sub.Findings[0].Code != CodeOriginSlotsExhausted {
		t.Errorf("after an hour: %+v", sub.Findings)
	}

	// A subscription whose origin holds no state: critical at once, never
	// origin_missing (whose repair creates an origin that finds no state
	// either) or stuck_down; also in the second after each start in which
	// pglogical says replicating.
	for _, status := range []string{probe.StatusDown, probe.StatusReplicating} {
		w = healthy()
		w.s().Status = status
		w.s().OriginExists = false
		full(w, other)
		w.sub.Origins.Max = 1
		sub := w.run().Subscriptions[0]
		if len(sub.Findings) != 1 {
			t.Fatalf("%s: %+v", status, sub.Findings)
		}
		f := sub.Findings[0]
		if f.Code != CodeOriginSlotsExhausted || f.Severity != Critical || !f.Human || f.Remedy != "" ||
			!strings.HasPrefix(f.Message, "subscription sub is down: s has no replication origin state left for its origin "+slotName+" (1 of max_replication_slots 1 ") ||
			!strings.HasSuffix(f.Message, "once a state is free, pglmon reports origin_missing and re-creates it") {
			t.Errorf("%s: %+v", status, f)
		}
	}
	// A state free: origin_missing, with its repair, as before.
	w.sub.Origins.Max = 2
	w.s().Status = probe.StatusDown
	if f, ok := w.run().Subscriptions[0].Finding(CodeOriginMissing); !ok || f.Remedy != RemedyRecreateOrigin {
		t.Errorf("a state free: %+v", w.run().Subscriptions[0].Findings)
	}
}
