package monitor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// stmt is a statement to run on one side.
type stmt struct {
	db  pgtest.DB
	sql string
}

// A table added to a subscription's set is compared in the next cycle, not
// up to schemaEvery later: added without its copy, with a generated column
// only the subscriber has (whose first change would crash the subscriber's
// server: schema_mismatch, critical); added with its copy, which
// PostgreSQL refuses (table_copy_refused). Before, the daemon reused the
// comparison it had made before, for up to a minute.
func TestATableAddedToASetIsComparedAtOnce(t *testing.T) {
	p, m := pairMonitor(t)
	if got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch); got {
		t.Fatalf("schema_mismatch before the tables were added: %+v", r)
	}
	for _, step := range []struct {
		code string
		sql  []stmt
	}{
		{diagnose.CodeSchemaMismatch, []stmt{
			{p.Provider, "CREATE TABLE gencol (id int PRIMARY KEY, v int)"},
			{p.Subscriber, "CREATE TABLE gencol (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
			{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gencol', false)"},
		}},
		{diagnose.CodeTableCopyRefused, []stmt{
			{p.Provider, "CREATE TABLE gen (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
			{p.Subscriber, "CREATE TABLE gen (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
			{p.Provider, "INSERT INTO gen (id, v) VALUES (1, 1)"},
			{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gen', true)"},
		}},
	} {
		if got, r := hasFinding(t, m, p, step.code); got {
			t.Fatalf("%s before its table was added: %+v", step.code, r)
		}
		run(t, step.sql...)
		waitFinding(t, m, p, step.code, true)
	}
}

// DDL run on one side only (pglogical does not replicate it: a migration
// run on the provider alone, or a fix on the subscriber) is compared in the
// next cycle, on either side, and so is its repair; before, the daemon
// reused the comparison it had made before, for up to a minute.
func TestDDLOnOneSideIsComparedAtOnce(t *testing.T) {
	p, m := pairMonitor(t)
	if got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch); got {
		t.Fatalf("schema_mismatch before any DDL: %+v", r)
	}
	for _, step := range []struct {
		what string
		sql  []stmt
		want bool
	}{
		// integer read in binary as bigint: every change to the table fails
		{"a column widened on the provider", []stmt{{p.Provider, "ALTER TABLE items_0 ALTER COLUMN n TYPE bigint"}}, true},
		{"the same on the subscriber", []stmt{{p.Subscriber, "ALTER TABLE items_0 ALTER COLUMN n TYPE bigint"}}, false},
		// pglogical 2.4.2 deletes the subscriber's sync status of the table
		// then: the probe must watch the table without it.
		{"a column dropped on the subscriber", []stmt{{p.Subscriber, "ALTER TABLE items_0 DROP COLUMN val"}}, true},
		{"the column added back", []stmt{{p.Subscriber, "ALTER TABLE items_0 ADD COLUMN val text"}}, false},
		{"an enum column added on both sides", []stmt{
			{p.Provider, "CREATE TYPE mood AS ENUM ('sad', 'happy'); ALTER TABLE items_0 ADD COLUMN m mood"},
			{p.Subscriber, "CREATE TYPE mood AS ENUM ('sad', 'happy'); ALTER TABLE items_0 ADD COLUMN m mood"}}, false},
		{"a label added on the provider", []stmt{{p.Provider, "ALTER TYPE mood ADD VALUE 'ok'"}}, true},
		{"the same on the subscriber", []stmt{{p.Subscriber, "ALTER TYPE mood ADD VALUE 'ok'"}}, false},
		// The enum of an array column, and under a domain.
		{"an enum array and a domain over an enum added on both sides", []stmt{
			{p.Provider, "CREATE TYPE tag AS ENUM ('a'); CREATE TYPE hue AS ENUM ('red'); CREATE DOMAIN colour AS hue; ALTER TABLE items_0 ADD COLUMN tags tag[], ADD COLUMN c colour"},
			{p.Subscriber, "CREATE TYPE tag AS ENUM ('a'); CREATE TYPE hue AS ENUM ('red'); CREATE DOMAIN colour AS hue; ALTER TABLE items_0 ADD COLUMN tags tag[], ADD COLUMN c colour"}}, false},
		{"a label added to the array's enum on the provider", []stmt{{p.Provider, "ALTER TYPE tag ADD VALUE 'b'"}}, true},
		{"the same on the subscriber", []stmt{{p.Subscriber, "ALTER TYPE tag ADD VALUE 'b'"}}, false},
		{"a label added to the domain's enum on the provider", []stmt{{p.Provider, "ALTER TYPE hue ADD VALUE 'blue'"}}, true},
		{"the same on the subscriber", []stmt{{p.Subscriber, "ALTER TYPE hue ADD VALUE 'blue'"}}, false},
		{"a column added on the provider", []stmt{{p.Provider, "ALTER TABLE items_0 ADD COLUMN extra int"}}, true},
	} {
		t.Logf("%s", step.what)
		run(t, step.sql...)
		waitFinding(t, m, p, diagnose.CodeSchemaMismatch, step.want)
		if step.what == "a column dropped on the subscriber" {
			var n int
			if err := p.Subscriber.QueryRow(context.Background(), "SELECT count(*) FROM pglogical.local_sync_status WHERE sync_relname = 'items_0'", []any{&n}); err != nil || n != 0 {
				t.Fatalf("the subscriber's sync status of items_0 after DROP COLUMN: %d rows (%v); pglogical 2.4.2 deletes it", n, err)
			}
		}
	}
}

// DDL replicated through pglogical (replicate_ddl_command, the way
// pglogical's documentation gives) reaches the subscriber after the
// provider: here 3 s after, the subscription's apply_delay. The comparison
// the provider's change starts waits until the subscriber has confirmed
// the provider's position of that change: no schema_mismatch comes and
// goes meanwhile (it would reach Slack and the alerts).
func TestDDLReplicatedThroughPglogicalRaisesNothing(t *testing.T) {
	p, m := pairMonitorWith(t, pgtest.PairOptions{Rows: 1, ApplyDelay: 3 * time.Second})
	if got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch); got {
		t.Fatalf("schema_mismatch before any DDL: %+v", r)
	}
	if cycles := replicateDDL(t, p, m, nil); cycles < 3 {
		t.Errorf("only %d cycles before the subscriber applied the DDL: the test did not look while it lagged", cycles)
	}
}

// The same DDL a second before the last comparison is a minute old: the
// comparison due then waits too.
func TestDDLReplicatedAsTheComparisonFallsDue(t *testing.T) {
	p, m := pairMonitorWith(t, pgtest.PairOptions{Rows: 1, ApplyDelay: 3 * time.Second})
	if got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch); got {
		t.Fatalf("schema_mismatch before any DDL: %+v", r)
	}
	skew := schemaEvery - time.Second
	m.now = func() time.Time { return time.Now().Add(skew) }
	if cycles := replicateDDL(t, p, m, nil); cycles < 3 {
		t.Errorf("only %d cycles before the subscriber applied the DDL: the test did not look while it lagged", cycles)
	}
}

// A subscriber that lags more than schemaWaitStill behind the DDL, while
// it applies (its origin moves), is waited for: here its clock runs 10 s a
// cycle, with a row written on the provider each cycle.
func TestDDLReplicatedToASubscriberFarBehind(t *testing.T) {
	ctx := context.Background()
	p, m := pairMonitorWith(t, pgtest.PairOptions{Rows: 1, ApplyDelay: 3 * time.Second})
	if got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch); got {
		t.Fatalf("schema_mismatch before any DDL: %+v", r)
	}
	id := 1000
	write := func() {
		id++
		if err := p.Provider.Exec(ctx, fmt.Sprintf("INSERT INTO items_0 (id, val) VALUES (%d, 'w')", id)); err != nil {
			t.Fatal(err)
		}
	}
	// Rows flowing first: the subscriber applies one every cycle, 3 s late.
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		write()
		var n int
		err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id > 1000", []any{&n})
		return err == nil && n > 0
	}); err != nil {
		t.Fatalf("no row reached the subscriber: %v", err)
	}
	var skew time.Duration
	m.now = func() time.Time { return time.Now().Add(skew) }
	tick := time.NewTicker(200 * time.Millisecond) // the pace of the writes and cycles, not a wait for anything
	defer tick.Stop()
	cycles := replicateDDL(t, p, m, func() {
		<-tick.C
		write()
		skew += 10 * time.Second
	})
	if lag := time.Duration(cycles) * 10 * time.Second; lag <= schemaWaitStill {
		t.Errorf("the subscriber lagged only %s on the monitor's clock (%d cycles): not more than schemaWaitStill", lag, cycles)
	}
}

// A subscriber that does not apply the DDL (its apply worker waits for a
// lock held on the subscriber) is compared once its origin has stood
// still for schemaWaitStill: the mismatch is then real, and reported.
func TestDDLReplicatedToAStuckSubscriber(t *testing.T) {
	ctx := context.Background()
	p, m := pairMonitor(t)
	if got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch); got {
		t.Fatalf("schema_mismatch before any DDL: %+v", r)
	}
	conn, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE items_0 IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	var skew time.Duration
	m.now = func() time.Time { return time.Now().Add(skew) }
	run(t, stmt{p.Provider, "SELECT pglogical.replicate_ddl_command('ALTER TABLE public.items_0 ADD COLUMN extra bigint', ARRAY['set_0'])"})
	// The apply worker waits for the lock: the DDL has reached it.
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var n int
		err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'items_0'::regclass", []any{&n})
		return err == nil && n > 0
	}); err != nil {
		t.Fatalf("the apply worker never waited for the lock: %v", err)
	}
	for {
		got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch)
		switch {
		case got && skew < schemaWaitStill:
			t.Fatalf("schema_mismatch %s after the DDL on the monitor's clock, before it waited for the subscriber: %+v", skew, r)
		case got:
			return
		case skew > schemaWaitStill+time.Minute:
			t.Fatalf("no schema_mismatch %s after the DDL, the subscriber stuck behind it: %+v", skew, r)
		}
		skew += 5 * time.Second
	}
}

// replicateDDL adds a column to items_0 through pglogical, then runs
// cycles (each after every, when not nil) until the subscriber has the
// column and two more; none may have schema_mismatch. It returns the
// cycles run before the subscriber had the column.
func replicateDDL(t *testing.T, p *pgtest.Pair, m *Monitor, every func()) int {
	t.Helper()
	ctx := context.Background()
	run(t, stmt{p.Provider, "SELECT pglogical.replicate_ddl_command('ALTER TABLE public.items_0 ADD COLUMN extra bigint', ARRAY['set_0'])"})
	applied := func() bool {
		var n int
		if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items_0'::regclass AND attname = 'extra'", []any{&n}); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	cycles, after := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for after < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber has not applied the DDL 30 s later (%d cycles)", cycles)
		}
		if every != nil {
			every()
		}
		done := applied() // before the cycle: a cycle after it compares both sides as they are
		if got, r := hasFinding(t, m, p, diagnose.CodeSchemaMismatch); got {
			t.Fatalf("schema_mismatch %d cycles after the DDL, before the subscriber applied it (applied: %v): %+v", cycles, done, r)
		}
		if done {
			after++
		} else {
			cycles++
		}
	}
	return cycles
}

// A provider connection string that names no user leaves only the
// walsender streaming from the subscription's slot to say the role its
// copies run as (copy_not_permitted). While the subscription does not
// stream (disabled here; a restart, a network cut), the role read last
// stands: the finding stays, naming it, and does not come and go with
// every reconnection.
func TestTheProviderRoleStandsWhileNoWalsenderSaysIt(t *testing.T) {
	p, m := pairMonitorWith(t, pgtest.PairOptions{Own: true, Rows: 1, SubscriberEnv: []string{"PGUSER=repl"}})
	ctx := context.Background()
	if err := p.ConnectAs(ctx, p.Sub(), "repl", ""); err != nil {
		t.Fatal(err)
	}
	run(t, stmt{p.Provider, "REVOKE SELECT ON items_0 FROM repl"})
	waitFinding(t, m, p, diagnose.CodeCopyNotPermitted, true)
	run(t, stmt{p.Subscriber, fmt.Sprintf("SELECT pglogical.alter_subscription_disable('%s', true)", p.Sub())})
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	var active bool
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return p.Provider.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", []any{&active}, slot) == nil && !active
	}); err != nil {
		t.Fatal("the slot is still in use after the subscription was disabled")
	}
	got, r := hasFinding(t, m, p, diagnose.CodeCopyNotPermitted)
	s, _ := r.Subscription(p.Sub(), "subscriber")
	if !got || s.Status != "disabled" || s.ProviderRole != "repl" {
		t.Errorf("disabled: copy_not_permitted %v, status %s, provider_role %q: %+v", got, s.Status, s.ProviderRole, s.Findings)
	}
	for _, f := range s.Findings {
		if f.Code == diagnose.CodeCopyNotPermitted && !strings.Contains(f.Message, "GRANT SELECT ON public.items_0 TO repl;") {
			t.Errorf("copy_not_permitted: %s", f.Message)
		}
	}
}

// pairMonitor is a monitor of a new pair with one replicated row.
func pairMonitor(t *testing.T) (*pgtest.Pair, *Monitor) {
	t.Helper()
	return pairMonitorWith(t, pgtest.PairOptions{Rows: 1})
}

// pairMonitorWith is a monitor of a new pair made with opt.
func pairMonitorWith(t *testing.T, opt pgtest.PairOptions) (*pgtest.Pair, *Monitor) {
	t.Helper()
	p := pgtest.NewPair(t, opt)
	cfg, err := config.Parse("pglmon.yaml", []byte(p.NodesYAML()+"probe:\n  timeout: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := New(cfg)
	t.Cleanup(func() { m.Close(context.Background()) })
	return p, m
}

// hasFinding runs a cycle and says whether the pair's subscription has a
// finding of code.
func hasFinding(t *testing.T, m *Monitor, p *pgtest.Pair, code string) (bool, diagnose.Report) {
	t.Helper()
	r, _ := m.Cycle(context.Background())
	s, ok := r.Subscription(p.Sub(), "subscriber")
	if !ok {
		t.Fatalf("no subscription %s in %+v", p.Sub(), r)
	}
	for _, f := range s.Findings {
		if f.Code == code {
			return true, r
		}
	}
	return false, r
}

// waitFinding runs cycles until the subscription has (want) or lacks a
// finding of code, for well under schemaEvery, so that a comparison made
// before cannot have expired meanwhile.
func waitFinding(t *testing.T, m *Monitor, p *pgtest.Pair, code string, want bool) {
	t.Helper()
	var last diagnose.Report
	wait := schemaEvery / 3
	if err := pgtest.Poll(context.Background(), wait, func() bool {
		got, r := hasFinding(t, m, p, code)
		last = r
		return got == want
	}); err != nil {
		t.Fatalf("%s still %v after %s: %+v", code, !want, wait, last)
	}
}

// run runs statements, each on its side.
func run(t *testing.T, sql ...stmt) {
	t.Helper()
	for _, st := range sql {
		if err := st.db.Exec(context.Background(), st.sql); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
}
