package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/repair"
)

func pglmonIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func auditConfig(t *testing.T, p *pgtest.Pair) (cfg, audit string) {
	audit = filepath.Join(t.TempDir(), "audit.jsonl")
	return writeConfig(t, p, "repair:\n  audit_log: "+audit+"\n  verify_timeout: 30s\n"), audit
}

func TestRepairCommandOriginLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg, audit := auditConfig(t, p)
	if err := p.LoseOrigin(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "down", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// --dry-run: the plan and its SQL, nothing executed.
	code, out, errOut := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub(), "--dry-run")
	if code != 0 || !strings.Contains(out, "pg_replication_origin_create") || !strings.Contains(out, "Dry run") {
		t.Fatalf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	// Not confirmed: nothing executed.
	code, out, _ = pglmonIn(t, "n\n", "repair", "--config", cfg, "--subscription", p.Sub())
	if code != 1 || !strings.Contains(out, "Run this plan? [y/N]") {
		t.Fatalf("declined: exit %d\n%s", code, out)
	}
	if st, _ := p.Status(ctx, p.Sub()); st != "down" {
		t.Fatalf("status after declining: %s, want down", st)
	}
	code, out, errOut = pglmonIn(t, "y\n", "repair", "--config", cfg, "--subscription", p.Sub())
	if code != 0 || !strings.Contains(out, "Repaired: sub_0 is replicating") {
		t.Fatalf("repair: exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last struct{ Actor, Remedy, Outcome string }
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if !strings.HasPrefix(last.Actor, "cli:") || last.Remedy != "recreate-origin" || last.Outcome != "success" {
		t.Errorf("audit: got %+v from %s", last, b)
	}
	// Healthy now: nothing to do, exit 0.
	if code, out, _ := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub(), "--yes"); code != 0 || !strings.Contains(out, "nothing to repair") {
		t.Errorf("healthy: exit %d\n%s", code, out)
	}
	// pglmon audit tells the attempt from the log the repair wrote.
	code, a, errOut := auditOutput(t, "--config", cfg, "--subscription", p.Sub())
	if code != 0 || len(a.Attempts) == 0 {
		t.Fatalf("audit: exit %d, %+v, %s", code, a, errOut)
	}
	got := a.Attempts[len(a.Attempts)-1]
	if got.Remedy != "recreate-origin" || got.Outcome != "success" || !strings.HasPrefix(got.Actor, "cli:") || len(got.Steps) != 3 || got.Finished == nil {
		t.Errorf("audit: last attempt %+v", got)
	}
	for _, s := range got.Steps {
		if s.Result != "ok" && s.Result != "skipped" {
			t.Errorf("audit: step %+v", s)
		}
	}
	code, out, _ = pglmon(t, "audit", "--config", cfg, "--id", got.ID[:6])
	if code != 0 || !strings.Contains(out, "pg_replication_origin_create") || !strings.Contains(out, "outcome:   success") {
		t.Errorf("audit --id: exit %d\n%s", code, out)
	}
	t.Logf("pglmon audit --id:\n%s", out)
}

func TestRepairCommandHumanOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg, _ := auditConfig(t, p)
	// pglogical sometimes gets a dropped slot back within seconds (see the
	// issue note); break it again until pglmon acts while it is gone.
	for attempt := 1; ; attempt++ {
		if attempt > 5 {
			t.Fatal("the slot never stayed dropped long enough to run repair")
		}
		if err := p.DropSlot(ctx, p.Sub()); err != nil {
			t.Fatal(err)
		}
		if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
			_, s := status(t, cfg, "--no-wait")
			return len(s.Subscriptions) == 1 && len(s.Subscriptions[0].Findings) > 0 && s.Subscriptions[0].Findings[0].Code == "slot_missing"
		}); err != nil {
			continue
		}
		code, out, _ := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub(), "--yes")
		if strings.Contains(out, "nothing to repair") {
			t.Logf("attempt %d: pglogical had the slot back before repair ran", attempt)
			continue
		}
		if code != 1 || !strings.Contains(out, "needs a person") || !strings.Contains(out, "replication_sets := ARRAY['set_0']") {
			t.Fatalf("slot missing: exit %d\n%s", code, out)
		}
		// The query it gives, run on the provider, prints the
		// resynchronisation of each table of the subscription's sets.
		query := out[strings.Index(out, "SELECT format("):]
		query = query[:strings.Index(query, "ORDER BY 1;")+len("ORDER BY 1;")]
		var stmt string
		if err := p.Provider.QueryRow(ctx, query, []any{&stmt}); err != nil || stmt != "SELECT pglogical.alter_subscription_resynchronize_table('"+p.Sub()+"', 'public.items_0');" {
			t.Fatalf("the plan's query on the provider: %q, %v\n%s", stmt, err, query)
		}
		code, _, errOut := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "recreate-origin", "--yes")
		if code != 1 || !strings.Contains(errOut, "refused") {
			t.Fatalf("forced recreate-origin: exit %d\n%s", code, errOut)
		}
		return
	}
}

func TestRepairCommandDropOrphanSlot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg, _ := auditConfig(t, p)
	if err := p.Provider.Exec(ctx, "SELECT pg_create_logical_replication_slot('pgl_orphan_cli', 'pglogical_output')"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := pglmonIn(t, "", "repair", "--config", cfg, "--remedy", "drop-orphan-slot", "--node", "provider"); code != 64 {
		t.Errorf("missing --slot: exit %d, want 64", code)
	}
	for _, args := range [][]string{{"--remedy", "drop-orphan-slot", "--node", "nosuch", "--slot", "pgl_orphan_cli"}, {"--subscription", p.Sub(), "--subscriber", "nosuch"}} {
		code, _, errOut := pglmonIn(t, "", append([]string{"repair", "--config", cfg}, args...)...)
		if code != 64 || !strings.Contains(errOut, "nosuch: no such node in the configuration (nodes: provider, subscriber)") {
			t.Errorf("%v: exit %d, want 64 naming the node: %s", args, code, errOut)
		}
	}
	code, out, errOut := pglmonIn(t, "yes\n", "repair", "--config", cfg, "--remedy", "drop-orphan-slot", "--node", "provider", "--slot", "pgl_orphan_cli")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// A failed first copy (pglogical rolls it back whole and marks it ready)
// shows in no catalog: pglmon repair finds it at the end of the
// subscriber's log and prints its plan; once that plan has copied the
// tables again, there is nothing to repair.
func TestRepairCommandReadsAFailedCopyFromTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10, Own: true, SubscriberConf: pgtest.LogCollector})
	p.MustConverge(t, 30*time.Second)
	cfg := writeConfig(t, p, "")
	if _, err := p.FailFirstCopy(ctx, p.Sub(), "t2"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute); err != nil {
		t.Fatal(err)
	}
	code, out := repairPlan(t, cfg, p.Sub(), 30*time.Second)
	if code != 1 || !strings.Contains(out, "pglogical's first copy of subscription "+p.Sub()+" failed at table public.t2 (ERROR: duplicate key") ||
		!strings.Contains(out, "shows a copy of it that failed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	resync := repair.ResynchronizeAllSQL(p.Sub())
	if !strings.Contains(out, resync+";") {
		t.Fatalf("no resynchronisation in the plan:\n%s", out)
	}
	if err := p.Subscriber.Exec(ctx, resync); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 120*time.Second, func() bool {
		_ = p.Provider.Exec(ctx, "UPDATE items_0 SET n = n + 1 WHERE id = 1")
		code, out, _ = pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub(), "--yes")
		return code == 0 && strings.Contains(out, "nothing to repair")
	}); err != nil {
		t.Fatalf("after the plan's resynchronisation: exit %d\n%s", code, out)
	}
	for table, want := range map[string]int64{"items_0": 10, "t2": 21} {
		if n, err := p.WaitConverged(ctx, table, 60*time.Second); err != nil || n != want {
			t.Errorf("%s: %d rows, %v", table, n, err)
		}
	}
}

// A failed table copy put right by hand: once pglmon verify, run after
// the failure, finds the table equal, repair no longer prints its plan;
// before, that verification finds the table different and changes nothing.
// The subscriber logs in its local time (log_timezone Europe/Berlin, as a
// self-managed server in Germany does): CET in the lines, read in that zone.
func TestRepairCommandTakesAVerificationByHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conf := append([]string{"log_timezone = 'Europe/Berlin'"}, pgtest.LogCollector...)
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10, Own: true, SubscriberConf: conf})
	p.MustConverge(t, 30*time.Second)
	cfg := writeConfig(t, p, "")
	if err := p.FailTableCopy(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	code, out := repairPlan(t, cfg, p.Sub(), 60*time.Second)
	if code != 1 || !strings.Contains(out, "pglogical's copy of table public.t2 for subscription "+p.Sub()+" failed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if code, out, _ := pglmon(t, "verify", "--config", cfg, "--subscription", p.Sub()); code != 2 {
		t.Fatalf("t2 still lacks its 21st row: verify exit %d\n%s", code, out)
	}
	if code, out, _ := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub(), "--yes"); code != 1 || !strings.Contains(out, "needs a person") {
		t.Fatalf("after a verification that found t2 different: exit %d\n%s", code, out)
	}
	if err := p.Subscriber.Exec(ctx, "INSERT INTO t2 VALUES (21, 'only on the provider')"); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := pglmon(t, "verify", "--config", cfg, "--subscription", p.Sub()); code != 0 {
		t.Fatalf("t2 put right: verify exit %d\n%s", code, out)
	}
	code, out, errOut := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub(), "--yes")
	if code != 0 || !strings.Contains(out, "nothing to repair") || !strings.Contains(out, "shows a copy of public.t2 that failed") ||
		!strings.Contains(out, "a pglmon verify started after it, at ") {
		t.Fatalf("after the row was put right and verified: exit %d\n%s\n%s", code, out, errOut)
	}
}

// repairPlan runs pglmon repair --subscription sub until it prints a plan
// for a person (the failed copy read from the log), within timeout.
func repairPlan(t *testing.T, cfg, sub string, timeout time.Duration) (int, string) {
	t.Helper()
	var code int
	var out, errOut string
	if err := pgtest.Poll(context.Background(), timeout, func() bool {
		code, out, errOut = pglmonIn(t, "", "repair", "--config", cfg, "--subscription", sub, "--yes")
		return strings.Contains(out, "needs a person")
	}); err != nil {
		t.Fatalf("no failed copy found: exit %d\n%s\n%s", code, out, errOut)
	}
	return code, out
}

// A migration run on the provider alone widens a replicated column
// (integer to bigint, as before its values outgrow integer): status names
// it at once, critical (pglogical sends the value in binary, which the
// subscriber's integer cannot read); the first change stops the
// subscription, which status then puts down to the type (no restart
// offered); repair's plan, run as printed, gets it replicating with the
// row that stopped it.
func TestAColumnTypeChangedOnTheProviderAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	cfg := writeConfig(t, p, "")
	if err := p.Provider.Exec(ctx, "ALTER TABLE items_0 ALTER COLUMN n TYPE bigint"); err != nil {
		t.Fatal(err)
	}
	code, st := status(t, cfg)
	if code != 2 || len(st.Subscriptions) != 1 || len(st.Subscriptions[0].Findings) != 1 {
		t.Fatalf("status: exit %d, %+v", code, st)
	}
	s := st.Subscriptions[0]
	if f := s.Findings[0]; f.Code != "schema_mismatch" || f.Severity != "critical" || !strings.Contains(f.Message, "n (bigint on the provider, integer here)") ||
		len(s.ColumnTypes) != 1 || s.ColumnTypes[0].Table != "public.items_0" || s.ColumnTypes[0].Column != "n" || s.ColumnTypes[0].Effect != "breaks" ||
		s.ColumnTypes[0].Provider != "bigint" || s.ColumnTypes[0].Subscriber != "integer" {
		t.Fatalf("status before any change: %+v", s)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (11, 'after the migration', 3000000000)"); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "down", time.Minute); err != nil {
		t.Fatal(err)
	}
	code, st = status(t, cfg)
	if s := st.Subscriptions[0]; code != 2 || len(s.Findings) != 1 || s.Findings[0].Code != "schema_mismatch" || s.Findings[0].Remedy != "" ||
		!strings.Contains(s.Findings[0].Message, "is down because the tables differ") {
		t.Fatalf("status once down: exit %d, %+v", code, s)
	}
	code, out, _ := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	const alter = "ALTER TABLE public.items_0 ALTER COLUMN n TYPE bigint USING n::bigint;"
	if code != 1 || !strings.Contains(out, alter+"   -- integer there now") || !strings.Contains(out, "replicate_ddl_command") {
		t.Fatalf("repair: exit %d\n%s", code, out)
	}
	if err := p.Subscriber.Exec(ctx, alter); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "restart", "--yes"); code != 0 {
		t.Fatalf("restart: exit %d\n%s\n%s", code, out, errOut)
	}
	var n int64
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT n FROM items_0 WHERE id = 11", []any{&n}) == nil
	}); err != nil || n != 3000000000 {
		t.Fatalf("the row that stopped the apply: %d, %v", n, err)
	}
	if code, st := status(t, cfg); code != 0 || len(st.Subscriptions[0].ColumnTypes) != 0 {
		t.Errorf("status once the types match: exit %d, %+v", code, st)
	}
}

// pglmon repair --subscription, for a subscription that replicates with a
// sequence the subscriber lacks the provider's value of, prints the
// sequence_behind plan at once (a person asked: no 5 minutes' wait), and
// the call it prints, run as printed, puts it right.
func TestRepairCommandSequenceBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1})
	cfg, _ := auditConfig(t, p)
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Exec(ctx, `CREATE TABLE "Seq T" (id serial PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Provider.Exec(ctx, `SELECT pglogical.replication_set_add_table('set_0', '"Seq T"');
SELECT pglogical.replication_set_add_sequence('set_0', '"Seq T_id_seq"');
INSERT INTO "Seq T" SELECT FROM generate_series(1, 7);
SELECT pglogical.synchronize_sequence('"Seq T_id_seq"')`); err != nil {
		t.Fatal(err)
	}
	subValue := func() *int64 {
		var v *int64
		if err := p.Subscriber.QueryRow(ctx, "SELECT last_value FROM pg_sequences WHERE sequencename = 'Seq T_id_seq'", []any{&v}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool { return subValue() != nil }); err != nil {
		t.Fatal("synchronize_sequence's value did not reach the subscriber")
	}
	if code, out, errOut := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub()); code != 0 || !strings.Contains(out, "nothing to repair") {
		t.Fatalf("the subscriber ahead: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := p.Subscriber.Exec(ctx, `SELECT setval('"Seq T_id_seq"', 1, false)`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub())
	const call = `SELECT pglogical.synchronize_sequence('public."Seq T_id_seq"');`
	if code != 1 || !strings.Contains(out, `sequence public."Seq T_id_seq" (7 on the provider, none on the subscriber; pglogical last sent `) ||
		!strings.Contains(out, "  -- on provider provider\n  "+call+"\n") {
		t.Fatalf("behind: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := p.Provider.Exec(ctx, call); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		code, out, _ = pglmonIn(t, "", "repair", "--config", cfg, "--subscription", p.Sub())
		return code == 0 && strings.Contains(out, "nothing to repair")
	}); err != nil {
		t.Fatalf("after the plan's call: exit %d\n%s", code, out)
	}
	if v := subValue(); v == nil || *v < 7 {
		t.Errorf("the subscriber's value after the plan's call: %v", v)
	}
}
