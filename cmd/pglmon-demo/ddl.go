package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// queuedDDL is the statement break ddl queues on the provider: it changes
// demo_ddl, which only the provider has.
const queuedDDL = "ALTER TABLE public.demo_ddl ADD COLUMN IF NOT EXISTS note text"

// refuseDDL gives sub_0 the ddl_sql set, makes demo_ddl on the provider
// alone (as a migration run there by hand would), queues queuedDDL through
// pglogical.replicate_ddl_command, and writes a row after it into
// demo_ddl_rows, which set_0 replicates:
// the subscriber has no demo_ddl, so its apply worker fails on the
// statement at each start, for ever, and the row never arrives
// (apply_error). Safe to run again: it drops the subscriber's demo_ddl
// that fix ddl made first.
func refuseDDL(ctx context.Context, p *pgtest.Pair) error {
	var has bool
	if err := p.Subscriber.QueryRow(ctx, "SELECT 'ddl_sql' = ANY(sub_replication_sets) FROM pglogical.subscription WHERE sub_name = 'sub_0'", []any{&has}); err != nil {
		return err
	}
	if !has {
		// Adding a set ends the apply worker, and pglogical's manager may
		// start the next only at its round, up to 180 s later: a disable
		// and an enable start it now.
		for _, sql := range []string{
			"SELECT pglogical.alter_subscription_add_replication_set('sub_0', 'ddl_sql')",
			"SELECT pglogical.alter_subscription_disable('sub_0', true)",
			"SELECT pglogical.alter_subscription_enable('sub_0', true)",
		} {
			if err := p.Subscriber.Exec(ctx, sql); err != nil {
				return err
			}
		}
		if err := p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute); err != nil {
			return err
		}
	}
	// demo_ddl_rows, replicated (set_0), receives a row after the DDL.
	if err := p.Subscriber.Exec(ctx, "DROP TABLE IF EXISTS demo_ddl"); err != nil {
		return err
	}
	if err := replicatedTable(ctx, p, "demo_ddl_rows"); err != nil {
		return err
	}
	for _, sql := range []string{
		"CREATE TABLE IF NOT EXISTS demo_ddl (id int PRIMARY KEY)",
		"SELECT pglogical.replicate_ddl_command($1, '{ddl_sql}')",
		"INSERT INTO demo_ddl_rows SELECT coalesce(max(id), 0) + 1 FROM demo_ddl_rows",
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{queuedDDL}
		}
		if err := p.Provider.Exec(ctx, sql, args...); err != nil {
			return err
		}
	}
	fmt.Printf("demo_ddl made on the provider alone, then %q queued there through pglogical.replicate_ddl_command (sub_0 now has the ddl_sql set), then a row written into demo_ddl_rows (set_0): "+
		"the subscriber has no demo_ddl, so sub_0's apply worker fails on the statement at each start, for ever, and the row never arrives; "+
		"apply_error once sub_0 has been down for down_grace, naming the statement (no restart tried); bin/pglmon repair --config %s --subscription sub_0 prints the two ways out; "+
		"bin/pglmon-demo fix ddl takes the first: it makes demo_ddl on the subscriber, then restarts sub_0\n", queuedDDL, filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// fixDDL makes demo_ddl on the subscriber as the provider had it before
// the queued statement, then restarts sub_0 as pglmon's restart remedy
// does (pglogical 2.4.2 starts an apply worker that fails at once again
// only 180 s later): its apply worker runs the statement. It waits for
// sub_0 to replicate.
func fixDDL(ctx context.Context) error {
	p, err := pair()
	if err != nil {
		return err
	}
	for _, sql := range []string{
		"CREATE TABLE IF NOT EXISTS demo_ddl (id int PRIMARY KEY)",
		"SELECT pglogical.alter_subscription_disable('sub_0', true)",
		"SELECT pglogical.alter_subscription_enable('sub_0', true)",
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			return err
		}
	}
	var n int
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'demo_ddl'::regclass AND attname = 'note'", []any{&n}) == nil && n == 1
	}); err != nil {
		return fmt.Errorf("pglogical did not run %q on the subscriber within a minute of the restart", queuedDDL)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute); err != nil {
		return err
	}
	fmt.Printf("demo_ddl made on the subscriber and sub_0 restarted (as bin/pglmon repair --remedy restart does): its apply worker ran %q there, and sub_0 replicates again, the row written after it included\n", queuedDDL)
	return nil
}

// replicatedTable makes table (id int PRIMARY KEY) on both sides, if
// missing, and adds it to set_0 without a copy, if not in it. Safe to run
// again.
func replicatedTable(ctx context.Context, p *pgtest.Pair, table string) error {
	create := "CREATE TABLE IF NOT EXISTS " + table + " (id int PRIMARY KEY)"
	for _, d := range []pgtest.DB{p.Subscriber, p.Provider} {
		if err := d.Exec(ctx, create); err != nil {
			return err
		}
	}
	var in bool
	if err := p.Provider.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pglogical.replication_set_table t JOIN pglogical.replication_set s USING (set_id)
		WHERE s.set_name = 'set_0' AND t.set_reloid = $1::regclass)`, []any{&in}, table); err != nil {
		return err
	}
	if in {
		return nil
	}
	return p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', $1::regclass, false)", table)
}
