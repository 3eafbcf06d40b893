package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/rdsadmin"
)

// freeStorage is a minute's FreeStorageSpace for each of the last hour's
// minutes, from start bytes, falling perHour.
func freeStorage(start, perHour float64) []awstest.Datapoint {
	now := time.Now()
	var pts []awstest.Datapoint
	for i := 60; i >= 1; i-- {
		pts = append(pts, awstest.Datapoint{At: now.Add(-time.Duration(i) * time.Minute), Value: start - perHour*float64(60-i)/60})
	}
	return pts
}

// A provider on RDS whose storage runs out while a disabled subscription's
// slot holds its WAL: the daemon reads FreeStorageSpace from CloudWatch and
// the allocated storage from RDS, warns before the instance is
// storage-full, names the slot and the subscription behind it, exports the
// storage, and clears the finding once the storage is no longer falling.
func TestDaemonWarnsBeforeAnRDSProviderRunsOutOfStorage(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pglogical", rdsadmin.ParamLogical: "1"})
	const gib = 1 << 30
	// 30 GiB free an hour ago, falling 12 GiB an hour: 18 GiB left, full in 1.5 h.
	srv.SetMetric("prov-db", "FreeStorageSpace", freeStorage(30*gib, 12*gib))

	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	p.MustConverge(t, 30*time.Second)
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Disable(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	// WAL the inactive slot must keep.
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'x', g FROM generate_series(1000, 20000) g"); err != nil {
		t.Fatal(err)
	}
	nodes := strings.Replace(pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()),
		"  - name: subscriber\n", "    rds: {identifier: prov-db}\n  - name: subscriber\n", 1)
	body := strings.Replace(a.YAML(), "  max_attempts: 3\n", "  max_attempts: 3\n  rds_check_every: 0s\n  storage_check_every: 1s\n", 1) + nodes
	r := start(t, body, nil)

	r.waitMetric(t, `^pglmon_finding\{code="storage_low",severity="critical",subscriber="provider",subscription=""\} 1$`, false, 30*time.Second)
	r.waitMetric(t, `^pglmon_rds_allocated_storage_bytes\{node="provider"\} 1\.073741824e\+11$`, false, 10*time.Second)
	r.waitMetric(t, `^pglmon_rds_free_storage_bytes\{node="provider"\} 1\.9`, false, 10*time.Second)
	var msg string
	var node diagnose.Node
	for _, n := range r.status(t).Nodes {
		for _, f := range n.Findings {
			if f.Code == diagnose.CodeStorageLow {
				msg, node = f.Message, n
			}
		}
	}
	t.Logf("finding: %s", msg)
	for _, want := range []string{"RDS instance prov-db has 18.", "of 100.0 GiB", "(12.0 GiB/h) it runs out in about 1h3", "storage-full",
		slot + " (inactive, ", "subscription " + p.Sub() + " on subscriber, disabled)", "(under 1% of the 81.", "modify-db-instance --db-instance-identifier prov-db"} {
		if !strings.Contains(msg, want) {
			t.Errorf("finding lacks %q", want)
		}
	}
	if node.Name != "provider" || node.Storage == nil || node.Storage.Instance != "prov-db" || node.Storage.Points < 58 {
		t.Errorf("status JSON storage of %s: %+v", node.Name, node.Storage)
	}
	for _, q := range srv.MetricQueries() {
		if q != "AWS/RDS FreeStorageSpace DBInstanceIdentifier=prov-db Minimum 60" {
			t.Errorf("query %q", q)
		}
	}
	if errs := srv.AuthErrors(); len(errs) != 0 {
		t.Errorf("requests not signed for the service: %v", errs)
	}

	// Someone added storage: 80 GiB free and steady. The finding clears.
	srv.SetStorage("prov-db", 200, 0)
	srv.SetMetric("prov-db", "FreeStorageSpace", freeStorage(80*gib, 0))
	r.waitMetric(t, `code="storage_low"`, true, 30*time.Second)
	r.waitMetric(t, `^pglmon_rds_allocated_storage_bytes\{node="provider"\} 2\.147483648e\+11$`, false, 10*time.Second)
	if n := srv.Count("ModifyDBInstance") + srv.Count("RebootDBInstance"); n != 0 {
		t.Errorf("the daemon changed RDS: %v", srv.Calls())
	}
}
