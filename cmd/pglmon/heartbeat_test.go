package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/heartbeat"
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

	// Installed by an earlier pglmon, without pglmon.heartbeat_position:
	// check-config says to install again, which adds it.
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Exec(t.Context(), "DROP TABLE pglmon.heartbeat_position"); err != nil {
			t.Fatal(err)
		}
	}
	_, res, raw := checkConnect(t, cfg)
	if l, d := res.check("provider", "heartbeat"); l != "warn" || !strings.Contains(d, "pglmon.heartbeat_position is missing (installed by an earlier pglmon)") || !strings.Contains(d, "run pglmon heartbeat install again") {
		t.Errorf("provider heartbeat check without the positions: %s %q\n%s", l, d, raw)
	}
	code, out, errOut = pglmon(t, "heartbeat", "install", "--config", cfg)
	if code != 0 || strings.Count(out, ": done (") != 2 || !strings.Contains(out, "create the table pglmon.heartbeat_position") {
		t.Fatalf("install over an earlier one: exit %d\n%s%s", code, out, errOut)
	}

	// check-config --connect: who provides and who receives; a role with
	// the README's watching grants but not its heartbeat grants is warned
	// of, one with them is not.
	_, res, raw = checkConnect(t, cfg)
	if l, d := res.check("provider", "heartbeat"); l != "ok" || !strings.Contains(d, "provides heartbeats") {
		t.Errorf("provider heartbeat check: %s %q\n%s", l, d, raw)
	}
	if l, d := res.check("subscriber", "heartbeat"); l != "ok" || !strings.Contains(d, "receives heartbeats") {
		t.Errorf("subscriber heartbeat check: %s %q", l, d)
	}
	role := p.Provider.Name + "_hb"
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Exec(t.Context(), fmt.Sprintf(`CREATE ROLE %[1]s LOGIN IN ROLE pg_monitor; GRANT USAGE ON SCHEMA pglogical TO %[1]s;
GRANT SELECT ON ALL TABLES IN SCHEMA pglogical TO %[1]s; REVOKE SELECT ON pglogical.node_interface FROM %[1]s;
GRANT SELECT (if_id, if_name, if_nodeid) ON pglogical.node_interface TO %[1]s;
GRANT SELECT ON pg_replication_origin, pg_replication_origin_status TO %[1]s;
GRANT EXECUTE ON FUNCTION pg_show_replication_origin_status() TO %[1]s;`, role)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Exec(context.Background(), fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role)) })
	}
	b, _ := os.ReadFile(cfg)
	asRole := filepath.Join(t.TempDir(), "role.yaml")
	if err := os.WriteFile(asRole, []byte(strings.ReplaceAll(string(b), "user=postgres", "user="+role)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, res, _ = checkConnect(t, asRole)
	if l, d := res.check("provider", "heartbeat"); l != "warn" || !strings.Contains(d, "GRANT SELECT, INSERT, DELETE ON pglmon.heartbeat, pglmon.heartbeat_position TO "+role) {
		t.Errorf("a role without the grants: %s %q", l, d)
	}
	// Without them the probe does not read the table, and still works.
	_, out, _ = pglmon(t, "status", "--config", asRole, "--output", "json")
	if strings.Contains(out, diagnose.CodeNodeUnreachable) || strings.Contains(out, "replication_delay_seconds") {
		t.Errorf("status as a role without the heartbeat grants:\n%s", out)
	}
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Exec(t.Context(), fmt.Sprintf("GRANT USAGE ON SCHEMA pglmon TO %[1]s; GRANT SELECT, INSERT, DELETE ON pglmon.heartbeat, pglmon.heartbeat_position TO %[1]s", role)); err != nil {
			t.Fatal(err)
		}
	}
	_, res, _ = checkConnect(t, asRole)
	if l, d := res.check("provider", "heartbeat"); l != "ok" {
		t.Errorf("a role with the README's grants: %s %q", l, d)
	}
	// ... and with them it writes and prunes as the daemon does.
	rc, err := config.Load(asRole)
	if err != nil {
		t.Fatal(err)
	}
	var w heartbeat.Writer
	defer w.Close(context.Background(), nil)
	for _, n := range rc.Nodes {
		if n.Name == "provider" {
			if _, err := w.Mark(t.Context(), n, p.ProviderNode, true, 5*time.Second); err != nil {
				t.Errorf("write as %s: %v", role, err)
			}
		}
		if _, err := w.Prune(t.Context(), n, true, 5*time.Second); err != nil {
			t.Errorf("prune on %s as %s: %v", n.Name, role, err)
		}
	}

	code, out, errOut = pglmon(t, "heartbeat", "remove", "--config", cfg)
	if code != 0 || strings.Count(out, ": done (") != 4 {
		t.Fatalf("remove: exit %d\n%s%s", code, out, errOut)
	}
	if err := p.WaitStatus(t.Context(), p.Sub(), "replicating", 4*time.Minute); err != nil {
		t.Error(err)
	}
	code, out, _ = pglmon(t, "status", "--config", cfg)
	if code != 0 || strings.Contains(out, "DELAY") {
		t.Errorf("status after remove: exit %d\n%s", code, out)
	}
}
