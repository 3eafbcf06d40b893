package repair

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/probe"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func testConfig(t testing.TB, p *pgtest.Pair, downGrace string) *config.Config {
	t.Helper()
	body := p.NodesYAML() + "probe:\n  interval: 1s\n  timeout: 1s\nthresholds:\n  down_grace: " + downGrace + "\n"
	cfg, err := config.Parse("test.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newExecutor(t testing.TB, cfg *config.Config) (*Executor, *monitor.Monitor) {
	t.Helper()
	audit, err := NewAudit(filepath.Join(t.TempDir(), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	m := monitor.New(cfg)
	t.Cleanup(func() { m.Close(context.Background()) })
	return &Executor{Config: cfg, Observer: m, Audit: audit, VerifyTimeout: 30 * time.Second, Poll: 100 * time.Millisecond}, m
}

// loseOrigin drops the subscription's replication origin and waits until
// the monitor reports origin_missing.
func loseOrigin(t testing.TB, p *pgtest.Pair, m *monitor.Monitor) {
	t.Helper()
	if err := p.LoseOrigin(context.Background(), p.Sub()); err != nil {
		t.Fatal(err)
	}
	waitFinding(t, m, p.Sub(), diagnose.CodeOriginMissing)
}

// waitFinding polls the monitor until the subscription shows the finding.
func waitFinding(t testing.TB, m *monitor.Monitor, sub, code string) {
	t.Helper()
	if last, ok := findingWithin(m, sub, code, 30*time.Second); !ok {
		t.Fatalf("finding %s never appeared: %+v", code, last.Subscriptions)
	}
}

// findingWithin observes until the subscription has the finding, or timeout.
func findingWithin(m *monitor.Monitor, sub, code string, timeout time.Duration) (diagnose.Report, bool) {
	var last diagnose.Report
	err := pgtest.Poll(context.Background(), timeout, func() bool {
		last = m.Observe(context.Background())
		s, ok := last.Subscription(sub, "")
		if !ok {
			return false
		}
		_, ok = s.Finding(code)
		return ok
	})
	return last, err == nil
}

func TestRecreateOriginUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1000})
	e, m := newExecutor(t, testConfig(t, p, "30s"))
	w, err := pgtest.StartWriter(p.Provider, p.Tables[0], 100000)
	if err != nil {
		t.Fatal(err)
	}
	broke := time.Now()
	loseOrigin(t, p, m)
	out := e.Execute(ctx, Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "test", Finding: diagnose.CodeOriginMissing})
	if out.Result != ResultSuccess {
		t.Fatalf("outcome: %s: %s (%+v)", out.Result, out.Reason, out.Steps)
	}
	t.Logf("origin loss: replicating %s after the break (repair took %s)", time.Since(broke).Round(time.Millisecond), out.Duration.Round(time.Millisecond))
	n, werr := w.Stop()
	if werr != nil {
		t.Fatal(werr)
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
	entries, _ := e.Audit.Entries()
	if len(entries) != 2 || entries[0].Phase != "started" || entries[1].Outcome != ResultSuccess || len(entries[1].Steps) != 3 {
		t.Errorf("audit: got %+v", entries)
	}
	for _, s := range entries[1].Steps {
		if s.Result != "ok" {
			t.Errorf("step %s: %s", s.Action, s.Result)
		}
	}
}

func TestSlotDroppedIsNeverRepaired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	// pglogical sometimes gets a dropped slot back within seconds (see the
	// issue note); break it again until the attempts run while it is gone.
	for attempt := 1; attempt <= 5; attempt++ {
		e, m := newExecutor(t, testConfig(t, p, "30s"))
		if err := p.DropSlot(ctx, p.Sub()); err != nil {
			t.Fatal(err)
		}
		waitFinding(t, m, p.Sub(), diagnose.CodeSlotMissing)
		caught := true
		for _, remedy := range []string{diagnose.RemedyRestart, diagnose.RemedyRecreateOrigin} {
			out := e.Execute(ctx, Request{Remedy: remedy, Subscription: p.Sub(), Actor: "test", Finding: diagnose.CodeSlotMissing})
			if out.Result != ResultRefused {
				t.Fatalf("%s: got %s %q, want refused", remedy, out.Result, out.Reason)
			}
			if !strings.Contains(out.Reason, "now calls for") {
				caught = false // the finding had cleared: pglogical had the slot back
			}
		}
		entries, _ := e.Audit.Entries()
		for _, en := range entries {
			if en.Phase == "started" || len(en.Steps) > 0 {
				t.Fatalf("audit shows SQL run: %+v", en)
			}
		}
		if !caught {
			t.Logf("attempt %d: pglogical had the slot back", attempt)
			continue
		}
		r := m.Observe(ctx)
		s, _ := r.Subscription(p.Sub(), "")
		if f, ok := s.Finding(diagnose.CodeSlotMissing); ok {
			if s.Health != diagnose.Critical || f.Severity != diagnose.Critical {
				t.Errorf("after refusal: health %s", s.Health)
			}
			if plan := HumanPlan(f, *s); !plan.Human || !strings.Contains(plan.Text, "TRUNCATED") || !strings.Contains(plan.Text, "pg_create_logical_replication_slot") {
				t.Errorf("human plan: %+v", plan)
			}
		}
		// Without a finding, as from the command line: still refused while the slot is gone.
		out := e.Execute(ctx, Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "test"})
		if out.Result != ResultRefused {
			t.Fatalf("recreate-origin without a finding: %s %q", out.Result, out.Reason)
		}
		return
	}
	t.Fatal("the slot never stayed dropped")
}

func TestTwoExecutorsOneRepair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg := testConfig(t, p, "30s")
	e1, m1 := newExecutor(t, cfg)
	e2, _ := newExecutor(t, cfg)
	loseOrigin(t, p, m1)
	var wg sync.WaitGroup
	outs := make([]Outcome, 2)
	for i, e := range []*Executor{e1, e2} {
		wg.Go(func() {
			outs[i] = e.Execute(ctx, Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "test", Finding: diagnose.CodeOriginMissing})
		})
	}
	wg.Wait()
	executed := 0
	for i, e := range []*Executor{e1, e2} {
		entries, _ := e.Audit.Entries()
		for _, en := range entries {
			if en.Phase == "started" {
				executed++
			}
		}
		t.Logf("executor %d: %s %s", i+1, outs[i].Result, outs[i].Reason)
	}
	if executed != 1 {
		t.Fatalf("repairs executed: got %d, want exactly 1 (%+v)", executed, outs)
	}
	if outs[0].Result != ResultSuccess && outs[1].Result != ResultSuccess {
		t.Fatalf("no repair succeeded: %+v", outs)
	}
}

// crashedRepair loses a pair's origin and starts its repair, which stops
// ("crashes") after its first step, disable: its audit log holds the
// attempt started and not finished, and the subscription is disabled.
func crashedRepair(t *testing.T, opt ...pgtest.PairOptions) (*pgtest.Pair, *config.Config, *Executor, Outcome) {
	t.Helper()
	p := pgtest.NewPair(t, append(opt, pgtest.PairOptions{})[0])
	cfg := testConfig(t, p, "30s")
	e, m := newExecutor(t, cfg)
	loseOrigin(t, p, m)
	e.crashAfterStep = 1
	out := e.Execute(context.Background(), Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "auto"})
	if out.Result != "crashed" {
		t.Fatalf("got %s %s", out.Result, out.Reason)
	}
	return p, cfg, e, out
}

// The next run cannot reach the subscriber the crash left disabled: it
// writes nothing for the attempt (a "finished" line would leave the
// subscription disabled for good) and finishes it once the subscriber
// answers.
func TestAnInterruptedAttemptWaitsForItsSubscriber(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, cfg, e, first := crashedRepair(t, pgtest.PairOptions{Own: true})
	subc := p.Subscriber.Cluster
	if err := p.WaitStatus(ctx, p.Sub(), "disabled", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := subc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	next, _ := newExecutor(t, cfg)
	next.Audit = e.Audit
	outs, err := next.Resume(ctx, "auto")
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Result != ResultDeferred || !strings.Contains(outs[0].Reason, "its subscriber subscriber cannot be reached; attempt "+first.ID+" stays unfinished") ||
		outs[0].Plan.Subscription != p.Sub() || outs[0].Plan.Remedy != diagnose.RemedyRecreateOrigin {
		t.Fatalf("resume with the subscriber down: got %+v", outs)
	}
	if left, _ := e.Audit.Unfinished(); len(left) != 1 || left[0].ID != first.ID {
		t.Fatalf("after the deferred resume, unfinished: %+v (want %s)", left, first.ID)
	}
	if err := subc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		outs, err = next.Resume(ctx, "auto")
		return err == nil && len(outs) == 1 && outs[0].Result != ResultDeferred
	}); err != nil {
		t.Fatalf("resume once the subscriber is back: %+v %v", outs, err)
	}
	if outs[0].Result != ResultSuccess || outs[0].ID != first.ID {
		t.Fatalf("resume once the subscriber is back: %+v", outs[0])
	}
	finishedAndReplicating(t, p, e)
}

// finishedAndReplicating checks that the resumed attempt left the
// subscription replicating and nothing unfinished in the audit log.
func finishedAndReplicating(t *testing.T, p *pgtest.Pair, e *Executor) {
	t.Helper()
	if st, _ := p.Status(context.Background(), p.Sub()); st != "replicating" {
		t.Errorf("status after resume: %s", st)
	}
	if left, _ := e.Audit.Unfinished(); len(left) != 0 {
		t.Errorf("unfinished after resume: %+v", left)
	}
}

func TestCrashAfterDisableIsFinishedByNextRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, cfg, e, _ := crashedRepair(t)
	if err := p.WaitStatus(ctx, p.Sub(), "disabled", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// A new process, same audit log.
	next, _ := newExecutor(t, cfg)
	next.Audit = e.Audit
	outs, err := next.Resume(ctx, "auto")
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Result != ResultSuccess {
		t.Fatalf("resume: got %+v", outs)
	}
	if got := outs[0].Steps[0].Result; got != "skipped" {
		t.Errorf("disable step on resume: got %s, want skipped", got)
	}
	finishedAndReplicating(t, p, e)
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	e, m := newExecutor(t, testConfig(t, p, "30s"))
	loseOrigin(t, p, m)
	// pg_replication_origin is cluster-wide: look at this subscription's origin only.
	catalog := func() string {
		var s string
		if err := p.Subscriber.QueryRow(ctx, `SELECT (SELECT string_agg(sub_name || ':' || sub_enabled || ':' || sub_slot_name, ',') FROM pglogical.subscription)
			|| '|' || coalesce((SELECT string_agg(roname, ',') FROM pg_replication_origin o
				JOIN pglogical.subscription s ON s.sub_slot_name = o.roname), '')`, []any{&s}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := catalog()
	out := e.Execute(ctx, Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "test", DryRun: true})
	if out.Result != ResultDryRun || len(out.Plan.Steps) != 3 {
		t.Fatalf("got %s %q %+v", out.Result, out.Reason, out.Plan)
	}
	if after := catalog(); after != before {
		t.Errorf("catalog changed: before %q, after %q", before, after)
	}
	if entries, _ := e.Audit.Entries(); len(entries) != 0 {
		t.Errorf("dry run wrote the audit log: %+v", entries)
	}
}

func TestRestartAfterProviderOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prov := pgtest.NewCluster(t, pgtest.Options{})
	subc := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: subc})
	e, m := newExecutor(t, testConfig(t, p, "2s"))
	// pglogical sometimes reconnects by itself when its retry happens to
	// fall after the provider's return (more often on a loaded machine):
	// then there is nothing to repair, and the outage is tried again.
	var back time.Time
	for attempt := 1; ; attempt++ {
		if err := pgtest.ProviderOutage(ctx, p, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		back = time.Now()
		last, ok := findingWithin(m, p.Sub(), diagnose.CodeStuckDown, 30*time.Second)
		if ok {
			break
		}
		if attempt == 3 {
			t.Fatalf("finding stuck_down never appeared after %d outages: %+v", attempt, last.Subscriptions)
		}
		t.Logf("outage %d: pglogical reconnected by itself (%+v); again", attempt, last.Subscriptions)
	}
	out := e.Execute(ctx, Request{Remedy: diagnose.RemedyRestart, Subscription: p.Sub(), Actor: "test", Finding: diagnose.CodeStuckDown})
	if out.Result != ResultSuccess {
		t.Fatalf("got %s %s", out.Result, out.Reason)
	}
	t.Logf("provider outage: replicating %s after the provider's return (restart took %s)", time.Since(back).Round(time.Millisecond), out.Duration.Round(time.Millisecond))
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	e, _ := newExecutor(t, testConfig(t, p, "30s"))
	for _, tc := range []struct {
		name string
		req  Request
		want string
	}{
		{"healthy: finding gone", Request{Remedy: "restart", Subscription: p.Sub(), Finding: diagnose.CodeStuckDown}, "no longer holds"},
		{"origin exists", Request{Remedy: "recreate-origin", Subscription: p.Sub()}, "exists: nothing to re-create"},
		{"already enabled", Request{Remedy: "enable", Subscription: p.Sub()}, "already enabled"},
		{"unknown subscription", Request{Remedy: "restart", Subscription: "nope"}, "not found"},
		{"unknown remedy", Request{Remedy: "resync", Subscription: p.Sub()}, "unknown remedy"},
		{"slot not orphan", Request{Remedy: "drop-orphan-slot", Node: "provider", Slot: "pgl_x"}, "not an orphan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Actor = "test"
			out := e.Execute(ctx, tc.req)
			if out.Result != ResultRefused || !strings.Contains(out.Reason, tc.want) {
				t.Errorf("got %s %q, want refused with %q", out.Result, out.Reason, tc.want)
			}
		})
	}
}

func TestDropOrphanSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	e, m := newExecutor(t, testConfig(t, p, "30s"))
	if err := p.Provider.Exec(ctx, "SELECT pg_create_logical_replication_slot('pgl_leftover_abc', 'pglogical_output')"); err != nil {
		t.Fatal(err)
	}
	r := m.Observe(ctx)
	if len(r.Nodes[0].Findings) != 1 || r.Nodes[0].Findings[0].Code != diagnose.CodeOrphanSlot {
		t.Fatalf("provider findings: %+v", r.Nodes[0].Findings)
	}
	// The subscription's own slot is refused, though the node has an orphan.
	var own string
	if err := p.Provider.QueryRow(ctx, "SELECT slot_name FROM pg_replication_slots WHERE slot_name <> 'pgl_leftover_abc'", []any{&own}); err != nil {
		t.Fatal(err)
	}
	if out := e.Execute(ctx, Request{Remedy: diagnose.RemedyDropOrphanSlot, Node: "provider", Slot: own, Actor: "test"}); out.Result != ResultRefused || !strings.Contains(out.Reason, "not an orphan") {
		t.Fatalf("dropping the subscription's slot %s: got %s %q, want refused", own, out.Result, out.Reason)
	}
	out := e.Execute(ctx, Request{Remedy: diagnose.RemedyDropOrphanSlot, Node: "provider", Slot: "pgl_leftover_abc", Actor: "test"})
	if out.Result != ResultSuccess {
		t.Fatalf("got %s %s", out.Result, out.Reason)
	}
	var n int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgl_leftover_abc'", []any{&n}); err != nil || n != 0 {
		t.Fatalf("slot still there: %d %v", n, err)
	}
}

func TestFailedStepLeavesSubscriptionEnabled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	e, m := newExecutor(t, testConfig(t, p, "30s"))
	loseOrigin(t, p, m)
	e.failStep = 2
	out := e.Execute(ctx, Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "test"})
	if out.Result != ResultFailed || !strings.Contains(out.Reason, "enabled again (ok)") {
		t.Fatalf("got %s %q", out.Result, out.Reason)
	}
	var enabled bool
	if err := p.Subscriber.QueryRow(ctx, "SELECT sub_enabled FROM pglogical.subscription WHERE sub_name = $1", []any{&enabled}, p.Sub()); err != nil || !enabled {
		t.Fatalf("subscription left disabled (enabled=%t, %v)", enabled, err)
	}
	plan, _ := PlanFor(diagnose.RemedyRecreateOrigin, diagnose.Subscription{Name: p.Sub(), Subscriber: "subscriber", SlotName: "x"})
	if _, ok := reenable(plan, 0); ok {
		t.Fatal("reenable: a failed disable needs no compensation")
	}
}

func TestSkipTransactionPreconditions(t *testing.T) {
	down := diagnose.Subscription{Name: "sub", Subscriber: "s", Provider: "p", Status: probe.StatusDown, Enabled: true,
		ProviderUp: true, SlotFound: true, OriginExists: true, SlotName: "pgl_x", ApplyWorker: "16384:7", OriginRemoteLSN: "0/1972CE8"}
	logged := diagnose.Finding{Code: diagnose.CodeApplyError, Message: "... (CONTEXT: apply INSERT from remote relation public.t in commit before 0/1972DB0, xid 731 ...)"}
	for _, tc := range []struct {
		name, lsn string
		bend      func(s *diagnose.Subscription)
		resume    bool
		noLog     bool
		want      string // "" = allowed
	}{
		{name: "the failing transaction", lsn: "0/1972DB0"},
		{name: "not an LSN", lsn: "latest", want: "is not an LSN"},
		{name: "another transaction than the log names", lsn: "0/1972F00", want: "is the one in commit 0/1972DB0"},
		{name: "behind what was applied", lsn: "0/100", want: "moving its origin back would replay"},
		{name: "replicating", lsn: "0/1972DB0", bend: func(s *diagnose.Subscription) { s.Status = probe.StatusReplicating }, want: "is replicating"},
		{name: "slot gone", lsn: "0/1972DB0", bend: func(s *diagnose.Subscription) { s.SlotFound = false }, want: "a person must decide"},
		{name: "origin gone", lsn: "0/1972DB0", bend: func(s *diagnose.Subscription) { s.OriginExists = false }, want: "use recreate-origin"},
		{name: "no log read: the person's LSN", lsn: "0/1972F00", noLog: true},
		{name: "resuming after a crash, replicating by then", lsn: "0/1972DB0", resume: true, bend: func(s *diagnose.Subscription) { s.Status = probe.StatusDisabled }},
	} {
		s := down
		if tc.bend != nil {
			tc.bend(&s)
		}
		req := Request{Remedy: diagnose.RemedySkipTransaction, Subscription: "sub", LSN: tc.lsn}
		if !tc.noLog {
			req.FailingLSN = CommitLSN(logged) // as pglmon repair reads it
		}
		if tc.resume {
			req.Resume = "abc"
		}
		err := safeSkip(req, s)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	p := SkipTransactionPlan(down, "0/1972DB0")
	if len(p.Steps) != 3 || p.Steps[1].WaitFor == "" || p.Steps[1].Done == "" || !p.WaitReplicating || p.Remedy != diagnose.RemedySkipTransaction {
		t.Errorf("plan: %+v", p)
	}
}

// A repair takes an advisory lock on the node it changes, keyed by the
// subscription (by the slot for drop-orphan-slot): while another session
// holds it (another pglmon repairing, a person's pglmon repair) the attempt
// is refused, audited, and changes nothing; once it is let go, the repair runs.
// An attempt started and not yet finished in the audit log is not always
// interrupted: the daemon may be running it (waiting for the subscription
// to replicate again) when a person runs pglmon repair, or the person's
// repair when the daemon starts. Its lock tells: finishing it is refused
// while another holds the lock, and nothing is written for it (a
// "finished" would end the other's attempt for it); once the lock is let
// go, it is finished.
func TestAnAttemptStillRunningIsNotFinishedByAnother(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, cfg, e, first := crashedRepair(t)
	// Its owner still runs it: it holds the lock.
	holder, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", LockKey(p.Sub())); err != nil {
		t.Fatal(err)
	}
	next, _ := newExecutor(t, cfg)
	next.Audit = e.Audit
	outs, err := next.Resume(ctx, "cli:someone")
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Result != ResultRefused || !strings.Contains(outs[0].Reason, "attempt "+first.ID+" is still running, not interrupted") {
		t.Fatalf("resume while its owner holds the lock: %+v", outs)
	}
	entries, _ := e.Audit.Entries()
	for _, en := range entries {
		if en.ID == first.ID && en.Phase == "finished" {
			t.Errorf("the running attempt was recorded as finished by another: %+v", en)
		}
	}
	if left, _ := e.Audit.Unfinished(); len(left) != 1 || left[0].ID != first.ID {
		t.Errorf("unfinished: %+v", left)
	}
	// Its owner gone (the lock let go): it was interrupted, and is finished.
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", LockKey(p.Sub())); err != nil {
		t.Fatal(err)
	}
	if outs, err = next.Resume(ctx, "cli:someone"); err != nil || len(outs) != 1 || outs[0].Result != ResultSuccess {
		t.Fatalf("resume once the lock was let go: %+v %v", outs, err)
	}
	if left, _ := e.Audit.Unfinished(); len(left) != 0 {
		t.Errorf("unfinished after resume: %+v", left)
	}
}

func TestARepairHeldElsewhereIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	e, m := newExecutor(t, testConfig(t, p, "30s"))
	if err := p.Provider.Exec(ctx, "SELECT pg_create_logical_replication_slot('pgl_leftover_lock', 'pglogical_output')"); err != nil {
		t.Fatal(err)
	}
	loseOrigin(t, p, m)
	for _, tc := range []struct {
		db         pgtest.DB
		lock, what string
		req        Request
	}{
		{p.Subscriber, p.Sub(), "subscription " + p.Sub(), Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "test", Finding: diagnose.CodeOriginMissing}},
		{p.Provider, "slot/pgl_leftover_lock", "slot pgl_leftover_lock", Request{Remedy: diagnose.RemedyDropOrphanSlot, Node: "provider", Slot: "pgl_leftover_lock", Actor: "test"}},
	} {
		holder, err := tc.db.Cluster.Connect(ctx, tc.db.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", LockKey(tc.lock)); err != nil {
			t.Fatal(err)
		}
		out := e.Execute(ctx, tc.req)
		if want := tc.what + ": " + ErrLocked.Error(); out.Result != ResultRefused || out.Reason != want {
			t.Errorf("%s under another's lock: %s %s", tc.req.Remedy, out.Result, out.Reason)
		}
		entries, _ := e.Audit.Entries()
		if last := entries[len(entries)-1]; last.Outcome != ResultRefused || !strings.HasSuffix(last.Reason, ErrLocked.Error()) || last.Remedy != tc.req.Remedy {
			t.Errorf("%s: audited as %+v", tc.req.Remedy, last)
		}
		holder.Close(ctx)
		if out := e.Execute(ctx, tc.req); out.Result != ResultSuccess {
			t.Errorf("%s once the lock was let go: %s %s", tc.req.Remedy, out.Result, out.Reason)
		}
	}
}

// A step whose statement returns without doing its work fails on its check
// afterwards, and the repair stops there: here the subscriber's sessions find
// a pg_replication_origin_create that creates nothing (a schema before
// pg_catalog in the search path, set in the node's connection string).
func TestStepWithoutEffectFailsItsCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	if err := p.Subscriber.Exec(ctx, `CREATE SCHEMA shadow;
		CREATE FUNCTION shadow.pg_replication_origin_create(text) RETURNS oid LANGUAGE sql AS 'SELECT 0::oid'`); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, p, "30s")
	for i := range cfg.Nodes {
		if cfg.Nodes[i].Name == "subscriber" {
			cfg.Nodes[i].DSN += " options='-csearch_path=shadow,pg_catalog'"
		}
	}
	e, m := newExecutor(t, cfg)
	loseOrigin(t, p, m)
	out := e.Execute(ctx, Request{Remedy: diagnose.RemedyRecreateOrigin, Subscription: p.Sub(), Actor: "test"})
	if out.Result != ResultFailed || !strings.Contains(out.Reason, "verification after the step failed") {
		t.Fatalf("got %s %q", out.Result, out.Reason)
	}
	var results []string
	for _, s := range out.Steps {
		results = append(results, s.Action+": "+s.Result)
	}
	if got := strings.Join(results, "; "); !strings.Contains(got, "re-create the replication origin (named after the slot): failed") || !strings.Contains(got, "enable the subscription: ok") {
		t.Fatalf("steps: %s", got)
	}
	var enabled, origin bool
	if err := p.Subscriber.QueryRow(ctx, `SELECT sub_enabled, EXISTS (SELECT 1 FROM pg_catalog.pg_replication_origin WHERE roname = $2)
		FROM pglogical.subscription WHERE sub_name = $1`, []any{&enabled, &origin}, p.Sub(), out.Steps[1].Args[0]); err != nil {
		t.Fatal(err)
	}
	if !enabled || origin {
		t.Fatalf("subscription enabled %t, origin created %t: want enabled, not created", enabled, origin)
	}
}

// rewind-origin, interrupted after each of its steps and finished by the
// next run (the audit log's LSN): what the provider writes afterwards
// arrives, and nothing applied after the rewind is applied again (a row
// deleted on the subscriber meanwhile would come back): the resumed attempt
// does not rewind again once the subscription was enabled, and the
// provider never decodes again what its slot confirmed.
func TestRewindOriginInterruptedAfterEachStep(t *testing.T) {
	t.Parallel()
	for step := 1; step <= 3; step++ {
		t.Run(fmt.Sprint("after step ", step), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
			cfg := testConfig(t, p, "30s")
			e, m := newExecutor(t, cfg)
			if err := p.RewindProvider(ctx, 101, 150); err != nil {
				t.Fatal(err)
			}
			waitFinding(t, m, p.Sub(), diagnose.CodeProviderRewound)
			e.crashAfterStep = step
			out := e.Execute(ctx, Request{Remedy: diagnose.RemedyRewindOrigin, Subscription: p.Sub(), Actor: "cli:test"})
			if out.Result != "crashed" || out.Plan.LSN == "" {
				t.Fatalf("got %s %s, plan %+v", out.Result, out.Reason, out.Plan)
			}
			arrives := func(id int) {
				t.Helper()
				if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES ($1, 'after', 0)", id); err != nil {
					t.Fatal(err)
				}
				if err := pgtest.Poll(ctx, time.Minute, func() bool {
					var n int
					return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = $1", []any{&n}, id) == nil && n == 1
				}); err != nil {
					t.Fatalf("row %d did not arrive: %v", id, err)
				}
			}
			if step == 3 {
				arrives(3001)
				if err := p.Subscriber.Exec(ctx, "DELETE FROM items_0 WHERE id = 3001"); err != nil {
					t.Fatal(err)
				}
			}
			next, _ := newExecutor(t, cfg)
			next.Audit = e.Audit
			outs, err := next.Resume(ctx, "auto")
			if err != nil || len(outs) != 1 || outs[0].Result != ResultSuccess {
				t.Fatalf("resume: %+v, %v", outs, err)
			}
			if outs[0].Plan.LSN != out.Plan.LSN {
				t.Errorf("resumed to %s, first run chose %s", outs[0].Plan.LSN, out.Plan.LSN)
			}
			finishedAndReplicating(t, p, e)
			arrives(4001)
			var back int
			if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = 3001", []any{&back}); err != nil || back != 0 {
				t.Errorf("row 3001, deleted on the subscriber after the rewind, is back (%d, %v): the resumed attempt rewound again", back, err)
			}
			if r := m.Observe(ctx); len(r.Subscriptions) == 1 && r.Subscriptions[0].Rewound != nil {
				t.Errorf("still rewound: %+v", r.Subscriptions[0])
			}
		})
	}
}
