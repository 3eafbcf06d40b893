package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// The role sub_0 copies as after break grant, and its interface.
const (
	copierRole = "demo_copier"
	copierIf   = "demo_copier_if"
)

// denyGrant has sub_0 connect to the provider as demo_copier, a role with
// LOGIN REPLICATION that may read pglogical's catalogs and the demo's
// tables but not demo_grant, then adds demo_grant (5 rows on the
// provider) to sub_0's set with its copy: pglogical's sync worker fails at
// each try (permission denied for table demo_grant), for ever, and the
// table stays empty while sub_0 says replicating (table_sync_error). Safe
// to run again.
func denyGrant(ctx context.Context, p *pgtest.Pair) error {
	const table = "CREATE TABLE IF NOT EXISTS demo_grant (id int PRIMARY KEY, note text)"
	if err := p.Provider.Exec(ctx, table+"; INSERT INTO demo_grant SELECT g, 'row ' || g FROM generate_series(1, 5) g ON CONFLICT DO NOTHING"); err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, table); err != nil {
		return err
	}
	if err := connectAsCopier(ctx, p, "REVOKE SELECT ON demo_grant FROM "+copierRole); err != nil {
		return err
	}
	if err := copyIntoSet(ctx, p, "demo_grant"); err != nil {
		return err
	}
	fmt.Printf("sub_0 connects to the provider as %s now, which may not read demo_grant (5 rows on the provider), just added to its set with its copy: "+
		"pglogical's sync worker fails at each try, several times a second, for ever (both servers' logs), the table stays empty and sub_0 says replicating; "+
		"table_sync_error within seconds, with the GRANT to run (bin/pglmon status --config %[2]s); bin/pglmon-demo fix grant runs it, and pglogical copies the table at its next try\n",
		copierRole, filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// connectAsCopier makes demo_copier on the provider (LOGIN REPLICATION,
// allowed to use schema pglogical and to read its tables and the demo's),
// runs then on the provider, and has sub_0 connect as demo_copier through
// an interface of its own. Safe to run again.
func connectAsCopier(ctx context.Context, p *pgtest.Pair, then ...string) error {
	for _, sql := range append([]string{
		"DO $$ BEGIN CREATE ROLE " + copierRole + " LOGIN REPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
		"GRANT USAGE ON SCHEMA pglogical TO " + copierRole,
		"GRANT SELECT ON ALL TABLES IN SCHEMA pglogical, public TO " + copierRole,
	}, then...) {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			return err
		}
	}
	node, _, err := providerInterface(ctx, p)
	if err != nil {
		return err
	}
	var has bool
	if err := p.Subscriber.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pglogical.node_interface WHERE if_name = $1)", []any{&has}, copierIf); err != nil {
		return err
	}
	if !has {
		dsn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable", p.Provider.Cluster.Host, p.Provider.Cluster.Port, p.Provider.Name, copierRole)
		if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_node_add_interface($1, $2, $3)", node, copierIf, dsn); err != nil {
			return err
		}
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_interface('sub_0', $1)", copierIf); err != nil {
		return err
	}
	return p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute)
}

// fixGrant grants demo_copier SELECT on demo_grant, waits for pglogical
// to copy it, then has sub_0 connect as before break grant.
func fixGrant(ctx context.Context) error {
	p, err := pair()
	if err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, "GRANT SELECT ON demo_grant TO "+copierRole); err != nil {
		return err
	}
	var status string
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT coalesce((SELECT sync_status::text FROM pglogical.local_sync_status WHERE sync_relname = 'demo_grant'), 'none')", []any{&status}) == nil && status == "r"
	}); err != nil {
		return fmt.Errorf("demo_grant not copied a minute after the grant (sync status %s)", status)
	}
	_, first, err := providerInterface(ctx, p)
	if err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_interface('sub_0', $1)", first); err != nil {
		return err
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute); err != nil {
		return errors.Join(errors.New("sub_0 connects as before, but does not replicate"), err)
	}
	fmt.Printf("GRANT SELECT ON demo_grant TO %s run on the provider: pglogical copied the table (5 rows), table_sync_error goes at the daemon's next cycle; sub_0 connects as postgres again (interface %s)\n", copierRole, first)
	return nil
}

// providerInterface returns the name of sub_0's provider node on the
// subscriber, and an interface of it other than demo_copier's (the one
// create_subscription made).
func providerInterface(ctx context.Context, p *pgtest.Pair) (node, first string, err error) {
	err = p.Subscriber.QueryRow(ctx, `SELECT n.node_name, (SELECT i.if_name FROM pglogical.node_interface i WHERE i.if_nodeid = n.node_id AND i.if_name <> $1 ORDER BY i.if_name LIMIT 1)
		FROM pglogical.subscription s JOIN pglogical.node n ON n.node_id = s.sub_origin WHERE s.sub_name = 'sub_0'`, []any{&node, &first}, copierIf)
	return node, first, err
}
