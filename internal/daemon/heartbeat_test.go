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
	body := p.NodesYAML() + fmt.Sprintf(`probe:
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
}

// installHeartbeat runs pglmon heartbeat install's steps for the
// configuration body and returns its configuration and plan.
func installHeartbeat(t *testing.T, body string) (*config.Config, heartbeat.Plan) {
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
