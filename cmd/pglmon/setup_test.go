package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// pglmon setup plan and apply as a person types them: plan names what is
// missing with its fix and exits 2, and so does apply, having changed
// nothing; once fixed, plan lists the changes (exit 0), apply makes them
// and prints the row counts, each change in the audit log as cli:<user>;
// a second apply changes nothing. A configuration without topology, and
// a missing verb, are usage errors.
func TestSetupCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prov, sub := pgtest.Shared(t)
	name := fmt.Sprintf("cli_setup_%d", os.Getpid())
	p, s := pgtest.DB{Cluster: prov, Name: name}, pgtest.DB{Cluster: sub, Name: name}
	for _, db := range []pgtest.DB{p, s} {
		if err := db.Cluster.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Exec(ctx, "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g FROM generate_series(1, 40) g"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The subscription's workers would run until the package ends.
		pair := &pgtest.Pair{Provider: p, Subscriber: s}
		if err := pair.DropSubscription(context.Background(), "cli_sub"); err != nil {
			t.Logf("drop cli_sub: %v", err)
		}
	})
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.jsonl")
	cfg := filepath.Join(dir, "pglmon.yaml")
	body := fmt.Sprintf(`nodes:
  - name: provider
    dsn: %q
    pglogical_name: prov_cli
  - name: subscriber
    dsn: %q
    pglogical_name: sub_cli
replication_sets:
  - name: app
    node: provider
    tables: [public.orders]
subscriptions:
  - name: cli_sub
    subscriber: subscriber
    provider: provider
    replication_sets: [app]
repair:
  audit_log: %s
`, p.DSN(), s.DSN(), audit)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare.yaml")
	if err := os.WriteFile(bare, []byte(fmt.Sprintf("nodes:\n  - name: provider\n    dsn: %q\n", p.DSN())), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"setup"}, "usage: pglmon setup plan"},
		{[]string{"setup", "destroy", "--config", cfg}, "usage: pglmon setup plan"},
		{[]string{"setup", "plan", "--config", bare}, "describes no replication_sets or subscriptions"},
		{[]string{"setup", "plan", "--config", cfg, "--reboot"}, "flag provided but not defined: -reboot"},
	} {
		if code, out, errOut := pglmon(t, tc.args...); code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d and %q\n%s\n%s", tc.args, code, exitUsage, tc.want, out, errOut)
		}
	}
	// The subscriber lacks the table: plan and apply say so, with the fix.
	for _, verb := range []string{"plan", "apply"} {
		code, out, errOut := pglmon(t, "setup", verb, "--config", cfg)
		if code != 2 || !strings.Contains(out, "subscriber: table public.orders does not exist\n      fix: create it on subscriber") {
			t.Fatalf("setup %s without the table: exit %d\n%s\n%s", verb, code, out, errOut)
		}
		if verb == "apply" && !strings.Contains(errOut, "1 prerequisites missing; nothing was changed") {
			t.Errorf("setup apply without the table: %s", errOut)
		}
	}
	var ext int
	if err := p.QueryRow(ctx, "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'", []any{&ext}); err != nil || ext != 0 {
		t.Fatalf("apply refused, yet the provider has the extension: %d %v", ext, err)
	}
	if err := s.Exec(ctx, "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := pglmon(t, "setup", "plan", "--config", cfg)
	if code != 0 || !strings.Contains(out, "on subscriber: create subscription cli_sub from provider (sets app, synchronize_data true)") {
		t.Fatalf("setup plan: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = pglmon(t, "setup", "apply", "--config", cfg)
	if code != 0 || !strings.Contains(out, "public.orders: 40 rows on provider, 40 on subscriber") {
		t.Fatalf("setup apply: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = pglmon(t, "audit", "--config", cfg, "--output", "json")
	if code != 0 || !strings.Contains(out, `"remedy": "setup-apply"`) || !strings.Contains(out, `"actor": "cli:`) {
		t.Errorf("audit after setup apply: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = pglmon(t, "setup", "apply", "--config", cfg)
	if code != 0 || !strings.Contains(out, "Nothing to change: the topology is in place.") {
		t.Errorf("second setup apply: exit %d\n%s\n%s", code, out, errOut)
	}
}
