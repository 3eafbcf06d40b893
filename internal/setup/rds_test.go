package setup

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/credentials"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/rdsadmin"
	"github.com/pglmon/pglmon/internal/repair"
)

// rdsTopology is topology() with both nodes on (fake) RDS instances.
func rdsTopology(t *testing.T, srv *awstest.Server, p, s pgtest.DB) *config.Config {
	t.Helper()
	a := srv.Env(t)
	body := a.YAML() + fmt.Sprintf(`nodes:
  - name: provider
    dsn: %q
    pglogical_name: prov_%s
    rds: {identifier: prov-db}
  - name: subscriber
    dsn: %q
    pglogical_name: sub_%s
    rds: {identifier: sub-db, region: %s}
replication_sets:
  - name: app
    node: provider
    tables: [public.orders]
subscriptions:
  - name: app_sub
    subscriber: subscriber
    provider: provider
    replication_sets: [app]
`, p.DSN(), p.Name, s.DSN(), s.Name, a.Region)
	cfg, err := config.Parse("setup.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func hasNode(ctx context.Context, t *testing.T, d pgtest.DB) bool {
	t.Helper()
	var ok bool
	if err := d.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical')", []any{&ok}); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestRDSParametersRebootThenSetup(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	custom := map[string]string{rdsadmin.ParamPreload: "pg_stat_statements", rdsadmin.ParamLogical: "0"}
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", custom)
	srv.AddInstance("sub-db", "15.7", "pg15-pglogical", nil)
	prov, sub := pgtest.Shared(t)
	p, s := freshDBs(t, prov, sub, ddl+"INSERT INTO orders SELECT g, g FROM generate_series(1, 50) g;", ddl)
	cfg := rdsTopology(t, srv, p, s)
	var out bytes.Buffer
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := repair.NewAudit(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Config: cfg, Out: &out, Wait: time.Minute, RDS: RDSOptions{Poll: 5 * time.Millisecond, AWS: awsclient.Options{RetryMaxBackoff: time.Millisecond}},
		Audit: audit, Actor: "cli:test"}

	// plan: the group's problems, with the fix.
	plan, err := r.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan.Print(&out)
	for _, want := range []string{
		`provider: parameter group pg15-pglogical: shared_preload_libraries = "pg_stat_statements" lacks pglogical (needs "pg_stat_statements,pglogical")`,
		`provider: parameter group pg15-pglogical: rds.logical_replication = "0" (needs 1)`,
		"fix: run `pglmon setup apply --rds-parameters --reboot`",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	if srv.Count("ModifyDBParameterGroup")+srv.Count("RebootDBInstance") != 0 {
		t.Fatal("plan changed something on RDS")
	}

	// apply without flags: refused, nothing created, nothing changed on RDS.
	out.Reset()
	if err := r.Apply(ctx); err == nil || hasNode(ctx, t, p) || srv.Count("ModifyDBParameterGroup") != 0 {
		t.Fatalf("apply without --rds-parameters: %v, node created %t\n%s", err, hasNode(ctx, t, p), out.String())
	}

	// --rds-parameters alone: the group is updated, and apply stops before the reboot.
	out.Reset()
	r.RDS.Parameters = true
	err = r.Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "wait for a reboot: re-run with --reboot") {
		t.Fatalf("apply --rds-parameters: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "set shared_preload_libraries = pg_stat_statements,pglogical in parameter group pg15-pglogical (applies at the next reboot)") {
		t.Errorf("apply --rds-parameters output:\n%s", out.String())
	}
	if got := srv.Param("pg15-pglogical", rdsadmin.ParamPreload); got != "pg_stat_statements,pglogical" {
		t.Errorf("shared_preload_libraries is now %q", got)
	}
	if srv.Count("RebootDBInstance") != 0 || hasNode(ctx, t, p) {
		t.Fatal("rebooted or created without --reboot")
	}

	// --rds-parameters --reboot: the instances sharing the group reboot once each, then setup runs.
	out.Reset()
	r.RDS.Reboot = true
	if err := r.Apply(ctx); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := srv.Count("RebootDBInstance"); n != 2 {
		t.Errorf("%d reboots, want 2 (both instances use the changed group)", n)
	}
	for _, want := range []string{"rebooting RDS instance prov-db",
		"RDS instance sub-db is available with its parameter group in-sync", "subscription app_sub on subscriber is replicating", "public.orders: 50 rows on provider, 50 on subscriber"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("apply output lacks %q:\n%s", want, out.String())
		}
	}
	// Again: nothing is modified, nothing reboots.
	out.Reset()
	if err := r.Apply(ctx); err != nil || !strings.Contains(out.String(), "Nothing to change") {
		t.Fatalf("second apply: %v\n%s", err, out.String())
	}
	if srv.Count("ModifyDBParameterGroup") != 1 || srv.Count("RebootDBInstance") != 2 {
		t.Errorf("second apply called RDS: %v", srv.Calls())
	}
	if errs := srv.AuthErrors(); len(errs) > 0 {
		t.Error(errs)
	}

	// The audit log: the refused apply, the one stopped before the reboot
	// with its parameter change, the one that rebooted and created; the
	// last apply changed nothing and is not there.
	entries, _, err := repair.ReadLog(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	attempts := repair.Attempts(entries)
	var got []string
	for _, a := range attempts {
		line := a.Remedy + " " + a.Outcome + ":"
		for _, s := range a.Steps {
			line += " [" + s.Node + " " + strings.SplitN(s.Action, " ", 3)[0] + " " + strings.SplitN(s.Action, " ", 3)[1] + "]"
		}
		got = append(got, line)
	}
	want := []string{
		"setup-apply refused:",
		"setup-apply failed: [provider modify parameter]",
		"setup-apply success: [provider reboot instance] [subscriber reboot instance] [provider create extension] [provider create pglogical] [subscriber create extension] [subscriber create pglogical] [provider create replication] [provider add table] [subscriber create subscription]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || attempts[1].Reason == "" || attempts[0].Actor != "cli:test" {
		t.Errorf("audited attempts:\n%s\nwant:\n%s\n%+v", strings.Join(got, "\n"), strings.Join(want, "\n"), attempts)
	}
}

func TestRDSDefaultParameterGroupRefused(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	srv.AddInstance("prov-db", "15.7", "default.postgres15", map[string]string{rdsadmin.ParamPreload: "pg_stat_statements", rdsadmin.ParamLogical: "0"})
	srv.AddInstance("sub-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pglogical", rdsadmin.ParamLogical: "1"})
	prov, sub := pgtest.Shared(t)
	p, s := freshDBs(t, prov, sub, ddl, ddl)
	cfg := rdsTopology(t, srv, p, s)
	var out bytes.Buffer
	r := &Runner{Config: cfg, Out: &out, RDS: RDSOptions{Parameters: true, Reboot: true, Poll: 5 * time.Millisecond, AWS: awsclient.Options{RetryMaxBackoff: time.Millisecond}}}
	err := r.Apply(ctx)
	if err == nil {
		t.Fatal("apply modified a default parameter group")
	}
	for _, want := range []string{"refusing to modify default.postgres15", "aws rds create-db-parameter-group --db-parameter-group-name prov-db-pglogical --db-parameter-group-family postgres15",
		"aws rds modify-db-instance --db-instance-identifier prov-db --db-parameter-group-name prov-db-pglogical"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q: %v", want, err)
		}
	}
	if srv.Count("ModifyDBParameterGroup")+srv.Count("RebootDBInstance") != 0 || hasNode(ctx, t, p) || hasNode(ctx, t, s) {
		t.Errorf("something changed: %v", srv.Calls())
	}
}

func TestRDSUnknownInstanceReported(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	srv.AddInstance("sub-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pglogical", rdsadmin.ParamLogical: "1"})
	prov, sub := pgtest.Shared(t)
	p, s := freshDBs(t, prov, sub, ddl, ddl)
	cfg := rdsTopology(t, srv, p, s)
	var out bytes.Buffer
	r := &Runner{Config: cfg, Out: &out, RDS: RDSOptions{AWS: awsclient.Options{RetryMaxBackoff: time.Millisecond}}}
	srv.Throttle(2) // retried, not reported
	plan, err := r.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	plan.Print(&out)
	if !strings.Contains(out.String(), "provider: cannot read RDS instance prov-db: RDS instance prov-db: DBInstanceNotFound: DBInstance prov-db not found.") ||
		strings.Contains(out.String(), "sub-db") {
		t.Errorf("plan:\n%s", out.String())
	}
}

// A provider whose password is in Secrets Manager and whose server asks for
// it: pglmon connects with it, pglogical is given it (and uses it to
// replicate), and it is never printed.
func TestSetupWithSecretsManagerPassword(t *testing.T) {
	ctx := context.Background()
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t)
	const pw = "Repl1cation-Secret'with\\quote"
	srv.SetSecret("rds!prov", `{"username":"postgres","password":"Repl1cation-Secret'with\\quote"}`)
	prov, sub := pgtest.Shared(t)
	p, s := freshDBs(t, prov, sub, ddl+"INSERT INTO orders SELECT g, g FROM generate_series(1, 20) g;", ddl)
	px := pgtest.NewAuthProxy(t, prov, pgtest.PasswordIs(pw))
	cfg, err := config.Parse("setup.yaml", []byte(a.YAML()+fmt.Sprintf(`nodes:
  - name: provider
    dsn: %q
    pglogical_name: prov_%s
    password: {secrets_manager: {secret_id: "rds!prov"}}
  - name: subscriber
    dsn: %q
    pglogical_name: sub_%s
replication_sets:
  - name: app
    node: provider
    tables: [public.orders]
subscriptions:
  - name: app_sub
    subscriber: subscriber
    provider: provider
    replication_sets: [app]
`, px.DSN(p.Name), p.Name, s.DSN(), s.Name)))
	if err != nil {
		t.Fatal(err)
	}
	credentials.Attach(cfg, awsclient.Options{RetryMaxBackoff: time.Millisecond})
	// Before the proxy goes: stop pglogical connecting through it.
	t.Cleanup(func() { _ = s.Exec(context.Background(), "SELECT pglogical.drop_subscription('app_sub', true)") })
	var out bytes.Buffer
	r := &Runner{Config: cfg, Out: &out, Wait: time.Minute}
	if err := r.Apply(ctx); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"Warning: node provider: pglogical keeps the password from Secrets Manager", "public.orders: 20 rows on provider, 20 on subscriber"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "Repl1cation") {
		t.Errorf("the password was printed:\n%s", out.String())
	}
	// pglogical itself authenticated through the proxy with the secret.
	if err := p.Exec(ctx, "INSERT INTO orders VALUES (21, 21)"); err != nil {
		t.Fatal(err)
	}
	pair := &pgtest.Pair{Provider: p, Subscriber: s}
	if n, err := pair.WaitConverged(ctx, "orders", 30*time.Second); err != nil || n != 21 {
		t.Fatalf("replication through the password-asking provider: %d rows, %v", n, err)
	}
}
