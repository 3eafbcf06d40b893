package upgrade

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func snapshotRunner(t *testing.T, srv *awstest.Server, p *pgtest.Pair, out *bytes.Buffer) *Runner {
	t.Helper()
	a := srv.Env(t)
	y := a.YAML() + strings.Replace(p.NodesYAML(), "  - name: subscriber\n", "    rds: {identifier: prov-db}\n  - name: subscriber\n", 1)
	cfg, err := config.Parse("t.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return &Runner{Config: cfg, Out: out, Timeout: 30 * time.Second,
		Snapshot: SnapshotOptions{Take: true, Poll: 5 * time.Millisecond, AWS: awsclient.Options{RetryMaxBackoff: time.Millisecond}}}
}

// prepare --snapshot: manifest first, then the snapshot (waited for), then the
// drops; a re-run after a kill does not take a second snapshot.
func TestPrepareWithSnapshot(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", nil)
	srv.SnapshotPolls = 3
	prov, sub := pgtest.Shared(t)
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: sub, Rows: 10})
	var out bytes.Buffer
	r := snapshotRunner(t, srv, p, &out)
	manifest := filepath.Join(t.TempDir(), "m.json")

	r.stopAfterSubscriptions = true
	if err := r.Prepare(ctx, "provider", manifest); err == nil {
		t.Fatal("want the simulated stop")
	}
	m, _, err := ReadManifest(manifest)
	if err != nil || m.Snapshot == nil || !m.Snapshot.Available || !strings.HasPrefix(m.Snapshot.Identifier, "pglmon-prov-db-") {
		t.Fatalf("manifest snapshot: %+v (%v)", m.Snapshot, err)
	}
	sn, ok := srv.Snapshot(m.Snapshot.Identifier)
	if !ok || sn.Status != "available" || sn.Instance != "prov-db" {
		t.Fatalf("snapshot on RDS: %+v", sn)
	}
	// The snapshot was complete before the first drop was reported.
	o := out.String()
	if i, j := strings.Index(o, "is available"), strings.Index(o, "Dropped"); i < 0 || j < 0 || i > j {
		t.Errorf("the snapshot must be available before anything is dropped:\n%s", o)
	}
	r.stopAfterSubscriptions = false
	if err := r.Prepare(ctx, "provider", manifest); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := srv.Count("CreateDBSnapshot"); n != 1 {
		t.Errorf("CreateDBSnapshot called %d times", n)
	}
	var slots int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()", []any{&slots}); err != nil || slots != 0 {
		t.Errorf("slots left: %d (%v)", slots, err)
	}
	b, _ := os.ReadFile(manifest)
	if strings.Contains(string(b), awstest.SecretAccessKey) || strings.Contains(string(b), awstest.AccessKeyID) {
		t.Error("the manifest holds AWS credentials")
	}
}

// A snapshot that cannot be taken stops prepare before any drop.
func TestPrepareSnapshotFailureDropsNothing(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1") // no instance prov-db
	prov, sub := pgtest.Shared(t)
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: sub, Rows: 10})
	var out bytes.Buffer
	r := snapshotRunner(t, srv, p, &out)
	err := r.Prepare(ctx, "provider", filepath.Join(t.TempDir(), "m.json"))
	if err == nil || !strings.Contains(err.Error(), "DBInstanceNotFound") || !strings.Contains(err.Error(), "nothing was dropped") {
		t.Fatalf("prepare: %v", err)
	}
	if st, err := p.Status(ctx, p.Sub()); err != nil || st != "replicating" {
		t.Errorf("subscription after a failed snapshot: %s (%v)", st, err)
	}
}
