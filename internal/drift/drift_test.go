package drift

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// connect opens a connection to each side of the pair, closed with the test.
func connect(t *testing.T, p *pgtest.Pair) (prov, sub *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	prov, err := p.Provider.Cluster.Connect(ctx, p.Provider.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Close(ctx) })
	sub, err = p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close(ctx) })
	return prov, sub
}

// Each way a subscriber's table makes pglogical's apply fail is named; what
// does not (a column the set's column list leaves out, a subscriber column
// with a default, a column only the subscriber has that may be NULL) is not.
func TestCheckNamesWhatBreaksTheApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	steps := []struct {
		db  pgtest.DB
		sql string
	}{
		{p.Provider, "ALTER TABLE items_0 ADD COLUMN added text"},                          // provider only
		{p.Subscriber, "ALTER TABLE items_0 ADD COLUMN local_note text"},                   // subscriber only, nullable: fine
		{p.Subscriber, "ALTER TABLE items_0 ADD COLUMN local_flag int NOT NULL DEFAULT 0"}, // has a default: fine
		{p.Provider, "CREATE TABLE only_here (id int PRIMARY KEY)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'only_here')"},
		{p.Provider, "CREATE TABLE strict (id int PRIMARY KEY, v text, secret text)"},
		{p.Subscriber, "CREATE TABLE strict (id int PRIMARY KEY, v text, must int NOT NULL)"},
		// The column list leaves secret out: the subscriber need not have it.
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'strict', false, ARRAY['id', 'v'])"},
		// Generated columns (no row is written: a change to gen_sub or
		// gen_list would crash the subscriber's server). pglogical sends a
		// generated column's value: the subscriber needs the column.
		{p.Provider, "CREATE TABLE gen_prov (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Subscriber, "CREATE TABLE gen_prov (id int PRIMARY KEY, v int)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gen_prov', false)"},
		// Generated on the subscriber only, or left out by the column list.
		{p.Provider, "CREATE TABLE gen_sub (id int PRIMARY KEY, v int)"},
		{p.Subscriber, "CREATE TABLE gen_sub (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gen_sub', false)"},
		{p.Provider, "CREATE TABLE gen_list (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Subscriber, "CREATE TABLE gen_list (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gen_list', false, ARRAY['id', 'v'])"},
		// Generated on both, sent: fine.
		{p.Provider, "CREATE TABLE gen_both (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Subscriber, "CREATE TABLE gen_both (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'gen_both', false)"},
		// A sequence of the set the subscriber lacks (not copied now: the copy would stop the subscription).
		{p.Provider, "CREATE SEQUENCE only_seq"},
		{p.Provider, "SELECT pglogical.replication_set_add_sequence('set_0', 'only_seq', false)"},
	}
	for _, st := range steps {
		if err := st.db.Exec(ctx, st.sql); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
	pc, sc := connect(t, p)
	got, err := Check(ctx, pc, sc, []string{"set_0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []diagnose.SchemaMismatch{
		{Table: "public.gen_both", CopyRefused: []string{"g"}},
		{Table: "public.gen_list", Generated: []string{"g"}},
		{Table: "public.gen_prov", Columns: []string{"g"}, CopyRefused: []string{"g"}},
		{Table: "public.gen_sub", Generated: []string{"g"}},
		{Table: "public.items_0", Columns: []string{"added"}},
		{Table: "public.only_here", Missing: true},
		{Table: "public.only_seq", Missing: true, Sequence: true},
		{Table: "public.strict", Required: []string{"must"}},
	}
	if !slices.EqualFunc(got, want, func(a, b diagnose.SchemaMismatch) bool {
		return a.Table == b.Table && a.Missing == b.Missing && a.Sequence == b.Sequence && slices.Equal(a.Columns, b.Columns) && slices.Equal(a.Required, b.Required) &&
			slices.Equal(a.Generated, b.Generated) && slices.Equal(a.CopyRefused, b.CopyRefused)
	}) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// Made to match: nothing.
	for _, st := range []struct {
		db  pgtest.DB
		sql string
	}{
		{p.Subscriber, "ALTER TABLE items_0 ADD COLUMN added text"},
		{p.Subscriber, "CREATE TABLE only_here (id int PRIMARY KEY)"},
		{p.Subscriber, "ALTER TABLE strict ALTER COLUMN must SET DEFAULT 0"},
		{p.Subscriber, "CREATE SEQUENCE only_seq"},
		{p.Subscriber, "ALTER TABLE gen_prov ADD COLUMN g int"},
		{p.Subscriber, "ALTER TABLE gen_sub ALTER COLUMN g DROP EXPRESSION"},
		{p.Subscriber, "ALTER TABLE gen_list ALTER COLUMN g DROP EXPRESSION"},
	} {
		if err := st.db.Exec(ctx, st.sql); err != nil {
			t.Fatal(err)
		}
	}
	// What is left cannot be copied by pglogical, but replicates.
	got, err = Check(ctx, pc, sc, []string{"set_0"})
	if err != nil || len(got) != 2 || got[0].Table != "public.gen_both" || got[1].Table != "public.gen_prov" || slices.ContainsFunc(got, diagnose.SchemaMismatch.Breaks) {
		t.Errorf("tables that match: %+v, %v", got, err)
	}
}

// A table pglogical copied leaves the subscription's sets on the provider
// (replication_set_remove_table) or with its set (the subscription's
// alter_subscription_remove_replication_set): pglogical still says it
// replicates; LeftSets names it, for that subscription only, until it is
// in a set of the subscription again or gone from the subscriber.
func TestLeftSetsNamesATableNoSetHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10, Subscriptions: 2})
	pc, sc := connect(t, p)
	left := func(sub string) []string {
		t.Helper()
		var sets []string
		if err := sc.QueryRow(ctx, "SELECT replication_sets FROM pglogical.show_subscription_status($1)", sub).Scan(&sets); err != nil {
			t.Fatal(err)
		}
		got, err := LeftSets(ctx, pc, sc, sub, sets)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range got {
			names = append(names, r.String())
		}
		if also, err := CheckSubscription(ctx, pc, sc, sub, sets); err != nil || !slices.Equal(also.Left, got) {
			t.Errorf("CheckSubscription: %v (%v), LeftSets: %v", also.Left, err, got)
		}
		return names
	}
	check := func(when string, want0, want1 []string) {
		t.Helper()
		if got := left("sub_0"); !slices.Equal(got, want0) {
			t.Errorf("%s: sub_0 %v, want %v", when, got, want0)
		}
		if got := left("sub_1"); !slices.Equal(got, want1) {
			t.Errorf("%s: sub_1 %v, want %v", when, got, want1)
		}
	}
	check("replicating", nil, nil)
	var status string
	for _, st := range []struct {
		db   pgtest.DB
		sql  string
		want []string
	}{
		{p.Provider, "SELECT pglogical.replication_set_remove_table('set_0', 'items_0')", []string{"public.items_0"}},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'items_0', true)", nil},
		{p.Subscriber, "SELECT pglogical.alter_subscription_remove_replication_set('sub_0', 'set_0')", []string{"public.items_0"}},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('sub_0', 'set_0')", nil},
		{p.Provider, "SELECT pglogical.replication_set_remove_table('set_0', 'items_0')", []string{"public.items_0"}},
		{p.Subscriber, "DROP TABLE items_0", nil},
	} {
		if err := st.db.Exec(ctx, st.sql); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
		check(st.sql, st.want, nil)
		if st.want != nil {
			// What pglogical says of it meanwhile.
			if err := sc.QueryRow(ctx, "SELECT status FROM pglogical.show_subscription_table('sub_0', 'items_0')").Scan(&status); err != nil || status != "replicating" {
				t.Errorf("%s: show_subscription_table says %q, %v", st.sql, status, err)
			}
		}
	}
}

// Unreadable names the set tables a role may not copy: no SELECT on a
// replicated column (a grant on the replicated columns alone is enough,
// as for pglogical's COPY of them), or no USAGE on the schema; nothing for
// a role the provider does not have, or for a superuser.
func TestUnreadableNamesWhatARoleMayNotCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, prov, role := withRole(t, "copier_")
	for _, sql := range []string{
		"CREATE TABLE cols (id int PRIMARY KEY, v text, secret text)",
		"SELECT pglogical.replication_set_add_table('set_0', 'cols', false, ARRAY['id', 'v'])",
		"GRANT SELECT (id, v) ON cols TO " + role,
		"GRANT SELECT ON items_0 TO " + role,
		"CREATE SCHEMA hidden; CREATE TABLE hidden.t (id int PRIMARY KEY)",
		"SELECT pglogical.replication_set_add_table('set_0', 'hidden.t', false)",
		"GRANT SELECT ON hidden.t TO " + role,
	} {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	sets := []string{"set_0"}
	got, err := Unreadable(ctx, prov, role, sets)
	if want := []Relation{{"hidden", "t"}}; err != nil || !slices.Equal(got, want) {
		t.Errorf("SELECT on the replicated columns, none on the schema hidden: %v (%v), want %v", got, err, want)
	}
	if err := p.Provider.Exec(ctx, "GRANT USAGE ON SCHEMA hidden TO "+role+"; REVOKE SELECT (v) ON cols FROM "+role); err != nil {
		t.Fatal(err)
	}
	got, err = Unreadable(ctx, prov, role, sets)
	if want := []Relation{{"public", "cols"}}; err != nil || !slices.Equal(got, want) {
		t.Errorf("a replicated column not granted: %v (%v), want %v", got, err, want)
	}
	for _, r := range []string{"", "no_such_role_" + p.Provider.Name, "postgres"} {
		if got, err := Unreadable(ctx, prov, r, sets); err != nil || len(got) != 0 {
			t.Errorf("role %q: %v (%v), want none", r, got, err)
		}
	}
}

// FilterDenied names the set tables whose row filter calls a function the
// role may not execute, directly or as an operator's; nothing once it may,
// for a role the provider does not have, or for a superuser.
func TestFilterDeniedNamesARowFilterARoleMayNotRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, prov, role := withRole(t, "filter_")
	for _, sql := range []string{
		"CREATE FUNCTION rf_ok(int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0'",
		"CREATE FUNCTION rf_gt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 > $2'",
		"CREATE OPERATOR >>> (FUNCTION = rf_gt, LEFTARG = int, RIGHTARG = int)",
		"REVOKE EXECUTE ON FUNCTION rf_ok(int), rf_gt(int, int) FROM PUBLIC",
		"CREATE TABLE f1 (id int PRIMARY KEY); CREATE TABLE f2 (id int PRIMARY KEY); CREATE TABLE f3 (id int PRIMARY KEY)",
		"SELECT pglogical.replication_set_add_table('set_0', 'f1', false, row_filter := 'rf_ok(id) AND id < 100')",
		"SELECT pglogical.replication_set_add_table('set_0', 'f2', false, row_filter := 'id >>> 0')",
		"SELECT pglogical.replication_set_add_table('set_0', 'f3', false, row_filter := 'id > 0')",
	} {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	sets := []string{"set_0"}
	got, err := FilterDenied(ctx, prov, role, sets)
	want := []diagnose.FilterDenied{{Table: "public.f1", Function: "rf_ok(integer)"}, {Table: "public.f2", Function: "rf_gt(integer,integer)"}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v (%v), want %v", got, err, want)
	}
	if err := p.Provider.Exec(ctx, "GRANT EXECUTE ON FUNCTION rf_ok(int), rf_gt(int, int) TO "+role); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{role, "", "no_such_role_" + p.Provider.Name, "postgres"} {
		if got, err := FilterDenied(ctx, prov, r, sets); err != nil || len(got) != 0 {
			t.Errorf("role %q: %v (%v), want none", r, got, err)
		}
	}
}

// withRole is a new pair, a connection to its provider, and a role of the
// provider named prefix + its database's name (dropped at the end).
func withRole(t *testing.T, prefix string) (*pgtest.Pair, *pgx.Conn, string) {
	t.Helper()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	prov, _ := connect(t, p)
	role := prefix + p.Provider.Name
	t.Cleanup(func() {
		_ = p.Provider.Cluster.Exec(context.Background(), p.Provider.Name, "DROP OWNED BY "+role+"; DROP ROLE IF EXISTS "+role)
	})
	if err := p.Provider.Exec(context.Background(), "CREATE ROLE "+role); err != nil {
		t.Fatal(err)
	}
	return p, prov, role
}
