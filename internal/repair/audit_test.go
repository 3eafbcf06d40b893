package repair

import (
	"path/filepath"
	"testing"
	"time"
)

// An upgrade prepare or restore that stopped midway is continued by running
// it again, never resumed as a repair by the next pglmon run.
func TestInterruptedUpgradeIsNotResumedAsARepair(t *testing.T) {
	a, err := NewAudit(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, e := range []Entry{
		{Time: now, ID: "u1", Phase: "started", Actor: "cli:a", Remedy: RemedyUpgradePrepare, Node: "provider"},
		{Time: now, ID: "u2", Phase: "started", Actor: "cli:a", Remedy: RemedyUpgradeRestore, Node: "provider"},
		{Time: now, ID: "r1", Phase: "started", Actor: "auto", Remedy: "restart", Subscription: "sub_0", Subscriber: "s"},
	} {
		if err := a.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := a.Unfinished()
	if err != nil || len(pending) != 1 || pending[0].ID != "r1" {
		t.Fatalf("unfinished: %+v (%v)", pending, err)
	}
	entries, _ := a.Entries()
	got := Attempts(entries)
	if len(got) != 3 || got[0].Node != "provider" || got[0].Outcome != OutcomeInterrupted {
		t.Errorf("attempts: %+v", got)
	}
}
