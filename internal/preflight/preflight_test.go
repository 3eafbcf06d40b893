package preflight

import (
	"slices"
	"strings"
	"testing"
	"time"

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
// of, and none for a provider writing them (for 5 minutes); one carrier
// per provider, a provider writing none, are not: the daemon's
// heartbeat_carriers, said by check-config.
func TestHeartbeatCarriers(t *testing.T) {
	sub := func(name, prov string, sets ...string) probe.Subscription {
		return probe.Subscription{Name: name, ProviderNode: prov, ReplicationSets: sets}
	}
	now := time.Now()
	writes := func(node string, since time.Duration) *probe.Heartbeat {
		return &probe.Heartbeat{Clock: now, Provides: true, Nodes: map[string]probe.HeartbeatSpan{node: {Oldest: now.Add(-since), Newest: now}}}
	}
	providers := []probe.Snapshot{
		{Node: "prov", LocalNode: "p", Heartbeat: writes("p", time.Hour)},
		{Node: "other", LocalNode: "q", Heartbeat: &probe.Heartbeat{}},
	}
	snaps := append(slices.Clone(providers),
		probe.Snapshot{Node: "one", Subscriptions: []probe.Subscription{sub("a", "p", "default", probe.HeartbeatSet), sub("b", "p", "other"), sub("c", "q", probe.HeartbeatSet)}},
		probe.Snapshot{Node: "two", Subscriptions: []probe.Subscription{sub("a", "p", probe.HeartbeatSet), sub("b", "p", "x", probe.HeartbeatSet), sub("c", "q", probe.HeartbeatSet)}},
	)
	got := heartbeatCarriers(snaps)
	if len(got) != 1 || got[0].Node != "two" || got[0].Check != "heartbeat carriers" || got[0].Level != Warn || !strings.HasPrefix(got[0].Detail, "subscriptions a, b on two all carry the heartbeats of provider prov") {
		t.Fatalf("checks: %+v", got)
	}
	// None carries the heartbeats of p, which writes them: warned of; of q,
	// which writes none (not installed there), not.
	snaps = append(slices.Clone(providers),
		probe.Snapshot{Node: "sub", Subscriptions: []probe.Subscription{sub("a", "p", "default"), sub("b", "p", "other"), sub("c", "q", "default")}})
	got = heartbeatCarriers(snaps)
	if len(got) != 1 || got[0].Node != "sub" || !strings.HasPrefix(got[0].Detail, "provider prov writes heartbeats, but no subscription from it on sub carries them") || !strings.Contains(got[0].Detail, "heartbeats_lost is not measured for a, b,") {
		t.Fatalf("checks without a carrier: %+v", got)
	}
	// An install under way: p has written heartbeats for a minute.
	snaps[0].Heartbeat = writes("p", time.Minute)
	if got := heartbeatCarriers(snaps); len(got) != 0 {
		t.Fatalf("checks during an install: %+v", got)
	}
}
