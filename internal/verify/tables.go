// Package verify compares a subscription's tables on its provider and its
// subscriber: exact row counts, or hash aggregates over primary-key ranges
// bisected down to the keys of the rows that differ. Every statement is one
// short read-only SELECT; nothing takes a lock stronger than a SELECT's.
package verify

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgident"
)

// Table is a replicated table and what is compared of it.
type Table struct {
	Schema, Name string
	// Columns are the replicated columns (pglogical's column list, or all).
	Columns []string
	// ColumnTypes are the provider's types of Columns; HashFuncs the extended
	// hash function of each type's default hash opclass ("" when it has none).
	ColumnTypes, HashFuncs []string
	// Key and KeyTypes are the primary key's columns and their types.
	Key, KeyTypes []string
	// RowFilter is set when the replication set filters rows: the
	// subscriber then holds a subset and only the provider's matching rows count.
	RowFilter string
	// EstimatedRows is the provider's estimate (for progress).
	EstimatedRows int64
	// Replicates says which changes reach the subscriber: a replication set
	// may leave out INSERT, UPDATE or DELETE (an archive keeps deleted rows).
	Replicates Changes
	// SyncStatus is set when pglogical has not finished synchronizing the
	// table on the subscriber: it is not compared.
	SyncStatus string
	// OtherSources are the other subscriptions of the subscriber that
	// replicate the table (pglogical's data gathering): the rows their
	// providers sent are extra here.
	OtherSources []string
	// CopyRefused are the provider's generated columns that pglogical's copy
	// of the table lists (no column list, or one that holds them): measured
	// with pglogical 2.4.2, PostgreSQL refuses that COPY ("column is a
	// generated column") and the sync worker retries it for ever, so a
	// resynchronisation empties the subscriber's table for good.
	CopyRefused []string
}

// ResyncWarning says, for a table pglogical cannot copy (CopyRefused), why
// it must not be resynchronised and what to do instead; "" for others.
func (t Table) ResyncWarning() string {
	if len(t.CopyRefused) == 0 {
		return ""
	}
	return fmt.Sprintf("do not resynchronise %s: pglogical 2.4.2 lists its generated column(s) %s in the COPY of a resynchronisation, which PostgreSQL refuses, so the table would be emptied on the subscriber and never copied again (measured); copy the differing rows instead (pglmon verify --copy-script)",
		t.Regclass(), strings.Join(t.CopyRefused, ", "))
}

// expects reports whether a row differing by kind is what replication
// makes it: a change the set does not replicate, or, in a table gathered
// from several providers, a row another one sent.
func (t Table) expects(kind string) bool {
	return t.Replicates.expected(kind) || (kind == Extra && len(t.OtherSources) > 0)
}

// expectation says why rows differ as expected, for the note.
func (t Table) expectation() string {
	var why []string
	if n := t.Replicates.notReplicated(); n != "" {
		why = append(why, "the replication set does not replicate "+n)
	}
	if len(t.OtherSources) > 0 {
		why = append(why, "the table is also fed by subscription "+strings.Join(t.OtherSources, ", ")+", whose rows are extra here")
	}
	return strings.Join(why, "; ")
}

// Changes are the kinds of change a replication set replicates.
type Changes struct{ Insert, Update, Delete bool }

// expected reports whether a row differing by kind is what the
// replication set makes it: a change it does not replicate.
func (c Changes) expected(kind string) bool {
	switch kind {
	case Missing:
		return !c.Insert
	case Extra:
		return !c.Delete
	case Different:
		return !c.Update
	}
	return false
}

// notReplicated names the changes left out, for messages.
func (c Changes) notReplicated() string {
	var out []string
	for _, k := range []struct {
		on   bool
		name string
	}{{c.Insert, "INSERT"}, {c.Update, "UPDATE"}, {c.Delete, "DELETE"}} {
		if !k.on {
			out = append(out, k.name)
		}
	}
	return strings.Join(out, ", ")
}

// QualifiedName is schema.table as people write it.
func (t Table) QualifiedName() string { return t.Schema + "." + t.Name }

// Regclass is the table's name as a regclass reads it (quoted where SQL
// needs it), for statements printed for a person.
func (t Table) Regclass() string { return pgident.Regclass(t.Schema, t.Name) }

// Matches reports whether name picks the table: schema.table, table (in any
// schema), or a shell pattern of either (public.orders_*, orders_202?); a
// name with double quotes is read as SQL writes it ("Sales"."Orders",
// public."Orders": an unquoted part folded to lower case), never as a
// pattern.
func (t Table) Matches(name string) bool {
	if strings.Contains(name, `"`) {
		parts, err := pgident.Split(name)
		switch {
		case err != nil:
			return false
		case len(parts) == 2:
			return parts[0] == t.Schema && parts[1] == t.Name
		default:
			return len(parts) == 1 && parts[0] == t.Name
		}
	}
	q := t.QualifiedName()
	if name == q || name == t.Name {
		return true
	}
	if ok, _ := path.Match(name, q); ok {
		return true
	}
	ok, _ := path.Match(name, t.Name)
	return ok && !strings.Contains(name, ".")
}

func (t Table) ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// setTablesQuery lists the tables of the given replication sets with their
// replicated columns, primary key and row filter, and every column's name,
// type and hash function (columnHashSQL), in one statement: a subscription
// of hundreds of tables pays one round trip for them all.
const setTablesQuery = `SELECT n.nspname::text, c.relname::text,
	coalesce(rst.set_att_list, (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')),
	coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '{}'),
	coalesce((SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
		WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '{}'),
	coalesce(pg_get_expr(rst.set_row_filter, c.oid), ''),
	greatest(c.reltuples, 0)::bigint,
	rs.replicate_insert, rs.replicate_update, rs.replicate_delete,
	ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
	ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
	ARRAY(SELECT ` + columnHashSQL + ` FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
	` + drift.CopiedGeneratedSQL + `
FROM pglogical.replication_set_table rst
JOIN pglogical.replication_set rs ON rs.set_id = rst.set_id
JOIN pg_class c ON c.oid = rst.set_reloid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE rs.set_name = ANY($1)
	-- pglmon's own heartbeats (package heartbeat) differ by design: each side prunes its own
	AND NOT (n.nspname = 'pglmon' AND c.relname = 'heartbeat')
ORDER BY 1, 2`

// columnHashSQL is, for the column a (a pg_attribute row), the extended
// hash function (support function 2) of its type's default hash opclass,
// when that function takes the type itself (timestamptz's takes timestamp,
// and a cast would shift the value by the session's time zone: such types
// hash their text, which verify sessions pin to UTC and ISO); empty when there
// is none. Only opclasses of the column's own type count: the polymorphic
// ones (enum, array, record) would hash an enum label's OID, which each
// server assigns itself.
const columnHashSQL = `coalesce((SELECT p.oid::regproc::text FROM pg_opclass oc
		JOIN pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash'
		JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2
			AND ap.amproclefttype = oc.opcintype AND ap.amprocrighttype = oc.opcintype
		JOIN pg_proc p ON p.oid = ap.amproc
		WHERE oc.opcdefault AND oc.opcintype = a.atttypid AND p.proargtypes[0] = a.atttypid LIMIT 1), '')`

// SetTables reads the tables of replication sets from the provider.
func SetTables(ctx context.Context, conn *pgx.Conn, sets []string) ([]Table, error) {
	b := &pgx.Batch{}
	tables := queueSetTables(b, sets)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return *tables, nil
}

// queueSetTables queues the reading of the tables of replication sets in a
// batch to the provider: the tables the batch fills in.
func queueSetTables(b *pgx.Batch, sets []string) *[]Table {
	out := &[]Table{}
	b.Queue(setTablesQuery, sets).Query(func(rows pgx.Rows) error {
		var err error
		if *out, err = collectSetTables(rows); err != nil {
			return fmt.Errorf("read the tables of replication sets %s: %w", strings.Join(sets, ", "), err)
		}
		return nil
	})
	return out
}

// collectSetTables reads the rows of setTablesQuery.
func collectSetTables(rows pgx.Rows) ([]Table, error) {
	defer rows.Close()
	seen := map[string]int{}
	var out []Table
	for rows.Next() {
		var t Table
		var names, types, funcs []string
		ch := &t.Replicates
		if err := rows.Scan(&t.Schema, &t.Name, &t.Columns, &t.Key, &t.KeyTypes, &t.RowFilter, &t.EstimatedRows, &ch.Insert, &ch.Update, &ch.Delete, &names, &types, &funcs, &t.CopyRefused); err != nil {
			return nil, err
		}
		if i, ok := seen[t.QualifiedName()]; ok {
			// A table in two sets is compared once; it gets the changes either replicates.
			o := &out[i].Replicates
			o.Insert, o.Update, o.Delete = o.Insert || ch.Insert, o.Update || ch.Update, o.Delete || ch.Delete
			continue
		}
		t.columnHashes(names, types, funcs)
		seen[t.QualifiedName()] = len(out)
		out = append(out, t)
	}
	return out, rows.Err()
}

// columnHashes sets the types and hash functions of the table's columns
// from those of all its columns (names, types and funcs alike in order).
func (t *Table) columnHashes(names, types, funcs []string) {
	t.ColumnTypes, t.HashFuncs = make([]string, len(t.Columns)), make([]string, len(t.Columns))
	for i, c := range t.Columns {
		if j := slices.Index(names, c); j >= 0 && j < len(types) && j < len(funcs) {
			t.ColumnTypes[i], t.HashFuncs[i] = types[j], funcs[j]
		}
	}
}
