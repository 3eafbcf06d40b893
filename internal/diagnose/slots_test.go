package diagnose

import (
	"errors"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/probe"
)

// A slot no reachable subscription reports (another tool's, a standby's, a
// down subscriber's) retaining WAL past the threshold is a node finding that
// says whose it is; a subscription's own slot stays its subscription's.
func TestUnreportedSlotRetainingWAL(t *testing.T) {
	w := healthy()
	w.prov.Slots = append(w.prov.Slots,
		probe.Slot{Name: "etl", Plugin: "test_decoding", Type: "logical", WALStatus: "reserved", RetainedBytes: 20 << 30},
		probe.Slot{Name: "standby", Type: "physical", Active: true, ActivePID: 42, WALStatus: "reserved", RetainedBytes: 1 << 20},
	)
	r := w.run()
	var got []Finding
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if f.Code == CodeWALRetainedHigh || f.Code == CodeSlotWALLost {
				got = append(got, f)
			}
		}
	}
	if len(got) != 1 || got[0].Slot != "etl" || got[0].Severity != Warning ||
		!strings.Contains(got[0].Message, "slot etl on p retains 20.0 GiB of WAL") ||
		!strings.Contains(got[0].Message, "inactive logical slot (plugin test_decoding) that no configured subscription uses; if nothing needs it, drop it: SELECT pg_drop_replication_slot('etl')") {
		t.Fatalf("want one wal_retained_high for etl, got %+v", got)
	}
	if len(r.Subscriptions[0].Findings) != 0 {
		t.Errorf("the subscription's findings: %+v", r.Subscriptions[0].Findings)
	}

	// Lost: its consumer, not a subscription, must start again.
	w.prov.Slots[2].WALStatus = "lost"
	w.prov.Slots[2].Active = false
	f, ok := nodeFinding(w.run(), "p", CodeSlotWALLost)
	if !ok || !strings.Contains(f.Message, "its consumer cannot continue from it") || !strings.Contains(f.Message, "inactive physical slot that no configured subscription uses") {
		t.Errorf("lost physical slot: %+v", f)
	}

	// The subscription's own slot retaining WAL: said on the subscription,
	// not again on the node; with its subscriber unreachable, on the node.
	w = healthy()
	w.slot().RetainedBytes = 20 << 30
	r = w.run()
	if _, ok := r.Subscriptions[0].Finding(CodeWALRetainedHigh); !ok {
		t.Errorf("subscription slot: %+v", r.Subscriptions[0].Findings)
	}
	if f, ok := nodeFinding(r, "p", CodeWALRetainedHigh); ok {
		t.Errorf("said twice: %+v", f)
	}
	w.sub.Err = errors.New("connection refused")
	w.sub.Subscriptions = nil
	f, ok = nodeFinding(w.run(), "p", CodeWALRetainedHigh)
	if !ok || !strings.Contains(f.Message, "the subscriber of the subscription using it cannot be reached") {
		t.Errorf("subscriber unreachable: %+v (%v)", f, ok)
	}
}
