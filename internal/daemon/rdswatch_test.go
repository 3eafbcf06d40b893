package daemon

import (
	"context"
	"fmt"
	"os"
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
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pg_stat_statements", rdsadmin.ParamLogical: "1", rdsadmin.ParamMaxSlots: "20"})
	p := pgtest.NewPair(t, pgtest.PairOptions{Subscriptions: 2})
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

	// max_replication_slots lowered in the group below the two slots the
	// provider holds: the next reboot would leave it down. Critical, with
	// the change that puts it right.
	srv.SetParam("pg15-pglogical", rdsadmin.ParamMaxSlots, "1")
	r.waitMetric(t, `^pglmon_finding\{code="rds_parameters_missing",severity="critical",subscriber="provider",subscription=""\} 1$`, false, 20*time.Second)
	msg = ""
	for _, n := range r.status(t).Nodes {
		for _, f := range n.Findings {
			if f.Code == diagnose.CodeRDSParametersMissing {
				msg = f.Message
			}
		}
	}
	if !strings.Contains(msg, "parameter group pg15-pglogical: max_replication_slots = 1, below the ") || !strings.Contains(msg, " replication slots the instance holds now") ||
		!strings.Contains(msg, "the next reboot (maintenance, failover, a parameter change) leaves the instance down") ||
		!strings.Contains(msg, "ParameterName=max_replication_slots,ParameterValue=<at least ") {
		t.Errorf("finding message: %q", msg)
	}
	srv.SetParam("pg15-pglogical", rdsadmin.ParamMaxSlots, "100")
	r.waitMetric(t, `code="rds_parameters_missing"`, true, 20*time.Second)
}

// A subscription on RDS that is down gets the reason its apply worker wrote
// in the subscriber's log, read through the RDS API (DownloadDBLogFilePortion;
// the fake serves the real server's log).
func TestDaemonReadsTheApplyErrorFromTheRDSLog(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("sub-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pglogical", rdsadmin.ParamLogical: "1"})
	// Clusters of its own: the log holds only this pair's workers.
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10, Own: true})
	p.MustConverge(t, 30*time.Second)
	// A check only the subscriber has: the next row that fails it stops the apply.
	if err := p.Subscriber.Exec(ctx, "ALTER TABLE items_0 ADD CONSTRAINT small_n CHECK (n < 100)"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (11, 'big', 500)"); err != nil {
		t.Fatal(err)
	}
	// The subscriber is the last node: rds: goes right before probe:.
	nodes := strings.Replace(pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), "probe:", "    rds: {identifier: sub-db}\nprobe:", 1)
	r := start(t, a.YAML()+nodes, nil)
	var msg string
	err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		log, err := os.ReadFile(p.Subscriber.Cluster.LogPath())
		if err != nil {
			return false
		}
		srv.SetLog("sub-db", "error/postgresql.log.2026-11-24-19", time.Now().UnixMilli(), string(log))
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		if !ok {
			return false
		}
		for _, f := range s.Findings {
			if f.Code == diagnose.CodeApplyError && f.Human && f.Remedy == "" {
				msg = f.Message
			}
		}
		// A refused row: apply_error (no restart) once past down_grace.
		return strings.Contains(msg, `violates check constraint "small_n"`)
	})
	if err != nil {
		t.Fatalf("no apply error in the finding: %q\ncalls %v", msg, srv.Calls())
	}
	t.Logf("finding: %s", msg)
	if !strings.Contains(msg, "error/postgresql.log.2026-11-24-19") || !strings.Contains(msg, "CONTEXT:") {
		t.Errorf("finding: %q", msg)
	}
}

// A provider on RDS that stops answering: the daemon reads what RDS says of
// it (storage-full: the disk an inactive slot filled) into the finding, and
// reads it again once a minute, not every cycle.
func TestDaemonSaysWhatRDSReportsOfAnUnreachableNode(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pglogical", rdsadmin.ParamLogical: "1"})
	srv.SetStatus("prov-db", "storage-full")
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	rest := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff())
	nodes := fmt.Sprintf("nodes:\n  - name: provider\n    dsn: \"host=127.0.0.1 port=1 dbname=%s user=postgres sslmode=disable\"\n    rds: {identifier: prov-db}\n  - name: subscriber\n    dsn: %q\n",
		p.Provider.Name, p.Subscriber.DSN())
	r := start(t, a.YAML()+nodes+rest[strings.Index(rest, "probe:"):], nil)
	var msg string
	var node diagnose.Node
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		for _, n := range r.status(t).Nodes {
			for _, f := range n.Findings {
				if n.Name == "provider" && f.Code == diagnose.CodeNodeUnreachable {
					msg, node = f.Message, n
				}
			}
		}
		return strings.Contains(msg, "RDS reports instance prov-db as storage-full")
	}); err != nil {
		t.Fatalf("the finding does not say what RDS reports: %q", msg)
	}
	if node.RDSStatus != "storage-full" || !strings.Contains(msg, "replication slot retaining WAL") || !strings.Contains(msg, "--allocated-storage") {
		t.Errorf("node: %+v", node)
	}
	if !strings.Contains(r.logs.String(), `"msg":"RDS status of an unreachable node","node":"provider","instance":"prov-db","rds_status":"storage-full"`) {
		t.Errorf("not logged:\n%s", r.logs.String())
	}
	calls := srv.Count("DescribeDBInstances")
	seen := r.status(t).Time
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return r.status(t).Time.Sub(seen) >= 3*time.Second }); err != nil {
		t.Fatal("the daemon stopped cycling")
	}
	if n := srv.Count("DescribeDBInstances"); n != calls {
		t.Errorf("DescribeDBInstances called %d more times within 3 cycles (once a minute is enough)", n-calls)
	}
}

// An RDS subscriber that does not answer, restarting in a crash loop: its
// log, read through the RDS API while it is down, gives server_crashed
// with the subscription whose apply worker crashes.
func TestDaemonReadsTheCrashesOfAnUnreachableRDSNode(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("sub-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pglogical", rdsadmin.ParamLogical: "1"})
	const file = "error/postgresql.log.2026-12-06-09"
	log := "2026-12-06 09:00:00 UTC::@:[500]:LOG:  database system is ready to accept connections\n"
	srv.SetLog("sub-db", file, time.Now().UnixMilli(), log)
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	rest := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff())
	nodes := fmt.Sprintf("nodes:\n  - name: provider\n    dsn: %q\n  - name: subscriber\n    dsn: \"host=127.0.0.1 port=1 dbname=%s user=postgres sslmode=disable\"\n    rds: {identifier: sub-db}\n",
		p.Provider.DSN(), p.Subscriber.Name)
	r := startEvery(t, a.YAML()+nodes+rest[strings.Index(rest, "probe:"):], nil, 500*time.Millisecond)
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"msg":"server log read","node":"subscriber"`)
	}); err != nil {
		t.Fatalf("the unreachable RDS node's log was not read:\n%s", r.logs.String())
	}
	for i := 0; i < 3; i++ {
		log += fmt.Sprintf("2026-12-06 09:00:0%d UTC::@:[%d]:LOG:  starting apply for subscription sub_0\n", i+1, 600+i) +
			fmt.Sprintf("2026-12-06 09:00:0%d UTC::@:[500]:LOG:  background worker \"pglogical apply 16400:3147399666\" (PID %d) was terminated by signal 11: Segmentation fault\n", i+1, 600+i) +
			"2026-12-06 09:00:01 UTC::@:[500]:LOG:  terminating any other active server processes\n"
	}
	srv.SetLog("sub-db", file, time.Now().UnixMilli(), log)
	n, f := r.waitNodeFinding(t, "subscriber", diagnose.CodeServerCrashed, 30*time.Second)
	if n.Up {
		t.Errorf("the subscriber answers: %+v", n)
	}
	if !strings.Contains(f.Message, "the server of subscriber crashed 3 times in the last hour") ||
		!strings.Contains(f.Message, `3x background worker "pglogical apply 16400:3147399666" (subscription sub_0) was terminated by signal 11: Segmentation fault`) {
		t.Errorf("server_crashed: %s", f.Message)
	}
}
