package preflight

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/probe"
)

func TestEnglishMessages(t *testing.T) {
	for lc, want := range map[string]bool{"": true, "C": true, "POSIX": true, "C.UTF-8": true, "en_US.UTF-8": true, "en_GB.utf8": true,
		"de_DE.UTF-8": false, "fr_FR.UTF-8": false, "ja_JP.UTF-8": false} {
		if got := englishMessages(lc); got != want {
			t.Errorf("%q: %v, want %v", lc, got, want)
		}
	}
}

// Two subscriptions from one provider carrying its heartbeats are warned
// of, and none for a provider writing them; one carrier per provider, or
// heartbeats from two providers, are not.
func TestHeartbeatCarriers(t *testing.T) {
	sub := func(name, prov string, sets ...string) probe.Subscription {
		return probe.Subscription{Name: name, ProviderNode: prov, ReplicationSets: sets}
	}
	snaps := []probe.Snapshot{
		{Node: "one", Subscriptions: []probe.Subscription{sub("a", "p", "default", probe.HeartbeatSet), sub("b", "p", "other"), sub("c", "q", probe.HeartbeatSet)}},
		{Node: "two", Subscriptions: []probe.Subscription{sub("a", "p", probe.HeartbeatSet), sub("b", "p", "x", probe.HeartbeatSet), sub("c", "q", probe.HeartbeatSet)}},
	}
	got := heartbeatCarriers(snaps)
	if len(got) != 1 || got[0].Node != "two" || got[0].Level != Warn || !strings.HasPrefix(got[0].Detail, "subscriptions a, b all carry the heartbeats of pglogical node p") {
		t.Fatalf("checks: %+v", got)
	}
	// None carries the heartbeats of p, which writes them: warned of; of q,
	// which writes none (not installed there), not.
	snaps = []probe.Snapshot{
		{Node: "prov", LocalNode: "p", Heartbeat: &probe.Heartbeat{Provides: true}},
		{Node: "other", LocalNode: "q", Heartbeat: &probe.Heartbeat{}},
		{Node: "sub", Subscriptions: []probe.Subscription{sub("a", "p", "default"), sub("b", "p", "other"), sub("c", "q", "default")}},
	}
	got = heartbeatCarriers(snaps)
	if len(got) != 1 || got[0].Node != "sub" || !strings.HasPrefix(got[0].Detail, "no subscription from pglogical node p carries the heartbeats it writes") || !strings.Contains(got[0].Detail, "the lost changes of a, b are not measured") {
		t.Fatalf("checks without a carrier: %+v", got)
	}
}
