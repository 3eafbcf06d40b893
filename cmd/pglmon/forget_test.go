package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// A subscription the daemon saw (its subscriptions-seen.json) that its
// subscriber no longer has: status reports it missing; pglmon forget takes
// it off, once.
func TestForgetADroppedSubscription(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg := writeConfig(t, p, "")
	seenFile := filepath.Join(filepath.Dir(cfg), "subscriptions-seen.json")
	if err := os.WriteFile(seenFile, []byte(`{"version": 1, "subscriptions": [
		{"subscriber": "subscriber", "subscription": "sub_gone", "provider": "provider", "replication_sets": ["set_9"], "first_seen": "2026-12-01T08:00:00Z"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, st := status(t, cfg)
	var found bool
	for _, s := range st.Subscriptions {
		if s.Name == "sub_gone" {
			found = s.Status == "missing" && len(s.Findings) == 1 && s.Findings[0].Code == "subscription_missing" &&
				strings.Contains(s.Findings[0].Message, "which pglmon saw on subscriber since 2026-12-01T08:00:00Z (from provider, sets set_9), no longer exists there")
		}
	}
	if code != 2 || !found {
		t.Fatalf("status: exit %d, %+v", code, st.Subscriptions)
	}
	if code, out, errOut := pglmon(t, "forget", "--config", cfg, "--subscription", "sub_gone"); code != 0 || !strings.Contains(out, "Forgot subscription sub_gone on subscriber (seen since 2026-12-01T08:00:00Z)") {
		t.Fatalf("forget: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := pglmon(t, "forget", "--config", cfg, "--subscription", "sub_gone"); code != 1 || !strings.Contains(errOut, "the daemon has not seen subscription sub_gone") {
		t.Errorf("forget again: exit %d, %s", code, errOut)
	}
	if code, st := status(t, cfg); code != 0 {
		t.Errorf("status after forget: exit %d, %+v", code, st)
	}
	if code, _, errOut := pglmon(t, "forget", "--config", cfg); code != exitUsage || !strings.Contains(errOut, "--subscription NAME is required") {
		t.Errorf("forget without --subscription: exit %d, %s", code, errOut)
	}
	if code, _, errOut := pglmon(t, "forget", "--config", cfg, "--subscription", "x", "--subscriber", "nope"); code != exitUsage || !strings.Contains(errOut, "nope") {
		t.Errorf("forget --subscriber nope: exit %d, %s", code, errOut)
	}
}

// A table the daemon saw in the subscription's set (its
// subscriptions-seen.json), now in none, that the subscriber still has,
// without a sync status (put in the set without its copy): status reports
// table_left_set, repair's plan says how to forget it, and pglmon forget
// --table does.
func TestForgetATableTakenOutOfASet(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	execAll(context.Background(), t, []sqlStep{
		{p.Provider, "CREATE TABLE plain (id int PRIMARY KEY)"},
		{p.Subscriber, "CREATE TABLE plain (id int PRIMARY KEY)"},
	})
	cfg := writeConfig(t, p, "")
	seenFile := filepath.Join(filepath.Dir(cfg), "subscriptions-seen.json")
	if err := os.WriteFile(seenFile, []byte(`{"version": 1, "subscriptions": [
		{"subscriber": "subscriber", "subscription": "`+p.Sub()+`", "provider": "provider", "replication_sets": ["set_0"], "first_seen": "2026-12-01T08:00:00Z",
		 "set_tables": [{"schema": "public", "name": "items_0"}, {"schema": "public", "name": "plain"}, {"schema": "public", "name": "dropped"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, st := status(t, cfg)
	if code != 1 || len(st.Subscriptions) != 1 || len(st.Subscriptions[0].Findings) != 1 || st.Subscriptions[0].Findings[0].Code != "table_left_set" ||
		!slices.Equal(st.Subscriptions[0].TablesLeftSets, []string{"public.plain"}) {
		t.Fatalf("status: exit %d, %+v", code, st.Subscriptions)
	}
	_, out, _ := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if want := "pglmon forget --config " + cfg + " --subscription " + p.Sub() + " --subscriber subscriber --table public.plain"; !strings.Contains(out, want) {
		t.Errorf("the plan lacks %q:\n%s", want, out)
	}
	if code, _, errOut := pglmon(t, "forget", "--config", cfg, "--subscription", p.Sub(), "--table", "public.nope"); code != 1 || !strings.Contains(errOut, "the daemon has not seen public.nope in the replication sets of subscription "+p.Sub()) {
		t.Errorf("forget --table public.nope: exit %d, %s", code, errOut)
	}
	if code, _, errOut := pglmon(t, "forget", "--config", cfg, "--subscription", p.Sub(), "--table", `"bad`); code != exitUsage || !strings.Contains(errOut, `--table "\"bad"`) {
		t.Errorf("forget --table \"bad: exit %d, %s", code, errOut)
	}
	if code, out, errOut := pglmon(t, "forget", "--config", cfg, "--subscription", p.Sub(), "--table", "PLAIN"); code != 0 ||
		!strings.Contains(out, "Forgot table public.plain in the sets of subscription "+p.Sub()+" on subscriber") {
		t.Fatalf("forget --table PLAIN: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, st := status(t, cfg); code != 0 {
		t.Errorf("status after forget: exit %d, %+v", code, st.Subscriptions)
	}
}
