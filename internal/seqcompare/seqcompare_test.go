package seqcompare

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Each result on real pglogical: ok (the subscriber ahead by pglogical's
// margin), behind (its value lost), missing, not_replicated, and
// unreadable for a role without SELECT on the sequence on a side, which
// PostgreSQL shows as NULL, as for a sequence never used: before, a
// watching-only role saw such a sequence as ok, or as behind when only
// the subscriber hid it.
func TestSetsOnRealPglogical(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1})
	run := func(d pgtest.DB, sql string) {
		t.Helper()
		if err := d.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		run(d, "CREATE TABLE seqt (id serial PRIMARY KEY, v int); CREATE TABLE own (id serial PRIMARY KEY)")
	}
	run(p.Provider, "CREATE SEQUENCE only_here")
	run(p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 'seqt', false);
SELECT pglogical.replication_set_add_table('set_0', 'own', false);
SELECT pglogical.replication_set_add_sequence('set_0', 'seqt_id_seq', false);
SELECT pglogical.replication_set_add_sequence('set_0', 'only_here', false);
INSERT INTO seqt (v) SELECT g FROM generate_series(1, 10) g;
INSERT INTO own DEFAULT VALUES;
SELECT pglogical.synchronize_sequence('seqt_id_seq')`)
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var v *int64
		return p.Subscriber.QueryRow(ctx, "SELECT last_value FROM pg_sequences WHERE sequencename = 'seqt_id_seq'", []any{&v}) == nil && v != nil
	}); err != nil {
		t.Fatal("synchronize_sequence's value did not reach the subscriber")
	}
	compare := func(user string) map[string]Result {
		t.Helper()
		conn := func(d pgtest.DB) *pgx.Conn {
			c, err := pgx.Connect(ctx, d.DSN()+" user="+user)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(ctx) })
			return c
		}
		res, err := Sets(ctx, conn(p.Provider), conn(p.Subscriber), []string{"set_0"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Result{}
		for _, r := range res {
			out[r.Sequence] = r
		}
		if len(out) != 3 {
			t.Fatalf("as %s: %+v", user, res)
		}
		return out
	}
	check := func(got map[string]Result, seq, result, unreadable string) {
		t.Helper()
		if r := got[seq]; r.Result != result || r.UnreadableOn != unreadable {
			t.Errorf("%s: %+v, want %s (unreadable on %q)", seq, r, result, unreadable)
		}
	}
	got := compare("postgres")
	check(got, "public.seqt_id_seq", OK, "")
	check(got, "public.only_here", Missing, "")
	check(got, "public.own_id_seq", NotReplicated, "")
	if r := got["public.seqt_id_seq"]; *r.Provider != 10 || *r.Subscriber < 1010 || !r.Rising || r.Lacks(*r.Subscriber+1) == false || r.Lacks(10) {
		t.Errorf("values: %+v", r)
	}

	run(p.Subscriber, "SELECT setval('seqt_id_seq', 1, false)")
	check(compare("postgres"), "public.seqt_id_seq", Behind, "")

	role := "seqwatch_" + p.Provider.Name
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		run(d, "CREATE ROLE "+role+" LOGIN IN ROLE pg_monitor; GRANT USAGE ON SCHEMA pglogical TO "+role+"; GRANT SELECT ON ALL TABLES IN SCHEMA pglogical TO "+role)
		t.Cleanup(func() { _ = d.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role) })
	}
	check(compare(role), "public.seqt_id_seq", Unreadable, "provider, subscriber")
	run(p.Provider, "GRANT SELECT ON SEQUENCE seqt_id_seq TO "+role)
	check(compare(role), "public.seqt_id_seq", Unreadable, "subscriber")
	run(p.Subscriber, "GRANT SELECT ON SEQUENCE seqt_id_seq TO "+role)
	check(compare(role), "public.seqt_id_seq", Behind, "")
}

// BenchmarkSets: one comparison of a set's 50 sequences (the daemon makes
// one per subscription per minute): the listing on the provider, then the
// values on both sides at once.
func BenchmarkSets(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{Rows: 1})
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Exec(ctx, "DO $$ BEGIN FOR g IN 1..50 LOOP EXECUTE format('CREATE SEQUENCE s%s', g); END LOOP; END $$"); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Provider.Exec(ctx, "DO $$ BEGIN FOR g IN 1..50 LOOP PERFORM pglogical.replication_set_add_sequence('set_0', format('s%s', g)::regclass, false); PERFORM nextval(format('s%s', g)); END LOOP; END $$"); err != nil {
		b.Fatal(err)
	}
	pc, err := p.Provider.Cluster.Connect(ctx, p.Provider.Name)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(ctx)
	sc, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close(ctx)
	b.ResetTimer()
	for b.Loop() {
		res, err := Sets(ctx, pc, sc, []string{"set_0"})
		if err != nil || len(res) != 50 {
			b.Fatalf("%d results: %v", len(res), err)
		}
	}
}
