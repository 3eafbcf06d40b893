package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// pglmon heartbeat install / remove as a person runs them, and what status
// shows in between.
func TestHeartbeatCommand(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg := writeConfig(t, p, "")

	if code, _, errOut := pglmon(t, "heartbeat", "start", "--config", cfg); code != exitUsage || !strings.Contains(errOut, "usage: pglmon heartbeat install") {
		t.Errorf("unknown subcommand: exit %d, %q", code, errOut)
	}
	code, out, errOut := pglmon(t, "heartbeat", "install", "--config", cfg, "--dry-run")
	if code != 0 || !strings.Contains(out, "5. on subscriber: subscribe sub_0 to the set pglmon_heartbeat of provider") || strings.Contains(out, "done") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	var exists bool
	if err := p.Provider.QueryRow(t.Context(), "SELECT to_regclass('pglmon.heartbeat') IS NOT NULL", []any{&exists}); err != nil || exists {
		t.Fatalf("the dry run created the table (%v)", err)
	}
	code, out, errOut = pglmon(t, "heartbeat", "install", "--config", cfg)
	if code != 0 || strings.Count(out, ": done (") != 5 || !strings.Contains(out, "sub_0 on subscriber (from provider): arrived in ") {
		t.Fatalf("install: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = pglmon(t, "heartbeat", "install", "--config", cfg)
	if code != 0 || !strings.Contains(out, "Nothing to change.") || !strings.Contains(out, "arrived in") {
		t.Errorf("install again: exit %d\n%s", code, out)
	}

	// status: the table has a DELAY column, the JSON the delay.
	code, out, _ = pglmon(t, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "DELAY") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	_, out, _ = pglmon(t, "status", "--config", cfg, "--output", "json")
	var rep diagnose.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	s, ok := rep.Subscription("sub_0", "subscriber")
	if !ok || s.ReplicationDelaySeconds == nil || s.HeartbeatApplied == nil {
		t.Errorf("status JSON without the delay: %s", out)
	}

	code, out, errOut = pglmon(t, "heartbeat", "remove", "--config", cfg)
	if code != 0 || strings.Count(out, ": done (") != 4 {
		t.Fatalf("remove: exit %d\n%s%s", code, out, errOut)
	}
	if err := p.WaitStatus(t.Context(), p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Error(err)
	}
	code, out, _ = pglmon(t, "status", "--config", cfg)
	if code != 0 || strings.Contains(out, "DELAY") {
		t.Errorf("status after remove: exit %d\n%s", code, out)
	}
}
