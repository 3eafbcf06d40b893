// Package drift compares the replicated tables of a subscription between
// its provider and its subscriber, and names what makes pglogical's apply
// fail: pglogical does not replicate DDL, so a column added on the provider
// alone stops the subscription at the next change to the table ("unknown
// column name"), and restarting it does not help.
package drift

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgident"
)

// providerQuery lists the tables of the replication sets with the columns
// they replicate: pglogical's column list, or every column, generated ones
// too (pglogical 2.4.2 sends a stored generated column's value with each
// change, measured: it arrived in a plain column of the subscriber's).
//
// Then the generated columns among them, which pglogical's COPY of the
// table lists too (SchemaMismatch.CopyRefused), and the type of every
// column (columnTypesSQL).
const providerQuery = `SELECT DISTINCT n.nspname::text, c.relname::text,
	coalesce(rst.set_att_list, (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)),
	` + CopiedGeneratedSQL + `,
	` + typeColumnsSQL + `, ` + ReplicaKeySQL + `
FROM pglogical.replication_set_table rst
JOIN pglogical.replication_set rs ON rs.set_id = rst.set_id
JOIN pg_class c ON c.oid = rst.set_reloid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL ` + columnTypesSQL + ` ty ON true
WHERE rs.set_name = ANY($1)
ORDER BY 1, 2`

// CopiedGeneratedSQL is the array of the stored generated columns that
// pglogical's COPY of a set's table lists (no column list, or one that
// holds them), in a query over pglogical.replication_set_table rst joined
// to the table's pg_class c. Measured with pglogical 2.4.2: PostgreSQL
// refuses that COPY ("column is a generated column"), for ever.
const CopiedGeneratedSQL = `ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		AND a.attgenerated <> '' AND (rst.set_att_list IS NULL OR a.attname::text = ANY(rst.set_att_list)) ORDER BY a.attnum)`

// subscriberQuery reads, for each table, whether it exists, its columns,
// its NOT NULL columns that nothing fills (no default, not identity or
// generated): a replicated row that lacks one is refused; and its stored
// generated columns (see SchemaMismatch.Generated); and the type of every
// column (columnTypesSQL).
const subscriberQuery = `SELECT t.schema, t.name, c.oid IS NOT NULL,
	coalesce((SELECT array_agg(a.attname::text) FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'),
	coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull
		AND NOT a.atthasdef AND a.attidentity = ''), '{}'),
	coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''), '{}'),
	` + typeColumnsSQL + `, ` + ReplicaKeySQL + `
FROM unnest($1::text[], $2::text[]) AS t(schema, name)
LEFT JOIN pg_namespace n ON n.nspname = t.schema
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name AND c.relkind IN ('r', 'p')
LEFT JOIN LATERAL ` + columnTypesSQL + ` ty ON true`

// Check compares the tables of the replication sets sets.
func Check(ctx context.Context, prov, sub *pgx.Conn, sets []string) ([]diagnose.SchemaMismatch, error) {
	out, _, _, err := check(ctx, prov, sub, sets, nil)
	return out, err
}

// TypesBoth compares the types of the replicated columns of the sets as
// pglogical's apply takes their values sent as text (between servers of
// different major versions) and in binary (of the same one), whatever
// the servers run now: from one read of each side.
func TypesBoth(ctx context.Context, prov, sub *pgx.Conn, sets []string) (text, binary []diagnose.TypeDiff, err error) {
	_, _, _, err = check(ctx, prov, sub, sets, func(table string, cols []string, p, s columnTypes) {
		text = append(text, typeDiffs(table, cols, p, s, false)...)
		binary = append(binary, typeDiffs(table, cols, p, s, true)...)
	})
	return text, binary, err
}

// Subscription is what CheckSubscription found.
type Subscription struct {
	Mismatches []diagnose.SchemaMismatch // Check's
	Left       []Relation                // LeftSets'
	Tables     []Relation                // the tables of the sets on the provider
}

// CheckSubscription is Check and LeftSets for subscription, reading the
// tables of its sets on the provider once.
func CheckSubscription(ctx context.Context, prov, sub *pgx.Conn, subscription string, sets []string) (Subscription, error) {
	out, schemas, names, err := check(ctx, prov, sub, sets, nil)
	if err != nil {
		return Subscription{}, err
	}
	left, err := leftOf(ctx, sub, subscription, schemas, names)
	if err != nil {
		return Subscription{}, err
	}
	r := Subscription{Mismatches: out, Left: left}
	for i := range schemas {
		r.Tables = append(r.Tables, Relation{schemas[i], names[i]})
	}
	return r, nil
}

// check is Check, with the tables of the sets (schemas and names); onTable,
// when set, is given the replicated columns of each table both sides have,
// with their types on either side.
func check(ctx context.Context, prov, sub *pgx.Conn, sets []string, onTable func(table string, cols []string, prov, sub columnTypes)) ([]diagnose.SchemaMismatch, []string, []string, error) {
	rows, err := prov.Query(ctx, providerQuery, sets)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the tables of replication sets on the provider: %w", err)
	}
	var schemas, names []string
	replicated, refused := map[string][]string{}, map[string][]string{}
	provTypes := map[string]columnTypes{}
	var schema, name string
	var cols, genCols, key []string
	var ty typeScan
	provKeys := map[string][]string{}
	if _, err := pgx.ForEachRow(rows, append(append([]any{&schema, &name, &cols, &genCols}, ty.dest()...), &key), func() error {
		table := schema + "." + name
		types, err := ty.columns()
		if err != nil {
			return err
		}
		provTypes[table], provKeys[table] = types, slices.Clone(key)
		for _, c := range genCols {
			if !slices.Contains(refused[table], c) {
				refused[table] = append(refused[table], c)
			}
		}
		prev, seen := replicated[table]
		if !seen {
			schemas, names = append(schemas, schema), append(names, name)
		}
		// In two sets with different column lists: what either replicates.
		for _, c := range cols {
			if !slices.Contains(prev, c) {
				prev = append(prev, c)
			}
		}
		replicated[table] = prev
		return nil
	}); err != nil {
		return nil, nil, nil, fmt.Errorf("read the tables of replication sets on the provider: %w", err)
	}
	out, err := missingSequences(ctx, prov, sub, sets)
	if err != nil || len(names) == 0 {
		return out, schemas, names, err
	}
	rows, err = sub.Query(ctx, subscriberQuery, schemas, names)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the replicated tables on the subscriber: %w", err)
	}
	var exists bool
	var have, required, generated []string
	// pglogical sends built-in types in binary between servers of the same
	// major version (compareType).
	binary := MajorVersion(prov) == MajorVersion(sub)
	_, err = pgx.ForEachRow(rows, append(append([]any{&schema, &name, &exists, &have, &required, &generated}, ty.dest()...), &key), func() error {
		table := schema + "." + name
		m := diagnose.SchemaMismatch{Table: table, Missing: !exists, CopyRefused: refused[table]}
		if exists {
			types, err := ty.columns()
			if err != nil {
				return err
			}
			m.Types = typeDiffs(table, replicated[table], provTypes[table], types, binary)
			if onTable != nil {
				onTable(table, replicated[table], provTypes[table], types)
			}
			if e := compareKeys(provKeys[table], key); e != "" {
				m.Key = &diagnose.KeyDiff{Table: table, Effect: e, Provider: provKeys[table], Subscriber: slices.Clone(key)}
			}
			for _, c := range replicated[table] {
				if !slices.Contains(have, c) {
					m.Columns = append(m.Columns, c)
				}
			}
			for _, c := range required {
				if !slices.Contains(replicated[table], c) {
					m.Required = append(m.Required, c)
				}
			}
			for _, c := range generated {
				if !slices.Contains(replicated[table], c) {
					m.Generated = append(m.Generated, c)
				}
			}
		}
		if m.Breaks() || len(m.CopyRefused) > 0 || len(m.Types) > 0 || m.Key != nil {
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the replicated tables on the subscriber: %w", err)
	}
	slices.SortFunc(out, func(a, b diagnose.SchemaMismatch) int { return strings.Compare(a.Table, b.Table) })
	return out, schemas, names, nil
}

// sequencesQuery lists the sequences of the replication sets ($1).
const sequencesQuery = `SELECT DISTINCT n.nspname::text, c.relname::text
FROM pglogical.replication_set_seq rss
JOIN pglogical.replication_set rs ON rs.set_id = rss.set_id
JOIN pg_class c ON c.oid = rss.set_seqoid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE rs.set_name = ANY($1)`

// missingSequenceQuery keeps the sequences ($1 schemas, $2 names) the subscriber lacks.
const missingSequenceQuery = `SELECT t.schema, t.name FROM unnest($1::text[], $2::text[]) AS t(schema, name)
WHERE NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = t.schema AND c.relname = t.name AND c.relkind = 'S')`

// missingSequences names the sequences of the sets that the subscriber
// lacks. Checked on pglogical 2.4: its next copy of such a sequence (at
// once with synchronize_data, then periodically) stops the subscription
// with "could not open relation with OID 0".
func missingSequences(ctx context.Context, prov, sub *pgx.Conn, sets []string) ([]diagnose.SchemaMismatch, error) {
	rows, err := prov.Query(ctx, sequencesQuery, sets)
	if err != nil {
		return nil, fmt.Errorf("read the sequences of replication sets on the provider: %w", err)
	}
	var schemas, names []string
	var schema, name string
	if _, err := pgx.ForEachRow(rows, []any{&schema, &name}, func() error {
		schemas, names = append(schemas, schema), append(names, name)
		return nil
	}); err != nil || len(names) == 0 {
		return nil, err
	}
	rows, err = sub.Query(ctx, missingSequenceQuery, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("read the replicated sequences on the subscriber: %w", err)
	}
	var out []diagnose.SchemaMismatch
	_, err = pgx.ForEachRow(rows, []any{&schema, &name}, func() error {
		out = append(out, diagnose.SchemaMismatch{Table: schema + "." + name, Missing: true, Sequence: true})
		return nil
	})
	return out, err
}

// leftQuery lists the tables pglogical copied to the subscriber for
// subscription $1 (its sync status rows) that still exist there and that
// no replication set of $2 holds on the provider ($3 schemas, $4 names: the
// tables the sets hold there).
const leftQuery = `SELECT DISTINCT s.sync_nspname::text, s.sync_relname::text
FROM pglogical.local_sync_status s
JOIN pglogical.subscription sub ON sub.sub_id = s.sync_subid
JOIN pg_namespace n ON n.nspname = s.sync_nspname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sync_relname AND c.relkind IN ('r', 'p')
WHERE sub.sub_name = $1 AND s.sync_relname IS NOT NULL
	AND (s.sync_nspname::text, s.sync_relname::text) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))
ORDER BY 1, 2`

// setTablesQuery lists the tables the replication sets $1 hold.
const setTablesQuery = `SELECT DISTINCT n.nspname::text, c.relname::text
FROM pglogical.replication_set_table rst
JOIN pglogical.replication_set rs ON rs.set_id = rst.set_id
JOIN pg_class c ON c.oid = rst.set_reloid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE rs.set_name = ANY($1)`

// Relation is a table by its schema and name, unquoted.
type Relation struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
}

// String is schema.name unquoted, as verify's --table takes it.
func (r Relation) String() string { return r.Schema + "." + r.Name }

// LeftSets names the tables pglogical copied to the subscriber for
// subscription, and still there, that none of its replication sets (sets)
// holds on the provider any more: taken out of a set
// (replication_set_remove_table, which DROP TABLE ... CASCADE on the
// provider does too) or with a set taken from the subscription. pglogical
// still says such a table is replicating (show_subscription_table), but
// none of its changes reach the subscriber. Measured on pglogical 2.4.2:
// putting it back (replication_set_add_table with synchronize_data, or
// alter_subscription_add_replication_set and alter_subscription_synchronize)
// does not copy it again while its sync status is kept, so the changes made
// meanwhile stay missing. A table put in a set without synchronize_data has
// no sync status, and is not seen here.
func LeftSets(ctx context.Context, prov, sub *pgx.Conn, subscription string, sets []string) ([]Relation, error) {
	in, err := SetTables(ctx, prov, sets)
	if err != nil {
		return nil, err
	}
	schemas, names := []string{}, []string{}
	for _, r := range in {
		schemas, names = append(schemas, r.Schema), append(names, r.Name)
	}
	return leftOf(ctx, sub, subscription, schemas, names)
}

// ForgetSQL deletes subscription sub's sync status of the tables rels on
// the subscriber, where ready (a copy under way is left to its sync worker),
// as pglogical does itself when a subscriber's table is dropped: LeftSets
// no longer names them, and a set that holds one again copies it. One
// statement without parameters, to run alone or in a multi-statement
// transaction.
func ForgetSQL(sub string, rels []Relation) string {
	pairs := make([]string, len(rels))
	for i, r := range rels {
		pairs[i] = "(" + pgident.Literal(r.Schema) + ", " + pgident.Literal(r.Name) + ")"
	}
	return `DELETE FROM pglogical.local_sync_status s USING pglogical.subscription sub
WHERE sub.sub_id = s.sync_subid AND sub.sub_name = ` + pgident.Literal(sub) + ` AND s.sync_status = 'r'
  AND (s.sync_nspname::text, s.sync_relname::text) IN (` + strings.Join(pairs, ", ") + `)`
}

// leftOf is LeftSets given the tables of the sets (schemas and names).
func leftOf(ctx context.Context, sub *pgx.Conn, subscription string, schemas, names []string) ([]Relation, error) {
	if schemas == nil {
		schemas, names = []string{}, []string{}
	}
	return queryRelations(ctx, sub, "the tables pglogical copied to the subscriber", leftQuery, subscription, schemas, names)
}

// existingQuery lists the tables ($1 schemas, $2 names) the server has.
const existingQuery = `SELECT n.nspname::text, c.relname::text
FROM unnest($1::text[], $2::text[]) AS t(schema, name)
JOIN pg_namespace n ON n.nspname = t.schema
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name AND c.relkind IN ('r', 'p')
ORDER BY 1, 2`

// Existing returns the tables of rels that the server of conn has (read
// from the catalog: no privilege on them needed).
func Existing(ctx context.Context, conn *pgx.Conn, rels []Relation) ([]Relation, error) {
	schemas, names := make([]string, len(rels)), make([]string, len(rels))
	for i, r := range rels {
		schemas[i], names[i] = r.Schema, r.Name
	}
	return queryRelations(ctx, conn, "which tables the server has", existingQuery, schemas, names)
}

// SetTables lists the tables the replication sets hold on the provider.
func SetTables(ctx context.Context, prov *pgx.Conn, sets []string) ([]Relation, error) {
	return queryRelations(ctx, prov, "the tables of replication sets on the provider", setTablesQuery, sets)
}

// queryRelations runs query (which lists schemas and names) with args on
// conn; an error says it could not read what.
func queryRelations(ctx context.Context, conn *pgx.Conn, what, query string, args ...any) ([]Relation, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	out, err := relations(rows)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

func relations(rows pgx.Rows) ([]Relation, error) {
	var out []Relation
	var r Relation
	_, err := pgx.ForEachRow(rows, []any{&r.Schema, &r.Name}, func() error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// unreadableQuery lists the tables of the replication sets ($1) whose
// replicated columns role $2 may not read, on the provider: pglogical's
// copy of such a table (a resynchronisation, a table added with its copy)
// runs its COPY as the role of the subscription's provider connection and
// fails at each try. Nothing when the role does not exist there.
const unreadableQuery = `SELECT DISTINCT n.nspname::text, c.relname::text
FROM pglogical.replication_set_table rst
JOIN pglogical.replication_set rs ON rs.set_id = rst.set_id
JOIN pg_class c ON c.oid = rst.set_reloid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE rs.set_name = ANY($1) AND CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = $2) THEN
	NOT has_schema_privilege($2, n.oid, 'USAGE') OR (NOT has_table_privilege($2, c.oid, 'SELECT') AND EXISTS (
		SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		AND (rst.set_att_list IS NULL OR a.attname::text = ANY(rst.set_att_list))
		AND NOT has_column_privilege($2, c.oid, a.attnum, 'SELECT')))
	ELSE false END
ORDER BY 1, 2`

// filterDeniedQuery lists, for the replication sets $1 on the provider,
// the tables whose row filter calls a function (directly, or as an
// operator's) that role $2 may not execute, with the function. pglogical
// stores the filter as a node tree (pglogical.replication_set_table
// .set_row_filter), which names functions by OID (funcid) and operators by
// theirs (opno). Nothing when the role does not exist there.
const filterDeniedQuery = `SELECT DISTINCT n.nspname::text, c.relname::text, p.oid::regprocedure::text
FROM pglogical.replication_set_table rst
JOIN pglogical.replication_set rs ON rs.set_id = rst.set_id
JOIN pg_class c ON c.oid = rst.set_reloid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL regexp_matches(rst.set_row_filter::text, ':(funcid|opno) ([0-9]+)', 'g') AS m(f)
JOIN pg_proc p ON p.oid = CASE WHEN m.f[1] = 'funcid' THEN m.f[2]::oid
	ELSE (SELECT o.oprcode::oid FROM pg_operator o WHERE o.oid = m.f[2]::oid) END
WHERE rs.set_name = ANY($1) AND rst.set_row_filter IS NOT NULL
	AND EXISTS (SELECT FROM pg_roles WHERE rolname = $2)
	AND NOT has_function_privilege($2, p.oid, 'EXECUTE')
ORDER BY 1, 2, 3`

// FilterDenied returns the tables of sets on the provider whose row filter
// calls a function role (the user of a subscription's provider connection)
// may not execute, with the function (as regprocedure writes it): the
// provider's walsender evaluates the filter as that role, and fails on
// every change to the table (measured with pglogical 2.4.2: for ever, a
// later GRANT notwithstanding); so does the table's copy. None when role is
// "" or not a role of the provider.
func FilterDenied(ctx context.Context, prov *pgx.Conn, role string, sets []string) ([]diagnose.FilterDenied, error) {
	if role == "" {
		return nil, nil
	}
	rows, err := prov.Query(ctx, filterDeniedQuery, sets, role)
	if err != nil {
		return nil, fmt.Errorf("read which row filters of the replication sets %s may execute on the provider: %w", role, err)
	}
	var out []diagnose.FilterDenied
	var schema, name, fn string
	_, err = pgx.ForEachRow(rows, []any{&schema, &name, &fn}, func() error {
		out = append(out, diagnose.FilterDenied{Table: Relation{schema, name}.String(), Function: fn})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read which row filters of the replication sets %s may execute on the provider: %w", role, err)
	}
	return out, nil
}

// Unreadable returns the tables of sets on the provider that role (the
// user of a subscription's provider connection) may not copy: its schema
// or a replicated column it may not read. None when role is "" or not a
// role of the provider.
func Unreadable(ctx context.Context, prov *pgx.Conn, role string, sets []string) ([]Relation, error) {
	if role == "" {
		return nil, nil
	}
	return queryRelations(ctx, prov, "which tables of the replication sets "+role+" may read on the provider", unreadableQuery, sets, role)
}
