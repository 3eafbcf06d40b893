package main

import (
	"context"
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
