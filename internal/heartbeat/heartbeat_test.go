package heartbeat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/verify"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func pairConfig(t *testing.T, p *pgtest.Pair, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("pglmon.yaml", []byte(p.NodesYAML()+"probe:\n  timeout: 5s\n"+extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func whats(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Node+": "+s.What)
	}
	return out
}

// The delay of a subscription as one monitor cycle diagnoses it.
func delayOf(t *testing.T, m *monitor.Monitor) (diagnose.Subscription, bool) {
	t.Helper()
	r, _ := m.Cycle(context.Background())
	s, ok := r.Subscription("sub_0", "subscriber")
	if !ok {
		return diagnose.Subscription{}, false
	}
	return *s, s.ReplicationDelaySeconds != nil
}

// Install on a real pair, step by step as after a crash; a heartbeat
// arrives; the subscription stopped, the delay grows into a finding;
// started again, it falls to 0; remove takes everything away and the
// subscription still replicates.
func TestInstallMeasureRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	cfg := pairConfig(t, p, "thresholds:\n  replication_delay: 2s\n  replication_delay_critical: 1h\n")

	plan, err := PlanInstall(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"provider: create the tables pglmon.heartbeat and pglmon.heartbeat_position",
		"subscriber: create the tables pglmon.heartbeat and pglmon.heartbeat_position",
		"provider: create the replication set pglmon_heartbeat (inserts only)",
		"provider: add pglmon.heartbeat to the set pglmon_heartbeat (no data copied)",
		"subscriber: subscribe sub_0 to the set pglmon_heartbeat of provider (its apply worker restarts: pglmon waits for the new one)",
	}
	if got := whats(plan); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("install plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Targets) != 1 || plan.Targets[0] != (Target{Subscription: "sub_0", Subscriber: "subscriber", Provider: "provider", ProviderNode: p.ProviderNode, Slot: slot, Enabled: true}) {
		t.Fatalf("targets %+v", plan.Targets)
	}
	// A run cut short after the provider's set: nothing breaks, and the
	// next plan has only what is left (the set and its table go together in
	// a plan; the set's step is then found done).
	partial := plan
	partial.Steps = plan.Steps[:3]
	var out bytes.Buffer
	if err := Apply(ctx, cfg, partial, time.Minute, &out); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 10*time.Second); err != nil {
		t.Fatalf("after part of the install: %v", err)
	}
	rest, err := PlanInstall(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := whats(rest); strings.Join(got, "\n") != strings.Join(want[2:], "\n") {
		t.Fatalf("plan after a partial install:\n%s", strings.Join(got, "\n"))
	}
	// The whole first plan again: the done steps are skipped.
	out.Reset()
	if err := Apply(ctx, cfg, plan, time.Minute, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), ": already done"); n != 3 {
		t.Errorf("%d steps skipped, want 3:\n%s", n, out.String())
	}
	arr, err := Check(ctx, cfg, plan.Targets, 4*time.Minute, 100*time.Millisecond)
	if err != nil || len(arr) != 1 || !arr[0].OK {
		t.Fatalf("first heartbeat: %+v, %v", arr, err)
	}
	if again, err := PlanInstall(ctx, cfg); err != nil || len(again.Steps) != 0 {
		t.Fatalf("install again: %v, %v", whats(again), err)
	}
	// Installed by an earlier pglmon, without the positions: install adds
	// them, on both nodes.
	for _, db := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := db.Exec(ctx, "DROP TABLE pglmon.heartbeat_position"); err != nil {
			t.Fatal(err)
		}
	}
	older, err := PlanInstall(ctx, cfg)
	wantOlder := []string{
		"provider: create the table pglmon.heartbeat_position (installed by an earlier pglmon: the delay of a subscription that does not carry the heartbeats is read from its slot against it)",
		"subscriber: create the table pglmon.heartbeat_position (installed by an earlier pglmon: the delay of a subscription that does not carry the heartbeats is read from its slot against it)",
	}
	if err != nil || strings.Join(whats(older), "\n") != strings.Join(wantOlder, "\n") {
		t.Fatalf("install over an earlier one: %q, %v", whats(older), err)
	}
	if err := Apply(ctx, cfg, older, time.Minute, &out); err != nil {
		t.Fatal(err)
	}

	// The daemon's writer: every heartbeat arrived, so the delay is 0.
	m := monitor.New(cfg)
	defer m.Close(ctx)
	var w Writer
	defer w.Close(ctx, nil)
	prov, _ := cfg.Node("provider")
	write := func() {
		t.Helper()
		if _, err := w.Mark(ctx, prov, p.ProviderNode, true, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	write()
	var s diagnose.Subscription
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		var ok bool
		s, ok = delayOf(t, m)
		return ok && *s.ReplicationDelaySeconds == 0 && s.HeartbeatApplied != nil
	}); err != nil {
		t.Fatalf("delay with every heartbeat applied: %+v", s)
	}

	// Stopped: heartbeats still written, none applied; the delay grows past
	// the 2 s threshold.
	if err := p.Disable(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		write()
		var ok bool
		s, ok = delayOf(t, m)
		_, found := s.Finding(diagnose.CodeReplicationDelayHigh)
		return ok && found
	}); err != nil {
		t.Fatalf("no replication_delay_high while disabled: %+v", s)
	}
	f, _ := s.Finding(diagnose.CodeReplicationDelayHigh)
	if d := *s.ReplicationDelaySeconds; d < 2 || d > time.Since(stopped).Seconds()+5 {
		t.Errorf("delay %.1f s, %.1f s after the subscription stopped", d, time.Since(stopped).Seconds())
	}
	if f.Severity != diagnose.Warning || !strings.Contains(f.Message, "behind provider provider (threshold 2s)") || !strings.Contains(f.Message, "it is disabled") {
		t.Errorf("finding %+v", f)
	}
	// The table on the provider keeps growing, verify leaves it out.
	res := verify.Run(ctx, cfg, verify.Target{Subscription: p.Sub(), Subscriber: "subscriber", Provider: "provider",
		Sets: []string{"set_0", probe.HeartbeatSet}}, verify.Options{Mode: verify.ModeCount}, "")
	if res.Error != "" || len(res.Tables) != 1 || res.Tables[0].Table != "public."+p.Tables[0] {
		t.Errorf("verify compared %+v (%s), want only %s", res.Tables, res.Error, p.Tables[0])
	}

	// Started again: everything written arrives, the delay is 0.
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 4*time.Minute, func() bool {
		var ok bool
		s, ok = delayOf(t, m)
		return ok && *s.ReplicationDelaySeconds == 0 && len(s.Findings) == 0
	}); err != nil {
		t.Fatalf("delay after the subscription started again: %+v", s)
	}

	// A position past the provider's WAL (kept before it was put back to
	// an earlier one): the next heartbeat takes it away.
	if err := p.Provider.Exec(ctx, "INSERT INTO pglmon.heartbeat_position VALUES ('FFFF/0', now() - interval '1 minute')"); err != nil {
		t.Fatal(err)
	}
	mk, err := w.Mark(ctx, prov, p.ProviderNode, true, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var newest string
	var ts time.Time
	if err := p.Provider.QueryRow(ctx, "SELECT lsn::text, ts FROM pglmon.heartbeat_position ORDER BY lsn DESC LIMIT 1", []any{&newest, &ts}); err != nil {
		t.Fatal(err)
	}
	if l, _ := probe.ParseLSN(newest); l != mk.LSN || !ts.Equal(mk.TS) {
		t.Errorf("newest position %s at %v, want the heartbeat just written (%v at %v)", newest, ts, mk.LSN, mk.TS)
	}

	// Pruning keeps each node's newest heartbeat, and the newest position.
	if err := p.Provider.Exec(ctx, `INSERT INTO pglmon.heartbeat VALUES ('old', now() - interval '3 hours'), ('old', now() - interval '2 hours');
		INSERT INTO pglmon.heartbeat_position VALUES ('0/1', now() - interval '2 hours')`); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Prune(ctx, prov, true, 5*time.Second); err != nil || n != 1 {
		t.Errorf("pruned %d rows (%v), want the older of the two old ones", n, err)
	}
	var old, kept int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FILTER (WHERE ts < now() - interval '1 hour'), count(*) FROM pglmon.heartbeat_position", []any{&old, &kept}); err != nil || old != 0 || kept == 0 {
		t.Errorf("positions after the prune: %d older than an hour, %d in all (%v)", old, kept, err)
	}
	if n, err := w.Prune(ctx, prov, true, 5*time.Second); err != nil || n != 0 {
		t.Errorf("a second prune at once: %d, %v (want none: it runs every PruneEvery)", n, err)
	}
	// A prune that fails (the database made read-only while the writes
	// move) is tried again after PruneEvery, not at every cycle.
	if err := p.Provider.Exec(ctx, "ALTER DATABASE "+p.Provider.Name+" SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	ro := &Writer{PruneEvery: time.Hour}
	if _, err := ro.Prune(ctx, prov, true, 5*time.Second); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a prune on a read-only database: %v", err)
	}
	if _, err := ro.Prune(ctx, prov, true, 5*time.Second); err != nil {
		t.Errorf("a failed prune tried again at once: %v", err)
	}
	ro.Close(ctx, nil)
	if err := p.Provider.Exec(ctx, "BEGIN READ WRITE; ALTER DATABASE "+p.Provider.Name+" RESET default_transaction_read_only; COMMIT"); err != nil {
		t.Fatal(err)
	}

	// Remove: the set out of the subscription, the set, the tables. Its
	// apply worker restarts (under load pglogical has taken over 90 s).
	rm, err := PlanRemove(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantRm := []string{
		"subscriber: unsubscribe sub_0 from the set pglmon_heartbeat (its apply worker restarts: pglmon waits for the new one)",
		"provider: take pglmon.heartbeat out of the set pglmon_heartbeat (the set stays, empty)",
		"provider: drop the tables pglmon.heartbeat and pglmon.heartbeat_position (and the schema pglmon when empty)",
		"subscriber: drop the tables pglmon.heartbeat and pglmon.heartbeat_position (and the schema pglmon when empty)",
	}
	if got := whats(rm); strings.Join(got, "\n") != strings.Join(wantRm, "\n") {
		t.Fatalf("remove plan:\n%s", strings.Join(got, "\n"))
	}
	if err := Apply(ctx, cfg, rm, time.Minute, &out); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, cfg, rm, time.Minute, &out); err != nil {
		t.Fatalf("remove again: %v", err)
	}
	if again, err := PlanRemove(ctx, cfg); err != nil || len(again.Steps) != 0 {
		t.Fatalf("remove plan after remove: %v, %v", whats(again), err)
	}
	for _, db := range []pgtest.DB{p.Provider, p.Subscriber} {
		var schema bool
		if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pglmon')", []any{&schema}); err != nil || schema {
			t.Errorf("%s: schema pglmon still there (%v)", db.Name, err)
		}
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO "+p.Tables[0]+" (id, val, n) VALUES (100001, 'after', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 4*time.Minute, func() bool {
		var n int
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM "+p.Tables[0]+" WHERE id = 100001", []any{&n}) == nil && n == 1
	}); err != nil {
		st, _ := p.Status(ctx, p.Sub())
		t.Fatalf("the subscription does not replicate after remove (status %s)\n%s", st, logTails(t, p))
	}
	// The probe, which read the table, finds it gone and carries on.
	r, snaps := m.Cycle(ctx)
	for _, sn := range snaps {
		if !sn.Up() || sn.Heartbeat != nil {
			t.Errorf("probe of %s after remove: %v, heartbeat %+v", sn.Node, sn.Err, sn.Heartbeat)
		}
	}
	if r.Subscriptions[0].ReplicationDelaySeconds != nil {
		t.Errorf("a delay after remove: %v", *r.Subscriptions[0].ReplicationDelaySeconds)
	}
}

// logTails is the end of both servers' logs, for a failure's message.
func logTails(t *testing.T, p *pgtest.Pair) string {
	var b strings.Builder
	for _, c := range []*pgtest.Cluster{p.Provider.Cluster, p.Subscriber.Cluster} {
		body, err := os.ReadFile(c.LogPath())
		if err != nil {
			t.Log(err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		fmt.Fprintf(&b, "--- %s\n%s\n", c.LogPath(), strings.Join(lines[max(len(lines)-60, 0):], "\n"))
	}
	return b.String()
}

// Removed while a subscription is disabled, installed again, then the
// subscription enabled: it streams, and the heartbeat arrives. (Dropping
// the set on remove made pglogical 2.4.2 fail this subscription at every
// start: its walsender decoded the drop of a set of the name it streams
// with, "replication set pglmon_heartbeat used by this connection was
// deleted".) A node that cannot be reached stops a plan before anything
// changes.
func TestReinstallWhileDisabled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg := pairConfig(t, p, "")
	install := func() Plan {
		t.Helper()
		plan, err := PlanInstall(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(ctx, cfg, plan, time.Minute, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		return plan
	}
	install()
	if err := p.Disable(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	rm, err := PlanRemove(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, cfg, rm, time.Minute, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var set bool
	if err := p.Provider.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pglogical.replication_set WHERE set_name = 'pglmon_heartbeat')", []any{&set}); err != nil || !set {
		t.Fatalf("the set is gone from the provider (%v): a later install would re-create it", err)
	}
	plan := install()
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", p.Sub()); err != nil {
		t.Fatal(err)
	}
	arr, err := Check(ctx, cfg, plan.Targets, 4*time.Minute, 100*time.Millisecond)
	if err != nil || len(arr) != 1 || !arr[0].OK {
		st, _ := p.Status(ctx, p.Sub())
		t.Fatalf("no heartbeat after re-install and enable: %+v, %v (status %s)\n%s", arr, err, st, logTails(t, p))
	}

	bad := pairConfig(t, p, "")
	bad.Nodes[1].DSN = "host=127.0.0.1 port=1 dbname=x user=postgres sslmode=disable connect_timeout=2"
	if _, err := PlanInstall(ctx, bad); err == nil || !strings.Contains(err.Error(), "node subscriber cannot be reached") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("unreachable node: %v", err)
	}
}

// Subscribing to the heartbeat's set ends the subscription's apply worker.
// When the manager that started that worker is gone, the manager running
// now is not told of its end and starts no new worker (pglogical 2.4.2;
// seen in the demo): install waits for the new worker, wakes the manager,
// and says so. The test brings that about for sure: the worker outlives
// its manager (OrphanApply) and is held applying a row its table's lock
// keeps out, so the new manager, woken by the change, still sees it
// running; the lock goes once the change is made, and the worker ends.
// Without the wake, Apply fails after its wait (no apply worker started).
func TestInstallWakesAManagerThatMissedTheEnd(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	cfg := pairConfig(t, p, "")
	plan, err := PlanInstall(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := p.OrphanApply(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	lock, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	if _, err := lock.Exec(ctx, "BEGIN; LOCK TABLE "+p.Tables[0]+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO "+p.Tables[0]+" (id, val, n) VALUES (100001, 'held', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var waits bool
		return p.Subscriber.QueryRow(ctx, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", []any{&waits}, worker) == nil && waits
	}); err != nil {
		t.Fatalf("the apply worker %d does not wait for the table's lock: %v", worker, err)
	}

	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- Apply(ctx, cfg, plan, time.Minute, &out) }()
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var in bool
		return p.Subscriber.QueryRow(ctx, "SELECT 'pglmon_heartbeat' = ANY (sub_replication_sets) FROM pglogical.subscription WHERE sub_name = $1", []any{&in}, p.Sub()) == nil && in
	}); err != nil {
		t.Fatalf("the subscription did not take the heartbeat's set: %v", err)
	}
	var still bool
	if err := p.Subscriber.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", []any{&still}, worker); err != nil || !still {
		t.Fatalf("the held apply worker %d ended before its lock went (%v)", worker, err)
	}
	if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("install: %v\n%s\n%s", err, out.String(), logTails(t, p))
	}
	if !strings.Contains(out.String(), "its apply worker started once pglmon woke pglogical's manager") {
		t.Fatalf("install did not say it woke the manager:\n%s", out.String())
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var n int
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM "+p.Tables[0]+" WHERE id = 100001", []any{&n}) == nil && n == 1
	}); err != nil {
		t.Fatalf("the held row did not arrive: %v", err)
	}
	arr, err := Check(ctx, cfg, plan.Targets, time.Minute, 100*time.Millisecond)
	if err != nil || len(arr) != 1 || !arr[0].OK {
		t.Fatalf("first heartbeat: %+v, %v", arr, err)
	}
}

// Two subscriptions from one provider to one subscriber: one carries the
// heartbeats. Through two, each heartbeat is applied twice (a conflict each
// time) and either one's heartbeats hide the other's delay and losses.
// Install gives the set to the first, notes the other, and takes the set
// from a second carrier an earlier install (or a person) left; an enabled
// carrier is kept before a disabled one.
func TestOneSubscriptionCarriesTheHeartbeats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Subscriptions: 2})
	first, second := p.Subscriptions[0], p.Subscriptions[1]
	cfg := pairConfig(t, p, "")
	plan, err := PlanInstall(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	subscribes := func(plan Plan) []string {
		var out []string
		for _, w := range whats(plan) {
			if strings.Contains(w, ": subscribe ") {
				out = append(out, w)
			}
		}
		return out
	}
	if got := subscribes(plan); len(got) != 1 || !strings.HasPrefix(got[0], "subscriber: subscribe "+first+" to the set") {
		t.Fatalf("install plan: %q", got)
	}
	if len(plan.Targets) != 1 || plan.Targets[0].Subscription != first {
		t.Fatalf("targets: %+v", plan.Targets)
	}
	if len(plan.Notes) != 1 || !strings.Contains(plan.Notes[0], "subscription "+second+" on subscriber does not get the set pglmon_heartbeat: "+first+" carries the heartbeats of provider there") {
		t.Fatalf("notes: %q", plan.Notes)
	}
	if err := Apply(ctx, cfg, plan, time.Minute, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if arr, err := Check(ctx, cfg, plan.Targets, 4*time.Minute, 100*time.Millisecond); err != nil || len(arr) != 1 || !arr[0].OK {
		t.Fatalf("first heartbeat: %+v, %v", arr, err)
	}
	carries := func(sub string) bool {
		t.Helper()
		var has bool
		if err := p.Subscriber.QueryRow(ctx, subHasSetSQL, []any{&has}, sub); err != nil {
			t.Fatal(err)
		}
		return has
	}
	if !carries(first) || carries(second) {
		t.Fatalf("after install: %s %v, %s %v", first, carries(first), second, carries(second))
	}
	// A monitor that wrote no heartbeat (pglmon status) measures both: the
	// carrier by the heartbeats it applied, the other by how far its slot
	// confirmed their positions on the provider.
	m := monitor.New(cfg)
	defer m.Close(ctx)
	var a, b *diagnose.Subscription
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		r, _ := m.Cycle(ctx)
		a, _ = r.Subscription(first, "subscriber")
		b, _ = r.Subscription(second, "subscriber")
		return a != nil && b != nil && a.ReplicationDelaySeconds != nil && b.ReplicationDelaySeconds != nil && *b.ReplicationDelaySeconds == 0
	}); err != nil {
		t.Fatalf("delays: %+v\n%+v", a, b)
	}
	// carriers is the subscriber's heartbeat_carriers finding, as status
	// and the daemon say it ("": none).
	carriersFinding := func() string {
		t.Helper()
		r, _ := m.Cycle(ctx)
		for _, n := range r.Nodes {
			for _, f := range n.Findings {
				if f.Code == diagnose.CodeHeartbeatCarriers {
					if n.Name != "subscriber" {
						t.Fatalf("heartbeat_carriers on %s: %s", n.Name, f.Message)
					}
					return f.Message
				}
			}
		}
		return ""
	}
	if f := carriersFinding(); f != "" {
		t.Fatalf("heartbeat_carriers after install: %s", f)
	}

	// A second carrier, as an earlier install left it: install takes the
	// set from it, and both subscriptions replicate.
	if err := p.Subscriber.Exec(ctx, subAddSetSQL, second); err != nil {
		t.Fatal(err)
	}
	if f := carriersFinding(); !strings.HasPrefix(f, "subscriptions "+first+", "+second+" on subscriber all carry the heartbeats of provider provider") {
		t.Fatalf("heartbeat_carriers with two carriers: %q", f)
	}
	again, err := PlanInstall(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "subscriber: unsubscribe " + second + " from the set pglmon_heartbeat: another subscription carries the heartbeats of provider to subscriber (its apply worker restarts: pglmon waits for the new one)"
	if got := whats(again); len(got) != 1 || got[0] != want {
		t.Fatalf("install with two carriers: %q", got)
	}
	if err := Apply(ctx, cfg, again, 4*time.Minute, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !carries(first) || carries(second) {
		t.Fatalf("after the second install: %s %v, %s %v", first, carries(first), second, carries(second))
	}
	for _, sub := range p.Subscriptions {
		if err := p.WaitStatus(ctx, sub, "replicating", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if arr, err := Check(ctx, cfg, again.Targets, 4*time.Minute, 100*time.Millisecond); err != nil || len(arr) != 1 || !arr[0].OK || arr[0].Subscription != first {
		t.Fatalf("heartbeat after the second install: %+v, %v", arr, err)
	}
	if plan, err := PlanInstall(ctx, cfg); err != nil || len(plan.Steps) != 0 {
		t.Fatalf("install once more: %q, %v", whats(plan), err)
	}

	// The carrier disabled, the other given the set by hand: the enabled
	// one is kept, and the set taken from the disabled one.
	if err := p.Disable(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, subAddSetSQL, second); err != nil {
		t.Fatal(err)
	}
	plan, err = PlanInstall(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := whats(plan); len(got) != 1 || !strings.HasPrefix(got[0], "subscriber: unsubscribe "+first+" from the set") {
		t.Fatalf("install with the carrier disabled: %q", got)
	}
	if len(plan.Targets) != 1 || plan.Targets[0].Subscription != second {
		t.Fatalf("targets with the carrier disabled: %+v", plan.Targets)
	}

	// The set taken from both (as when the carrier is dropped and set up
	// again without it) while the provider has written heartbeats for ten
	// minutes: the subscriber is told that nothing is measured.
	// The disabled one loses it in the catalog; the other's apply worker
	// restarts, and only a heartbeat written once the new one runs is
	// sure never to arrive.
	if err := p.Subscriber.Exec(ctx, subDropSetSQL, first); err != nil {
		t.Fatal(err)
	}
	drop := Plan{Steps: []Step{{Node: "subscriber", What: "unsubscribe " + second, SQL: subDropSetSQL, Args: []any{second}, done: subHasSetSQL, undone: true, restarts: second}}}
	if err := Apply(ctx, cfg, drop, 4*time.Minute, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO pglmon.heartbeat (node, ts) SELECT node_name, now() - interval '10 minutes' FROM pglogical.local_node JOIN pglogical.node USING (node_id)"); err != nil {
		t.Fatal(err)
	}
	if f := carriersFinding(); !strings.HasPrefix(f, "provider provider writes heartbeats, but no subscription from it on subscriber carries them") ||
		!strings.Contains(f, "not measured for "+first+", "+second+",") {
		t.Fatalf("heartbeat_carriers with none: %q", f)
	}

	// Heartbeats written while nothing carries them never reach the
	// subscriber. install forgets those the subscriber holds from before,
	// so the new carrier's comparison starts with what it brings: the
	// daemon's comparison then finds none lost.
	prov, _ := cfg.Node("provider")
	sub, _ := cfg.Node("subscriber")
	var w Writer
	defer w.Close(ctx, nil)
	_, snaps := m.Cycle(ctx)
	var provNode string
	for _, s := range snaps {
		if s.Node == "provider" {
			provNode = s.LocalNode
		}
	}
	mk, err := w.Mark(ctx, prov, provNode, true, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	unsent := mk.TS
	// Until second's slot confirms past it (the test servers commit
	// asynchronously: past the WAL inserted, not written): a set added
	// back to a subscription whose slot has not would have it decoded
	// again, and sent. Long after a carrier went, every slot has.
	var slot string
	if err := p.Subscriber.QueryRow(ctx, "SELECT slot_name FROM pglogical.show_subscription_status($1)", []any{&slot}, second); err != nil {
		t.Fatal(err)
	}
	var written string
	if err := p.Provider.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text", []any{&written}); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var past bool
		err := p.Provider.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1", []any{&past}, slot, written)
		return err == nil && past
	}); err != nil {
		t.Fatalf("slot %s confirming %s: %v", slot, written, err)
	}
	plan, err = PlanInstall(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := whats(plan); len(got) != 2 || !strings.HasPrefix(got[0], "subscriber: forget the heartbeats of provider that subscriber holds from before") ||
		!strings.HasPrefix(got[1], "subscriber: subscribe "+second+" to the set") {
		t.Fatalf("install with none carrying: %q", got)
	}
	if err := Apply(ctx, cfg, plan, 4*time.Minute, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if arr, err := Check(ctx, cfg, plan.Targets, 4*time.Minute, 100*time.Millisecond); err != nil || len(arr) != 1 || !arr[0].OK {
		t.Fatalf("heartbeat through the new carrier: %+v, %v", arr, err)
	}
	// Heartbeats until the daemon's window reaches past the unsent one
	// (it ends shortly before the newest the subscriber holds).
	var from, till time.Time
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := w.Mark(ctx, prov, provNode, true, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		_, snaps := m.Cycle(ctx)
		var ph, sh *probe.Heartbeat
		for _, s := range snaps {
			switch s.Node {
			case "provider":
				ph = s.Heartbeat
			case "subscriber":
				sh = s.Heartbeat
			}
		}
		var ok bool
		if from, till, ok = Window(ph, sh, provNode); ok && till.After(unsent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the comparison window never passed %s: %s to %s", unsent, from, till)
		}
		time.Sleep(200 * time.Millisecond) // one heartbeat a poll, as the daemon writes one a cycle
	}
	g, err := w.Compare(ctx, prov, sub, provNode, from, till, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var held int
	if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pglmon.heartbeat WHERE ts = $1", []any{&held}, unsent); err != nil || held != 0 {
		t.Fatalf("the subscriber holds the heartbeat written while none carried them: %d, %v", held, err)
	}
	if len(g.Missing) > 0 || len(g.Extra) > 0 || g.Compared == 0 {
		t.Fatalf("heartbeats compared after the new carrier: %+v (the one written while none carried them: %s)", g, unsent)
	}
}

// A connection the server closed between two writes (idle_session_timeout
// here, a restart alike) costs no failed heartbeat: the writer opens a new
// one. Before, the first write after a provider's restart failed and the
// daemon logged "heartbeat write failed".
func TestWriterReconnectsAfterTheServerClosedItsConnection(t *testing.T) {
	ctx := context.Background()
	// A cluster of its own: the writer needs only the tables, and a
	// scratch database on a shared cluster could not be dropped (pglogical
	// 2.4.2's workers hold DROP DATABASE up; see signal_barrier_stuck).
	prov := pgtest.NewCluster(t, pgtest.Options{NoPglogical: true})
	if err := prov.Exec(ctx, "postgres", createTableSQL); err != nil {
		t.Fatal(err)
	}
	n := config.Node{Name: "prov", DSN: prov.DSN("postgres") + " options='-c idle_session_timeout=100'"}
	var w Writer
	defer w.Close(ctx, nil)
	if _, err := w.Mark(ctx, n, "node_a", true, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := prov.WaitBackendGone(ctx, w.node("prov").conn.PgConn().PID(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Mark(ctx, n, "node_a", true, 5*time.Second); err != nil {
		t.Fatalf("heartbeat after the server closed the idle connection: %v", err)
	}
	conn, err := prov.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var beats, positions int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pglmon.heartbeat), (SELECT count(*) FROM pglmon.heartbeat_position)").Scan(&beats, &positions); err != nil {
		t.Fatal(err)
	}
	if beats != 2 || positions != 2 {
		t.Errorf("got %d heartbeats and %d positions, want 2 and 2", beats, positions)
	}
}
