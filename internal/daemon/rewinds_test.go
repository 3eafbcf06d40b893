package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// A provider put back from a copy of its files: the daemon says
// provider_rewound while the subscriber's origin is past the provider's
// end of WAL, and holds it, across a restart, once the provider's WAL has
// passed it (a probe no longer sees it; what pglogical skipped meanwhile
// stays lost), until a verification that started since finds the tables
// equal.
func TestDaemonHoldsAProviderRewindUntilVerified(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	audit := filepath.Join(t.TempDir(), "a.jsonl")
	body := pairConfig(p, audit, policyOff())
	r := start(t, body, nil)
	if err := p.RewindProvider(ctx, 101, 150); err != nil {
		t.Fatal(err)
	}
	rewound := func(r *running, held bool) bool {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		if !ok {
			return false
		}
		f, ok := s.Finding(diagnose.CodeProviderRewound)
		return ok && f.Severity == diagnose.Critical && (s.Rewound == nil) == held &&
			strings.Contains(f.Message, "Nothing more is skipped now") == held && (f.Remedy == diagnose.RemedyRewindOrigin) != held
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return rewound(r, false) }); err != nil {
		t.Fatalf("no provider_rewound: %+v", r.status(t).Subscriptions)
	}
	// The provider's WAL passes the subscriber's origin: this transaction
	// commits past it and is applied.
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, repeat('x', 200), g FROM generate_series(1001, 3000) g"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var n int
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id > 1000", []any{&n}) == nil && n == 2000
	}); err != nil {
		t.Fatal("the rows written past the origin did not arrive: ", err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return rewound(r, true) }); err != nil {
		t.Fatalf("not held: %+v", r.status(t).Subscriptions)
	}
	r.stop(t)
	r = start(t, body, nil)
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return rewound(r, true) }); err != nil {
		t.Fatalf("not held after a restart: %+v", r.status(t).Subscriptions)
	}
	// What pglmon status and repair read (StandingRewinds), afresh.
	standing := func() bool {
		t.Helper()
		cfg := r.d.cfg.Load()
		m := monitor.New(cfg)
		defer m.Close(ctx)
		rep := m.Observe(ctx)
		if err := StandingRewinds(cfg, &rep); err != nil {
			t.Fatal(err)
		}
		s, _ := rep.Subscription(p.Sub(), "")
		_, ok := s.Finding(diagnose.CodeProviderRewound)
		return ok && s.Health == diagnose.Critical && rep.Health == diagnose.Critical
	}
	if !standing() {
		t.Fatal("status does not see the rewind the daemon holds")
	}
	// What the provider lost, taken off the subscriber too: equal.
	if err := p.Subscriber.Exec(ctx, "DELETE FROM items_0 WHERE id BETWEEN 101 AND 150"); err != nil {
		t.Fatal(err)
	}
	byHand(t, r, p)
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		if !ok {
			return false
		}
		_, held := s.Finding(diagnose.CodeProviderRewound)
		return !held && s.Health == diagnose.OK
	}); err != nil {
		t.Fatalf("still held after a verification found the tables equal: %+v", r.status(t).Subscriptions)
	}
	if standing() {
		t.Fatal("status still sees the rewind after a verification found the tables equal")
	}
}
