package daemon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// The daemon reads the parameter groups of nodes with rds: and warns while a
// group lacks pglogical or waits for a reboot; the warning clears when fixed.
func TestDaemonWatchesRDSParameterGroups(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pg_stat_statements", rdsadmin.ParamLogical: "1"})
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	nodes := strings.Replace(pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()),
		"  - name: subscriber\n", "    rds: {identifier: prov-db}\n  - name: subscriber\n", 1)
	body := strings.Replace(a.YAML(), "  max_attempts: 3\n", "  max_attempts: 3\n  rds_check_every: 1s\n", 1) + nodes
	r := start(t, body, nil)

	r.waitMetric(t, `^pglmon_finding\{code="rds_parameters_missing",severity="warning",subscriber="provider",subscription=""\} 1$`, false, 20*time.Second)
	rep := r.status(t)
	var msg string
	for _, n := range rep.Nodes {
		for _, f := range n.Findings {
			if f.Code == diagnose.CodeRDSParametersMissing {
				msg = f.Message
			}
		}
	}
	if !strings.Contains(msg, `parameter group pg15-pglogical: shared_preload_libraries = "pg_stat_statements" lacks pglogical`) || !strings.Contains(msg, "--rds-parameters") {
		t.Errorf("finding message: %q", msg)
	}
	if rep.Health == diagnose.OK {
		t.Error("overall health stayed ok")
	}

	// Someone fixes the group: now it waits for a reboot.
	srv.SetParam("pg15-pglogical", rdsadmin.ParamPreload, "pg_stat_statements,pglogical")
	r.waitMetric(t, `code="rds_parameters_missing"`, true, 20*time.Second)
	r.waitMetric(t, `^pglmon_finding\{code="rds_pending_reboot",severity="warning",subscriber="provider",subscription=""\} 1$`, false, 20*time.Second)
	// Rebooted (by a person): all clear, and the daemon never rebooted anything itself.
	srv.Reboot("prov-db")
	r.waitMetric(t, `code="rds_pending_reboot"`, true, 20*time.Second)
	if n := srv.Count("RebootDBInstance") + srv.Count("ModifyDBParameterGroup"); n != 1 {
		t.Errorf("the daemon changed RDS: %v", srv.Calls())
	}
}
