package upgrade

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/verified"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestPrepareAndRestoreAroundAnUpgrade(t *testing.T) {
	ctx := context.Background()
	prov := pgtest.NewCluster(t, pgtest.Options{})
	subc := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: subc, Rows: 500, Subscriptions: 2})
	state := t.TempDir() // the daemon's state directory
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()+"repair:\n  audit_log: "+filepath.Join(state, "audit.jsonl")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	// pglogical's own set "default", which create_node makes again, with
	// a flag changed: restore puts the flag back.
	if err := p.Provider.Exec(ctx, "SELECT pglogical.alter_replication_set('default', replicate_truncate := false)"); err != nil {
		t.Fatal(err)
	}
	// A table added with a column list and a row filter, and a sequence:
	// restore adds them back as they were.
	if err := p.Provider.Exec(ctx, `CREATE TABLE filtered (id int PRIMARY KEY, a int, secret text); CREATE SEQUENCE counter;
		SELECT pglogical.replication_set_add_table('default', 'filtered', false, columns := ARRAY['id', 'a'], row_filter := 'a > 0 AND id <> 7');
		SELECT pglogical.replication_set_add_sequence('default', 'counter', false);
		SELECT pglogical.replication_set_add_sequence('set_0', 'counter', false)`); err != nil {
		t.Fatal(err)
	}
	// A sequence that counts down, in a set by hand: pglogical sends value
	// + 1000 whatever the direction, so restore must not send it (here its
	// maximum leaves room, so pglogical's own copy does not stop the
	// subscription; set_0 is sub_0's).
	const countdown = "CREATE SEQUENCE countdown INCREMENT -1 MINVALUE 1 MAXVALUE 1000000 START 500000"
	if err := p.Provider.Exec(ctx, countdown+"; SELECT pglogical.replication_set_add_sequence('set_0', 'countdown', false)"); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, countdown); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, "CREATE SEQUENCE counter"); err != nil {
		t.Fatal(err)
	}
	const setTablesSQL = `SELECT coalesce(string_agg(format('%s %s %s', t.set_reloid::regclass, t.set_att_list, pg_get_expr(t.set_row_filter, t.set_reloid)), '; ' ORDER BY 1), '')
		|| ' / ' || coalesce((SELECT string_agg(q.set_seqoid::regclass::text, ', ') FROM pglogical.replication_set_seq q JOIN pglogical.replication_set s ON s.set_id = q.set_id WHERE s.set_name = 'default'), '')
		FROM pglogical.replication_set_table t JOIN pglogical.replication_set s ON s.set_id = t.set_id WHERE s.set_name = 'default'`
	var before string
	if err := p.Provider.QueryRow(ctx, setTablesSQL, []any{&before}); err != nil || !strings.Contains(before, "filtered {id,a} ((a > 0) AND (id <> 7))") || !strings.HasSuffix(before, " / counter") {
		t.Fatalf("set default before prepare: %q (%v)", before, err)
	}
	manifest := filepath.Join(t.TempDir(), "manifest.json")
	var out bytes.Buffer
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := repair.NewAudit(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Config: cfg, Out: &out, Timeout: 30 * time.Second, Audit: audit, Actor: "cli:test"}

	// Killed after dropping the subscriptions: the re-run completes.
	r.stopAfterSubscriptions = true
	if err := r.Prepare(ctx, "provider", manifest); err == nil {
		t.Fatal("want the simulated stop")
	}
	m, found, err := ReadManifest(manifest)
	if err != nil || !found || len(m.Subscriptions) != 2 || len(m.Sets) < 2 || len(m.Nodes) != 1 {
		t.Fatalf("manifest before any drop: %+v (%v)", m, err)
	}
	r.stopAfterSubscriptions = false
	if err := r.Prepare(ctx, "provider", manifest); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var slots int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots", []any{&slots}); err != nil || slots != 0 {
		t.Fatalf("slots on the provider after prepare: %d (%v)", slots, err)
	}
	if !strings.Contains(out.String(), "Continuing from manifest") {
		t.Errorf("re-run did not continue from the manifest:\n%s", out.String())
	}
	// Running prepare again changes nothing.
	if err := r.Prepare(ctx, "provider", manifest); err != nil {
		t.Fatal(err)
	}
	// The sequence moves on while replication is down: restore sends its
	// value, which pglogical's own periodic copy would send much later.
	if err := p.Provider.Exec(ctx, "SELECT setval('counter', 5000), setval('countdown', 400000)"); err != nil {
		t.Fatal(err)
	}

	// The upgrade: the provider restarts, first with the settings a new
	// default parameter group would give it (no pglogical, no logical
	// decoding): restore refuses before creating anything.
	restart := func(settings ...string) {
		t.Helper()
		for _, sql := range settings {
			if err := prov.Exec(ctx, "postgres", sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		if err := prov.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := prov.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	restart("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'", "ALTER SYSTEM SET wal_level = replica")
	err = r.Restore(ctx, manifest)
	var nr *NotReadyError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "restore created nothing") || !strings.Contains(err.Error(), "provider: wal_level is replica") ||
		!strings.Contains(err.Error(), "provider: pglogical is not in shared_preload_libraries") || strings.Contains(err.Error(), "subscriber:") {
		t.Fatalf("restore onto a provider without pglogical: want a refusal naming both settings, got %v", err)
	}
	var nodes int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM pglogical.node", []any{&nodes}); err != nil || nodes != 0 {
		t.Fatalf("the refused restore created %d pglogical nodes (%v)", nodes, err)
	}
	restart("ALTER SYSTEM SET shared_preload_libraries = 'pglogical'", "ALTER SYSTEM SET wal_level = logical")
	out.Reset()
	if err := r.Restore(ctx, manifest); err != nil {
		t.Fatalf("restore: %v\n%s", err, out.String())
	}
	// Its comparison found every table equal: the daemon learns it, as
	// from pglmon verify (and puts behind what the work left, such as
	// heartbeats written meanwhile).
	w := verified.Watcher{Path: cfg.VerifiedFile()}
	since, err := w.Since()
	for _, sub := range p.Subscriptions {
		if since["subscriber/"+sub+"/"].IsZero() {
			t.Errorf("verified.json lacks %s found equal: %v %v", sub, since, err)
		}
	}
	for _, sub := range p.Subscriptions {
		if st, _ := p.Status(ctx, sub); st != "replicating" {
			t.Errorf("%s after restore: %s", sub, st)
		}
	}
	var after string
	if err := p.Provider.QueryRow(ctx, setTablesSQL, []any{&after}); err != nil || after != before {
		t.Errorf("set default after restore: %q (%v), before: %q", after, err, before)
	}
	var inSet0 bool
	if err := p.Provider.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pglogical.replication_set_seq q JOIN pglogical.replication_set s USING (set_id) WHERE s.set_name = 'set_0' AND q.set_seqoid = 'countdown'::regclass)", []any{&inSet0}); err != nil || !inSet0 {
		t.Errorf("restore did not put countdown back in set_0 (%v)", err)
	}
	var truncate bool
	if err := p.Provider.QueryRow(ctx, "SELECT replicate_truncate FROM pglogical.replication_set WHERE set_name = 'default'", []any{&truncate}); err != nil || truncate {
		t.Errorf("set default after restore: replicate_truncate %t (%v), want false as before", truncate, err)
	}
	if !strings.Contains(out.String(), "public.items_0: equal (500 rows compared)") {
		t.Errorf("restore did not compare rows:\n%s", out.String())
	}
	sent := strings.Contains(out.String(), "Sent sequence counter's value (5000) to subscription sub_0 on subscriber.")
	if !sent {
		// pglogical's own periodic copy of sequence values can come first
		// (seen once in CI), and restore then sends none: the value below
		// must be there all the same.
		t.Logf("restore sent no sequence value (pglogical's own copy came first?):\n%s", out.String())
	}
	if !strings.Contains(out.String(), "warning: sequence countdown of subscription sub_0's sets counts down: not sent") || strings.Contains(out.String(), "Sent sequence countdown") {
		t.Errorf("restore and the descending sequence: want a warning and no send:\n%s", out.String())
	}
	var counter int64
	// Sent, restore waited until it arrived.
	if sent {
		if err := p.Subscriber.QueryRow(ctx, "SELECT last_value FROM counter", []any{&counter}); err != nil || counter < 5000 {
			t.Errorf("restore sent the counter's value and returned, yet the subscriber's is %d (%v), the provider's 5000", counter, err)
		}
	}
	if err := pgtest.Poll(ctx, 15*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT last_value FROM counter", []any{&counter}) == nil && counter >= 5000
	}); err != nil {
		t.Errorf("the subscriber's counter is at %d after restore, the provider's at 5000", counter)
	}
	// Replication carries new rows again, without a second copy of the old ones.
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (100001, 'after', 1)"); err != nil {
		t.Fatal(err)
	}
	if n, err := p.WaitConverged(ctx, "items_0", 30*time.Second); err != nil || n != 501 {
		t.Fatalf("after restore: %d rows, %v", n, err)
	}
	// Restore again changes nothing.
	if err := r.Restore(ctx, manifest); err != nil {
		t.Fatal(err)
	}

	// The audit log: one prepare (stopped, continued by the re-runs under
	// its ID), a refused restore, two restores, each statement that changed
	// a database.
	entries, bad, err := repair.ReadLog(auditPath)
	if err != nil || len(bad) > 0 {
		t.Fatalf("audit log: %v %v", err, bad)
	}
	attempts := repair.Attempts(entries)
	if len(attempts) != 4 {
		t.Fatalf("want 4 attempts, got %+v", attempts)
	}
	if a := attempts[1]; a.Remedy != repair.RemedyUpgradeRestore || a.Outcome != repair.ResultRefused || !strings.Contains(a.Reason, "wal_level is replica") {
		t.Errorf("the refused restore's attempt: %+v", a)
	}
	attempts = append(attempts[:1], attempts[2:]...)
	prep, rest := attempts[0], attempts[1]
	if prep.Remedy != repair.RemedyUpgradePrepare || prep.Node != "provider" || prep.Actor != "cli:test" || prep.Outcome != repair.ResultSuccess ||
		len(prep.ResumedBy) != 2 || m.AuditID != prep.ID {
		t.Errorf("prepare attempt: %+v (manifest's audit ID %s)", prep, m.AuditID)
	}
	if !hasStep(prep.Steps, "drop pglogical node", p.ProviderNode) {
		t.Errorf("prepare's steps: %+v", prep.Steps)
	}
	if rest.Remedy != repair.RemedyUpgradeRestore || rest.Outcome != repair.ResultSuccess || !hasStep(rest.Steps, "create subscription", "sub_1") ||
		!hasStep(rest.Steps, "create pglogical node", p.ProviderNode) || !hasStep(rest.Steps, "set the replication set's flags", "default") || attempts[2].Remedy != repair.RemedyUpgradeRestore || len(attempts[2].Steps) != 0 {
		t.Errorf("restore attempts: %+v\n%+v", rest, attempts[2])
	}
	// The first run's steps (the dropped subscriptions) were in its own
	// finished line, before the re-run continued the attempt.
	drops := 0
	for _, e := range entries {
		if e.ID == prep.ID && hasStep(e.Steps, "drop subscription", "sub_0") && hasStep(e.Steps, "disable subscription", "sub_0") {
			drops++
		}
	}
	if drops != 1 {
		t.Errorf("the dropped subscriptions are not audited once: %d lines\n%+v", drops, entries)
	}
	if pending, _ := audit.Unfinished(); len(pending) != 0 {
		t.Errorf("an upgrade's attempt must never be resumed as a repair: %+v", pending)
	}
	b, _ := os.ReadFile(manifest)
	if strings.Contains(string(b), "password") && !strings.Contains(string(b), "password_removed") {
		t.Errorf("manifest mentions a password:\n%s", b)
	}
}

func TestRestoreReportsTablesChangedMeanwhile(t *testing.T) {
	ctx := context.Background()
	prov := pgtest.NewCluster(t, pgtest.Options{})
	subc := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: subc, Rows: 100})
	cfg, _ := config.Parse("t.yaml", []byte(p.NodesYAML()+"repair:\n  audit_log: "+filepath.Join(t.TempDir(), "audit.jsonl")+"\n"))
	// A mixed-case table too: named as SQL and --table write it.
	const mixed = `CREATE TABLE "Mixed" (id int PRIMARY KEY); INSERT INTO "Mixed" VALUES (1), (2);`
	if err := p.Subscriber.Exec(ctx, mixed); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, mixed+`SELECT pglogical.replication_set_add_table('set_0', '"Mixed"', false)`); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "m.json")
	var out bytes.Buffer
	r := &Runner{Config: cfg, Out: &out, Timeout: 30 * time.Second}
	if err := r.Prepare(ctx, "provider", manifest); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, `INSERT INTO items_0 SELECT g, 'meanwhile', 1 FROM generate_series(1000, 1009) g; INSERT INTO "Mixed" VALUES (3)`); err != nil {
		t.Fatal(err)
	}
	err := r.Restore(ctx, manifest)
	if err == nil || !strings.Contains(out.String(), "alter_subscription_resynchronize_table('sub_0', 'public.items_0')") ||
		!strings.Contains(out.String(), `--table 'public."Mixed"' --copy-script rows.psql`) || !strings.Contains(out.String(), `alter_subscription_resynchronize_table('sub_0', 'public."Mixed"')`) {
		t.Fatalf("want the changed tables reported with their plans; err %v\n%s", err, out.String())
	}
	var n int
	if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0", []any{&n}); err != nil || n != 100 {
		t.Fatalf("restore must not resynchronise by itself: %d rows (%v)", n, err)
	}
	w := verified.Watcher{Path: cfg.VerifiedFile()}
	if since, err := w.Since(); len(since) != 0 || err != nil {
		t.Errorf("verified.json holds what differs: %v (%v)", since, err)
	}
}

func hasStep(steps []repair.StepResult, action string, arg any) bool {
	for _, s := range steps {
		if s.Action == action && s.Result == "ok" && len(s.Args) > 0 && s.Args[0] == arg {
			return true
		}
	}
	return false
}

// Statement arguments are audited without any connection string's password.
func TestAuditedArgsHoldNoPassword(t *testing.T) {
	got := redactArgs([]any{"sub_0", "host=p dbname=d password='s3cret'", []string{"set"}, "postgres://u:s3cret@h/db"})
	for _, a := range got {
		if s, ok := a.(string); ok && strings.Contains(s, "s3cret") {
			t.Errorf("password in audited args: %q", got)
		}
	}
	if got[0] != "sub_0" || got[1] == "" {
		t.Errorf("args changed beyond the password: %q", got)
	}
}

func TestStripPassword(t *testing.T) {
	for in, want := range map[string]string{
		"host=a port=5 password=s3cret dbname=x":   "host=a port=5 dbname=x",
		"host=a password='s e\\'c' dbname=x":       "host=a dbname=x",
		"postgres://u:s3cret@h/db?sslmode=require": "postgres://u@h/db?sslmode=require",
		"host=a dbname=x":                          "host=a dbname=x",
	} {
		got, _ := StripPassword(in)
		if strings.Join(strings.Fields(got), " ") != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
