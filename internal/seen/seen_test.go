package seen

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/drift"
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

// Tables: Note adds what the sets hold now and keeps the rest; a reader
// does not write; Note of the subscriptions keeps the tables; Drop and
// ForgetTables take them off (a table without its schema in any schema).
func TestTables(t *testing.T) {
	path := filepath.Join(t.TempDir(), "subscriptions-seen.json")
	t0 := time.Date(2026, 12, 8, 8, 0, 0, 0, time.UTC)
	a, b := drift.Relation{Schema: "public", Name: "a"}, drift.Relation{Schema: "app", Name: "b"}
	w, ro := NewTables(path, true), NewTables(path, false)
	if all, err := ro.Note("s1", "sub", []drift.Relation{a}, t0); err != nil || len(all) != 1 {
		t.Fatalf("reader: %v %v", all, err)
	}
	if subs, err := Read(path); err != nil || len(subs) != 0 {
		t.Fatalf("the reader wrote: %+v %v", subs, err)
	}
	if _, err := w.Note("s1", "sub", []drift.Relation{a, b}, t0); err != nil {
		t.Fatal(err)
	}
	if all, err := w.Note("s1", "sub", []drift.Relation{a}, t0.Add(time.Hour)); err != nil || !slices.Equal(all, []drift.Relation{b, a}) {
		t.Fatalf("b taken out of the sets: %v %v", all, err)
	}
	// The subscription noted: its tables stay.
	r := diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub", Subscriber: "s1", Provider: "p", Status: "replicating"}}}
	if subs, err := Note(path, r, t0.Add(time.Hour)); err != nil || len(subs["s1/sub"].Tables) != 2 || !subs["s1/sub"].FirstSeen.Equal(t0) {
		t.Fatalf("after Note: %+v %v", subs, err)
	}
	if all, err := ro.Note("s1", "sub", nil, t0); err != nil || len(all) != 2 {
		t.Fatalf("the reader after the writer: %v %v", all, err)
	}
	if gone, err := ForgetTables(path, "s2", "sub", []drift.Relation{{Name: "b"}}); err != nil || len(gone) != 0 {
		t.Errorf("forget on s2: %v %v", gone, err)
	}
	if gone, err := ForgetTables(path, "", "sub", []drift.Relation{{Name: "b"}}); err != nil || !slices.Equal(gone["s1/sub"], []drift.Relation{b}) {
		t.Errorf("forget b: %v %v", gone, err)
	}
	if all, err := w.Note("s1", "sub", nil, t0); err != nil || !slices.Equal(all, []drift.Relation{a}) {
		t.Errorf("the writer after forget: %v %v", all, err)
	}
	if err := w.Drop("s1", "sub", []drift.Relation{a}); err != nil {
		t.Fatal(err)
	}
	if subs, err := Read(path); err != nil || len(subs["s1/sub"].Tables) != 0 || subs["s1/sub"].Provider != "p" {
		t.Errorf("after Drop: %+v %v", subs, err)
	}
}
