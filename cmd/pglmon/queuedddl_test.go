package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// DDL queued on the provider through pglogical.replicate_ddl_command that
// the subscriber refuses (here a role made there by hand already): pglogical
// 2.4.2 runs the statement again at each start of the apply worker, so the
// subscription stays down for ever and a restart cannot help. status says
// apply_error (for a person, exit 2) naming the statement, with its
// password hidden; repair's plan is the DDL one, and its skip, run by
// pglmon, gets the subscription replicating, with the row written after
// the DDL arriving. The password is nowhere in what pglmon wrote.
func TestQueuedDDLTheSubscriberRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 3, Own: true, SubscriberConf: pgtest.LogCollector})
	p.MustConverge(t, 30*time.Second)
	const password = "Sekrit-42"
	execAll(ctx, t, []sqlStep{
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'ddl_sql')"},
	})
	// Adding the set restarts the apply worker, which pglogical's manager
	// may start only at its next round.
	p.MustStream(t, 3*time.Minute)
	execAll(ctx, t, []sqlStep{
		{p.Subscriber, "CREATE ROLE app_ro"},
		{p.Provider, "SELECT pglogical.replicate_ddl_command($$CREATE ROLE app_ro LOGIN\n  PASSWORD '" + password + "'$$, '{ddl_sql}')"},
		{p.Provider, "INSERT INTO items_0 VALUES (21, 'after the DDL', 1)"},
	})
	cfg := writeConfig(t, p, "")
	var said string
	msg := waitApplyError(t, cfg, p.Sub(), &said)
	for _, want := range []string{
		"its apply worker fails to run DDL queued on provider provider through pglogical.replicate_ddl_command (CREATE ROLE app_ro LOGIN PASSWORD '(hidden)'), which subscriber subscriber refuses",
		`ERROR: role "app_ro" already exists`, "apply QUEUED_SQL in commit before "} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	_, text, _ := pglmon(t, "status", "--config", cfg)
	code, plan, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	said += text + plan + errOut
	m := regexp.MustCompile(`--remedy skip-transaction --lsn ([0-9A-F]+/[0-9A-F]+)`).FindStringSubmatch(plan)
	if code != 1 || m == nil || !strings.Contains(plan, "pglogical runs DDL queued on the provider") || !strings.Contains(plan, "the subscriber has the change already") {
		t.Fatalf("repair's plan: exit %d\n%s\n%s", code, plan, errOut)
	}
	code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "skip-transaction", "--lsn", m[1], "--yes")
	said += out + errOut
	if code != 0 || !strings.Contains(out, "Repaired: "+p.Sub()+" is replicating") {
		t.Fatalf("skip-transaction: exit %d\n%s\n%s", code, out, errOut)
	}
	var n int
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = 21", []any{&n}) == nil && n == 1
	}); err != nil {
		t.Fatalf("the row written after the DDL never arrived: %v", err)
	}
	if code, s := status(t, cfg, "--subscription", p.Sub()); code != 0 {
		t.Errorf("after the skip: exit %d: %+v", code, s)
	}
	audit, err := os.ReadFile(filepath.Join(filepath.Dir(cfg), "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(said+string(audit), password) {
		t.Errorf("the password is in pglmon's output or audit log")
	}
}

// A trigger of the subscriber's own that fires on replicated rows (ENABLE
// ALWAYS, as audit triggers are set) and refuses one: pglogical 2.4.2 runs
// the same change, and the trigger, at each start, so the subscription
// stays down. status says apply_error naming the function and the commit
// the skip needs (the CONTEXT's second line).
func TestATriggerOfTheSubscriberRefusesARow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 3, Own: true, SubscriberConf: pgtest.LogCollector})
	p.MustConverge(t, 30*time.Second)
	execAll(ctx, t, []sqlStep{
		{p.Subscriber, `CREATE FUNCTION no_77() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.n = 77 THEN
		RAISE EXCEPTION 'n 77 is not taken here';
	END IF;
	RETURN NEW;
END $$`},
		{p.Subscriber, "CREATE TRIGGER no_77 BEFORE INSERT ON items_0 FOR EACH ROW EXECUTE FUNCTION no_77()"},
		{p.Subscriber, "ALTER TABLE items_0 ENABLE ALWAYS TRIGGER no_77"},
		{p.Provider, "INSERT INTO items_0 VALUES (31, 'refused', 77)"},
	})
	cfg := writeConfig(t, p, "")
	msg := waitApplyError(t, cfg, p.Sub(), nil)
	for _, want := range []string{"ERROR: n 77 is not taken here", "PL/pgSQL function no_77() line", "in commit before "} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	lsn := regexp.MustCompile(`in commit before ([0-9A-F]+/[0-9A-F]+)`).FindStringSubmatch(msg)
	code, plan, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if code != 1 || lsn == nil || !strings.Contains(plan, "--remedy skip-transaction --lsn "+lsn[1]) || !strings.Contains(plan, "a trigger\n    of the subscriber's") {
		t.Errorf("repair's plan: exit %d\n%s\n%s", code, plan, errOut)
	}
}

// pglogical.conflict_resolution = error on the subscriber, and a row
// written there whose key the provider then inserts: pglogical 2.4.2 stops
// the apply worker ("cannot apply conflicting row") and applies the same
// change again at each start. status says apply_error; repair's plan gives
// the provider's query for the rows the transaction wrote (by its xid),
// which finds the provider's row; with the subscriber's row deleted, the
// restart it names gets the provider's row applied. Then the same for an
// UPDATE of a row changed on the subscriber, through apply_remote.
func TestAConflictStopsApplyUnderResolutionError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 3, Own: true, SubscriberConf: pgtest.LogCollector})
	p.MustConverge(t, 30*time.Second)
	execAll(ctx, t, []sqlStep{
		{p.Subscriber, "ALTER SYSTEM SET pglogical.conflict_resolution = 'error'"},
		{p.Subscriber, "SELECT pg_reload_conf()"},
		// The apply worker reads the setting when it starts.
		{p.Subscriber, "SELECT pglogical.alter_subscription_disable('" + p.Sub() + "', true)"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_enable('" + p.Sub() + "', true)"},
	})
	p.MustStream(t, 3*time.Minute)
	if err := p.Subscriber.Exec(ctx, "INSERT INTO items_0 VALUES (41, 'written on the subscriber', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (41, 'the provider''s', 2)"); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, p, "")
	msg := waitApplyError(t, cfg, p.Sub(), nil)
	if !strings.Contains(msg, "pglogical.conflict_resolution is error on subscriber subscriber") || !strings.Contains(msg, "ERROR: cannot apply conflicting row") {
		t.Errorf("message: %s", msg)
	}
	code, plan, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	m := regexp.MustCompile(`SELECT \* FROM public\.items_0 WHERE xmin = '(\d+)'::xid;`).FindStringSubmatch(plan)
	if code != 1 || m == nil || !strings.Contains(plan, "--remedy skip-transaction --lsn ") {
		t.Fatalf("repair's plan: exit %d\n%s\n%s", code, plan, errOut)
	}
	// The query, run as printed, finds the provider's row.
	var ids []int64
	if err := p.Provider.QueryRow(ctx, "SELECT array_agg(id) FROM public.items_0 WHERE xmin = '"+m[1]+"'::xid", []any{&ids}); err != nil || len(ids) != 1 || ids[0] != 41 {
		t.Fatalf("the plan's query on the provider: %v, %v", ids, err)
	}
	if err := p.Subscriber.Exec(ctx, "DELETE FROM items_0 WHERE id = 41"); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "restart", "--yes"); code != 0 {
		t.Fatalf("restart: exit %d\n%s\n%s", code, out, errOut)
	}
	var val string
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT coalesce((SELECT val FROM items_0 WHERE id = 41), '')", []any{&val}) == nil && val == "the provider's"
	}); err != nil {
		t.Fatalf("row 41 on the subscriber: %q (%v)", val, err)
	}
	// An UPDATE of a row changed on the subscriber stops apply the same
	// way; the plan has the provider's row win this once, through
	// apply_remote and a restart, which gets it applied.
	if err := p.Subscriber.Exec(ctx, "UPDATE items_0 SET val = 'changed on the subscriber' WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "UPDATE items_0 SET val = 'the provider''s update' WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		code, plan, _ = pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
		return code == 1 && strings.Contains(plan, "apply UPDATE from remote relation public.items_0")
	}); err != nil {
		t.Fatalf("no apply_error for the update:\n%s", plan)
	}
	if !strings.Contains(plan, "a) the provider's rows win, this once.") || !strings.Contains(plan, "set pglogical.conflict_resolution = apply_remote on subscriber") {
		t.Errorf("repair's plan for the update:\n%s", plan)
	}
	for _, sql := range []string{"ALTER SYSTEM SET pglogical.conflict_resolution = 'apply_remote'", "SELECT pg_reload_conf()"} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "restart", "--yes"); code != 0 {
		t.Fatalf("restart: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT val FROM items_0 WHERE id = 2", []any{&val}) == nil && val == "the provider's update"
	}); err != nil {
		t.Fatalf("row 2 on the subscriber: %q (%v)", val, err)
	}
}

// waitApplyError polls pglmon status for subscription sub, for a minute,
// until its one finding is apply_error (critical, for a person: exit 2, no
// remedy), and returns its message. What status printed meanwhile is
// added to said, when given.
func waitApplyError(t *testing.T, cfg, sub string, said *string) string {
	t.Helper()
	return waitCritical(t, cfg, sub, "apply_error", said)
}

// waitCritical is waitApplyError for a finding of code.
func waitCritical(t *testing.T, cfg, sub, code string, said *string) string {
	t.Helper()
	var msg, last string
	if err := pgtest.Poll(context.Background(), 60*time.Second, func() bool {
		exit, out, errOut := pglmon(t, "status", "--config", cfg, "--output", "json", "--subscription", sub)
		if said != nil {
			*said += out + errOut
		}
		var s statusJSON
		if json.Unmarshal([]byte(out), &s) != nil || len(s.Subscriptions) != 1 || len(s.Subscriptions[0].Findings) != 1 {
			return false
		}
		f := s.Subscriptions[0].Findings[0]
		last = f.Code + ": " + f.Message
		if exit == 2 && f.Code == code && f.Severity == "critical" && f.Remedy == "" {
			msg = f.Message
		}
		return msg != ""
	}); err != nil {
		t.Fatalf("no %s; last finding: %s", code, last)
	}
	return msg
}
