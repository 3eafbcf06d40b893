package seen

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// Note keeps what it saw first, writes only what changed; AddMissing
// reports what a subscriber that answers no longer has, not what the
// report lists or a subscriber that does not answer; Forget takes one off.
func TestNoteAddMissingForget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subscriptions-seen.json")
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	nodes := []diagnose.Node{{Name: "s1", Up: true}, {Name: "s2", Up: true}, {Name: "s3", Up: false}}
	r := diagnose.Report{Nodes: nodes, Subscriptions: []diagnose.Subscription{
		{Name: "a", Subscriber: "s1", Provider: "p", ReplicationSets: []string{"x"}, Status: "replicating"},
		{Name: "b", Subscriber: "s2", Provider: "p", Status: "down"},
		{Name: "c", Subscriber: "s3", Provider: "p", Status: "replicating"},
		{Name: "d", Subscriber: "s1", Provider: "p", Status: diagnose.StatusMissing}, // described, never there
	}}
	subs, err := Note(path, r, t0)
	if err != nil || len(subs) != 3 {
		t.Fatalf("note: %v %+v", err, subs)
	}
	// Seen again later: nothing new.
	if Changes(subs, r) {
		t.Errorf("changes with nothing new")
	}
	// a's sets change: kept with its first sight.
	r.Subscriptions[0].ReplicationSets = []string{"x", "y"}
	if !Changes(subs, r) {
		t.Errorf("no change when a's sets changed")
	}
	subs, err = Note(path, r, t0.Add(2*time.Hour))
	if err != nil || !subs["s1/a"].FirstSeen.Equal(t0) || len(subs["s1/a"].Sets) != 2 {
		t.Fatalf("a after its sets changed: %+v %v", subs["s1/a"], err)
	}

	// a and b dropped, c's subscriber down: only a and b are missing.
	gone := diagnose.Report{Nodes: nodes, Subscriptions: []diagnose.Subscription{{Name: "d", Subscriber: "s1", Status: diagnose.StatusMissing}}}
	AddMissing(&gone, subs, map[string]time.Time{"s1/a": t0.Add(3 * time.Hour)})
	if len(gone.Subscriptions) != 3 || gone.Subscriptions[1].Name != "a" || gone.Subscriptions[2].Name != "b" || gone.Health != diagnose.Critical {
		t.Fatalf("missing: %+v", gone.Subscriptions)
	}
	if f := gone.Subscriptions[1].Findings[0]; f.Code != diagnose.CodeSubscriptionMissing ||
		f.Message != "subscription a, which pglmon saw on s1 until 2026-12-06T11:00:00Z (from p, sets x, y), no longer exists there: nothing of those sets replicates to it (dropped by hand or by upgrade prepare, lost with a restored snapshot); after upgrade prepare, pglmon upgrade restore puts it back without copying data; if it was dropped on purpose: pglmon forget --config FILE --subscription a --subscriber s1" {
		t.Errorf("a: %+v", f)
	}

	if out, err := Forget(path, "s2", "a"); err != nil || len(out) != 0 {
		t.Errorf("forget a on s2: %+v %v", out, err)
	}
	if out, err := Forget(path, "", "a"); err != nil || len(out) != 1 || out[0].Subscriber != "s1" {
		t.Errorf("forget a: %+v %v", out, err)
	}
	if subs, err := Read(path); err != nil || len(subs) != 2 {
		t.Errorf("after forget: %+v %v", subs, err)
	}
}
