package drift

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestCompareKeys(t *testing.T) {
	for _, tc := range []struct {
		prov, sub []string
		want      string
	}{
		{[]string{"id"}, []string{"id"}, ""},
		{[]string{"a", "b"}, []string{"b", "a"}, ""}, // the same columns, another order
		{nil, nil, ""},
		{[]string{"id"}, nil, diagnose.KeyMissing},
		{[]string{"id"}, []string{"id", "n"}, diagnose.KeySkips},
		{[]string{"id"}, []string{"n"}, diagnose.KeySkips},
		{[]string{"id", "n"}, []string{"id"}, diagnose.KeyMerges},
		{nil, []string{"id"}, diagnose.KeySkips}, // the provider sends no key: inserts only
	} {
		if got := compareKeys(tc.prov, tc.sub); got != tc.want {
			t.Errorf("provider %v, subscriber %v: %q, want %q", tc.prov, tc.sub, got, tc.want)
		}
	}
}

// Each way the subscriber's key can differ from the provider's as drift
// names it, then what pglogical 2.4.2 does with an insert, an update of a
// plain column, an update of n and a delete made on the provider: with
// (id, n) on the subscriber for (id) on the provider, the update of n and
// the delete are skipped while it replicates; without a key the first
// update stops the apply; with (id) for (id, n), two provider rows of one
// id are one row. Each is then given the provider's key, as the plan says.
func TestKeyDifferencesAsPglogicalAppliesThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	pc, sc := connect(t, p)
	for i, tc := range []struct {
		prov, sub string // the key clauses
		effect    string
		stops     string // the apply worker's error, else the subscriber's rows
		rows      string
		fix       string
	}{
		{"PRIMARY KEY (id)", ", PRIMARY KEY (id, n)", diagnose.KeySkips, "", "1/10/a2 2/20/b 3/30/c 4/40/d",
			"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey, ADD PRIMARY KEY (id)"},
		{"PRIMARY KEY (id)", "", diagnose.KeyMissing, "could not find REPLICA IDENTITY index for table", "",
			"ALTER TABLE %[1]s ADD PRIMARY KEY (id)"},
		{"PRIMARY KEY (id, n)", ", PRIMARY KEY (id)", diagnose.KeyMerges, "", "1/10/a2 2/21/b 4/41/e",
			"ALTER TABLE %[1]s DROP CONSTRAINT %[1]s_pkey, ADD PRIMARY KEY (id, n)"},
	} {
		table := fmt.Sprintf("key_%d", i)
		what := fmt.Sprintf("%s on the provider, %q on the subscriber", tc.prov, tc.sub)
		for _, st := range []struct {
			db  pgtest.DB
			sql string
		}{
			{p.Provider, fmt.Sprintf("CREATE TABLE %s (id int, n int, val text, %s)", table, tc.prov)},
			{p.Subscriber, fmt.Sprintf("CREATE TABLE %s (id int, n int, val text %s)", table, tc.sub)},
			{p.Provider, fmt.Sprintf("SELECT pglogical.replication_set_add_table('set_0', '%s', false)", table)},
		} {
			if err := st.db.Exec(ctx, st.sql); err != nil {
				t.Fatalf("%s: %v", st.sql, err)
			}
		}
		got, err := Check(ctx, pc, sc, []string{"set_0"})
		if err != nil || len(got) != 1 || got[0].Key == nil || got[0].Key.Effect != tc.effect || got[0].Key.Table != "public."+table {
			t.Fatalf("%s: drift says %+v, %v; want %s", what, got, err, tc.effect)
		}
		logBefore := logSize(t, p)
		for _, sql := range []string{
			"INSERT INTO %s VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c')",
			"UPDATE %s SET val = 'a2' WHERE id = 1",
			"UPDATE %s SET n = 21 WHERE id = 2",
			"DELETE FROM %s WHERE id = 3",
			"INSERT INTO %s VALUES (4, 40, 'd')",
		} {
			if err := p.Provider.Exec(ctx, fmt.Sprintf(sql, table)); err != nil {
				t.Fatal(err)
			}
		}
		if tc.effect == diagnose.KeyMerges {
			// Another row of id 4, which the provider tells apart by n.
			if err := p.Provider.Exec(ctx, fmt.Sprintf("INSERT INTO %s VALUES (4, 41, 'e')", table)); err != nil {
				t.Fatal(err)
			}
		}
		rows := func() string {
			var s string
			_ = p.Subscriber.QueryRow(ctx, fmt.Sprintf("SELECT coalesce(string_agg(id || '/' || n || '/' || val, ' ' ORDER BY id, n), '') FROM %s", table), []any{&s})
			return s
		}
		if tc.stops == "" {
			var got string
			if err := pgtest.Poll(ctx, time.Minute, func() bool { got = rows(); return got == tc.rows }); err != nil {
				t.Fatalf("%s: the subscriber holds %q, want %q", what, got, tc.rows)
			}
			if status, err := p.Status(ctx, p.Sub()); err != nil || status != "replicating" {
				t.Errorf("%s: %s, %v", what, status, err)
			}
		} else if err := pgtest.Poll(ctx, time.Minute, func() bool { return strings.Contains(logSince(t, p, logBefore), "ERROR:  "+tc.stops) }); err != nil {
			t.Fatalf("%s: the apply did not stop with %q", what, tc.stops)
		}
		// The plan's way out: the provider's key (then a restart).
		for _, sql := range []string{
			fmt.Sprintf(tc.fix, table),
			"SELECT pglogical.alter_subscription_disable('" + p.Sub() + "', true)",
			"SELECT pglogical.alter_subscription_enable('" + p.Sub() + "', true)",
		} {
			if err := p.Subscriber.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		p.MustStream(t, time.Minute)
		if got, err := Check(ctx, pc, sc, []string{"set_0"}); err != nil || len(got) != 0 {
			t.Errorf("%s, given the provider's key: %+v, %v", what, got, err)
		}
		if err := p.Provider.Exec(ctx, fmt.Sprintf("SELECT pglogical.replication_set_remove_table('set_0', '%s')", table)); err != nil {
			t.Fatal(err)
		}
	}
}
