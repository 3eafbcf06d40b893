package verify

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestTableMatches(t *testing.T) {
	orders := Table{Schema: "public", Name: "orders_2026"}
	dotted := Table{Schema: "app", Name: "v1.orders"}
	for _, tc := range []struct {
		t    Table
		name string
		want bool
	}{
		{orders, "public.orders_2026", true},
		{orders, "orders_2026", true},
		{orders, "public.orders_*", true},
		{orders, "orders_202?", true},
		{orders, "*", true},
		{orders, "*.orders_2026", true},
		{orders, "audit.orders_*", false},
		{orders, "orders", false},
		{orders, "public.orders", false},
		{orders, "other.orders_2026", false},
		{orders, "[", false},
		{dotted, "v1.orders", true},
		{dotted, "app.v1.orders", true},
		{dotted, "app.*", true},
		{dotted, "v1.*", false},
		// As SQL writes it.
		{orders, `"public"."orders_2026"`, true},
		{orders, `PUBLIC."orders_2026"`, true},
		{orders, `"orders_2026"`, true},
		{orders, `"Public"."orders_2026"`, false},
		{orders, `"public".orders_*`, false},
		{dotted, `app."v1.orders"`, true},
		{dotted, `"v1.orders"`, true},
		{dotted, `"app.v1".orders`, false},
		{Table{Schema: "Sales", Name: "Orders"}, `"Sales"."Orders"`, true},
		{Table{Schema: "Sales", Name: "Orders"}, `Sales."Orders"`, false},
		{Table{Schema: "Sales", Name: "Orders"}, `"Sales".Orders`, false},
		{Table{Schema: "Sales", Name: "Orders"}, `"Sales"."Orders`, false},
	} {
		if got := tc.t.Matches(tc.name); got != tc.want {
			t.Errorf("%s matches %q: %t, want %t", tc.t.QualifiedName(), tc.name, got, tc.want)
		}
	}
}

// A partitioned table's name picks its partitions (what pglogical
// replicates); a name that picks nothing is named, the others compared.
func TestTableNamesAPartitionedParent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	cfg := testConfig(t, p)
	load := `CREATE TABLE "Parted" (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE parted_a PARTITION OF "Parted" FOR VALUES FROM (1) TO (51);
		CREATE TABLE parted_b PARTITION OF "Parted" FOR VALUES FROM (51) TO (101);
		INSERT INTO "Parted" SELECT g, 'x' FROM generate_series(1, 100) g`
	runSteps(ctx, t, []step{
		{p.Provider, load},
		{p.Subscriber, load},
		{p.Subscriber, `DELETE FROM "Parted" WHERE id = 77`},
		{p.Provider, "SELECT pglogical.create_replication_set('parts')"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('parts', 'parted_a')"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('parts', 'parted_b')"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'parts')"},
	})
	p.MustStream(t, 3*time.Minute)
	tg := targets(t, cfg, p.Sub())[0]
	for _, name := range []string{"Parted", "public.Parted", `"Parted"`, `public."Parted"`, `"public"."Parted"`} {
		r := Run(ctx, cfg, tg, Options{Mode: ModeChecksum}, name)
		var got []string
		for _, tr := range r.Tables {
			got = append(got, fmt.Sprintf("%s %t %v", tr.Table, tr.Equal, tr.Keys))
		}
		if r.Error != "" || r.NotReplicatedTables != nil || !slices.Equal(got, []string{"public.parted_a true []", "public.parted_b false [{77 missing}]"}) {
			t.Errorf("%s: %q %v %q", name, r.Error, r.NotReplicatedTables, got)
		}
	}
	r := Run(ctx, cfg, tg, Options{Mode: ModeCount}, `"public".parted_a`, "parted", "public.nope", `"PARTED"`)
	if r.Error != "" || len(r.Tables) != 1 || !slices.Equal(r.NotReplicatedTables, []string{"parted", "public.nope", `"PARTED"`}) {
		t.Errorf("a partition and two names picking nothing: %q %v %d tables", r.Error, r.NotReplicatedTables, len(r.Tables))
	}
}
