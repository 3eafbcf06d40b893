package heartbeat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/probe"
)

// The window both tables hold whole: from the later oldest, past what a
// prune may delete, to shortly before the subscriber's newest.
func TestWindow(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	span := func(oldest, newest time.Duration) probe.HeartbeatSpan {
		return probe.HeartbeatSpan{Oldest: at.Add(oldest), Newest: at.Add(newest)}
	}
	table := func(s probe.HeartbeatSpan) *probe.Heartbeat {
		return &probe.Heartbeat{Clock: at, Provides: true, Nodes: map[string]probe.HeartbeatSpan{"prov": s}}
	}
	for _, c := range []struct {
		name     string
		prov     *probe.Heartbeat
		sub      *probe.Heartbeat
		from, to time.Duration
		ok       bool
	}{
		{"the subscriber's oldest later", table(span(-30*time.Minute, 0)), table(span(-20*time.Minute, -time.Minute)), -20 * time.Minute, -time.Minute - settle, true},
		{"the provider's oldest later", table(span(-10*time.Minute, 0)), table(span(-20*time.Minute, -time.Minute)), -10 * time.Minute, -time.Minute - settle, true},
		{"an hour kept: past what a prune may take", table(span(-Keep, 0)), table(span(-Keep, 0)), -Keep + pruneMargin, -settle, true},
		{"nothing arrived since the oldest", table(span(-time.Minute, 0)), table(span(-time.Minute, -time.Minute)), 0, 0, false},
		{"none from that provider", table(span(-time.Minute, 0)), &probe.Heartbeat{Clock: at}, 0, 0, false},
		{"no table", nil, table(span(-time.Minute, 0)), 0, 0, false},
	} {
		from, to, ok := Window(c.prov, c.sub, "prov")
		if ok != c.ok || (ok && (!from.Equal(at.Add(c.from)) || !to.Equal(at.Add(c.to)))) {
			t.Errorf("%s: %v %v %v, want %v %v %v", c.name, from.Sub(at), to.Sub(at), ok, c.from, c.to, c.ok)
		}
	}
}

func TestDifference(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ts := func(secs ...int) []time.Time {
		var out []time.Time
		for _, s := range secs {
			out = append(out, at.Add(time.Duration(s)*time.Second+time.Microsecond))
		}
		return out
	}
	// A time read back in another zone is the same heartbeat.
	local := ts(1, 2, 3, 4, 5, 6)
	for i := range local {
		local[i] = local[i].In(time.FixedZone("CET", 3600))
	}
	if got := difference(ts(1, 2, 3, 4, 5, 6), local); len(got) != 0 {
		t.Errorf("the same heartbeats: %v", got)
	}
	if got := difference(ts(1, 2, 3, 4, 5, 6), ts(1, 2, 5, 6)); len(got) != 2 || !got[0].Equal(ts(3)[0]) || !got[1].Equal(ts(4)[0]) {
		t.Errorf("3 and 4 missing: %v", got)
	}
	if got := difference(ts(1, 2), ts(1, 2, 3)); len(got) != 0 {
		t.Errorf("one extra on the other side: %v", got)
	}
}

// What one cycle's comparison costs a subscription: an hour of heartbeats
// at one a second (3,600 on each side, real servers), equal (one sum on
// each side), then with one missing on the subscriber (both lists read
// too). go test -run '^$' -bench HeartbeatCompare ./internal/heartbeat/
func BenchmarkHeartbeatCompare(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{})
	cfg, err := config.Parse("pglmon.yaml", []byte(p.NodesYAML()))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Exec(ctx, `CREATE SCHEMA pglmon; CREATE TABLE pglmon.heartbeat (node text, ts timestamptz, PRIMARY KEY (node, ts))`); err != nil {
			b.Fatal(err)
		}
		if err := d.Exec(ctx, `INSERT INTO pglmon.heartbeat SELECT 'prov', $1::timestamptz - g * interval '1 second' FROM generate_series(0, 3599) g`, now); err != nil {
			b.Fatal(err)
		}
	}
	prov, _ := cfg.Node("provider")
	sub, _ := cfg.Node("subscriber")
	var w Writer
	defer w.Close(ctx, nil)
	compare := func(b *testing.B, missing int) {
		for b.Loop() {
			g, err := w.Compare(ctx, prov, sub, "prov", now.Add(-time.Hour), now, 5*time.Second)
			if err != nil || g.Compared != 3600 || len(g.Missing) != missing {
				b.Fatalf("%d compared, %d missing (want %d): %v", g.Compared, len(g.Missing), missing, err)
			}
		}
	}
	b.Run("equal", func(b *testing.B) { compare(b, 0) })
	if err := p.Subscriber.Exec(ctx, `DELETE FROM pglmon.heartbeat WHERE ts = $1::timestamptz - interval '30 minutes'`, now); err != nil {
		b.Fatal(err)
	}
	b.Run("one missing", func(b *testing.B) { compare(b, 1) })
}

// What keeping the heartbeats' positions costs: a heartbeat written with
// and without its position, and a probe of the provider with and without
// reading how far its slots confirmed them, with an hour of heartbeats and
// of positions kept (3,600 each), on a real pair with one subscription.
// go test -run '^$' -bench HeartbeatPositions ./internal/heartbeat/
func BenchmarkHeartbeatPositions(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{})
	cfg, err := config.Parse("pglmon.yaml", []byte(p.NodesYAML()))
	if err != nil {
		b.Fatal(err)
	}
	prov, _ := cfg.Node("provider")
	// An hour kept, as the prune leaves it; what a run wrote goes.
	reset := func(b *testing.B) {
		b.Helper()
		if err := p.Provider.Exec(ctx, createTableSQL+`;
			TRUNCATE pglmon.heartbeat, pglmon.heartbeat_position;
			INSERT INTO pglmon.heartbeat SELECT 'prov', now() - g * interval '1 second' FROM generate_series(0, 3599) g;
			INSERT INTO pglmon.heartbeat_position
				SELECT ('0/' || to_hex(4096 + g * 256))::pg_lsn, now() - (3600 - g) * interval '1 second' FROM generate_series(0, 3599) g;
			ANALYZE pglmon.heartbeat, pglmon.heartbeat_position`); err != nil {
			b.Fatal(err)
		}
	}
	var w Writer
	defer w.Close(ctx, nil)
	for _, positions := range []bool{false, true} {
		b.Run(fmt.Sprintf("write, positions %v", positions), func(b *testing.B) {
			reset(b)
			for b.Loop() {
				if _, err := w.Mark(ctx, prov, "prov", positions, 5*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, positions := range []bool{false, true} {
		b.Run(fmt.Sprintf("probe, positions %v", positions), func(b *testing.B) {
			reset(b)
			if !positions {
				if err := p.Provider.Exec(ctx, "DROP TABLE pglmon.heartbeat_position"); err != nil {
					b.Fatal(err)
				}
			}
			pr := probe.NewProber(prov, 5*time.Second)
			defer pr.Close(ctx)
			for b.Loop() {
				s := pr.Probe(ctx)
				if !s.Up() || s.Heartbeat == nil || s.Heartbeat.Positions != positions || positions && len(s.Heartbeat.Slots) != 1 {
					b.Fatalf("probe: %v, %+v", s.Err, s.Heartbeat)
				}
			}
		})
	}
}
