package daemon

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/verify"
)

// data_divergence names up to five differing keys of a keyed table; rows of
// a table without key are named by their contents, which stay out of the
// finding (it goes to Slack, logs and the status API).
func TestDataDivergenceKeepsRowContentsOut(t *testing.T) {
	v := &verifier{results: map[string]subResult{"subscriber/sub_0": {Subscriber: "subscriber", Subscription: "sub_0", Tables: []verify.TableResult{
		{Table: "public.orders", Scan: verify.ScanIndex, DifferingRows: 2, Keys: []verify.KeyDiff{{Key: "17", Kind: verify.Missing}, {Key: "42", Kind: verify.Different}}},
		{Table: "public.events", Scan: verify.ScanRows, DifferingRows: 1, Keys: []verify.KeyDiff{{Key: "(5,alice@example.com)", Kind: verify.Missing}}},
	}}}}
	rep := diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber"}}}
	v.annotate(&rep)
	f, ok := rep.Subscriptions[0].Finding(diagnose.CodeDataDivergence)
	if !ok || f.Severity != diagnose.Critical {
		t.Fatalf("findings: %+v", rep.Subscriptions[0].Findings)
	}
	for _, want := range []string{"public.orders: 2 rows differ (17 missing, 42 different)", "public.events: 1 rows differ (rows named by their contents: pglmon verify --table public.events)"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}
	if strings.Contains(f.Message, "alice@example.com") {
		t.Errorf("a row's contents in the finding: %s", f.Message)
	}
}
