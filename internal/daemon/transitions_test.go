package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// TestTransitionsCrashLoop feeds the health a crash loop gives, sampled
// every 5 s: critical, with an ok sample now and then (pglogical's
// replicating second at a worker's start). One change is logged for the
// failure and one for the recovery, once ok has held for the settle time.
func TestTransitionsCrashLoop(t *testing.T) {
	const settle = 15 * time.Second
	tr := newTransitions(settle)
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	// o ok, c critical, - absent; one sample per 5 s.
	samples := "ooocccocccoccccooocoooo-o"
	var log []string
	for i, ch := range samples {
		now := t0.Add(time.Duration(i) * 5 * time.Second)
		var r diagnose.Report
		switch ch {
		case 'o':
			r.Subscriptions = []diagnose.Subscription{{Subscriber: "s", Name: "sub", Health: diagnose.OK}}
		case 'c':
			r.Subscriptions = []diagnose.Subscription{{Subscriber: "s", Name: "sub", Health: diagnose.Critical,
				Findings: []diagnose.Finding{{Code: "apply_error"}}}}
		}
		changes, gone := tr.observe(now, r)
		for _, c := range changes {
			log = append(log, fmt.Sprintf("%d %s->%s %v blips=%d for=%s", i, c.From, c.To, c.Findings, c.Blips, c.For))
		}
		for _, g := range gone {
			log = append(log, fmt.Sprintf("%d gone %s", i, g))
		}
	}
	want := []string{
		"3 ok->critical [apply_error] blips=0 for=0s",
		// ok at 6 and 10 lasted one sample; 15-17 lasted 10 s; 19-22 held 15 s.
		"22 critical->ok [] blips=3 for=1m20s",
		"23 gone s/sub",
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged:\n%s\nwant:\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
}

func TestTransitionsOtherChanges(t *testing.T) {
	tr := newTransitions(15 * time.Second)
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	report := func(h diagnose.Health) diagnose.Report {
		return diagnose.Report{Subscriptions: []diagnose.Subscription{{Subscriber: "s", Name: "sub", Health: h}}}
	}
	step := func(sec int, h diagnose.Health) string {
		changes, _ := tr.observe(t0.Add(time.Duration(sec)*time.Second), report(h))
		var out []string
		for _, c := range changes {
			s := c.From + "->" + string(c.To)
			if c.For > 0 {
				s += " for " + c.For.String()
			}
			out = append(out, s)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		sec  int
		h    diagnose.Health
		want string
	}{
		{0, diagnose.Warning, "new->warning"}, // first seen unhealthy
		{5, diagnose.Critical, "warning->critical"},
		{10, diagnose.Warning, "critical->warning"}, // better, still unhealthy: at once
		{15, diagnose.OK, ""},
		{20, diagnose.Critical, "warning->critical"}, // worse than logged during a pending recovery
		{25, diagnose.OK, ""},
		{40, diagnose.OK, "critical->ok for 25s"}, // unhealthy from 0 s to the first ok at 25 s
		{45, diagnose.OK, ""},
		{50, diagnose.Warning, "ok->warning"},
		{55, diagnose.Critical, "warning->critical"},
		{60, diagnose.OK, ""},
		{75, diagnose.OK, "critical->ok for 10s"}, // from the warning at 50 s

	} {
		if got := step(c.sec, c.h); got != c.want {
			t.Errorf("at %d s, %s: logged %q, want %q", c.sec, c.h, got, c.want)
		}
	}
	// First seen ok: nothing logged.
	tr2 := newTransitions(15 * time.Second)
	if changes, _ := tr2.observe(t0, report(diagnose.OK)); len(changes) != 0 {
		t.Errorf("new ok subscription logged: %v", changes)
	}
}

// While a subscription stays unhealthy at the same health, a finding that
// joins is logged at once, and one that goes once it has stayed gone for
// the settle time (a threshold crossed back and forth logs nothing).
func TestTransitionsFindingsAtTheSameHealth(t *testing.T) {
	tr := newTransitions(15 * time.Second)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	step := func(sec int, h diagnose.Health, codes ...string) string {
		s := diagnose.Subscription{Subscriber: "s", Name: "sub", Health: h}
		for _, c := range codes {
			s.Findings = append(s.Findings, diagnose.Finding{Code: c})
		}
		changes, _ := tr.observe(t0.Add(time.Duration(sec)*time.Second), diagnose.Report{Subscriptions: []diagnose.Subscription{s}})
		var out []string
		for _, c := range changes {
			out = append(out, fmt.Sprintf("%s->%s %v +%v -%v", c.From, c.To, c.Findings, c.Added, c.Removed))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		sec   int
		h     diagnose.Health
		codes []string
		want  string
	}{
		{0, diagnose.OK, nil, ""},
		{5, diagnose.Warning, []string{"apply_blocked"}, "ok->warning [apply_blocked] +[] -[]"},
		{10, diagnose.Warning, []string{"apply_blocked"}, ""},
		{15, diagnose.Warning, []string{"apply_blocked", "schema_mismatch"}, "warning->warning [apply_blocked schema_mismatch] +[schema_mismatch] -[]"},
		{20, diagnose.Warning, []string{"schema_mismatch", "apply_blocked"}, ""}, // another order
		{25, diagnose.Warning, []string{"apply_blocked"}, ""},                    // gone for less than 15 s
		{30, diagnose.Warning, []string{"apply_blocked", "schema_mismatch"}, ""},
		{35, diagnose.Warning, []string{"apply_blocked"}, ""},
		{45, diagnose.Warning, []string{"apply_blocked"}, ""},
		{50, diagnose.Warning, []string{"apply_blocked"}, "warning->warning [apply_blocked] +[] -[schema_mismatch]"},
		{55, diagnose.Warning, []string{"replication_delay_high"}, "warning->warning [replication_delay_high] +[replication_delay_high] -[apply_blocked]"},
		{60, diagnose.Critical, []string{"replication_delay_high", "apply_error"}, "warning->critical [replication_delay_high apply_error] +[] -[]"},
		{65, diagnose.Critical, []string{"apply_error"}, ""},
		{70, diagnose.OK, nil, ""},
		{85, diagnose.OK, nil, "critical->ok [] +[] -[]"},
		{90, diagnose.OK, []string{"info_thing"}, ""}, // ok: findings are not followed
	} {
		if got := step(c.sec, c.h, c.codes...); got != c.want {
			t.Errorf("at %d s, %s %v: logged %q, want %q", c.sec, c.h, c.codes, got, c.want)
		}
	}
}

// A node's findings are followed as a subscription's, but for
// node_unreachable, which the daemon logs by itself; a node gone from the
// report is not a subscription gone.
func TestTransitionsOfANode(t *testing.T) {
	tr := newTransitions(15 * time.Second)
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	step := func(sec int, fs ...diagnose.Finding) string {
		var r diagnose.Report
		if fs != nil {
			r.Nodes = []diagnose.Node{{Name: "provider", Findings: fs}}
		}
		changes, gone := tr.observe(t0.Add(time.Duration(sec)*time.Second), r)
		var out []string
		for _, c := range changes {
			out = append(out, fmt.Sprintf("%s %s %s->%s %v +%v -%v", c.Node, c.Subscriber+c.Subscription, c.From, c.To, c.Findings, c.Added, c.Removed))
		}
		for _, g := range gone {
			out = append(out, "gone "+g)
		}
		return strings.Join(out, ",")
	}
	orphan := diagnose.Finding{Code: "orphan_slot", Severity: diagnose.Warning, Slot: "s1"}
	orphan2 := diagnose.Finding{Code: "orphan_slot", Severity: diagnose.Warning, Slot: "s2"}
	storage := diagnose.Finding{Code: "storage_low", Severity: diagnose.Critical}
	unreachable := diagnose.Finding{Code: diagnose.CodeNodeUnreachable, Severity: diagnose.Critical}
	for _, c := range []struct {
		sec  int
		fs   []diagnose.Finding
		want string
	}{
		{0, []diagnose.Finding{}, ""},
		{5, []diagnose.Finding{unreachable}, ""},
		{10, []diagnose.Finding{orphan}, "provider  ok->warning [orphan_slot s1] +[] -[]"},
		{15, []diagnose.Finding{orphan, orphan2}, "provider  warning->warning [orphan_slot s1 orphan_slot s2] +[orphan_slot s2] -[]"}, // another orphan slot
		{20, []diagnose.Finding{orphan, orphan2, storage}, "provider  warning->critical [orphan_slot s1 orphan_slot s2 storage_low] +[] -[]"},
		{25, []diagnose.Finding{storage}, ""},
		{40, []diagnose.Finding{storage}, "provider  critical->critical [storage_low] +[] -[orphan_slot s1 orphan_slot s2]"},
		{45, nil, ""},
	} {
		if got := step(c.sec, c.fs...); got != c.want {
			t.Errorf("at %d s, %v: logged %q, want %q", c.sec, c.fs, got, c.want)
		}
	}
}
