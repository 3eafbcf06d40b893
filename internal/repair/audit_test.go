package repair

import (
	"os"
	"path/filepath"
	"slices"
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

// The audit trail of setup and upgrade (Begin, Step, End, Refused), read
// back as attempts: IDs, host and pid filled in, a step's error marks it
// failed, a re-run of an attempt is recorded as resuming it, and a line
// without ID or phase is reported, not taken for an attempt.
func TestAuditRunReadBackAsAttempts(t *testing.T) {
	var none *Audit
	if r, err := none.Begin("", "cli:a", RemedySetupApply, ""); err != nil || r.End("x") != nil {
		t.Fatalf("without audit log: %v", err)
	}
	none.Refused("cli:a", RemedySetupApply, "", "nothing") // no panic, nothing written

	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := NewAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.Begin("", "cli:a", RemedyUpgradePrepare, "provider")
	if err != nil {
		t.Fatal(err)
	}
	first.Step("provider", "drop the subscription", "SELECT 1", []any{"sub_0"}, time.Millisecond, "")
	first.Step("provider", "drop the node", "SELECT 2", nil, time.Millisecond, "connection lost")
	if err := first.End("connection lost"); err != nil {
		t.Fatal(err)
	}
	again, err := a.Begin(first.id, "cli:b", RemedyUpgradePrepare, "provider")
	if err != nil {
		t.Fatal(err)
	}
	again.Step("provider", "drop the node", "SELECT 2", nil, time.Millisecond, "")
	if err := again.End(""); err != nil {
		t.Fatal(err)
	}
	a.Refused("cli:c", RemedySetupApply, "", "prerequisites missing")
	if err := a.Append(Entry{Time: time.Now().UTC(), Phase: "started"}); err != nil {
		t.Fatal(err)
	}
	// A repair planned by one pglmon, resumed by another on another host,
	// which stopped before it ended: the planned steps are kept.
	now := time.Now().UTC()
	for _, e := range []Entry{
		{Time: now, ID: "r1", Phase: "started", Actor: "auto", Remedy: "restart", Steps: []StepResult{{Action: "disable", Result: "planned"}}},
		{Time: now, ID: "r1", Phase: "started", Actor: "auto", Remedy: "restart", Host: "standby-host"},
		{Time: now, ID: "r2", Phase: "started", Actor: "auto", Remedy: "restart"},
		{Time: now, ID: "r2", Phase: "finished", Actor: "auto", Remedy: "restart", Host: "standby-host", Outcome: ResultSuccess},
	} {
		if err := a.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	entries, bad, err := ReadLog(path)
	if err != nil || len(bad) != 1 || len(entries) != 9 {
		t.Fatalf("read back: %d entries, bad lines %v, %v", len(entries), bad, err)
	}
	host, _ := os.Hostname()
	for _, e := range entries[:5] {
		if e.ID == "" || e.Host != host || e.PID != os.Getpid() {
			t.Errorf("entry without ID, host or pid: %+v", e)
		}
	}
	if s := entries[1].Steps; entries[1].Outcome != ResultFailed || len(s) != 2 || s[0].Result != "ok" || s[1].Result != "failed" || s[1].Error != "connection lost" {
		t.Errorf("first run's end: %+v", entries[1])
	}
	got := Attempts(entries)
	if len(got) != 4 {
		t.Fatalf("attempts: %+v", got)
	}
	prep, refused := got[0], got[1]
	if r1, r2 := got[2], got[3]; len(r1.Steps) != 1 || r1.Outcome != OutcomeInterrupted || r1.Host != host || r2.Host != "standby-host" {
		t.Errorf("an interrupted repair keeps its planned steps and first host %s, a finished one the host that ended it: %+v, %+v", host, r1, r2)
	}
	if prep.ID != first.id || prep.Actor != "cli:a" || !slices.Equal(prep.ResumedBy, []string{"cli:b"}) || prep.Outcome != ResultSuccess ||
		prep.Reason != "" || len(prep.Steps) != 1 || prep.Steps[0].Result != "ok" || prep.Host != host {
		t.Errorf("the resumed prepare: %+v", prep)
	}
	if refused.Outcome != ResultRefused || refused.Reason != "prerequisites missing" || len(refused.ResumedBy) != 0 || refused.Remedy != RemedySetupApply {
		t.Errorf("the refused apply: %+v", refused)
	}
}
