package main

import (
	"os"
	"path/filepath"
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
