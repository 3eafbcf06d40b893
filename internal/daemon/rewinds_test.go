package daemon

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/heartbeat"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/probe"
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
	arrived(t, p, "id > 1000", 2000)
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

// A provider restored to a point in time (a new timeline, from a copy of
// its files and their WAL) while the daemon is stopped, and written past
// what the subscriber had applied before the daemon starts again: no probe
// ever sees the subscriber's origin past the provider's WAL, but the new
// timeline's history says where the old one ended, before that origin.
// The daemon says provider_rewound (held) at its first cycle, and the
// skip it stands for is real: a row committed on the new timeline before
// its WAL passed the origin never arrived.
func TestDaemonFindsARewindBehindANewTimeline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	body := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff())
	r := start(t, body, nil)
	timeline := func(r *running) uint32 {
		for _, n := range r.status(t).Nodes {
			if n.Name == "provider" {
				return n.Timeline
			}
		}
		return 0
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return timeline(r) == 1 }); err != nil {
		t.Fatalf("the provider's timeline: %d", timeline(r))
	}
	saved, err := p.Provider.Cluster.SaveFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RestartSubscription(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'lost with the old timeline', g FROM generate_series(101, 150) g"); err != nil {
		t.Fatal(err)
	}
	origin := appliedAndSeen(t, r, p, "")
	r.stop(t)
	if err := p.Provider.Cluster.PutBackRecovered(ctx, saved); err != nil {
		t.Fatal(err)
	}
	if err := p.RestartSubscription(ctx); err != nil {
		t.Fatal(err)
	}
	skipThenPass(t, p)
	r = start(t, body, nil)
	var f diagnose.Finding
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		if !ok {
			return false
		}
		var found bool
		f, found = s.Finding(diagnose.CodeProviderRewound)
		return found && s.Rewound == nil
	}); err != nil {
		t.Fatalf("no provider_rewound after the new timeline: %+v\n%s", r.status(t).Subscriptions, r.logs.String())
	}
	if f.Severity != diagnose.Critical || !strings.Contains(f.Message, "provider switched from timeline 1 to 2") || !strings.Contains(f.Message, "had applied its changes up to "+origin) {
		t.Errorf("finding: %+v", f)
	}
	if timeline(r) != 2 {
		t.Errorf("the provider's timeline: %d", timeline(r))
	}
	// Made equal (what the provider lost taken off the subscriber, the
	// skipped row copied), then verified: put behind.
	putBehind(t, r, p, diagnose.CodeProviderRewound, "DELETE FROM items_0 WHERE id BETWEEN 101 AND 150; INSERT INTO items_0 VALUES (2001, 'skipped', 2001)")
}

// What a provider's switch of timeline makes of each subscription from it,
// by what the new timeline's history says and what the subscriber had
// applied (watchProviders, without servers).
func TestTimelineSwitchJudged(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	report := func(tli uint32, hist []probe.TimelineSwitch, histErr string, origins map[string]string) *diagnose.Report {
		r := &diagnose.Report{Time: at, Health: diagnose.OK, Nodes: []diagnose.Node{{Name: "prov", Up: true, Timeline: tli, TimelineHistory: hist, TimelineHistoryError: histErr}}}
		for _, name := range []string{"a", "b"} {
			r.Subscriptions = append(r.Subscriptions, diagnose.Subscription{Name: name, Subscriber: "sub", Provider: "prov", SlotFound: true, Status: "replicating", Health: diagnose.OK, OriginRemoteLSN: origins[name]})
		}
		at = at.Add(time.Minute)
		return r
	}
	codes := func(r *diagnose.Report) string {
		var out []string
		for _, s := range r.Subscriptions {
			for _, f := range s.Findings {
				out = append(out, s.Name+":"+f.Code+":"+string(f.Severity))
			}
		}
		return strings.Join(out, " ")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hist := []probe.TimelineSwitch{{TLI: 1, End: 0x3000100}}
	for _, c := range []struct {
		name    string
		before  map[string]string // origins seen on timeline 1
		hist    []probe.TimelineSwitch
		histErr string
		want    string
	}{
		{"a past where timeline 1 ended, b not", map[string]string{"a": "0/3000200", "b": "0/3000100"}, hist, "", "a:provider_rewound:critical"},
		{"history unreadable", map[string]string{"a": "0/3000200", "b": "0/2000000"}, nil, "permission denied for function pg_read_binary_file", "a:provider_timeline_changed:warning b:provider_timeline_changed:warning"},
		{"timeline 1 not in the history", map[string]string{"a": "0/1000000"}, []probe.TimelineSwitch{{TLI: 7, End: 0x9000000}}, "", "a:provider_timeline_changed:warning"},
		{"b never seen with an origin", map[string]string{"a": "0/1000000"}, hist, "", ""},
	} {
		w := &rewindWatch{}
		w.annotate(log, report(1, nil, "", c.before), nil)
		// The subscriber does not answer for a cycle: what it had applied
		// is kept.
		w.annotate(log, report(1, nil, "", nil), nil)
		after := report(2, c.hist, c.histErr, map[string]string{"a": "0/3000300", "b": "0/3000300"})
		w.annotate(log, after, nil)
		if got := codes(after); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		// Held: the next cycles say it too, until a verification.
		next := report(2, c.hist, c.histErr, map[string]string{"a": "0/4000000", "b": "0/4000000"})
		w.annotate(log, next, nil)
		if got := codes(next); got != c.want {
			t.Errorf("%s, a cycle later: %q, want %q", c.name, got, c.want)
		}
		if c.want != "" && next.Health == diagnose.OK {
			t.Errorf("%s: health %s", c.name, next.Health)
		}
		verified := func(subscriber, subscription, table string) time.Time { return at }
		done := report(2, c.hist, c.histErr, nil)
		w.annotate(log, done, verified)
		if got := codes(done); got != "" {
			t.Errorf("%s, verified since: %q", c.name, got)
		}
	}
}

// A subscription's origin going back (watchProviders, without servers):
// subscriber_rewound when the provider's slot had confirmed past where it
// is now, and not for an origin created anew, one the slot is not past, or
// one pglmon holds a rewind of.
func TestSubscriberRewindJudged(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	report := func(origin string, confirmed probe.LSN) *diagnose.Report {
		at = at.Add(time.Minute)
		return &diagnose.Report{Time: at, Health: diagnose.OK,
			Nodes:         []diagnose.Node{{Name: "prov", Up: true, Timeline: 1, Slots: []probe.Slot{{Name: "pgl_a", Active: true, ConfirmedFlushLSN: confirmed}}}},
			Subscriptions: []diagnose.Subscription{{Name: "a", Subscriber: "sub", Provider: "prov", SlotName: "pgl_a", SlotFound: true, Enabled: true, Status: "replicating", Health: diagnose.OK, OriginRemoteLSN: origin}}}
	}
	codes := func(r *diagnose.Report) string {
		var out []string
		for _, f := range r.Subscriptions[0].Findings {
			out = append(out, f.Code)
		}
		return strings.Join(out, " ")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name      string
		origin    string
		confirmed probe.LSN
		want      string
	}{
		{"back, the slot past both", "0/2000000", 0x3000200, "subscriber_rewound"},
		{"back, the slot between", "0/2000000", 0x2800000, "subscriber_rewound"},
		{"back, the slot not past it: sent again", "0/2000000", 0x2000000, ""},
		{"created anew", "0/0", 0x3000200, ""},
		{"forward", "0/3000300", 0x3000300, ""},
	} {
		w := &rewindWatch{path: filepath.Join(t.TempDir(), "provider-rewinds.json")}
		w.annotate(log, report("0/3000100", 0x3000100), nil)
		// The subscriber does not answer for a cycle (being restored): its
		// subscription is not in the report.
		gone := report("", 0x3000100)
		gone.Subscriptions = nil
		w.annotate(log, gone, nil)
		r := report(c.origin, c.confirmed)
		w.annotate(log, r, nil)
		if got := codes(r); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
			continue
		}
		if c.want == "" {
			continue
		}
		f := r.Subscriptions[0].Findings[0]
		if f.Severity != diagnose.Critical || !strings.Contains(f.Message, "went back from 0/3000100 to "+c.origin) {
			t.Errorf("%s: %+v", c.name, f)
		}
		// Kept at once (pglmon status reads it; a restart does not forget
		// it), not with the origins a minute later.
		if st, err := loadState[rewindState](w.path); err != nil || len(st.Held) != 1 || st.Held[0].OriginBefore != "0/3000100" {
			t.Errorf("%s: the state file holds %+v (%v)", c.name, st.Held, err)
		}
		// Held once the origin has moved on.
		next := report("0/5000000", 0x5000000)
		w.annotate(log, next, nil)
		if codes(next) != c.want || next.Health != diagnose.Critical {
			t.Errorf("%s, a cycle later: %q %s", c.name, codes(next), next.Health)
		}
	}
	// Its slot lost, then made again, and the origin moved to where the
	// new slot starts (slot_missing's plan, after a restore of the
	// provider): compared afresh.
	w := &rewindWatch{}
	w.annotate(log, report("0/3000100", 0x3000100), nil)
	lost := report("0/3000100", 0)
	lost.Nodes[0].Slots, lost.Subscriptions[0].SlotFound = nil, false
	w.annotate(log, lost, nil)
	// (pglogical's feedback on keepalives took the new slot past the
	// origin before pglmon looked)
	again := report("0/2000000", 0x2000400)
	w.annotate(log, again, nil)
	if got := codes(again); got != "" {
		t.Errorf("after the slot was made again: %q", got)
	}
	// A rewind-origin repair after a provider_rewound moves the origin back
	// on purpose.
	w = &rewindWatch{}
	w.annotate(log, report("0/3000100", 0x1000000), nil)
	live := report("0/3000100", 0x1000000)
	live.Subscriptions[0].Rewound = &diagnose.Rewind{OriginLSN: "0/3000100", ProviderLSN: "0/1000100", SlotConfirmedLSN: "0/1000000"}
	w.annotate(log, live, nil)
	after := report("0/1000000", 0x1000200)
	w.annotate(log, after, nil)
	if got := codes(after); got != "provider_rewound" {
		t.Errorf("after rewind-origin: %q", got)
	}
}

// A subscriber put back from a copy of its files taken before it applied
// rows 101-150 (a restore from a snapshot, a failover to a standby short
// of its WAL): its origin goes back, the provider's slot had confirmed
// those rows, and they never arrive again, while later ones do. The daemon
// says subscriber_rewound, and holds it until a verification finds the
// tables equal.
func TestDaemonFindsARestoredSubscriber(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), nil)
	saved, err := p.Subscriber.Cluster.SaveFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'lost by the subscriber', g FROM generate_series(101, 150) g"); err != nil {
		t.Fatal(err)
	}
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	origin := appliedAndSeen(t, r, p, slot)
	if err := p.Subscriber.Cluster.PutBack(ctx, saved); err != nil {
		t.Fatal(err)
	}
	f, finding := r.waitFinding(t, p.Sub(), diagnose.CodeSubscriberRewound)
	if f.Severity != diagnose.Critical || !strings.Contains(f.Message, "went back from "+origin+" to ") {
		t.Errorf("finding: %+v", f)
	}
	// The measure of it: a row written now arrives, the lost ones do not
	// (pglogical applies in commit order: they would have come first).
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (2001, 'after', 2001)"); err != nil {
		t.Fatal(err)
	}
	arrived(t, p, "id = 2001", 1)
	if lost := subscriberRows(t, p, "id BETWEEN 101 AND 150"); lost != 0 {
		t.Fatalf("%d of rows 101-150 arrived again: the provider sends again what the subscriber lost, and this finding is wrong", lost)
	}
	// Still said once the origin has moved past where it was.
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, _ := rep.Subscription(p.Sub(), "")
		_, found := finding()
		now, err1 := probe.ParseLSN(s.OriginRemoteLSN)
		before, err2 := probe.ParseLSN(origin)
		return found && err1 == nil && err2 == nil && now > before
	}); err != nil {
		t.Fatalf("not held once the origin moved on: %+v", r.status(t).Subscriptions)
	}
	putBehind(t, r, p, diagnose.CodeSubscriberRewound, "INSERT INTO items_0 SELECT g, 'lost by the subscriber', g FROM generate_series(101, 150) g")
}

// appliedAndSeen waits (a minute) until rows 101-150 of items_0 are on
// the subscriber, the provider's slot (when named) confirmed them, and the
// daemon r saw the subscription's origin where they left it; it returns
// that origin.
func appliedAndSeen(t *testing.T, r *running, p *pgtest.Pair, slot string) string {
	t.Helper()
	ctx := context.Background()
	var origin string
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var n int
		confirmed := slot == ""
		if p.Subscriber.QueryRow(ctx, "SELECT count(*), (SELECT remote_lsn::text FROM pg_replication_origin_status LIMIT 1) FROM items_0 WHERE id BETWEEN 101 AND 150", []any{&n, &origin}) != nil || n != 50 ||
			(!confirmed && (p.Provider.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2", []any{&confirmed}, origin, slot) != nil || !confirmed)) {
			return false
		}
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		return ok && s.OriginRemoteLSN == origin
	}); err != nil {
		t.Fatalf("rows 101-150 applied, confirmed (slot %q) and seen by the daemon: origin %s", slot, origin)
	}
	return origin
}

// skipThenPass commits row 2001 on a provider put back behind what its
// subscriber applied, which pglogical skips (checked), then 2,000 rows
// that take its WAL past that point and arrive.
func skipThenPass(t *testing.T, p *pgtest.Pair) {
	t.Helper()
	ctx := context.Background()
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (2001, 'skipped', 2001)"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, repeat('x', 200), g FROM generate_series(3001, 5000) g"); err != nil {
		t.Fatal(err)
	}
	arrived(t, p, "id > 3000", 2000)
	if n := subscriberRows(t, p, "id = 2001"); n != 0 {
		t.Fatal("row 2001 arrived: pglogical no longer skips below the origin, and this test shows nothing")
	}
}

// arrived waits (a minute) until the subscriber's items_0 holds n rows
// matching where.
func arrived(t *testing.T, p *pgtest.Pair, where string, n int) {
	t.Helper()
	arrivedIn(t, p, "items_0", where, n)
}

// arrivedIn waits (a minute) until the subscriber's table holds n rows
// matching where.
func arrivedIn(t *testing.T, p *pgtest.Pair, table, where string, n int) {
	t.Helper()
	if err := pgtest.Poll(context.Background(), time.Minute, func() bool { return rowsIn(t, p, table, where) == n }); err != nil {
		t.Fatalf("the subscriber's %s does not hold %d rows where %s: %d", table, n, where, rowsIn(t, p, table, where))
	}
}

// subscriberRows counts the rows of the subscriber's items_0 matching
// where (-1 when it cannot).
func subscriberRows(t *testing.T, p *pgtest.Pair, where string) int {
	t.Helper()
	return rowsIn(t, p, "items_0", where)
}

// rowsIn counts the rows of the subscriber's table matching where (-1
// when it cannot).
func rowsIn(t *testing.T, p *pgtest.Pair, table, where string) int {
	t.Helper()
	n := -1
	if err := p.Subscriber.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE "+where, []any{&n}); err != nil {
		t.Logf("count the subscriber's rows of %s where %s: %v", table, where, err)
		return -1
	}
	return n
}

// putBehind makes the pair's tables equal (fix, on the subscriber), runs
// a verification by hand and waits until the daemon no longer holds code
// for the pair's subscription.
func putBehind(t *testing.T, r *running, p *pgtest.Pair, code, fix string) {
	t.Helper()
	if err := p.Subscriber.Exec(context.Background(), fix); err != nil {
		t.Fatal(err)
	}
	byHand(t, r, p)
	if err := pgtest.Poll(context.Background(), 30*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		_, held := s.Finding(code)
		return ok && !held && s.Health == diagnose.OK
	}); err != nil {
		t.Fatalf("%s still held after a verification found the tables equal: %+v", code, r.status(t).Subscriptions)
	}
	// The journal says which finding was put behind.
	if want := `"msg":"held finding put behind: a verification that started since found every table equal","subscription":"` + p.Sub() + `","subscriber":"subscriber","finding":"` + code + `"`; !strings.Contains(r.logs.String(), want) {
		t.Errorf("the journal does not say %s was put behind (want %s):\n%s", code, want, r.logs.String())
	}
}

// A provider's slot moved on while its subscription was disabled, or its
// subscriber did not answer (watchProviders, without servers):
// slot_advanced; not while the subscription is enabled (its worker may
// have streamed between two probes), nor while the slot is active.
func TestSlotAdvanceJudged(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	report := func(enabled, present, active bool, confirmed probe.LSN, origin string) *diagnose.Report {
		at = at.Add(time.Minute)
		r := &diagnose.Report{Time: at, Health: diagnose.OK,
			Nodes: []diagnose.Node{{Name: "prov", Up: true, Slots: []probe.Slot{{Name: "pgl_a", Active: active, ConfirmedFlushLSN: confirmed}}}}}
		if present {
			status := "replicating"
			if !enabled {
				status = "disabled"
			}
			r.Subscriptions = []diagnose.Subscription{{Name: "a", Subscriber: "sub", Provider: "prov", SlotName: "pgl_a", SlotFound: true, Enabled: enabled, Status: status, Health: diagnose.OK, OriginRemoteLSN: cmp.Or(origin, "0/1000000")}}
		}
		return r
	}
	codes := func(r *diagnose.Report) string {
		var out []string
		for _, s := range r.Subscriptions {
			for _, f := range s.Findings {
				out = append(out, f.Code)
			}
		}
		return strings.Join(out, " ")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	type probeAt struct {
		enabled, present, active bool
		confirmed                probe.LSN
		origin                   string // 0/1000000 when empty
	}
	for _, c := range []struct {
		name  string
		steps []probeAt
		want  string
	}{
		{"disabled, moved on", []probeAt{{false, true, false, 0x1000000, ""}, {false, true, false, 0x5000000, ""}}, "slot_advanced"},
		{"its subscriber gone quiet, moved on, back", []probeAt{{true, true, true, 0x1000000, ""}, {false, false, false, 0x1000000, ""}, {false, false, false, 0x5000000, ""}, {true, true, true, 0x5000000, ""}}, "slot_advanced"},
		{"disabled, still", []probeAt{{false, true, false, 0x1000000, ""}, {false, true, false, 0x1000000, ""}}, ""},
		{"enabled and down: its worker comes and goes", []probeAt{{true, true, false, 0x1000000, ""}, {true, true, false, 0x5000000, ""}}, ""},
		{"enabled again, streamed", []probeAt{{false, true, false, 0x1000000, ""}, {true, true, true, 0x5000000, ""}, {false, true, false, 0x6000000, ""}}, ""},
		{"enabled, streamed, disabled again between two probes", []probeAt{{false, true, false, 0x1000000, ""}, {false, true, false, 0x5000000, "0/4F00000"}}, ""},
		{"its subscriber gone quiet, applied, back disabled", []probeAt{{false, true, false, 0x1000000, ""}, {false, false, false, 0x1000000, ""}, {false, true, false, 0x5000000, "0/4F00000"}}, ""},
		{"its subscriber gone quiet while the slot moved on", []probeAt{{false, true, false, 0x1000000, ""}, {false, false, false, 0x5000000, ""}, {false, true, false, 0x5000000, ""}}, "slot_advanced"},
	} {
		w := &rewindWatch{}
		var last *diagnose.Report
		for _, st := range c.steps {
			last = report(st.enabled, st.present, st.active, st.confirmed, st.origin)
			w.annotate(log, last, nil)
		}
		if got := codes(last); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
			continue
		}
		if c.want != "" && (last.Health != diagnose.Critical || !strings.Contains(last.Subscriptions[0].Findings[0].Message, "slot pgl_a on prov moved on from 0/1000000 to 0/5000000")) {
			t.Errorf("%s: %s %+v", c.name, last.Health, last.Subscriptions[0].Findings)
		}
	}
}

// A disabled subscription's slot advanced on the provider (a runbook's way
// to free the WAL it holds): the daemon says slot_advanced; the rows
// written before the advance never arrive once the subscription is
// enabled again, while later ones do.
func TestDaemonFindsAnAdvancedSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), nil)
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Disable(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	// Two cycles of the daemon that saw it disabled and its slot idle.
	idle := func() (time.Time, bool) {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		if !ok || s.Status != "disabled" {
			return time.Time{}, false
		}
		for _, n := range rep.Nodes {
			for _, sl := range n.Slots {
				if sl.Name == slot {
					return rep.Time, !sl.Active
				}
			}
		}
		return time.Time{}, false
	}
	var first time.Time
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		at, ok := idle()
		if ok && first.IsZero() {
			first = at
		}
		return ok && at.After(first)
	}); err != nil {
		t.Fatalf("the subscription disabled and its slot idle, seen twice: %+v", r.status(t).Subscriptions)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'advanced over', g FROM generate_series(101, 150) g"); err != nil {
		t.Fatal(err)
	}
	// Past the rows' commit: a slot advances only as far as the WAL is
	// flushed (the test servers commit asynchronously).
	var past string
	if err := p.Provider.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text", []any{&past}); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var done bool
		return p.Provider.QueryRow(ctx, "SELECT end_lsn >= $2::pg_lsn FROM pg_replication_slot_advance($1, $2::pg_lsn)", []any{&done}, slot, past) == nil && done
	}); err != nil {
		t.Fatalf("the slot never advanced to %s", past)
	}
	f, finding := r.waitFinding(t, p.Sub(), diagnose.CodeSlotAdvanced)
	if f.Severity != diagnose.Critical || f.Slot != slot || !strings.Contains(f.Message, "slot "+slot+" on provider moved on from ") {
		t.Errorf("finding: %+v", f)
	}
	// The measure of it.
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (2001, 'after', 2001)"); err != nil {
		t.Fatal(err)
	}
	arrived(t, p, "id = 2001", 1)
	if lost := subscriberRows(t, p, "id BETWEEN 101 AND 150"); lost != 0 {
		// Where the provider started decoding from.
		var lines []string
		for _, l := range strings.Split(readLog(t, p.Provider.Cluster), "\n") {
			if strings.Contains(l, "forwarding") || strings.Contains(l, "Streaming transactions") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("%d of rows 101-150 arrived: pglogical no longer starts from the slot, and this finding is wrong\n%s", lost, strings.Join(lines, "\n"))
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, _ := rep.Subscription(p.Sub(), "")
		_, found := finding()
		return found && s.Status == "replicating" && rep.Health == diagnose.Critical
	}); err != nil {
		t.Fatalf("not held once replicating again: %+v", r.status(t).Subscriptions)
	}
}

// What the heartbeats' comparison makes of a subscription (judgeGaps,
// without servers): heartbeats_lost for heartbeats the subscriber lacks,
// or holds that the provider no longer has, written after the last
// verification that found every table equal; nothing for those written
// before it, nor while another rewind is held.
func TestHeartbeatGapsJudged(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	report := func() *diagnose.Report {
		at = at.Add(time.Minute)
		return &diagnose.Report{Time: at, Health: diagnose.OK,
			Nodes: []diagnose.Node{{Name: "prov", Up: true, Timeline: 1}},
			Subscriptions: []diagnose.Subscription{{Name: "a", Subscriber: "sub", Provider: "prov", SlotFound: true, Enabled: true, Status: "replicating", Health: diagnose.OK, OriginRemoteLSN: "0/3000000"},
				// a's siblings (b), and two that are not: from another
				// provider (c), on another subscriber (d).
				{Name: "b", Subscriber: "sub", Provider: "prov", SlotFound: true, Enabled: true, Status: "replicating", Health: diagnose.OK},
				{Name: "c", Subscriber: "sub", Provider: "other", SlotFound: true, Enabled: true, Status: "replicating", Health: diagnose.OK},
				{Name: "d", Subscriber: "sub2", Provider: "prov", SlotFound: true, Enabled: true, Status: "replicating", Health: diagnose.OK}}}
	}
	beat := func(min int) time.Time { return time.Date(2026, 12, 6, 11, min, 0, 0, time.UTC) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name     string
		gap      heartbeat.Gap
		verified time.Time
		held     bool // a subscriber_rewound held already
		want     string
	}{
		{"missing", heartbeat.Gap{From: beat(0), To: beat(50), Compared: 300, Missing: []time.Time{beat(10), beat(11), beat(12)}}, time.Time{}, false, "3 of the 300 heartbeats prov wrote between 2026-12-06T11:00:00.000Z and 2026-12-06T11:50:00.000Z never reached sub (written 2026-12-06T11:10:00.000Z to 2026-12-06T11:12:00.000Z)"},
		{"extra", heartbeat.Gap{From: beat(0), To: beat(50), Compared: 300, Extra: []time.Time{beat(20)}}, time.Time{}, false, "sub holds 1 heartbeat from prov (written 2026-12-06T11:20:00.000Z to 2026-12-06T11:20:00.000Z) that prov no longer has"},
		{"missing, partly verified since", heartbeat.Gap{From: beat(0), To: beat(50), Compared: 300, Missing: []time.Time{beat(10), beat(30)}}, beat(20), false, "1 of the 300 heartbeats"},
		{"missing, verified since", heartbeat.Gap{From: beat(0), To: beat(50), Compared: 300, Missing: []time.Time{beat(10), beat(11)}}, beat(20), false, ""},
		{"equal", heartbeat.Gap{From: beat(0), To: beat(50), Compared: 300}, time.Time{}, false, ""},
		{"another rewind held", heartbeat.Gap{From: beat(0), To: beat(50), Compared: 300, Missing: []time.Time{beat(10)}}, time.Time{}, true, ""},
	} {
		w := &rewindWatch{path: filepath.Join(t.TempDir(), "provider-rewinds.json")}
		if c.held {
			w.held = map[string]heldRewind{"sub/a": {Subscriber: "sub", Subscription: "a", Provider: "prov", OriginBefore: "0/4000000", Rewind: diagnose.Rewind{OriginLSN: "0/3000000"}}}
		}
		equalSince := func(string, string, string) time.Time { return c.verified }
		r := report()
		w.annotate(log, r, equalSince)
		w.judgeGaps(log, r, map[string]heartbeat.Gap{"sub/a": c.gap}, equalSince)
		f, found := r.Subscriptions[0].Finding(diagnose.CodeHeartbeatsLost)
		if c.want == "" {
			if found {
				t.Errorf("%s: %+v", c.name, f)
			}
			continue
		}
		if !found || f.Severity != diagnose.Critical || !f.Human || r.Health != diagnose.Critical || !strings.Contains(f.Message, c.want) {
			t.Errorf("%s: %s %+v", c.name, r.Health, r.Subscriptions[0].Findings)
			continue
		}
		if !slices.Equal(f.Subscriptions, []string{"b"}) || !strings.Contains(f.Message, ". Subscription b from prov on sub does not carry the heartbeats, so pglmon cannot tell whether it lost the same span: unless only the slot of a was advanced, it did") {
			t.Errorf("%s: the siblings named %q in %q", c.name, f.Subscriptions, f.Message)
		}
		// Kept at once, and held the next cycles (the comparison equal
		// again once the heartbeats are pruned), until verified.
		if st, err := loadState[rewindState](w.path); err != nil || len(st.Held) != 1 || st.Held[0].Heartbeats == nil {
			t.Errorf("%s: the state file holds %+v (%v)", c.name, st.Held, err)
		}
		next := report()
		w.annotate(log, next, equalSince)
		w.judgeGaps(log, next, nil, equalSince)
		if _, found := next.Subscriptions[0].Finding(diagnose.CodeHeartbeatsLost); !found || len(next.Subscriptions[0].Findings) != 1 {
			t.Errorf("%s, a cycle later: %+v", c.name, next.Subscriptions[0].Findings)
		}
		done := report()
		later := func(string, string, string) time.Time { return at }
		w.annotate(log, done, later)
		w.judgeGaps(log, done, map[string]heartbeat.Gap{"sub/a": c.gap}, later)
		if len(done.Subscriptions[0].Findings) != 0 {
			t.Errorf("%s, verified since: %+v", c.name, done.Subscriptions[0].Findings)
		}
	}
}

// Which subscriptions get their heartbeats compared: those of the set
// pglmon_heartbeat only. Two subscriptions from one provider to one
// subscriber, one carrying the heartbeats: the other's subscriber holds the
// same heartbeats, which came through the carrier, and a loss there is not
// its own.
func TestGapJobsAreTheCarriers(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte("nodes:\n  - name: prov\n    dsn: \"host=127.0.0.1 dbname=a\"\n  - name: sub\n    dsn: \"host=127.0.0.1 dbname=b\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	span := map[string]probe.HeartbeatSpan{"prov_node": {Oldest: at.Add(-30 * time.Minute), Newest: at}}
	snaps := []probe.Snapshot{
		{Node: "prov", LocalNode: "prov_node", Heartbeat: &probe.Heartbeat{Clock: at, ReadAt: at, Provides: true, Nodes: span}},
		{Node: "sub", LocalNode: "sub_node", Heartbeat: &probe.Heartbeat{Clock: at, ReadAt: at, Nodes: span}},
	}
	r := &diagnose.Report{Time: at, Subscriptions: []diagnose.Subscription{
		{Name: "carrier", Subscriber: "sub", Provider: "prov", ProviderNode: "prov_node", ReplicationSets: []string{"default", probe.HeartbeatSet}},
		{Name: "other", Subscriber: "sub", Provider: "prov", ProviderNode: "prov_node", ReplicationSets: []string{"default"}},
	}}
	jobs := gapJobs(cfg, snaps, r)
	if len(jobs) != 1 || jobs[0].key != "sub/carrier" || jobs[0].node != "prov_node" || jobs[0].prov.Name != "prov" || jobs[0].sub.Name != "sub" {
		t.Fatalf("jobs: %+v", jobs)
	}
	// No heartbeats written on the provider: nothing to compare.
	snaps[0].Heartbeat.Provides = false
	if jobs := gapJobs(cfg, snaps, r); len(jobs) != 0 {
		t.Fatalf("jobs without a writing provider: %+v", jobs)
	}
}
