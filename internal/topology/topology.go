// Package topology reads which tables the replication sets of the
// configuration stand for on a provider, and which of them pglogical does
// not hold there: a table created after `pglmon setup apply` in a schema a
// set lists, or a partition added later to a listed table, replicates to no
// subscriber until someone adds it to the set. `pglmon setup` and the
// monitor share this reading, so what the monitor reports is what the next
// `setup apply` adds.
package topology

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
)

// Table is a table pglogical can be given, as a set's declaration names it.
type Table struct {
	OID uint32
	// Name is schema.table, each part quoted where SQL needs it (it casts
	// to regclass as is).
	Name            string
	Schema, Relname string
	// Unlogged: pglogical refuses it ("UNLOGGED and TEMP tables cannot be
	// replicated").
	Unlogged bool
}

// leavesQuery lists the plain tables among the relations its start query
// (%s) selects, and the partitions, at any depth, of the partitioned ones.
// pglogical 2 cannot copy a partitioned table (its sync worker fails with
// "cannot copy from partitioned table" for ever) and decodes changes per
// partition: the partitions are what it replicates.
const leavesQuery = `WITH RECURSIVE tree(relid) AS (
		%s
	UNION
		SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid
		JOIN pg_class p ON p.oid = i.inhparent AND p.relkind = 'p')
	SELECT c.oid, format('%%I.%%I', n.nspname, c.relname), n.nspname::text, c.relname::text, c.relpersistence = 'u'
	FROM tree JOIN pg_class c ON c.oid = tree.relid
		JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind = 'r' ORDER BY 2`

func leaves(ctx context.Context, c *pgx.Conn, start string, arg any) ([]Table, error) {
	rows, err := c.Query(ctx, fmt.Sprintf(leavesQuery, start), arg)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Table, error) {
		var t Table
		err := row.Scan(&t.OID, &t.Name, &t.Schema, &t.Relname, &t.Unlogged)
		return t, err
	})
}

// OfTable lists what the table name (schema.table) stands for: itself, or
// the partitions of a partitioned table; partitioned says which. None: no
// such table (or a partitioned one without partitions).
func OfTable(ctx context.Context, c *pgx.Conn, name string) (tables []Table, partitioned bool, err error) {
	tables, err = leaves(ctx, c, `SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')`, name)
	if err != nil || len(tables) == 0 {
		return tables, false, err
	}
	err = c.QueryRow(ctx, "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)", name).Scan(&partitioned)
	return tables, partitioned, err
}

// OfSchemas lists the tables of the schemas, partitions included.
func OfSchemas(ctx context.Context, c *pgx.Conn, schemas []string) ([]Table, error) {
	return leaves(ctx, c, `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p')`, schemas)
}

// membersQuery: whether the set exists on the node, and the tables it holds.
const membersQuery = `SELECT EXISTS (SELECT 1 FROM pglogical.replication_set WHERE set_name = $1),
	coalesce((SELECT array_agg(rt.set_reloid::oid) FROM pglogical.replication_set_table rt
		JOIN pglogical.replication_set s ON s.set_id = rt.set_id WHERE s.set_name = $1), '{}')`

// Missing lists, for each set of sets that exists on the node c is
// connected to, the tables its declaration stands for that are not in it.
// A set not created yet, a listed table that does not exist and an
// UNLOGGED table are `pglmon setup plan`'s to report, not this.
func Missing(ctx context.Context, c *pgx.Conn, sets []config.ReplicationSet) ([]diagnose.UnreplicatedTable, error) {
	var out []diagnose.UnreplicatedTable
	for _, rs := range sets {
		var exists bool
		var members []uint32
		if err := c.QueryRow(ctx, membersQuery, rs.Name).Scan(&exists, &members); err != nil {
			return nil, fmt.Errorf("read replication set %s: %w", rs.Name, err)
		}
		if !exists {
			continue
		}
		declared, err := OfSchemas(ctx, c, rs.Schemas)
		if err != nil {
			return nil, fmt.Errorf("read the tables of replication set %s: %w", rs.Name, err)
		}
		for _, name := range rs.Tables {
			ts, _, err := OfTable(ctx, c, name)
			if err != nil {
				return nil, fmt.Errorf("read table %s of replication set %s: %w", name, rs.Name, err)
			}
			declared = append(declared, ts...)
		}
		seen := map[uint32]bool{}
		for _, t := range declared {
			if t.Unlogged || seen[t.OID] || slices.Contains(members, t.OID) {
				continue
			}
			seen[t.OID] = true
			out = append(out, diagnose.UnreplicatedTable{Set: rs.Name, Table: t.Name, Schema: t.Schema, Relname: t.Relname})
		}
	}
	slices.SortFunc(out, func(a, b diagnose.UnreplicatedTable) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Set, b.Set))
	})
	return out, nil
}
