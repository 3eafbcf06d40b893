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

	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// Every command reads AWS-held passwords: status connects to a provider that
// asks for the password kept in Secrets Manager.
func TestStatusWithSecretsManagerPassword(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t)
	const pw = "rds-managed-Pa55word"
	srv.SetSecret("rds!db-1", `{"username":"postgres","password":"`+pw+`"}`)
	prov, sub := pgtest.Shared(t)
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: sub})
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	px := pgtest.NewAuthProxy(t, prov, pgtest.PasswordIs(pw))
	body := a.YAML() + fmt.Sprintf(`nodes:
  - name: provider
    dsn: %q
    password:
      secrets_manager: {secret_id: "rds!db-1"}
  - name: subscriber
    dsn: %q
`, px.DSN(p.Provider.Name), p.Subscriber.DSN())
	path := filepath.Join(t.TempDir(), "pglmon.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := pglmon(t, "status", "--config", path, "--no-wait")
	if code != 0 || !strings.Contains(out, "replicating") {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, pw) {
		t.Error("the password was printed")
	}
	if len(px.Passwords()) == 0 {
		t.Error("status did not authenticate through the proxy")
	}

	// The wrong secret: the node is reported unreachable, the password never shown.
	srv.SetSecret("rds!db-1", `{"username":"postgres","password":"not-it-either"}`)
	code, out, errOut = pglmon(t, "status", "--config", path, "--no-wait")
	if code != 2 || !strings.Contains(out, "password authentication failed") || strings.Contains(out+errOut, "not-it-either") {
		t.Errorf("wrong secret: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestSnapshotNeedsAnRDSNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pglmon.yaml")
	if err := os.WriteFile(path, []byte("nodes:\n  - name: db\n    dsn: host=127.0.0.1 port=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := pglmon(t, "upgrade", "prepare", "--config", path, "--node", "db", "--manifest", filepath.Join(t.TempDir(), "m.json"), "--snapshot")
	if code != exitUsage || !strings.Contains(errOut, "--snapshot: node db names no RDS instance (set rds.identifier") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestUpgradeTargetParameterGroupNeedsAnRDSNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pglmon.yaml")
	if err := os.WriteFile(path, []byte("nodes:\n  - name: db\n    dsn: host=127.0.0.1 port=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := pglmon(t, "upgrade", "check", "--config", path, "--node", "db", "--target-parameter-group", "pg16")
	if code != exitUsage || !strings.Contains(errOut, "--target-parameter-group: node db names no RDS instance") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	code, _, errOut = pglmon(t, "upgrade", "check", "--config", path, "--node", "db", "--target-version", "sixteen")
	if code != exitUsage || !strings.Contains(errOut, `--target-version must be a PostgreSQL version (16 or 16.4), not "sixteen"`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
	// A self-managed node's target version is for the column types: taken
	// (the node does not answer here: exit 3).
	for _, v := range []string{"16", "16.4", "9.6.24", "11.22-rds.20240418"} {
		if code, _, errOut = pglmon(t, "upgrade", "check", "--config", path, "--node", "db", "--target-version", v); code != 3 {
			t.Errorf("--target-version %s: exit %d: %s", v, code, errOut)
		}
	}
}

// upgrade check --target-version --target-parameter-group, through the
// command and the SDK's default credential chain: RDS's answers as
// problems, exit 2 while the new group would not load pglogical.
func TestUpgradeCheckAsksRDS(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", nil)
	srv.SetUpgradeTargets("15.7", "16.4")
	srv.SetOrderable("16.4", "db.r6g.large")
	srv.AddParameterGroup("pg16", "postgres16", map[string]string{"rds.logical_replication": "1"})
	// Clusters of its own: other tests' slots on shared ones would be problems too.
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 5})
	path := filepath.Join(t.TempDir(), "pglmon.yaml")
	y := a.YAML() + strings.Replace(p.NodesYAML(), "  - name: subscriber\n", "    rds: {identifier: prov-db}\n  - name: subscriber\n", 1)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"upgrade", "check", "--config", path, "--node", "provider", "--target-version", "16.4", "--target-parameter-group", "pg16"}
	code, out, errOut := pglmon(t, args...)
	if code != 2 || !strings.Contains(out, "REFUSED  target_parameter_group: parameter group pg16: shared_preload_libraries = \"\" lacks pglogical") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
	}
	srv.SetParam("pg16", "shared_preload_libraries", "pglogical")
	if code, out, errOut = pglmon(t, args...); code != 0 || !strings.Contains(out, "Ready once prepare has run: nothing found") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
	}
}

// A node with rds: that does not answer: status says what RDS reports of
// the instance (the reason is there, not in the connection error).
func TestStatusSaysWhatRDSReportsOfAnUnreachableNode(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", nil)
	srv.SetStatus("prov-db", "storage-full")
	// What filled it: CloudWatch's FreeStorageSpace fell to 100 MiB.
	var free []awstest.Datapoint
	for i := 30; i >= 1; i-- {
		free = append(free, awstest.Datapoint{At: time.Now().Add(-time.Duration(i) * time.Minute), Value: float64(int64(i) << 30)})
	}
	free[len(free)-1].Value = 100 << 20
	srv.SetMetric("prov-db", "FreeStorageSpace", free)
	prov, sub := pgtest.Shared(t)
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: sub})
	body := a.YAML() + fmt.Sprintf(`nodes:
  - name: provider
    dsn: "host=127.0.0.1 port=1 dbname=%s user=postgres sslmode=disable"
    rds: {identifier: %%s}
  - name: subscriber
    dsn: %q
probe:
  interval: 1s
  timeout: 1s
`, p.Provider.Name, p.Subscriber.DSN())
	write := func(id string) string {
		path := filepath.Join(t.TempDir(), "pglmon.yaml")
		if err := os.WriteFile(path, []byte(fmt.Sprintf(body, id)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	path := write("prov-db")
	var storage []string // storage_low findings: severity and message
	node := func(out string) (status, msg string) {
		var s struct {
			Nodes []struct {
				Name      string
				RDSStatus string `json:"rds_status"`
				Findings  []struct{ Code, Severity, Message string }
				Storage   *struct {
					FreeBytes float64 `json:"free_bytes"`
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		for _, n := range s.Nodes {
			if n.Name == "provider" {
				storage = nil
				for _, f := range n.Findings {
					if f.Code == "node_unreachable" {
						msg = f.Message
					}
					if f.Code == "storage_low" && n.Storage != nil && n.Storage.FreeBytes == 100<<20 {
						storage = append(storage, f.Severity, f.Message)
					}
				}
				return n.RDSStatus, msg
			}
		}
		return "", ""
	}
	code, out, errOut := pglmon(t, "status", "--config", path, "--no-wait", "--output", "json")
	st, msg := node(out)
	if code != 2 || st != "storage-full" || !strings.Contains(msg, "pglmon cannot reach node provider: ") ||
		!strings.Contains(msg, "; RDS reports instance prov-db as storage-full") || !strings.Contains(msg, "--allocated-storage") {
		t.Errorf("storage-full: exit %d, rds_status %q, message %q\n%s", code, st, msg, errOut)
	}
	if len(storage) != 2 || storage[0] != "critical" || !strings.Contains(storage[1], "RDS instance prov-db has 100.0 MiB free of 100.0 GiB (0.1%") {
		t.Errorf("storage_low: %q\n%s", storage, errOut)
	}
	srv.SetStatus("prov-db", "modifying")
	_, out, _ = pglmon(t, "status", "--config", path, "--no-wait", "--output", "json")
	if st, msg := node(out); st != "modifying" || !strings.Contains(msg, "as modifying: it answers again when that ends") {
		t.Errorf("modifying: %q %q", st, msg)
	}
	// An instance RDS does not know: said on stderr, the rest as before.
	code, out, errOut = pglmon(t, "status", "--config", write("no-such-db"), "--no-wait", "--output", "json")
	if st, msg := node(out); code != 2 || st != "" || strings.Contains(msg, "RDS reports") ||
		!strings.Contains(errOut, "why provider cannot be reached is not known: cannot read its RDS status") || !strings.Contains(errOut, "no-such-db") {
		t.Errorf("unknown instance: exit %d %q %q\n%s", code, st, msg, errOut)
	}
}
