package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// exhaustOrigins restarts the subscriber with max_replication_slots at
// the number of replication origin states its subscriptions hold, then
// adds a table with three rows to sub_0's set with its copy: pglogical's
// sync worker finds no state for the copy's origin, fails at each start
// and is started again for ever, and the table stays empty
// (origin_slots_exhausted).
func exhaustOrigins(ctx context.Context, p *pgtest.Pair) error {
	var held int
	if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pg_replication_origin_status", []any{&held}); err != nil {
		return err
	}
	held = max(held, 1)
	if err := restartWith(ctx, p, fmt.Sprintf("ALTER SYSTEM SET max_replication_slots = %d", held)); err != nil {
		return err
	}
	const table = "CREATE TABLE IF NOT EXISTS demo_origins (id int PRIMARY KEY, note text)"
	if err := p.Subscriber.Exec(ctx, table); err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, table+"; INSERT INTO demo_origins VALUES (1, 'a'), (2, 'b'), (3, 'c') ON CONFLICT DO NOTHING"); err != nil {
		return err
	}
	if err := copyIntoSet(ctx, p, "demo_origins"); err != nil {
		return err
	}
	fmt.Printf("the subscriber runs with max_replication_slots = %d now, every replication origin state held (its subscriptions'); demo_origins, 3 rows on the provider, joined sub_0's set with its copy: "+
		"pglogical's sync worker finds no state for the copy, fails at each start and is started again for ever (the subscriber's log), the table stays empty and sub_0 says replicating; "+
		"origin_slots_exhausted at once, and bin/pglmon repair --config %s --subscription sub_0 prints the way out; bin/pglmon-demo fix origins takes it (raises the setting: a restart), and pglogical copies the table by itself\n",
		held, filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// copyIntoSet adds table (public, a lower-case name) to set_0 with its
// copy, or, already there (a breakage run again), has sub_0 copy it again
// (pglogical empties it first).
func copyIntoSet(ctx context.Context, p *pgtest.Pair, table string) error {
	var inSet bool
	if err := p.Provider.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pglogical.replication_set_table WHERE set_reloid = $1::regclass)", []any{&inSet}, table); err != nil {
		return err
	}
	if inSet {
		return p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_resynchronize_table('sub_0', $1::regclass)", table)
	}
	return p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', $1::regclass, true)", table)
}

// fixOrigins puts max_replication_slots back to the demo's and restarts the
// subscriber: pglogical's sync worker takes a state at its next start.
func fixOrigins(ctx context.Context) error {
	p, err := pair()
	if err != nil {
		return err
	}
	if err := restartWith(ctx, p, "ALTER SYSTEM SET max_replication_slots = 128"); err != nil {
		return err
	}
	fmt.Println("max_replication_slots is the demo's again (128) on the subscriber; pglogical copies demo_origins within seconds, and origin_slots_exhausted goes at the daemon's next cycle")
	return nil
}

// restartWith runs an ALTER SYSTEM on the subscriber, restarts it, and
// waits for sub_0 to replicate again.
func restartWith(ctx context.Context, p *pgtest.Pair, alter string) error {
	if err := p.Subscriber.Exec(ctx, alter); err != nil {
		return err
	}
	if err := p.Subscriber.Cluster.Stop(ctx); err != nil {
		return err
	}
	if err := p.Subscriber.Cluster.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute); err != nil {
		return errors.Join(errors.New("the subscriber restarted, but sub_0 does not replicate"), err)
	}
	return nil
}
