package setup

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgident"
)

// A subscriber may hold a table that a set of its subscription holds on
// the provider, replicated, with no sync status of it: pglogical 2.4.2
// deletes a table's sync status when a column of it is dropped (its
// object-access hook takes the column for the table; measured: ALTER
// TABLE ... DROP COLUMN on the subscriber, as any migration that drops a
// column on both sides runs), and a table put in a set with
// synchronize_data := false never had one. pglogical's apply goes on
// replicating it either way, but alter_subscription_synchronize, which
// apply runs when it adds a set, copies every table of the subscription's
// sets without a sync status: onto the rows already there, a copy that
// fails (duplicate key) and that pglogical marks ready all the same
// (measured), which the daemon then reports as table_copy_failed with a
// resynchronisation (TRUNCATE and copy) as its plan. Apply marks such a
// table ready first, in the same transaction: pglogical then copies it no
// more, as checkCopies expects of a table the subscription replicates
// already.

// unsyncedQuery lists the tables $1 (schemas), $2 (names) that exist on
// the subscriber and of which subscription $3 has no sync status.
const unsyncedQuery = `SELECT t.s, t.n FROM unnest($1::text[], $2::text[]) AS t(s, n)
JOIN pglogical.subscription sub ON sub.sub_name = $3
WHERE to_regclass(format('%I.%I', t.s, t.n)) IS NOT NULL
	AND NOT EXISTS (SELECT 1 FROM pglogical.local_sync_status l
		WHERE l.sync_subid = sub.sub_id AND l.sync_nspname = t.s AND l.sync_relname = t.n)
ORDER BY 1, 2`

// unsynced lists, sorted, the tables of the sets subscription sb has
// (have) on its provider that its subscriber holds without a sync status,
// but for those of skip (tables coming back to it, to be copied again).
func unsynced(ctx context.Context, prov, sub *pgx.Conn, sb config.Subscription, have []string, skip []drift.Relation) ([]drift.Relation, error) {
	if len(have) == 0 {
		return nil, nil
	}
	in, err := drift.SetTables(ctx, prov, have)
	if err != nil {
		return nil, fmt.Errorf("read the tables of subscription %s's sets on %s: %w", sb.Name, sb.Provider, err)
	}
	schemas, names := []string{}, []string{}
	for _, r := range in {
		if !slices.Contains(skip, r) {
			schemas, names = append(schemas, r.Schema), append(names, r.Name)
		}
	}
	rows, err := sub.Query(ctx, unsyncedQuery, schemas, names, sb.Name)
	if err != nil {
		return nil, fmt.Errorf("read subscription %s's sync status on %s: %w", sb.Name, sb.Subscriber, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (drift.Relation, error) {
		var r drift.Relation
		err := row.Scan(&r.Schema, &r.Name)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read subscription %s's sync status on %s: %w", sb.Name, sb.Subscriber, err)
	}
	return out, nil
}

// readySQL gives subscription sub a ready sync status of the tables rels
// on the subscriber, where it has none (a re-run adds nothing): the row
// pglogical's own copy of a table leaves ('d', a table's copy; the LSN is
// read only while a copy is under way). One statement without parameters,
// to run in a multi-statement transaction.
func readySQL(sub string, rels []drift.Relation) string {
	pairs := make([]string, len(rels))
	for i, r := range rels {
		pairs[i] = "(" + pgident.Literal(r.Schema) + ", " + pgident.Literal(r.Name) + ")"
	}
	return `INSERT INTO pglogical.local_sync_status (sync_kind, sync_subid, sync_nspname, sync_relname, sync_status, sync_statuslsn)
SELECT 'd', sub.sub_id, t.s, t.n, 'r', '0/0' FROM pglogical.subscription sub, (VALUES ` + strings.Join(pairs, ", ") + `) AS t(s, n)
WHERE sub.sub_name = ` + pgident.Literal(sub) + ` AND NOT EXISTS (SELECT 1 FROM pglogical.local_sync_status l
	WHERE l.sync_subid = sub.sub_id AND l.sync_nspname = t.s AND l.sync_relname = t.n)`
}
