package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// usageRows receives, at each break usage, a row written while demo_copier
// lacks USAGE on the provider's schema pglogical (in set_0).
const usageRows = "demo_usage_rows"

// revokeUsage has sub_0 connect to the provider as demo_copier (break
// grant's role), takes its USAGE on schema pglogical away, writes a row
// into demo_usage_rows (set_0), gives USAGE back, and restarts sub_0: pglogical's
// walsender decodes that row with the catalogs as they were when it was
// written, and fails on it at every start, for ever, while the
// subscriber's log says only "data stream ended" (provider_connection_failed,
// read from the provider's log). Safe to run again.
func revokeUsage(ctx context.Context, p *pgtest.Pair) error {
	if err := replicatedTable(ctx, p, usageRows); err != nil {
		return err
	}
	if err := connectAsCopier(ctx, p); err != nil {
		return err
	}
	for _, sql := range []string{
		"REVOKE USAGE ON SCHEMA pglogical FROM " + copierRole,
		"INSERT INTO " + usageRows + " SELECT coalesce(max(id), 0) + 1 FROM " + usageRows,
		"GRANT USAGE ON SCHEMA pglogical TO " + copierRole,
	} {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			return err
		}
	}
	if err := p.RestartSubscription(ctx); err != nil {
		return err
	}
	fmt.Printf("sub_0 connects to the provider as %s, whose USAGE on schema pglogical was revoked, then given back after a row was written into %[3]s: "+
		"pglogical's walsender decodes that row with the catalogs as they were then, and fails on it at every start, for ever (the provider's log: permission denied for schema pglogical, in the change callback); "+
		"the subscriber's log says only \"data stream ended\" and a restart cannot help; provider_connection_failed with the change's position, read from the provider's log "+
		"(bin/pglmon status --config %[2]s); bin/pglmon repair --config %[2]s --subscription sub_0 prints the way out, which bin/pglmon-demo fix usage takes\n",
		copierRole, filepath.Join(dir, "pglmon.yaml"), usageRows)
	return nil
}

// fixUsage has sub_0 connect through its first interface again (as postgres,
// the owner of schema pglogical, or break password's superuser), and
// restarts it: that role could use the schema when the row was written, so
// its walsender sends the row; then waits for it.
func fixUsage(ctx context.Context) error {
	p, err := pair()
	if err != nil {
		return err
	}
	_, first, err := providerInterface(ctx, p)
	if err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_interface('sub_0', $1)", first); err != nil {
		return err
	}
	// After failures pglogical's manager starts the worker again only
	// every 180 s: a restart starts it now (as --remedy restart does).
	if err := p.RestartSubscription(ctx); err != nil {
		return err
	}
	// Each break usage writes one: every one the provider has.
	var want, n int
	if err := p.Provider.QueryRow(ctx, "SELECT count(*) FROM "+usageRows, []any{&want}); err != nil {
		return err
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM "+usageRows, []any{&n}) == nil && n >= want
	}); err != nil {
		status, _ := p.Status(ctx, p.Sub())
		return errors.Join(fmt.Errorf("the rows written while demo_copier lacked USAGE did not arrive a minute after sub_0 connected through interface %s (the subscriber has %d of the provider's %d; sub_0 is %s)", first, n, want, status), err)
	}
	fmt.Printf("sub_0 connects through interface %s again, as before break grant: its role (postgres, the schema's owner, or the superuser break password made) could use schema pglogical when the row was written, so its walsender sent it, and sub_0 replicates; "+
		"provider_connection_failed goes at the daemon's next cycle (to go back to %s, wait until the subscription has applied past the position the finding named)\n", first, copierRole)
	return nil
}
