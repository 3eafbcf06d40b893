package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/maintenance"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/repair"
)

// While its subscriber is under maintenance, a lost origin is diagnosed,
// exported and served, but not repaired; when the window ends, it is.
func TestMaintenanceHoldsAutomaticRepair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	dir := t.TempDir()
	r := start(t, pairConfig(p, filepath.Join(dir, "a.jsonl"), ""), nil) // recreate-origin: auto
	r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	file := r.d.Config().MaintenanceFile()
	if file != filepath.Join(dir, "maintenance.json") {
		t.Fatalf("maintenance file %s, want it next to the audit log", file)
	}
	now := time.Now()
	if _, err := maintenance.Update(file, now, func(ws []maintenance.Window) ([]maintenance.Window, error) {
		return append(ws, maintenance.Window{Node: "subscriber", Since: now, Until: now.Add(time.Hour), Reason: "PG 16 upgrade", By: "test@host"}), nil
	}); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(t, `^pglmon_maintenance_until_timestamp_seconds\{node="subscriber"\} \S+$`, false, 10*time.Second)
	if err := p.LoseOriginNow(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	// Three cycles that diagnose origin_missing under maintenance: a repair
	// would have started at the first.
	cycles := map[time.Time]bool{}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription("sub_0", "subscriber")
		if ok && s.Maintenance != nil && s.Maintenance.Reason == "PG 16 upgrade" {
			if _, found := s.Finding(diagnose.CodeOriginMissing); found {
				cycles[rep.Time] = true
			}
		}
		return len(cycles) >= 3
	}); err != nil {
		t.Fatalf("origin_missing under maintenance not seen in 3 cycles (%d):\n%s", len(cycles), r.logs.String())
	}
	if entries, _ := repair.Entries(r.audit); len(entries) != 0 {
		t.Fatalf("a repair ran under maintenance: %+v", entries)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "down", time.Second); err != nil {
		t.Errorf("the subscription is no longer down under maintenance: %v", err)
	}
	r.waitMetric(t, `^pglmon_finding\{code="origin_missing",severity="critical",subscriber="subscriber",subscription="sub_0"\} 1$`, false, 5*time.Second)

	// The window ends: repaired.
	if _, err := maintenance.Update(file, time.Now(), func([]maintenance.Window) ([]maintenance.Window, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		entries, _ := repair.Entries(r.audit)
		for _, e := range entries {
			if e.Phase == "finished" && e.Outcome == repair.ResultSuccess && e.Remedy == "recreate-origin" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("not repaired after the window ended:\n%s", r.logs.String())
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(t, `^pglmon_maintenance_until_timestamp_seconds`, true, 10*time.Second)
	logs := r.logs.String()
	for _, want := range []string{"maintenance: no automatic repair", `"reason":"PG 16 upgrade"`, "maintenance over", `"how":"ended"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}
