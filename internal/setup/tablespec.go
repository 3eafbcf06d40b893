package setup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/topology"
)

// tableSpec is what a replication set replicates of one table: a column
// list (nil: every column) and a row filter ("": every row). filter is as
// the server prints it (pg_get_expr), which is how pglogical's catalog
// gives it back; filterSQL is the text apply hands pglogical.
type tableSpec struct {
	columns   []string
	filter    string
	filterSQL string
}

func (s tableSpec) same(o tableSpec) bool {
	a, b := slices.Sorted(slices.Values(s.columns)), slices.Sorted(slices.Values(o.columns))
	return (s.columns == nil) == (o.columns == nil) && slices.Equal(a, b) && s.filter == o.filter
}

// String says what the spec replicates, for the plan.
func (s tableSpec) String() string {
	var parts []string
	if s.columns != nil {
		parts = append(parts, "columns ("+strings.Join(s.columns, ", ")+")")
	} else {
		parts = append(parts, "every column")
	}
	if s.filter != "" {
		parts = append(parts, "rows where "+s.filter)
	} else {
		parts = append(parts, "every row")
	}
	return strings.Join(parts, ", ")
}

// tableState is one table of a configured replication set: whether it is
// in the set on the node now (in), with what (have), and what apply leaves
// it with (want): the columns and row filter the configuration declares,
// and what the node has where it declares none.
type tableState struct {
	in         bool
	have, want tableSpec
}

// setTablesSQL lists the tables of replication set $1 of the node's own
// pglogical node, with their column lists and row filters.
const setTablesSQL = `SELECT format('%I.%I', n.nspname, c.relname), rt.set_att_list, coalesce(pg_get_expr(rt.set_row_filter, rt.set_reloid), '')
FROM pglogical.replication_set_table rt JOIN pglogical.replication_set s ON s.set_id = rt.set_id
JOIN pg_class c ON c.oid = rt.set_reloid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.set_name = $1 AND s.set_nodeid = (SELECT node_id FROM pglogical.local_node)`

// columnsSQL: the table's columns ($1), and the columns of the key
// pglogical finds its rows by (primary key, or REPLICA IDENTITY USING
// INDEX), which a column list must hold.
const columnsSQL = `SELECT coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped), '{}'),
	coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		JOIN pg_class c ON c.oid = i.indrelid
		WHERE i.indrelid = to_regclass($1) AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '{}')`

// tableStates reads, for replication set rs on its node (c), each of its
// tables (ts): whether the set holds it, with what column list and row
// filter, and what apply leaves it with. It checks what the configuration
// declares as pglogical's replication_set_add_table would (a problem each
// to p): the columns exist and hold the key, the filter is an expression
// on the table's columns, and the table is one of the set's. A column list
// or filter the node has and the configuration does not declare is kept,
// with a warning.
func tableStates(ctx context.Context, c *pgx.Conn, rs config.ReplicationSet, ts []string, p *Plan) (map[string]*tableState, error) {
	states := map[string]*tableState{}
	for _, t := range ts {
		states[t] = &tableState{}
	}
	node, err := one[bool](ctx, c, hasPglogicalSQL)
	if err == nil && node {
		node, err = one[bool](ctx, c, "SELECT EXISTS (SELECT 1 FROM pglogical.local_node)")
	}
	if err != nil {
		return nil, err
	}
	if node {
		rows, err := c.Query(ctx, setTablesSQL, rs.Name)
		if err != nil {
			return nil, fmt.Errorf("read the tables of replication set %s: %w", rs.Name, err)
		}
		var name string
		var have tableSpec
		var beyond []string
		_, err = pgx.ForEachRow(rows, []any{&name, &have.columns, &have.filter}, func() error {
			if st, ok := states[name]; ok {
				have.filterSQL = have.filter
				st.in, st.have = true, have
			} else {
				beyond = append(beyond, name)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read the tables of replication set %s: %w", rs.Name, err)
		}
		if len(beyond) > 0 {
			slices.Sort(beyond)
			p.Warnings = append(p.Warnings, fmt.Sprintf("replication set %s on %s also holds %s, which the configuration does not give it: apply leaves them (add them to its tables to say so, or take one out on %s: SELECT pglogical.replication_set_remove_table(%s, 'TABLE'))",
				rs.Name, rs.Node, strings.Join(beyond, ", "), rs.Node, pgident.Literal(rs.Name)))
		}
	}
	problem := func(field, key, what, fix string) {
		p.Problems = append(p.Problems, Problem{rs.Node, fmt.Sprintf("replication set %s, %s of %s: %s", rs.Name, field, key, what), fix})
	}
	// declared: the tables each key stands for (a partitioned table's
	// partitions), nil when it stands for none of the set's.
	declared := func(field, key string) ([]string, error) {
		of, _, err := topology.OfTable(ctx, c, key)
		if err != nil {
			return nil, err
		}
		if len(of) == 0 {
			problem(field, key, "no such table (or a partitioned one without partitions)", "name a table of the set, as in its tables")
			return nil, nil
		}
		var out []string
		for _, t := range of {
			if _, ok := states[t.Name]; !ok {
				problem(field, key, t.Name+" is not among the set's tables", "add it to the set's tables (or schemas), or remove it from "+field)
				return nil, nil
			}
			out = append(out, t.Name)
		}
		return out, nil
	}
	cols := map[string][]string{}
	for _, key := range slices.Sorted(maps.Keys(rs.Columns)) {
		names, err := declared("columns", key)
		if err != nil {
			return nil, err
		}
		for _, t := range names {
			var all, ident []string
			if err := c.QueryRow(ctx, columnsSQL, t).Scan(&all, &ident); err != nil {
				return nil, fmt.Errorf("read the columns of %s: %w", t, err)
			}
			ok := true
			for _, col := range rs.Columns[key] {
				if !slices.Contains(all, col) {
					problem("columns", key, fmt.Sprintf("%s has no column %q (it has %s)", t, col, strings.Join(all, ", ")),
						"write the column names as the table has them (lower case unless created in double quotes)")
					ok = false
				}
			}
			var missing []string
			for _, k := range ident {
				if !slices.Contains(rs.Columns[key], k) {
					missing = append(missing, k)
				}
			}
			if len(missing) > 0 {
				problem("columns", key, fmt.Sprintf("the list leaves out %s of %s's key, which pglogical replicates always (replication_set_add_table refuses it: \"REPLICA IDENTITY columns must be replicated\")", strings.Join(missing, ", "), t),
					"add "+strings.Join(missing, ", ")+" to the list")
				ok = false
			}
			if ok {
				cols[t] = slices.Clone(rs.Columns[key])
			}
		}
	}
	filters := map[string][2]string{} // table -> as the server prints it, as written
	for _, key := range slices.Sorted(maps.Keys(rs.RowFilters)) {
		names, err := declared("row_filters", key)
		if err != nil {
			return nil, err
		}
		for _, t := range names {
			printed, err := deparseFilter(ctx, c, t, rs.RowFilters[key])
			var pgErr *pgconn.PgError
			var copyErr *filterCopyError
			switch {
			case errors.As(err, &copyErr) && errors.As(err, &pgErr):
				problem("row_filters", key, fmt.Sprintf("the row filter of %s cannot be checked: pglmon reads it on an empty temporary copy of the table (CREATE TEMPORARY TABLE ... (LIKE %s)), which %s refuses: %s", t, t, rs.Node, pgErr.Message),
					"let the role setup connects as create temporary tables in the database (GRANT TEMPORARY ON DATABASE) and read the table (GRANT SELECT)")
			case errors.As(err, &pgErr):
				problem("row_filters", key, fmt.Sprintf("%q is not a row filter of %s: %s", rs.RowFilters[key], t, pgErr.Message),
					"write an SQL expression on the table's own columns, true for the rows to replicate (no subquery, no other table)")
			case err != nil:
				return nil, err
			default:
				filters[t] = [2]string{printed, rs.RowFilters[key]}
			}
		}
	}
	for _, t := range ts {
		st := states[t]
		st.want = st.have
		if c, ok := cols[t]; ok {
			st.want.columns = c
		} else if st.have.columns != nil {
			p.Warnings = append(p.Warnings, fmt.Sprintf("replication set %s on %s replicates only columns (%s) of %s, and the configuration lists none for it: apply leaves the list; write columns: {%s: [%s]} to say so",
				rs.Name, rs.Node, strings.Join(st.have.columns, ", "), t, t, strings.Join(st.have.columns, ", ")))
		}
		if f, ok := filters[t]; ok {
			st.want.filter, st.want.filterSQL = f[0], f[1]
		} else if st.have.filter != "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("replication set %s on %s replicates only the rows of %s where %s, and the configuration gives it no row filter: apply leaves the filter; write row_filters: {%s: %q} to say so",
				rs.Name, rs.Node, t, st.have.filter, t, st.have.filter))
		}
	}
	return states, nil
}

// deparseFilter returns filter as the server prints it as a row filter of
// table t (pg_get_expr), or the server's error for one it refuses. It reads
// the filter as a CHECK constraint of an empty temporary copy of t, in a
// transaction it rolls back: pglogical reads a row filter the same way
// (a check constraint's expression: "cannot use subquery in check
// constraint", measured with 2.4.2) and stores what pg_get_expr prints.
func deparseFilter(ctx context.Context, c *pgx.Conn, t, filter string) (string, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(ctx)
	// The extended protocol runs one statement: a filter that closes the
	// parenthesis and adds a statement of its own is refused (pgx's Exec
	// without arguments would send the simple protocol's several).
	for i, sql := range []string{"CREATE TEMPORARY TABLE pglmon_row_filter (LIKE " + t + ")",
		"ALTER TABLE pg_temp.pglmon_row_filter ADD CONSTRAINT row_filter CHECK (" + filter + ")"} {
		if _, err := c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Close(); err != nil {
			if i == 0 {
				return "", &filterCopyError{err}
			}
			return "", err
		}
	}
	var printed string
	err = tx.QueryRow(ctx, "SELECT pg_get_expr(conbin, conrelid) FROM pg_constraint WHERE conrelid = 'pg_temp.pglmon_row_filter'::regclass AND conname = 'row_filter'").Scan(&printed)
	return printed, err
}

// filterCopyError: the empty temporary copy of a table that deparseFilter
// reads a row filter on could not be made (no TEMPORARY privilege on the
// database, no SELECT on the table): nothing is known of the filter.
type filterCopyError struct{ err error }

func (e *filterCopyError) Error() string {
	return "make an empty temporary copy of the table: " + e.err.Error()
}

func (e *filterCopyError) Unwrap() error { return e.err }

// addTableChange is the change that adds table t to set rs with spec,
// copied to the set's subscriptions when copyData.
func addTableChange(rs config.ReplicationSet, t string, spec tableSpec, copyData bool) Change {
	what := "add table " + t + " to " + rs.Name
	if spec.columns != nil || spec.filter != "" {
		what += " (" + spec.String() + ")"
	}
	if copyData {
		what += " (its subscribers copy its rows)"
	}
	c := Change{Node: rs.Node, What: what, SQL: "SELECT pglogical.replication_set_add_table($1, $2::regclass, $3)", Args: []any{rs.Name, t, copyData}}
	if spec.columns != nil || spec.filter != "" {
		var filter *string
		if spec.filterSQL != "" {
			filter = &spec.filterSQL
		}
		c.SQL = "SELECT pglogical.replication_set_add_table($1, $2::regclass, $3, columns := $4::text[], row_filter := $5::text)"
		c.Args = []any{rs.Name, t, copyData, spec.columns, filter}
	}
	if copyData {
		c.copiedIn = rs.Name
	}
	return c
}

// respecChange is the change that gives table t, in set rs already, the
// column list and row filter st.want: pglogical has no call to alter
// either, so it removes the table from the set and adds it back, without
// a copy, in one transaction (nothing between the two, even after a
// crash). Measured with pglogical 2.4.2: running senders use the new list
// and filter at once. What the subscribers hold already stays as the old
// ones left it: a warning for each configured subscription of the set.
func respecChange(rs config.ReplicationSet, t string, st *tableState, subs []config.Subscription) (Change, []string) {
	cols, filter := "NULL", "NULL"
	if st.want.columns != nil {
		lits := make([]string, len(st.want.columns))
		for i, c := range st.want.columns {
			lits[i] = pgident.Literal(c)
		}
		cols = "ARRAY[" + strings.Join(lits, ", ") + "]::text[]"
	}
	if st.want.filterSQL != "" {
		filter = pgident.Literal(st.want.filterSQL)
	}
	set, rel := pgident.Literal(rs.Name), pgident.Literal(t)
	var warnings []string
	for _, sb := range subs {
		if sb.Provider == rs.Node && slices.Contains(sb.ReplicationSets, rs.Name) {
			warnings = append(warnings, fmt.Sprintf("subscription %s: its copy of %s keeps what %s's old column list and row filter gave it (rows the new filter leaves out stay; rows it takes in, and columns it adds, arrive only when those rows next change on %s); after apply, `pglmon verify --subscription %s --table %s` names the rows that differ, and its --copy-script puts them right",
				sb.Name, t, rs.Name, rs.Node, sb.Name, t))
		}
	}
	return Change{Node: rs.Node,
		What: fmt.Sprintf("replicate %s of %s in %s (now %s): remove it from the set and add it back, without a copy, in one transaction", st.want, t, rs.Name, st.have),
		// No parameters: one simple-protocol query, one transaction.
		SQL: fmt.Sprintf("SELECT pglogical.replication_set_remove_table(%s, %s::regclass);\nSELECT pglogical.replication_set_add_table(%s, %s::regclass, false, columns := %s, row_filter := %s)", set, rel, set, rel, cols, filter),
	}, warnings
}

// replicatedColumns are the columns of table t that subscription sb
// receives: those of the column lists of its sets that hold t, or nil
// (every column) when one of them has none.
func replicatedColumns(sb config.Subscription, t string, states map[string]map[string]*tableState) []string {
	var cols []string
	for _, set := range sb.ReplicationSets {
		st, ok := states[setKey(sb.Provider, set)][t]
		if !ok {
			continue
		}
		if st.want.columns == nil {
			return nil
		}
		cols = append(cols, st.want.columns...)
	}
	slices.Sort(cols)
	return slices.Compact(cols)
}
