package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/verified"
	"github.com/pglmon/pglmon/internal/verify"
)

// byHand does what `pglmon verify --config FILE --subscription SUB` does
// for the daemon: a checksum comparison of the pair's subscription, whose
// tables found equal it records in the file the daemon reads. It returns
// what it recorded, by key.
func byHand(t *testing.T, r *running, p *pgtest.Pair) []string {
	t.Helper()
	ctx := context.Background()
	cfg := r.d.cfg.Load()
	m := monitor.New(cfg)
	defer m.Close(ctx)
	_, snaps := m.Cycle(ctx)
	targets, err := verify.Targets(snaps, p.Sub())
	if err != nil || len(targets) != 1 {
		t.Fatalf("targets %v: %v", targets, err)
	}
	started := time.Now()
	res := verify.Run(ctx, cfg, targets[0], verify.ConfigOptions(cfg.Verify, verify.ModeChecksum), "")
	if res.Error != "" {
		t.Fatal(res.Error)
	}
	es := verified.Entries(res, started, true)
	if err := verified.Record(cfg.VerifiedFile(), es); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key())
	}
	return keys
}

// A data_divergence stands until a verification finds the table equal: a
// person who puts the row right and runs pglmon verify need not wait for
// the next scheduled one (an hour here). A verification by hand that still
// finds it different changes nothing.
func TestDaemonTakesAVerificationByHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, fix := driftedRow(t)
	audit := filepath.Join(t.TempDir(), "a.jsonl")
	r := start(t, pairConfig(p, audit, policyOff()+"verify:\n  every: 1h\n"), nil)
	series := `^pglmon_table_divergent_rows\{subscription="` + p.Sub() + `",table="public.items_0"\} 1$`
	r.waitMetric(t, series, false, 30*time.Second)
	divergence := func() bool {
		rep := r.status(t)
		s, _ := rep.Subscription(p.Sub(), "")
		_, ok := s.Finding(diagnose.CodeDataDivergence)
		return ok
	}

	if keys := byHand(t, r, p); slices.Contains(keys, "subscriber/"+p.Sub()+"/public.items_0") || slices.Contains(keys, "subscriber/"+p.Sub()+"/") {
		t.Fatalf("recorded as equal while row 77 differs: %v", keys)
	}
	after := time.Now()
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool { return r.status(t).Time.After(after) }); err != nil {
		t.Fatal("no report")
	}
	if !divergence() {
		t.Fatal("data_divergence went after a verification by hand that found the row different")
	}

	fix()
	if keys := byHand(t, r, p); !slices.Contains(keys, "subscriber/"+p.Sub()+"/public.items_0") {
		t.Fatalf("not recorded as equal: %v", keys)
	}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool { return !divergence() }); err != nil {
		t.Fatalf("data_divergence stayed after a verification by hand found the table equal:\n%s", r.logs.String())
	}
	r.waitMetric(t, `pglmon_table_divergent_rows\{`, true, 5*time.Second)
	// Kept: a restart does not bring it back.
	st, err := (&stateFile{r.d.cfg.Load().VerifyStateFile()}).load()
	if err != nil || len(st.Results) != 0 {
		t.Errorf("kept state after the verification by hand: %+v, %v", st.Results, err)
	}
}

// A failed table copy put right by hand, and verified by hand, is no
// longer reported, with no scheduled verification.
func TestDaemonClearsAFailedCopyVerifiedByHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, r, _, finding := failedCopy(t, "")
	if err := p.Subscriber.Exec(ctx, "INSERT INTO t2 VALUES (21, 'only on the provider')"); err != nil {
		t.Fatal(err)
	}
	if keys := byHand(t, r, p); !slices.Contains(keys, "subscriber/"+p.Sub()+"/public.t2") {
		t.Fatalf("t2 not recorded as equal: %v", keys)
	}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool { _, ok := finding(); return !ok }); err != nil {
		t.Fatalf("table_copy_failed stayed after t2 was put right and verified by hand:\n%s", r.logs.String())
	}
}
