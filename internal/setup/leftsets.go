package setup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgident"
)

// A table pglogical copied for a subscription keeps its sync status on the
// subscriber after it leaves the subscription's sets (table_left_set).
// Put back, pglogical copies nothing (measured on pglogical 2.4.2: neither
// replication_set_add_table with synchronize_data nor
// alter_subscription_synchronize after alter_subscription_add_replication_set
// copies a table whose sync status says ready), so the changes made while it
// was out would stay missing. Apply first forgets that sync status, then
// puts the table back with its copy, which then runs as for a new table (onto
// an empty table: checkCopies refuses one holding rows). Forgetting is what
// DROP TABLE on the subscriber does to it too. Re-run after a crash between
// the two, the plan finds no sync status left and an empty table, and puts
// the table back with its copy.

// forgetSyncSQL deletes subscription $1's sync status of table $2 (as
// regclass reads it), when ready: one of a copy still under way is its sync
// worker's, which would mark the next copy ready when it ends (measured:
// a table emptied and forgotten while its copy caught up was left empty
// and marked ready).
const forgetSyncSQL = `DELETE FROM pglogical.local_sync_status s USING pglogical.subscription sub, pg_class c, pg_namespace n
WHERE sub.sub_id = s.sync_subid AND sub.sub_name = $1 AND c.oid = to_regclass($2) AND n.oid = c.relnamespace
	AND s.sync_nspname = n.nspname AND s.sync_relname = c.relname AND s.sync_status = 'r'`

// syncStatusSQL is subscription $1's sync status of table $2 ($3).
const syncStatusSQL = `SELECT s.sync_status::text FROM pglogical.local_sync_status s JOIN pglogical.subscription sub ON sub.sub_id = s.sync_subid
WHERE sub.sub_name = $1 AND s.sync_nspname = $2 AND s.sync_relname = $3`

// busy says, as a problem of the plan, that pglogical's copy of rel for
// sb is under way (not ready) while rel is in none of its sets: forgetting
// its sync status now would race its sync worker.
func busy(ctx context.Context, sub *pgx.Conn, sb config.Subscription, rel drift.Relation) (*Problem, error) {
	var st string
	err := sub.QueryRow(ctx, syncStatusSQL, sb.Name, rel.Schema, rel.Name).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && st == "r") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Problem{sb.Subscriber, fmt.Sprintf("pglogical's copy of %s for subscription %s is under way (sync status %s), though the table is in none of its replication sets now",
		pgident.Regclass(rel.Schema, rel.Name), sb.Name, st),
		"wait until it ends (pglogical.show_subscription_table says replicating), then plan again: apply copies the table again then"}, nil
}

// relationSQL names table $1 (as regclass reads it) by schema and name,
// unquoted; no row when it does not exist.
const relationSQL = `SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1)`

func relationOf(ctx context.Context, c *pgx.Conn, table string) (drift.Relation, bool, error) {
	var r drift.Relation
	err := c.QueryRow(ctx, relationSQL, table).Scan(&r.Schema, &r.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

// leftSets caches, per subscription, the tables pglogical copied for it
// that left its sets (drift.LeftSets); none for a subscription that does
// not exist yet.
type leftSets struct {
	conns map[string]*pgx.Conn
	by    map[string]map[drift.Relation]bool
}

func (l *leftSets) of(ctx context.Context, sb config.Subscription) (map[drift.Relation]bool, error) {
	if m, ok := l.by[sb.Name+"@"+sb.Subscriber]; ok {
		return m, nil
	}
	sub := l.conns[sb.Subscriber]
	have, err := subscriptionSets(ctx, sub, sb.Name)
	if err != nil {
		return nil, err
	}
	m := map[drift.Relation]bool{}
	if have != nil {
		ext, err := one[bool](ctx, l.conns[sb.Provider], hasPglogicalSQL)
		if err != nil {
			return nil, err
		}
		if ext {
			rels, err := drift.LeftSets(ctx, l.conns[sb.Provider], sub, sb.Name, have)
			if err != nil {
				return nil, err
			}
			for _, r := range rels {
				m[r] = true
			}
		}
	}
	if l.by == nil {
		l.by = map[string]map[drift.Relation]bool{}
	}
	l.by[sb.Name+"@"+sb.Subscriber] = m
	return m, nil
}

// returning lists, sorted, the tables of left that come back to
// subscription sb with the sets added: those the sets hold on the provider
// now, and those the configuration gives them (apply adds them first).
func returning(ctx context.Context, prov *pgx.Conn, sets []string, configured []string, left map[drift.Relation]bool) ([]drift.Relation, error) {
	if len(left) == 0 {
		return nil, nil
	}
	in, err := drift.SetTables(ctx, prov, sets)
	if err != nil {
		return nil, err
	}
	for _, t := range configured {
		r, ok, err := relationOf(ctx, prov, t)
		if err != nil {
			return nil, fmt.Errorf("read table %s: %w", t, err)
		}
		if ok {
			in = append(in, r)
		}
	}
	var out []drift.Relation
	for _, r := range in {
		if left[r] && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b drift.Relation) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

func names(rels []drift.Relation) string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = pgident.Regclass(r.Schema, r.Name)
	}
	return strings.Join(out, ", ")
}

// missedWarning is said when such a table comes back without a copy
// (synchronize_data: false).
func missedWarning(sb config.Subscription, rels []drift.Relation) string {
	return fmt.Sprintf("pglogical copied %s to subscription %s before it left the subscription's sets; put back without a copy (synchronize_data: false), it lacks the changes made meanwhile: after apply, pglmon verify --subscription %s shows them",
		names(rels), sb.Name, sb.Name)
}
