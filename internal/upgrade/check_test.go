package upgrade

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// kinds lists a readiness's problems as "kind object blocking|warning", sorted.
func kinds(res *Readiness) []string {
	var out []string
	for _, p := range res.Problems {
		out = append(out, strings.Join([]string{p.Kind, p.Object, map[bool]string{true: "blocking", false: "warning"}[p.Blocking]}, " "))
	}
	slices.Sort(out)
	return out
}

// A real provider holding each thing the RDS pre-check or pg_upgrade
// refuses: upgrade check names each, prepare refuses and drops nothing;
// once they are fixed, prepare runs.
func TestPrepareRefusesWhatTheUpgradeWouldRefuse(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10, ProviderConf: []string{"max_prepared_transactions = 2"}})
	prov := p.Provider.Cluster
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := &Runner{Config: cfg, Out: &out, Timeout: 30 * time.Second}

	res, err := r.Check(ctx, "provider")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Ready || len(res.Problems) != 0 {
		t.Fatalf("a plain pair: want ready without problems, got %+v", res)
	}
	if len(res.PrepareDrops) != 2 || !strings.Contains(res.PrepareDrops[0], "subscription sub_0 on subscriber") || !strings.Contains(res.PrepareDrops[1], "pglogical node "+p.ProviderNode) {
		t.Errorf("prepare drops: %q", res.PrepareDrops)
	}

	for _, step := range []struct{ db, sql string }{
		{p.Provider.Name, "SELECT pg_create_logical_replication_slot('etl', 'test_decoding')"},
		// Not a problem: the pre-check asks about logical slots only.
		{p.Provider.Name, "SELECT pg_create_physical_replication_slot('standby')"},
		{p.Provider.Name, "CREATE TABLE scratch (i int)"},
		// What a cancelled DROP DATABASE leaves (as PostgreSQL's own tests do it).
		{"postgres", "CREATE DATABASE gone"},
		{"postgres", "UPDATE pg_database SET datconnlimit = -2 WHERE datname = 'gone'"},
		{"postgres", "CREATE DATABASE closed"},
		{"postgres", "ALTER DATABASE closed ALLOW_CONNECTIONS false"},
		{"postgres", "CREATE DATABASE other"},
		{"other", "CREATE TABLE acl (id int, f regproc, g regclass, h regoperator[])"},
		// An extension left at an older version than the server's files offer.
		{"other", "CREATE EXTENSION hstore VERSION '1.4'"},
		// Another database's pglogical slot: that node's own prepare drops it.
		{"other", "SELECT pg_create_logical_replication_slot('pgl_other', 'pglogical_output')"},
	} {
		if err := prov.Exec(ctx, step.db, step.sql); err != nil {
			t.Fatalf("%s: %v", step.sql, err)
		}
	}
	conn, err := prov.Connect(ctx, p.Provider.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"BEGIN", "INSERT INTO scratch VALUES (1)", "PREPARE TRANSACTION 'batch''7'"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	conn.Close(ctx)

	res, err = r.Check(ctx, "provider")
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range res.Problems {
		if pr.Message == "" || pr.Fix == "" {
			t.Errorf("problem without message or fix: %+v", pr)
		}
	}
	got := kinds(res)
	want := []string{
		"database_disallows_connections closed blocking",
		"extension_outdated hstore warning",
		"invalid_database gone blocking",
		"prepared_transaction batch'7 blocking",
		"reg_type_column public.acl.f blocking",
		"reg_type_column public.acl.h blocking",
		"replication_slot etl blocking",
		"replication_slot pgl_other warning",
	}
	if !slices.Equal(got, want) || res.Ready {
		t.Fatalf("problems:\n got %q\nwant %q (ready %v)", got, want, res.Ready)
	}
	for _, pr := range res.Problems {
		if pr.Kind == "prepared_transaction" && !strings.Contains(pr.Fix, "ROLLBACK PREPARED 'batch''7'") {
			t.Errorf("prepared transaction's fix: %s", pr.Fix)
		}
		if pr.Kind == "extension_outdated" && (pr.Database != "other" || !strings.Contains(pr.Message, "version 1.4; this server's files install 1.8") || !strings.Contains(pr.Fix, `ALTER EXTENSION "hstore" UPDATE`)) {
			t.Errorf("outdated extension: %+v", pr)
		}
	}

	// prepare refuses before writing anything or dropping anything.
	manifest := filepath.Join(t.TempDir(), "m.json")
	err = r.Prepare(ctx, "provider", manifest)
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "nothing was dropped") || !strings.Contains(err.Error(), "invalid (datconnlimit -2)") {
		t.Fatalf("prepare: want a refusal naming the problems, got %v", err)
	}
	if _, err := os.Stat(manifest); !os.IsNotExist(err) {
		t.Errorf("a refusing prepare wrote the manifest (%v)", err)
	}
	if st, err := p.Status(ctx, "sub_0"); err != nil || st != "replicating" {
		t.Fatalf("after the refusal sub_0 is %q (%v)", st, err)
	}

	// Fixed, each as the problem's fix says (the invalid database by the
	// catalog: a DROP DATABASE here could wait for ever for pglogical
	// 2.4.2's workers, signal_barrier_stuck).
	for _, step := range []struct{ db, sql string }{
		{p.Provider.Name, "SELECT pg_drop_replication_slot('etl')"},
		{p.Provider.Name, "ROLLBACK PREPARED 'batch''7'"},
		{"postgres", "UPDATE pg_database SET datconnlimit = -1 WHERE datname = 'gone'"},
		{"postgres", "ALTER DATABASE closed ALLOW_CONNECTIONS true"},
		{"other", "ALTER TABLE acl ALTER COLUMN f TYPE text USING f::text, ALTER COLUMN h TYPE text USING h::text"},
		{"other", "ALTER EXTENSION hstore UPDATE"},
	} {
		if err := prov.Exec(ctx, step.db, step.sql); err != nil {
			t.Fatalf("%s: %v", step.sql, err)
		}
	}
	if res, err = r.Check(ctx, "provider"); err != nil || !res.Ready || len(res.Problems) != 1 {
		t.Fatalf("after the fixes: %+v (%v)", res, err)
	}
	// The warning is said, not refused; the other database's slot then
	// stays and prepare's last check names it.
	out.Reset()
	err = r.Prepare(ctx, "provider", manifest)
	if err == nil || errors.As(err, &nr) || !strings.Contains(err.Error(), "pgl_other") || !strings.Contains(out.String(), "warning: pglogical slot pgl_other") {
		t.Fatalf("prepare with another database's pglogical slot: %v\n%s", err, out.String())
	}
	if err := prov.Exec(ctx, "other", "SELECT pg_drop_replication_slot('pgl_other')"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := r.Prepare(ctx, "provider", manifest); err != nil {
		t.Fatalf("prepare after the fixes: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Physical slots stay on provider: [standby]") {
		t.Errorf("prepare did not say the physical slot stays:\n%s", out.String())
	}
	// Checked again after prepare (no pglogical node left): ready, nothing to drop.
	if res, err = r.Check(ctx, "provider"); err != nil || !res.Ready || len(res.Problems) != 0 || len(res.PrepareDrops) != 0 {
		t.Fatalf("check after prepare: %+v (%v)", res, err)
	}
}

// --skip-check: prepare says what the upgrade would refuse and goes on.
func TestPrepareSkipCheck(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "CREATE TABLE funcs (f regprocedure)"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := &Runner{Config: cfg, Out: &out, Timeout: 30 * time.Second, SkipCheck: true}
	if err := r.Prepare(ctx, "provider", filepath.Join(t.TempDir(), "m.json")); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "warning (--skip-check): column f of public.funcs") {
		t.Errorf("prepare --skip-check did not say what the upgrade would refuse:\n%s", out.String())
	}
	var slots int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots", []any{&slots}); err != nil || slots != 0 {
		t.Fatalf("slots after prepare --skip-check: %d (%v)", slots, err)
	}
}

// A connection string pglogical keeps with a password: the manifest keeps
// none, so restore needs the node's password from the configuration;
// check says so before anything is dropped, and not once it is configured.
func TestCheckSaysRestoreNeedsAPassword(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	// (The test clusters trust loopback: the password is kept, not checked.)
	if err := p.Subscriber.Exec(ctx, "UPDATE pglogical.node_interface SET if_dsn = if_dsn || ' password=s3cret' WHERE if_nodeid = (SELECT sub_origin FROM pglogical.subscription)"); err != nil {
		t.Fatal(err)
	}
	check := func(yaml string) []Problem {
		t.Helper()
		cfg, err := config.Parse("t.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		res, err := (&Runner{Config: cfg, Out: &bytes.Buffer{}, Timeout: 30 * time.Second}).Check(ctx, "provider")
		if err != nil {
			t.Fatal(err)
		}
		return res.Problems
	}
	got := check(p.NodesYAML())
	if len(got) != 1 || got[0].Kind != "restore_password" || got[0].Blocking || got[0].Object != "provider" ||
		!strings.Contains(got[0].Message, "restore could not re-create subscription sub_0's connection to its provider") || strings.Contains(got[0].Message, "s3cret") {
		t.Fatalf("problems: %+v", got)
	}
	t.Setenv("PGLMON_TEST_PROVIDER_PASSWORD", "s3cret")
	withPassword := strings.Replace(p.NodesYAML(), "  - name: subscriber\n", "    password: {env: PGLMON_TEST_PROVIDER_PASSWORD}\n  - name: subscriber\n", 1)
	if got := check(withPassword); len(got) != 0 {
		t.Errorf("with the provider's password configured: %+v", got)
	}

	// prepare goes on (a warning); restore without the password refuses
	// before creating anything; with it, restore runs.
	runner := func(yaml string) *Runner {
		t.Helper()
		cfg, err := config.Parse("t.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return &Runner{Config: cfg, Out: &bytes.Buffer{}, Timeout: 30 * time.Second}
	}
	manifest := filepath.Join(t.TempDir(), "m.json")
	if err := runner(p.NodesYAML()).Prepare(ctx, "provider", manifest); err != nil {
		t.Fatal(err)
	}
	err := runner(p.NodesYAML()).Restore(ctx, manifest)
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "restore could not re-create subscription sub_0's connection to its provider") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("restore without the password: want a refusal, got %v", err)
	}
	var nodes int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM pglogical.node", []any{&nodes}); err != nil || nodes != 0 {
		t.Fatalf("the refused restore created %d pglogical nodes (%v)", nodes, err)
	}
	if err := runner(withPassword).Restore(ctx, manifest); err != nil {
		t.Fatalf("restore with the password: %v", err)
	}
	if st, err := p.Status(ctx, "sub_0"); err != nil || st != "replicating" {
		t.Fatalf("after restore sub_0 is %q (%v)", st, err)
	}
}

// PostGIS and its kin left behind refuse the upgrade; other extensions are
// a warning, pglogical's with what its old SQL objects mean.
func TestExtensionProblem(t *testing.T) {
	for _, c := range []struct {
		name     string
		blocking bool
		says     string
	}{
		{"postgis", true, "postgis_extensions_upgrade()"},
		{"address_standardizer_data_us", true, "RDS pre-check refuses PostGIS"},
		{"pglogical", false, "before 2.4.6"},
		{"hstore", false, "keeps it at that version"},
	} {
		p := extensionProblem("app", c.name, "1.0", "2.0")
		if p.Blocking != c.blocking || !strings.Contains(p.Message+p.Fix, c.says) || p.Kind != "extension_outdated" || p.Database != "app" {
			t.Errorf("%s: %+v", c.name, p)
		}
	}
}
