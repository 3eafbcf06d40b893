package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/seen"
)

// A subscription the configuration does not describe, dropped on its
// subscriber: the daemon, which saw it, reports it missing (it used to
// vanish from the report, and its alerts resolved), also after a restart,
// until pglmon forget takes it off.
func TestDaemonReportsADroppedSubscriptionItSaw(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	audit := filepath.Join(t.TempDir(), "a.jsonl")
	body := pairConfig(p, audit, policyOff())
	state := filepath.Join(filepath.Dir(audit), "subscriptions-seen.json")
	r := start(t, body, nil)
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		b, _ := os.ReadFile(state)
		// With the tables of its sets (a table taken out of them is
		// table_left_set: package monitor's tests).
		return strings.Contains(string(b), `"subscription": "`+p.Sub()+`"`) && strings.Contains(string(b), `"name": "items_0"`)
	}); err != nil {
		b, _ := os.ReadFile(state)
		t.Fatalf("the daemon did not note %s and the tables of its sets in %s:\n%s", p.Sub(), state, b)
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.drop_subscription($1)", p.Sub()); err != nil {
		t.Fatal(err)
	}
	missing := func(r *running, want string) {
		t.Helper()
		var got diagnose.Subscription
		if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
			for _, s := range r.status(t).Subscriptions {
				if s.Name == p.Sub() {
					got = s
					return s.Status == diagnose.StatusMissing
				}
			}
			return false
		}); err != nil {
			t.Fatalf("%s not reported missing: %+v\n%s", p.Sub(), got, r.logs.String())
		}
		f, ok := got.Finding(diagnose.CodeSubscriptionMissing)
		if !ok || f.Severity != diagnose.Critical || !strings.Contains(f.Message, want) || !strings.Contains(f.Message, "pglmon forget --config FILE --subscription "+p.Sub()+" --subscriber subscriber") {
			t.Fatalf("finding: %+v", got.Findings)
		}
	}
	missing(r, "which pglmon saw on subscriber until ")
	r.waitMetric(t, `^pglmon_finding\{code="subscription_missing",severity="critical",subscriber="subscriber",subscription="`+p.Sub()+`"\} 1$`, false, 10*time.Second)
	if !strings.Contains(r.logs.String(), `"msg":"a subscription pglmon saw no longer exists"`) {
		t.Errorf("not logged:\n%s", r.logs.String())
	}

	// A restarted daemon still knows it.
	r.stop(t)
	r = start(t, body, nil)
	missing(r, "which pglmon saw on subscriber since ")

	// Dropped on purpose: forgotten.
	if gone, err := seen.Forget(state, "", p.Sub()); err != nil || len(gone) != 1 {
		t.Fatalf("forget: %+v %v", gone, err)
	}
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		for _, s := range r.status(t).Subscriptions {
			if s.Name == p.Sub() {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("still reported after forget: %+v", r.status(t).Subscriptions)
	}
}
