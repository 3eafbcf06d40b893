package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// upgrade check names a slot that would stop the upgrade (exit 2, JSON and
// text), and prepare refuses with exit 2, leaving replication as it was.
func TestUpgradeCheckAndPrepareRefusal(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	cfg := writeConfig(t, p, "")
	slot := "etl_" + p.Provider.Name
	if err := p.Provider.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'test_decoding')", slot); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := pglmon(t, "upgrade", "check", "--config", cfg, "--node", "provider", "--output", "json")
	var res struct {
		Node     string `json:"node"`
		Ready    bool   `json:"ready"`
		Problems []struct {
			Kind, Object, Database, Message, Fix string
			Blocking                             bool
		} `json:"problems"`
		PrepareDrops []string `json:"prepare_drops"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("upgrade check --output json (exit %d): %v\n%s\n%s", code, err, out, errOut)
	}
	found := false
	for _, pr := range res.Problems {
		if pr.Kind == "replication_slot" && pr.Object == slot {
			found = pr.Blocking && pr.Database == p.Provider.Name && strings.Contains(pr.Fix, "pg_drop_replication_slot('"+slot+"')")
		}
	}
	if code != 2 || res.Ready || res.Node != "provider" || !found || len(res.PrepareDrops) == 0 {
		t.Fatalf("upgrade check: exit %d, %+v", code, res)
	}
	code, out, _ = pglmon(t, "upgrade", "check", "--config", cfg, "--node", "provider")
	if code != 2 || !strings.Contains(out, "REFUSED  replication_slot: logical slot "+slot) || !strings.Contains(out, "Not ready") {
		t.Errorf("upgrade check text (exit %d):\n%s", code, out)
	}
	code, _, errOut = pglmon(t, "upgrade", "prepare", "--config", cfg, "--node", "provider", "--manifest", filepath.Join(t.TempDir(), "m.json"))
	if code != 2 || !strings.Contains(errOut, "nothing was dropped") || strings.Contains(errOut, "re-run the same command") {
		t.Errorf("prepare: exit %d\n%s", code, errOut)
	}
	if st, err := p.Status(ctx, "sub_0"); err != nil || st != "replicating" {
		t.Fatalf("after the refusal sub_0 is %q (%v)", st, err)
	}
	// The refusal is in the audit log, with whose and why.
	code, out, _ = pglmon(t, "audit", "--config", cfg, "--node", "provider")
	if code != 0 || !regexp.MustCompile(`cli:\S+\s+upgrade-prepare\s+node provider\s+refused\s+\S+\s+the major-version upgrade of provider would be refused`).MatchString(out) {
		t.Errorf("audit after the refusal (exit %d):\n%s", code, out)
	}
	// Fixed: ready, and the JSON's lists are empty lists, not null.
	if err := p.Provider.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
		t.Fatal(err)
	}
	if code, out, _ = pglmon(t, "upgrade", "check", "--config", cfg, "--node", "subscriber", "--output", "json"); code > 1 || !strings.Contains(out, `"problems": [`) {
		t.Errorf("upgrade check of the subscriber (exit %d):\n%s", code, out)
	}
	if code, _, errOut := pglmon(t, "upgrade", "check", "--config", cfg); code != exitUsage || !strings.Contains(errOut, "--node") {
		t.Errorf("upgrade check without --node: exit %d %s", code, errOut)
	}
	if code, _, errOut := pglmon(t, "upgrade", "check", "--config", cfg, "--node", "nosuch"); code != exitUsage || !strings.Contains(errOut, "--node nosuch: no such node in the configuration") {
		t.Errorf("upgrade check --node nosuch: exit %d %s", code, errOut)
	}
}

// restore onto a server where pglogical cannot run (no preload, wal_level
// replica: what a new default parameter group gives): exit 2, the settings
// named, nothing created.
func TestUpgradeRestoreRefusesWithoutPglogical(t *testing.T) {
	ctx := context.Background()
	c := pgtest.NewCluster(t, pgtest.Options{NoPglogical: true})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pglmon.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("nodes:\n  - name: db\n    dsn: %q\n", c.DSN("postgres"))), 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, "m.json")
	m := `{"version": 1, "node": "db", "created": "2026-12-04T10:00:00Z", "nodes": [{"config_node": "db", "name": "db_node", "dsn": "host=127.0.0.1 dbname=postgres"}],
		"replication_sets": [], "subscriptions": [], "slots": []}`
	if err := os.WriteFile(manifest, []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := pglmon(t, "upgrade", "restore", "--config", cfg, "--manifest", manifest)
	if code != 2 || !strings.Contains(errOut, "restore created nothing") || !strings.Contains(errOut, "db: wal_level is replica") || !strings.Contains(errOut, "db: pglogical is not in shared_preload_libraries") {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	var ext bool
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical')").Scan(&ext); err != nil || ext {
		t.Fatalf("the refused restore created the extension (%v)", err)
	}
}

// A table that changed while replication was down (prepare, then rows
// written on the provider): restore replicates again, names the table, and
// exits 2, as verify does for a difference (not 70, a software error).
func TestUpgradeRestoreExitsTwoWhenATableDiffers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 20})
	cfg := writeConfig(t, p, "")
	manifest := filepath.Join(t.TempDir(), "manifest.json")
	if code, out, errOut := pglmon(t, "upgrade", "prepare", "--config", cfg, "--node", "subscriber", "--manifest", manifest); code != 0 {
		t.Fatalf("prepare: exit %d\n%s\n%s", code, out, errOut)
	}
	// Written while replication is down: an update, which leaves the row
	// counts equal, and an insert.
	if err := p.Provider.Exec(ctx, "UPDATE items_0 SET val = 'updated while down' WHERE id = 7; INSERT INTO items_0 VALUES (100001, 'while down', 1)"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := pglmon(t, "upgrade", "restore", "--config", cfg, "--manifest", manifest, "--compare", "count")
	if code != 2 || !strings.Contains(out, "public.items_0: 21 rows on provider, 20 on subscriber") || !strings.Contains(errOut, "restored, but the data differs (row counts): 1 table differs") {
		t.Fatalf("restore --compare count: exit %d\n%s\n%s", code, out, errOut)
	}
	if st, _ := p.Status(ctx, p.Sub()); st != "replicating" {
		t.Errorf("after restore: %s", st)
	}
	// By checksum (the default), the update is seen too; the command it
	// prints copies both rows, after which restore finds the table equal.
	code, out, errOut = pglmon(t, "upgrade", "restore", "--config", cfg, "--manifest", manifest)
	if code != 2 || !strings.Contains(out, "public.items_0: 2 of 21 rows differ (7 different, 100001 missing)") ||
		!strings.Contains(errOut, "restored, but the data differs (by checksum): 1 table differs") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errOut)
	}
	printed := "pglmon verify --config " + cfg + " --subscription sub_0 --table public.items_0 --copy-script rows.psql"
	if !strings.Contains(out, printed) {
		t.Fatalf("restore does not print %q:\n%s", printed, out)
	}
	script := filepath.Join(t.TempDir(), "rows.psql")
	args := strings.Fields(strings.TrimPrefix(printed, "pglmon "))
	args[len(args)-1] = script
	if code, out, errOut := pglmon(t, append(args, "--output", "json")...); code != 2 {
		t.Fatalf("%s: exit %d\n%s\n%s", printed, code, out, errOut)
	} else {
		var res struct {
			CopyScript struct{ Run string } `json:"copy_script"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.CopyScript.Run == "" {
			t.Fatalf("json: %v\n%s", err, out)
		}
		cmd := exec.Command("sh", "-c", res.CopyScript.Run)
		cmd.Env = append(os.Environ(), "PATH="+pgtest.BinDir+":"+os.Getenv("PATH"))
		if got, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", res.CopyScript.Run, err, got)
		}
	}
	if code, out, errOut := pglmon(t, "upgrade", "restore", "--config", cfg, "--manifest", manifest); code != 0 || !strings.Contains(out, "public.items_0: equal (21 rows compared)") {
		t.Errorf("restore after the rows were copied: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := pglmon(t, "upgrade", "restore", "--config", cfg, "--manifest", manifest, "--compare", "rows"); code != 64 || !strings.Contains(errOut, "--compare must be checksum or count") {
		t.Errorf("--compare rows: exit %d, %s", code, errOut)
	}
}
