package daemon

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/heartbeat"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// With the heartbeat installed, the daemon writes one on the provider every
// cycle and exports how far behind the subscriber is: 0 while it applies,
// growing into replication_delay_high while it is disabled, 0 again once
// it is enabled.
func TestDaemonMeasuresReplicationDelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	body := delayConfig(t, p)
	installHeartbeat(t, body)
	r := start(t, body, nil)
	r.waitMetric(t, `^pglmon_heartbeat_writes_total\{node="provider",result="ok"\} [1-9]`, false, 20*time.Second)
	// The subscription's apply worker restarts once after install (under
	// load pglogical has taken over 90 s).
	r.waitMetric(t, `^pglmon_replication_delay_seconds\{provider="provider",subscription="sub_0"\} 0$`, false, 4*time.Minute)
	if strings.Contains(r.logs.String(), "heartbeat write failed") {
		t.Errorf("a write failed:\n%s", r.logs.String())
	}

	if err := p.Disable(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	var f diagnose.Finding
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription("sub_0", "subscriber")
		var found bool
		if ok {
			f, found = s.Finding(diagnose.CodeReplicationDelayHigh)
		}
		return found
	}); err != nil {
		t.Fatal("no replication_delay_high while the subscription is disabled")
	}
	if f.Severity != diagnose.Warning || !strings.Contains(f.Message, "it is disabled") {
		t.Errorf("finding %+v", f)
	}
	r.waitMetric(t, `^pglmon_replication_delay_seconds\{provider="provider",subscription="sub_0"\} ([3-9]|[1-9][0-9])`, false, 10*time.Second)
	r.waitMetric(t, `^pglmon_finding\{code="replication_delay_high",severity="warning",subscriber="subscriber",subscription="sub_0"\} 1$`, false, 5*time.Second)

	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", p.Sub()); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(t, `^pglmon_replication_delay_seconds\{provider="provider",subscription="sub_0"\} 0$`, false, 4*time.Minute)
	r.waitMetric(t, `^pglmon_finding\{code="replication_delay_high"`, true, 10*time.Second)

	// The provider made read-only, as while the writes move to the
	// subscriber, its sessions ended: the log says why no heartbeat is
	// written (not to GRANT), and that the writes recover once it takes
	// writes again.
	readOnly := func(on bool) {
		t.Helper()
		set := "SET default_transaction_read_only = on"
		if !on {
			set = "RESET default_transaction_read_only"
		}
		if err := p.Provider.Exec(ctx, "BEGIN READ WRITE; ALTER DATABASE "+p.Provider.Name+" "+set+"; COMMIT"); err != nil {
			t.Fatal(err)
		}
		if err := p.Provider.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND application_name NOT LIKE 'pglogical%'"); err != nil {
			t.Fatal(err)
		}
	}
	readOnly(true)
	waitLog := func(want string) {
		t.Helper()
		if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return strings.Contains(r.logs.String(), want) }); err != nil {
			t.Fatalf("no log %q:\n%s", want, r.logs.String())
		}
	}
	waitLog("the database is read-only, default_transaction_read_only: the heartbeats resume once it takes writes again")
	readOnly(false)
	waitLog("heartbeat writes recovered")
}

// Of two subscriptions from one provider, install gives the heartbeats to
// the first; the daemon reads the second's delay from how far its slot
// confirmed the provider's WAL against the heartbeats it wrote there:
// 0 while it streams, growing into replication_delay_high while it is
// disabled (the carrier's staying 0), 0 again once enabled.
func TestDaemonReadsTheDelayOfAnotherSubscriptionFromItsSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Subscriptions: 2})
	carrier, other := p.Subscriptions[0], p.Subscriptions[1]
	body := delayConfig(t, p)
	if _, plan := installHeartbeat(t, body); len(plan.Targets) != 1 || plan.Targets[0].Subscription != carrier {
		t.Fatalf("carriers: %+v", plan.Targets)
	}
	r := start(t, body, nil)
	delay := func(sub, re string) string {
		return `^pglmon_replication_delay_seconds\{provider="provider",subscription="` + sub + `"\} ` + re
	}
	r.waitMetric(t, delay(carrier, "0$"), false, 4*time.Minute)
	r.waitMetric(t, delay(other, "0$"), false, time.Minute)

	if err := p.Disable(ctx, other); err != nil {
		t.Fatal(err)
	}
	var f diagnose.Finding
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription(other, "subscriber")
		var found bool
		if ok {
			f, found = s.Finding(diagnose.CodeReplicationDelayHigh)
		}
		return found
	}); err != nil {
		t.Fatalf("no replication_delay_high for %s while it is disabled", other)
	}
	if f.Severity != diagnose.Warning || !strings.Contains(f.Message, "(it does not carry the heartbeats: read from its slot); it is disabled") {
		t.Errorf("finding %+v", f)
	}
	r.waitMetric(t, delay(other, "([3-9]|[1-9][0-9])"), false, 10*time.Second)
	rep := r.status(t)
	if s, ok := rep.Subscription(carrier, "subscriber"); !ok || s.ReplicationDelaySeconds == nil || *s.ReplicationDelaySeconds > 2 {
		t.Errorf("the carrier's delay while the other is disabled: %+v", s)
	}

	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", other); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(t, delay(other, "0$"), false, 4*time.Minute)
}

// delayConfig is the configuration of the delay tests: a cycle a second,
// replication_delay at 3 s, no automatic repair.
func delayConfig(t *testing.T, p *pgtest.Pair) string {
	return p.NodesYAML() + fmt.Sprintf(`probe:
  interval: 1s
  timeout: 1s
thresholds:
  replication_delay: 3s
  replication_delay_critical: 1h
http:
  listen: "127.0.0.1:0"
repair:
  audit_log: %s
  policy:
    enable: off
`, filepath.Join(t.TempDir(), "audit.jsonl"))
}

// installHeartbeat runs pglmon heartbeat install's steps for the
// configuration body and returns its configuration and plan.
func installHeartbeat(t testing.TB, body string) (*config.Config, heartbeat.Plan) {
	t.Helper()
	cfg, err := config.Parse("pglmon.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := heartbeat.PlanInstall(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := heartbeat.Apply(context.Background(), cfg, plan, time.Minute, io.Discard); err != nil {
		t.Fatal(err)
	}
	return cfg, plan
}

// A subscriber put back to a copy of its files (a restore from a storage
// snapshot: same timeline) while the daemon is stopped, which applies on
// from its provider's slot past where its origin was before the daemon
// looks again: neither its origin nor its timeline tells, but the
// heartbeats written between the copy and the restore are missing while
// later ones arrived (heartbeats_lost). Verified equal, it is put behind
// and not raised again by the same heartbeats.
func TestDaemonFindsLostHeartbeats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Two subscriptions: the first carries the heartbeats, and its finding
	// names the second, which the restore hit alike.
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10, Subscriptions: 2})
	body, saved := copyThenBeat(t, p, p.Subscriber.Cluster)
	if err := p.Subscriber.Cluster.PutBack(ctx, saved); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'after', g FROM generate_series(3001, 3100) g"); err != nil {
		t.Fatal(err)
	}
	arrived(t, p, "id > 3000", 100)
	if lost := subscriberRows(t, p, "id BETWEEN 101 AND 150"); lost != 0 {
		t.Fatalf("%d of rows 101-150 are on the subscriber: the provider sent them again, and this test shows nothing", lost)
	}
	// The second subscription, which does not carry the heartbeats, lost
	// the same span: measured, as its finding's siblings say.
	if err := p.Provider.Exec(ctx, "INSERT INTO items_1 SELECT g, 'after', g FROM generate_series(3001, 3100) g"); err != nil {
		t.Fatal(err)
	}
	arrivedIn(t, p, "items_1", "id > 3000", 100)
	if lost := rowsIn(t, p, "items_1", "id BETWEEN 101 AND 150"); lost != 0 {
		t.Errorf("%d of rows 101-150 of items_1 are on the subscriber: the sibling %s did not lose them, which heartbeats_lost says it did", lost, p.Subscriptions[1])
	}
	r := start(t, body, nil)
	onlyHeartbeats(t, r, p, diagnose.CodeSubscriberRewound, "heartbeats provider wrote between", "never reached subscriber",
		"Subscription "+p.Subscriptions[1]+" from provider on subscriber does not carry the heartbeats")
	putBehind(t, r, p, diagnose.CodeHeartbeatsLost, "INSERT INTO items_0 SELECT g, 'lost by the restore', g FROM generate_series(101, 150) g")
	// The same missing heartbeats, verified since: not raised again.
	until := r.status(t).Time.Add(5 * time.Second)
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		if !ok {
			return false
		}
		if _, found := s.Finding(diagnose.CodeHeartbeatsLost); found {
			t.Fatalf("heartbeats_lost raised again after the verification: %+v", s.Findings)
		}
		return rep.Time.After(until)
	}); err != nil {
		t.Fatal(err)
	}
}

// A provider put back to a copy of its files (a restore from a storage
// snapshot) while the daemon is stopped, whose WAL then passes what the
// subscriber had applied before the daemon looks again: provider_rewound
// is over, the timeline is the same, but the subscriber holds heartbeats
// the provider no longer has (heartbeats_lost).
//
// The second subscription, which does not carry the heartbeats, lost the
// same: a row written to its table while the provider's WAL had not
// passed its origin is skipped too (measured), as the finding's siblings
// say.
func TestDaemonFindsHeartbeatsARestoredProviderLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10, Subscriptions: 2})
	body, saved := copyThenBeat(t, p, p.Provider.Cluster)
	if err := p.Provider.Cluster.PutBack(ctx, saved); err != nil {
		t.Fatal(err)
	}
	for _, sub := range p.Subscriptions {
		if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true), pglogical.alter_subscription_enable($1, true)", sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_1 VALUES (2001, 'skipped', 2001)"); err != nil {
		t.Fatal(err)
	}
	skipThenPass(t, p)
	if err := p.Provider.Exec(ctx, "INSERT INTO items_1 VALUES (2002, 'after', 2002)"); err != nil {
		t.Fatal(err)
	}
	arrivedIn(t, p, "items_1", "id = 2002", 1)
	if n := rowsIn(t, p, "items_1", "id = 2001"); n != 0 {
		t.Errorf("row 2001 of items_1 arrived: the sibling %s did not skip it, which heartbeats_lost says it may have", p.Subscriptions[1])
	}
	r := start(t, body, nil)
	onlyHeartbeats(t, r, p, diagnose.CodeProviderRewound, "subscriber holds ", "that provider no longer has",
		"Subscription "+p.Subscriptions[1]+" from provider on subscriber does not carry the heartbeats")
	putBehind(t, r, p, diagnose.CodeHeartbeatsLost, "DELETE FROM items_0 WHERE id BETWEEN 101 AND 150; INSERT INTO items_0 VALUES (2001, 'skipped', 2001)")
}

// onlyHeartbeats waits for heartbeats_lost on the pair's subscription and
// checks that it is critical, that its message holds each of want, and
// that other (what the daemon says of the loss without the heartbeats)
// is not said too: else the test does not show what only the heartbeats
// tell.
func onlyHeartbeats(t *testing.T, r *running, p *pgtest.Pair, other string, want ...string) {
	t.Helper()
	f, _ := r.waitFinding(t, p.Sub(), diagnose.CodeHeartbeatsLost)
	for _, w := range want {
		if f.Severity != diagnose.Critical || !strings.Contains(f.Message, w) {
			t.Errorf("finding (want %q): %+v", w, f)
		}
	}
	rep := r.status(t)
	if s, ok := rep.Subscription(p.Sub(), ""); ok {
		if _, found := s.Finding(other); found {
			t.Errorf("%s too: the test does not show what only the heartbeats tell: %+v", other, s.Findings)
		}
	}
}

// copyThenBeat installs the heartbeats on p and starts a daemon; once
// they arrive, it copies the files of c (SaveFiles), has rows 101-150 of
// items_0 and 3 heartbeats written after the copy reach the subscriber,
// then stops the daemon. It returns the daemon's configuration and the
// copy.
func copyThenBeat(t *testing.T, p *pgtest.Pair, c *pgtest.Cluster) (body, saved string) {
	t.Helper()
	ctx := context.Background()
	body = pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff())
	installHeartbeat(t, body)
	r := start(t, body, nil)
	r.waitMetric(t, `^pglmon_replication_delay_seconds\{provider="provider",subscription="sub_0"\} 0$`, false, 4*time.Minute)
	saved, err := c.SaveFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// pglogical may wait up to 180 s before it tries again a provider
	// that went away.
	if err := p.RestartSubscription(ctx); err != nil {
		t.Fatal(err)
	}
	var copied time.Time
	if err := p.Provider.QueryRow(ctx, "SELECT clock_timestamp()", []any{&copied}); err != nil {
		t.Fatal(err)
	}
	for _, table := range p.Tables { // each subscription's table
		if err := p.Provider.Exec(ctx, "INSERT INTO "+table+" SELECT g, 'lost by the restore', g FROM generate_series(101, 150) g"); err != nil {
			t.Fatal(err)
		}
		arrivedIn(t, p, table, "id BETWEEN 101 AND 150", 50)
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var n int
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pglmon.heartbeat WHERE ts > $1", []any{&n}, copied) == nil && n >= 3
	}); err != nil {
		t.Fatal("no heartbeats written after the copy reached the subscriber")
	}
	r.stop(t)
	return body, saved
}
