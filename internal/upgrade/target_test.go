package upgrade

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// check --target-version/--target-parameter-group asks RDS (the local
// server speaking its Query API) about the upgrade path, the instance
// class and the new parameter group; prepare refuses on what it finds
// before dropping anything.
func TestCheckAsksRDSAboutTheTarget(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", map[string]string{"shared_preload_libraries": "pg_stat_statements,pglogical", "rds.logical_replication": "1"})
	srv.SetUpgradeTargets("15.7", "15.8", "16.3", "16.4", "17.2")
	srv.SetOrderable("16.4", "db.r6g.large", "db.m6g.large")
	srv.SetOrderable("17.2", "db.m7g.large")
	srv.SetOrderable("15.8", "db.r6g.large")
	srv.AddParameterGroup("pg16-bare", "postgres16", map[string]string{"shared_preload_libraries": "pg_stat_statements"})
	// Clusters of its own: other tests' slots on shared ones would be problems too.
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	var out bytes.Buffer
	r := snapshotRunner(t, srv, p, &out)
	r.Snapshot.Take = false

	for _, c := range []struct {
		version, group string
		want           []string
		says           string
	}{
		// A custom group today: RDS asks for a new one with the upgrade.
		{"16.4", "", []string{"target_parameter_group pg15-pglogical warning"}, "--target-parameter-group"},
		// No such upgrade path (16.1 is not offered from 15.7).
		{"16.1", "", []string{"target_parameter_group pg15-pglogical warning", "target_version 16.1 blocking"}, "major versions it offers from 15.7: 16.3, 16.4, 17.2"},
		// 17.2 exists, not on db.r6g.large.
		{"17.2", "", []string{"instance_class db.r6g.large blocking", "target_parameter_group pg15-pglogical warning"}, "not offered with postgres 17.2"},
		// A minor upgrade needs no prepare.
		{"15.8", "", []string{"target_version 15.8 warning"}, "minor-version upgrade"},
		{"16.4", "pg16-missing", []string{"target_parameter_group pg16-missing blocking"}, "does not exist"},
		{"16.4", "pg15-pglogical", []string{"target_parameter_group pg15-pglogical blocking"}, "needs one of family postgres16"},
		{"", "pg15-pglogical", []string{"target_parameter_group pg15-pglogical blocking"}, "current major version"},
		{"16.4", "pg16-bare", []string{"target_parameter_group pg16-bare blocking"}, `ParameterValue="pg_stat_statements,pglogical"`},
	} {
		r.Target = TargetOptions{Version: c.version, ParameterGroup: c.group, AWS: r.Snapshot.AWS}
		res, err := r.Check(ctx, "provider")
		if err != nil {
			t.Fatalf("%s/%s: %v", c.version, c.group, err)
		}
		var text string
		for _, pr := range res.Problems {
			text += pr.Message + " " + pr.Fix + "\n"
		}
		if got := kinds(res); !slices.Equal(got, c.want) || !strings.Contains(text, c.says) {
			t.Errorf("%s/%s: got %q, want %q saying %q:\n%s", c.version, c.group, got, c.want, c.says, text)
		}
	}

	// The group fixed as its problem says: ready.
	srv.SetParam("pg16-bare", "shared_preload_libraries", "pg_stat_statements,pglogical")
	srv.SetParam("pg16-bare", "rds.logical_replication", "1")
	r.Target = TargetOptions{Version: "16.4", ParameterGroup: "pg16-bare", AWS: r.Snapshot.AWS}
	if res, err := r.Check(ctx, "provider"); err != nil || !res.Ready || len(res.Problems) != 0 {
		t.Fatalf("with a group that loads pglogical: %+v (%v)", res, err)
	}

	// RDS refused an earlier attempt: what its pre-check log said is quoted
	// (a warning: what still holds is what the check finds now), with the
	// other files of that attempt; the server's own log is not one.
	at := time.Date(2026, 12, 4, 14, 10, 2, 0, time.UTC)
	srv.SetLog("prov-db", "error/postgresql.log.2026-12-04-14", at.UnixMilli(), "2026-12-04 14:10:01 UTC::@:[812]:LOG:  checkpoint starting\n")
	srv.SetLog("prov-db", "error/pg_upgrade_precheck.log.2026-12-04-14:10", at.UnixMilli(),
		"------------------------------------------------------------------\nUpgrade could not be run on Fri Dec  4 14:10:02 2026\n"+
			"------------------------------------------------------------------\n\nThe instance could not be upgraded from 15.7 to 16.4 for the following reasons.\n\n"+
			"*There are logical replication slots in the instance. Drop them and try again.\n")
	srv.SetLog("prov-db", "error/pg_upgrade_internal.log.2026-12-04-14:10", at.Add(time.Second).UnixMilli(), "pg_upgrade run on Fri Dec  4 14:10:01 2026\n")
	srv.SetLog("prov-db", "error/pg_upgrade_internal.log.2026-11-20-09:00", at.Add(-14*24*time.Hour).UnixMilli(), "an older attempt\n")
	res, err := r.Check(ctx, "provider")
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(res); !res.Ready || !slices.Equal(got, []string{"rds_precheck_log error/pg_upgrade_precheck.log.2026-12-04-14:10 warning"}) {
		t.Fatalf("with RDS's pre-check log: ready %t, %q", res.Ready, got)
	}
	want := "RDS's pre-check log of instance prov-db (error/pg_upgrade_precheck.log.2026-12-04-14:10, written 2026-12-04T14:10:02Z) says: " +
		"Upgrade could not be run on Fri Dec  4 14:10:02 2026 | The instance could not be upgraded from 15.7 to 16.4 for the following reasons. | " +
		"*There are logical replication slots in the instance. Drop them and try again.; the same attempt wrote error/pg_upgrade_internal.log.2026-12-04-14:10"
	if pr := res.Problems[0]; pr.Message != want || !strings.Contains(pr.Fix, "--log-file-name error/pg_upgrade_precheck.log.2026-12-04-14:10 --starting-token 0") {
		t.Fatalf("pre-check log problem:\n%s\nwant\n%s\nfix %s", pr.Message, want, pr.Fix)
	}
	// A long line is cut, never in the middle of a character.
	long := strings.Repeat("x", 299) + strings.Repeat("é", 40)
	srv.SetLog("prov-db", "error/pg_upgrade_precheck.log.2026-12-04-14:10", at.UnixMilli(), long+"\n")
	if res, err := r.Check(ctx, "provider"); err != nil || len(res.Problems) != 1 || !utf8.ValidString(res.Problems[0].Message) ||
		!strings.Contains(res.Problems[0].Message, "says: "+strings.Repeat("x", 299)+"...") {
		t.Fatalf("long line: %+v (%v)", res, err)
	}
	// Not allowed to read the logs: said, not an error.
	srv.Deny("DescribeDBLogFiles")
	if res, err := r.Check(ctx, "provider"); err != nil || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Message, "were not read") {
		t.Fatalf("logs denied: %+v (%v)", res, err)
	}

	// prepare with a target RDS refuses: refused before anything is dropped.
	r.Target.Version = "16.1"
	err = r.Prepare(ctx, "provider", filepath.Join(t.TempDir(), "m.json"))
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "RDS offers no upgrade") {
		t.Fatalf("prepare to 16.1: want a refusal, got %v", err)
	}
	if st, err := p.Status(ctx, "sub_0"); err != nil || st != "replicating" {
		t.Fatalf("after the refusal sub_0 is %q (%v)", st, err)
	}

	// Aurora upgrades per cluster: not checked, said.
	srv.SetEngine("prov-db", "aurora-postgresql")
	if _, err := r.Check(ctx, "provider"); err == nil || !strings.Contains(err.Error(), "instance prov-db runs aurora-postgresql") {
		t.Fatalf("an Aurora instance: %v", err)
	}
	srv.SetEngine("prov-db", "postgres")

	// An AWS error is the check's failure, not a problem found.
	srv.Deny("DescribeDBEngineVersions")
	if _, err := r.Check(ctx, "provider"); err == nil || !strings.Contains(err.Error(), "RDS engine version postgres 15.7") {
		t.Fatalf("denied DescribeDBEngineVersions: %v", err)
	}
}
