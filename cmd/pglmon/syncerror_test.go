package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// A subscription whose provider connection's role may not read a table
// added to its set: pglogical 2.4.2's sync worker fails at each try, for
// ever, while the subscription says replicating and the table stays empty.
// status reads the failures in the subscriber's log and says so at once
// (table_sync_error, critical, exit 2) with the GRANT to run, and the
// provider's catalogs say the role may not read it (copy_not_permitted, a
// warning); repair prints the plan; the GRANT, run as printed, gets the
// table copied, and status says nothing any more. A grant revoked from a
// table that replicates is said before any copy needs it (the warning
// alone, exit 1).
func TestATableItsRoleMayNotRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 3})
	if err := p.DenyTableCopy(ctx, p.Sub(), "repl", "Denied"); err != nil {
		t.Fatal(err)
	}
	cfg := configReplacing(t, writeConfig(t, p, ""), "probe:", fmt.Sprintf("    server_log: %q\nprobe:", p.Subscriber.Cluster.LogPath()))
	var msg, warned, last string
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		code, st := status(t, cfg, "--no-wait")
		last = ""
		for _, s := range st.Subscriptions {
			for _, f := range s.Findings {
				last += f.Code + " "
				switch {
				case f.Code == "table_sync_error" && code == 2 && f.Severity == "critical" && f.Remedy == "" && len(s.Findings) == 2:
					msg = f.Message
				case f.Code == "copy_not_permitted" && f.Severity == "warning":
					warned = f.Message
				}
			}
		}
		return msg != "" && warned != ""
	}); err != nil {
		_, o, e := pglmon(t, "status", "--config", cfg, "--no-wait")
		t.Fatalf("no table_sync_error (findings: %s)\n%s\n%s", last, o, e)
	}
	for _, want := range []string{`table public."Denied" of ` + p.Sub() + ` is not copied`, "(the provider: permission denied for table Denied)",
		`run on provider GRANT SELECT ON public."Denied" TO repl;`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	// Read from the provider's catalogs too, whatever the log says.
	if !strings.Contains(warned, `the role of `+p.Sub()+`'s provider connection, repl, may not read table public."Denied" of its replication sets on provider`) ||
		!strings.Contains(warned, `run on provider: GRANT SELECT ON public."Denied" TO repl;`) {
		t.Errorf("copy_not_permitted: %s", warned)
	}
	var rows int
	if err := p.Subscriber.QueryRow(ctx, `SELECT count(*) FROM "Denied"`, []any{&rows}); err != nil || rows != 0 {
		t.Errorf("the subscriber's table holds %d rows (%v) before the grant", rows, err)
	}
	_, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if !strings.Contains(out, "Remove the cause the error names") || !strings.Contains(out, `--table 'public."Denied"'`) {
		t.Errorf("repair's plan:\n%s\n%s", out, errOut)
	}

	grant := regexp.MustCompile(`GRANT SELECT ON \S+ TO repl;`).FindString(msg)
	if err := p.Provider.Exec(ctx, grant); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		code, _ := status(t, cfg, "--no-wait")
		return code == 0 && p.Subscriber.QueryRow(ctx, `SELECT count(*) FROM "Denied"`, []any{&rows}) == nil && rows == 5
	}); err != nil {
		code, st := status(t, cfg, "--no-wait")
		t.Fatalf("after %s: status exit %d (%+v), %d rows on the subscriber", grant, code, st, rows)
	}

	if err := p.Provider.Exec(ctx, "REVOKE SELECT ON items_0 FROM repl"); err != nil {
		t.Fatal(err)
	}
	code, st := status(t, cfg, "--no-wait")
	if code != 1 || len(st.Subscriptions) != 1 || len(st.Subscriptions[0].Findings) != 1 || st.Subscriptions[0].Findings[0].Code != "copy_not_permitted" ||
		!strings.Contains(st.Subscriptions[0].Findings[0].Message, "may not read table public.items_0 of its replication sets") {
		t.Errorf("after the revoke: exit %d, %+v", code, st)
	}
}

// A subscription whose provider connection string names no user: libpq
// then connects as PGUSER of the subscriber's server (here) or its OS
// user, which pglmon cannot see. Nor can pglmon's watching-only role read
// any connection string. The walsender streaming from the subscription's
// slot on the provider says the role, both for a superuser's pglmon and
// for the watching-only role: copy_not_permitted names it, as
// provider_role does, where it said nothing before.
func TestCopyNotPermittedForARoleTheConnectionStringLeavesOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 3, SubscriberEnv: []string{"PGUSER=repl"}})
	if err := p.ConnectAs(ctx, p.Sub(), "repl", ""); err != nil {
		t.Fatal(err)
	}
	execAll(ctx, t, []sqlStep{
		{p.Provider, "REVOKE SELECT ON items_0 FROM repl"},
		{p.Provider, "CREATE ROLE watch LOGIN IN ROLE pg_monitor; " + watcherGrants("watch")},
		{p.Subscriber, "CREATE ROLE watch LOGIN IN ROLE pg_monitor; " + watcherGrants("watch")},
	})
	cfg := writeConfig(t, p, "")
	for _, c := range []struct{ as, cfg string }{{"postgres", cfg}, {"watch", configAs(t, cfg, "watch")}} {
		var code int
		var st statusJSON
		if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
			code, st = status(t, c.cfg, "--no-wait")
			return code == 1 && len(st.Subscriptions) == 1 && len(st.Subscriptions[0].Findings) == 1
		}); err != nil {
			t.Fatalf("as %s: exit %d, %+v", c.as, code, st)
		}
		sub := st.Subscriptions[0]
		if f := sub.Findings[0]; f.Code != "copy_not_permitted" || sub.ProviderRole != "repl" ||
			!strings.Contains(f.Message, `the role of `+p.Sub()+`'s provider connection, repl, may not read table public.items_0 of its replication sets`) ||
			!strings.Contains(f.Message, "GRANT SELECT ON public.items_0 TO repl;") {
			t.Errorf("as %s: provider_role %q, %+v", c.as, sub.ProviderRole, f)
		}
	}
}

// A provider connection role without USAGE on the provider's schema
// pglogical (a dedicated replication role given SELECT on the tables
// only): the provider accepts the connection, then refuses to stream
// (pglogical 2.4.2's output plugin, at its start), at each start.
// status says provider_connection_failed with the GRANT to run, not
// apply_error ("a change the subscriber refuses") as before; repair's
// plan says to give the grant and restart; the GRANT run as printed and
// repair --remedy restart get it replicating. (No row is written while the
// role lacks the grant: pglogical could not send it then, see README.)
func TestAProviderRoleThatMayNotUseSchemaPglogical(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 3, SubscriberConf: pgtest.LogCollector})
	if err := p.ConnectAs(ctx, p.Sub(), "repl", "user=repl"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "REVOKE USAGE ON SCHEMA pglogical FROM repl"); err != nil {
		t.Fatal(err)
	}
	if err := p.RestartSubscription(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, p, "")
	msg := waitCritical(t, cfg, p.Sub(), "provider_connection_failed", nil)
	grant := "GRANT USAGE ON SCHEMA pglogical TO repl;"
	for _, want := range []string{"subscription " + p.Sub() + " is down: provider provider refuses to stream to it: the role of its provider connection, repl, may not use schema pglogical",
		"To fix, run on provider: " + grant, "ERROR:  permission denied for schema pglogical"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	code, plan, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if code != 1 || !strings.Contains(plan, "the provider accepts the connection, then refuses to start") || !strings.Contains(plan, "--remedy restart") {
		t.Fatalf("repair's plan: exit %d\n%s\n%s", code, plan, errOut)
	}
	execAll(ctx, t, []sqlStep{{p.Provider, grant}, {p.Provider, "INSERT INTO items_0 VALUES (21, 'after the grant', 1)"}})
	if code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "restart", "--yes"); code != 0 {
		t.Fatalf("restart after the grant: exit %d\n%s\n%s", code, out, errOut)
	}
	var val string
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT val FROM items_0 WHERE id = 21", []any{&val}) == nil && val == "after the grant"
	}); err != nil {
		t.Fatalf("row 21 on the subscriber: %q", val)
	}
}

// The provider connection's role lost USAGE on the provider's schema
// pglogical, a row was written, and it got USAGE back: pglogical 2.4.2's
// walsender reads the catalogs as they were when the row was written, so
// it fails on that change at every start, for ever, and the subscriber's
// log says only "data stream ended" (stuck_down, whose restart cannot
// help). status reads the provider's log and says provider_connection_failed
// with the change's LSN; repair's plan (b), followed as printed with the
// schema's owner, gets the row across; moved back, the subscription
// replicates as the role again.
func TestChangesWrittenWhileTheRoleLackedUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := replPair(t)
	execAll(ctx, t, []sqlStep{
		{p.Provider, "REVOKE USAGE ON SCHEMA pglogical FROM repl"},
		{p.Provider, "INSERT INTO items_0 VALUES (21, 'while revoked', 1)"},
		{p.Provider, "GRANT USAGE ON SCHEMA pglogical TO repl"},
	})
	if err := p.RestartSubscription(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, p, "")
	msg := waitCritical(t, cfg, p.Sub(), "provider_connection_failed", nil)
	lsn := regexp.MustCompile(`fails decoding the change at ([0-9A-F]+/[0-9A-F]+) for the role of its provider connection, repl, which may not use schema pglogical`).FindStringSubmatch(msg)
	if lsn == nil || !strings.Contains(msg, "ERROR: permission denied for schema pglogical (in the output plugin's change callback") {
		t.Fatalf("message: %s", msg)
	}
	code, plan, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if code != 1 || !strings.Contains(plan, "is past "+lsn[1]) {
		t.Fatalf("repair's plan: exit %d\n%s\n%s", code, plan, errOut)
	}
	followOwnerPlan(t, p, cfg, plan, "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'pglogical';",
		[2]string{"SELECT val FROM items_0 WHERE id = 21", "while revoked"},
		"INSERT INTO items_0 VALUES (22, 'as repl again', 1)", [2]string{"SELECT val FROM items_0 WHERE id = 22", "as repl again"})
}

// followOwnerPlan follows, as printed, repair's way (b) for changes the
// role of the provider connection could not decode: an interface as the
// owner ownerQuery (which the plan prints) names (postgres, a superuser;
// no password with the test clusters' trust), a restart, and the row
// arrived (a query of its value, and the value) through it; then back,
// insert run on the provider, and its row arrives through the role's own
// connection, with status exit 0.
func followOwnerPlan(t *testing.T, p *pgtest.Pair, cfg, plan, ownerQuery string, arrived [2]string, insert string, again [2]string) {
	t.Helper()
	ctx := context.Background()
	add := regexp.MustCompile(`SELECT pglogical\.alter_node_add_interface\(.*\);`).FindString(plan)
	move := regexp.MustCompile(`SELECT pglogical\.alter_subscription_interface\([^)]*\);`).FindAllString(plan, -1)
	drop := regexp.MustCompile(`SELECT pglogical\.alter_node_drop_interface\([^)]*\);`).FindString(plan)
	if add == "" || len(move) != 2 || drop == "" || !strings.Contains(plan, ownerQuery) || !strings.Contains(plan, "--subscription "+p.Sub()+" --remedy restart") {
		t.Fatalf("repair's plan: %q %q %q, %q\n%s", add, move, drop, ownerQuery, plan)
	}
	var owner string
	if err := p.Provider.QueryRow(ctx, "SELECT ("+strings.TrimSuffix(ownerQuery, ";")+")::text", []any{&owner}); err != nil {
		t.Fatal(err)
	}
	add = strings.NewReplacer("<owner>", owner, " password=<its password>", "").Replace(add)
	execAll(ctx, t, []sqlStep{{p.Subscriber, add}, {p.Subscriber, move[0]}})
	if code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "restart", "--yes"); code != 0 {
		t.Fatalf("restart on the owner's connection: exit %d\n%s\n%s", code, out, errOut)
	}
	var val string
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, arrived[0], []any{&val}) == nil && val == arrived[1]
	}); err != nil {
		t.Fatalf("through the owner's connection, %s: %q", arrived[0], val)
	}
	execAll(ctx, t, []sqlStep{{p.Subscriber, move[1]}, {p.Subscriber, drop}, {p.Provider, insert}})
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		code, _ := status(t, cfg, "--no-wait")
		return code == 0 && p.Subscriber.QueryRow(ctx, again[0], []any{&val}) == nil && val == again[1]
	}); err != nil {
		code, st := status(t, cfg, "--no-wait")
		t.Fatalf("moved back: status exit %d (%+v), %s: %q", code, st, again[0], val)
	}
}

// A row filter calling a function the role of the provider connection may
// not execute: status says row_filter_not_permitted before any change; the
// walsender fails on the first change to the table, at every start, for
// ever, also after the GRANT (measured with pglogical 2.4.2: it reads the
// function's privileges as they were when the change was made). status
// then says provider_connection_failed naming the function and the GRANT;
// repair's plan (b), followed as printed (an interface as the function's
// owner until past the change, then back), brings the row, and rows
// written after the GRANT arrive through the role's own connection.
func TestARowFilterFunctionTheRoleMayNotExecute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := replPair(t)
	execAll(ctx, t, []sqlStep{
		{p.Provider, "CREATE FUNCTION rf_ok(int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0'"},
		{p.Provider, "REVOKE EXECUTE ON FUNCTION rf_ok(int) FROM PUBLIC"},
		{p.Provider, "CREATE TABLE rf (id int PRIMARY KEY, v text)"},
		{p.Provider, "GRANT SELECT ON rf TO repl"},
		{p.Subscriber, "CREATE TABLE rf (id int PRIMARY KEY, v text)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'rf', false, row_filter := 'rf_ok(id)')"},
	})
	cfg := writeConfig(t, p, "")
	// Before any change: row_filter_not_permitted, with the GRANT.
	if msg := waitCritical(t, cfg, p.Sub(), "row_filter_not_permitted", nil); !strings.Contains(msg, "may not execute function rf_ok(integer), which the row filter of public.rf calls on provider") ||
		!strings.Contains(msg, "GRANT EXECUTE ON FUNCTION rf_ok(integer) TO repl;") {
		t.Fatalf("row_filter_not_permitted: %s", msg)
	}

	// A change: the walsender fails on it (the provider's log, its
	// logging collector's file); then the GRANT and a restart: the same
	// change fails again.
	var logPath string
	if err := p.Provider.QueryRow(ctx, "SELECT current_setting('data_directory') || '/' || pg_current_logfile()", []any{&logPath}); err != nil {
		t.Fatal(err)
	}
	failsAfter := func(what string) {
		t.Helper()
		logBefore, _ := os.ReadFile(logPath)
		if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
			log, _ := os.ReadFile(logPath)
			return len(log) > len(logBefore) && strings.Contains(string(log[len(logBefore):]), "permission denied for function rf_ok")
		}); err != nil {
			t.Fatalf("the change did not fail %s: if pglogical now decodes it, the findings' text is out of date", what)
		}
	}
	execAll(ctx, t, []sqlStep{{p.Provider, "INSERT INTO rf VALUES (1, 'before the grant')"}})
	failsAfter("before the GRANT")
	execAll(ctx, t, []sqlStep{{p.Provider, "GRANT EXECUTE ON FUNCTION rf_ok(int) TO repl"}})
	if err := p.RestartSubscription(ctx); err != nil {
		t.Fatal(err)
	}
	failsAfter("after the GRANT")
	msg := waitCritical(t, cfg, p.Sub(), "provider_connection_failed", nil)
	lsn := regexp.MustCompile(`fails decoding the change at ([0-9A-F]+/[0-9A-F]+) for the role of its provider connection, repl, which may not execute function rf_ok`).FindStringSubmatch(msg)
	if lsn == nil || !strings.Contains(msg, "ERROR: permission denied for function rf_ok (in the output plugin's change callback") ||
		!strings.Contains(msg, "GRANT EXECUTE ON FUNCTION rf_ok TO repl;") {
		t.Fatalf("message: %s", msg)
	}

	code, plan, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if code != 1 || !strings.Contains(plan, "GRANT EXECUTE ON FUNCTION rf_ok TO repl;") || !strings.Contains(plan, "is past "+lsn[1]) {
		t.Fatalf("repair's plan: exit %d\n%s\n%s", code, plan, errOut)
	}
	followOwnerPlan(t, p, cfg, plan, "SELECT DISTINCT proowner::regrole FROM pg_proc WHERE proname = 'rf_ok';",
		[2]string{"SELECT v FROM rf WHERE id = 1", "before the grant"},
		"INSERT INTO rf VALUES (2, 'as repl again')", [2]string{"SELECT v FROM rf WHERE id = 2", "as repl again"})
}

// replPair is a pair of its own with 3 rows, both servers logging through
// the logging collector, whose subscription streams as the role repl
// (pgtest.Pair.ConnectAs).
func replPair(t *testing.T) *pgtest.Pair {
	t.Helper()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 3, SubscriberConf: pgtest.LogCollector, ProviderConf: pgtest.LogCollector})
	if err := p.ConnectAs(context.Background(), p.Sub(), "repl", "user=repl"); err != nil {
		t.Fatal(err)
	}
	return p
}
