package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/repair"
)

func TestAutoRepairOriginLossUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1000})
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), ""), nil)
	r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	w, err := pgtest.StartWriter(p.Provider, p.Tables[0], 100000)
	if err != nil {
		t.Fatal(err)
	}
	broke := time.Now()
	if err := p.LoseOriginNow(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	// Healed with nobody acting: replicating again, through the daemon.
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		entries, _ := repair.Entries(r.audit)
		for _, e := range entries {
			if e.Phase == "finished" && e.Outcome == repair.ResultSuccess {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no successful automatic repair:\n%s", r.logs.String())
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("origin loss under writes: replicating %s after the break (automatic repair, 1 s interval)", time.Since(broke).Round(time.Millisecond))
	n, err := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := p.WaitConverged(ctx, p.Tables[0], 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Equal on both sides (count and checksum) is the check; the writer's own
	// count may miss one insert that committed as Stop cancelled it.
	if want := int64(1000 + n); rows < want || rows > want+1 {
		t.Errorf("rows: got %d, want %d (1000 + %d written)", rows, want, n)
	}
	entries, _ := repair.Entries(r.audit)
	if got := countStarted(entries); got != 1 {
		t.Errorf("repairs executed: got %d, want 1", got)
	}
	if entries[0].Actor != "auto" || entries[0].Remedy != "recreate-origin" {
		t.Errorf("audit: %+v", entries[0])
	}
	r.waitMetric(t, `^pglmon_repairs_total\{remedy="recreate-origin",result="success"\} 1$`, false, 3*time.Second)
}

func countStarted(entries []repair.Entry) int {
	n := 0
	for _, e := range entries {
		if e.Phase == "started" {
			n++
		}
	}
	return n
}

func TestAutoRepairProviderOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prov := pgtest.NewCluster(t, pgtest.Options{})
	subc := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: subc})
	// The same scenario without pglmon, at the same time, on clusters of its own.
	bareProv := pgtest.NewCluster(t, pgtest.Options{})
	bareSub := pgtest.NewCluster(t, pgtest.Options{})
	bare := pgtest.NewPair(t, pgtest.PairOptions{Provider: bareProv, Subscriber: bareSub})

	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), ""), nil)
	r.waitMetric(t, `^pglmon_node_up\{node="provider"\} 1$`, false, 10*time.Second)
	errs := make(chan error, 2)
	for _, pair := range []*pgtest.Pair{p, bare} {
		go func() { errs <- pgtest.ProviderOutage(ctx, pair, 10*time.Second) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	back := time.Now()
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, r.logs.String())
	}
	took := time.Since(back)
	cfg := r.d.Config()
	limit := cfg.Probe.Interval.D() + cfg.Thresholds.DownGrace.D() + 2*time.Second
	if took > limit {
		t.Errorf("replicating %s after the return, want within %s", took, limit)
	}
	if err := bare.WaitStatus(ctx, bare.Sub(), "replicating", 240*time.Second); err != nil {
		t.Fatal(err)
	}
	alone := time.Since(back)
	t.Logf("provider outage (10 s): with pglmon replicating %s after the provider's return (limit interval + down_grace + 2 s = %s); without pglmon %s",
		took.Round(time.Millisecond), limit, alone.Round(time.Second))
	fmt.Printf("provider outage: with pglmon %s, without pglmon %s after the provider's return\n", took.Round(time.Millisecond), alone.Round(time.Second))
}

func TestTwoDaemonsOneRepairPerIncident(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	a := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), ""), nil)
	b := start(t, pairConfig(p, filepath.Join(t.TempDir(), "b.jsonl"), ""), nil)
	for _, r := range []*running{a, b} {
		r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	}
	if err := p.LoseOriginNow(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	// One of the two repairs it (faster than a poll for "down" could see).
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		return a.waitRepair(t, "recreate-origin", 0) == nil || b.waitRepair(t, "recreate-origin", 0) == nil
	}); err != nil {
		t.Fatal("neither daemon repaired the lost origin")
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Let both daemons see the healed state for a few cycles.
	for _, r := range []*running{a, b} {
		r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	}
	ea, _ := repair.Entries(a.audit)
	eb, _ := repair.Entries(b.audit)
	if got := countStarted(ea) + countStarted(eb); got != 1 {
		t.Fatalf("repairs executed by the two daemons: got %d, want 1\nA: %+v\nB: %+v", got, ea, eb)
	}
}

func TestAutoRepairGivesUpPastHourlyLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), "  max_attempts_per_hour: 1\n"), nil)
	healthy := `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`
	r.waitMetric(t, healthy, false, 10*time.Second)
	// Incidents until pglmon has used its one attempt of the hour.
	for i := 0; ; i++ {
		entries, _ := repair.Entries(r.audit)
		if countStarted(entries) >= 1 {
			break
		}
		if i == 5 {
			t.Fatalf("no automatic repair after %d incidents:\n%s", i, r.logs.String())
		}
		if err := p.LoseOriginNow(ctx, p.Sub()); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitStatus(ctx, p.Sub(), "replicating", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		r.waitMetric(t, healthy, false, 10*time.Second)
	}
	// The next incident within the hour is left to a person.
	if err := p.LoseOriginNow(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(t, `^pglmon_finding\{code="repair_failed",severity="critical",subscriber="subscriber",subscription="sub_0"\} 1$`, false, 10*time.Second)
	entries, _ := repair.Entries(r.audit)
	if got := countStarted(entries); got != 1 {
		t.Errorf("repairs executed: got %d, want 1 (the limit)", got)
	}
	// A person repairs it: the daemon resets and the finding clears.
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool {
		out := r.d.Execute(ctx, repair.Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "cli:test"})
		return out.Result == repair.ResultSuccess
	}); err != nil {
		st, _ := p.Status(ctx, p.Sub())
		if st != "replicating" {
			t.Fatalf("manual repair did not succeed (status %s)", st)
		}
	}
	r.waitMetric(t, `code="repair_failed"`, true, 10*time.Second)
}

// interruptedRepair leaves what a pglmon that died in the middle of a
// recreate-origin leaves: the origin gone, the subscription disabled, a
// "started" line without "finished" in the audit log (returned).
func interruptedRepair(t *testing.T, p *pgtest.Pair) (*repair.Audit, string) {
	t.Helper()
	ctx := context.Background()
	audit := filepath.Join(t.TempDir(), "a.jsonl")
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.LoseOrigin(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := p.Disable(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	a, err := repair.NewAudit(audit)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Append(repair.Entry{Time: time.Now(), ID: "crashed1", Phase: "started", Actor: "auto", Remedy: "recreate-origin",
		Subscription: p.Sub(), Subscriber: "subscriber", Provider: "provider", Slot: slot}); err != nil {
		t.Fatal(err)
	}
	return a, audit
}

func TestDaemonFinishesInterruptedRepairAtStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	a, audit := interruptedRepair(t, p)
	// Policy off: only the roll-forward of the interrupted repair may act.
	r := start(t, pairConfig(p, audit, policyOff()), nil)
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, r.logs.String())
	}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool {
		left, _ := a.Unfinished()
		return len(left) == 0 && strings.Contains(r.logs.String(), `"actor":"auto"`)
	}); err != nil {
		left, _ := a.Unfinished()
		t.Fatalf("interrupted repair not finished and logged: %+v", left)
	}
}

// The subscriber does not answer when the daemon starts: the interrupted
// repair is tried again until it does, then finished (it was closed as
// refused, and the subscription stayed disabled for good).
func TestDaemonFinishesInterruptedRepairOnceTheSubscriberAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true})
	a, audit := interruptedRepair(t, p)
	if err := p.Subscriber.Cluster.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	r := startWith(t, pairConfig(p, audit, policyOff()), func(o *Options) { o.ResumeRetry = 500 * time.Millisecond })
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		return strings.Count(r.logs.String(), "interrupted repair not finished yet") >= 2
	}); err != nil {
		t.Fatalf("the daemon did not try twice while the subscriber was down:\n%s", r.logs.String())
	}
	if left, _ := a.Unfinished(); len(left) != 1 {
		t.Fatalf("the attempt was closed while the subscriber was down: unfinished %+v", left)
	}
	if err := p.Subscriber.Cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, r.logs.String())
	}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool {
		left, _ := a.Unfinished()
		return len(left) == 0
	}); err != nil {
		t.Fatalf("interrupted repair not finished once the subscriber answered:\n%s", r.logs.String())
	}
	entries, _ := repair.Entries(audit)
	if got := entries[len(entries)-1]; got.ID != "crashed1" || got.Phase != "finished" || got.Outcome != repair.ResultSuccess {
		t.Errorf("last audit entry: %+v, want crashed1 finished success", got)
	}
}
