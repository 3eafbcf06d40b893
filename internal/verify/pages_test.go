package verify

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// Key ranges too slow for one statement are cut by key value: integer and
// uuid keys go to numbers and back unchanged, and cuts lie strictly between
// the ends, increasing.
func TestSpanCutsByKeyValue(t *testing.T) {
	ints := Table{Key: []string{"id"}, KeyTypes: []string{"bigint"}}
	uuids := Table{Key: []string{"id"}, KeyTypes: []string{"uuid"}}
	for _, tc := range []struct {
		t    Table
		a, b string
		cuts int
	}{
		{ints, "-9223372036854775808", "9223372036854775807", 15},
		{ints, "10", "12", 1},
		{ints, "10", "11", 0},
		{ints, "1", "100", 15},
		{uuids, "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", 15},
		{uuids, "c4ca4238-a0b9-2382-0dcc-509a6f75849b", "c4ca4238-a0b9-2382-0dcc-509a6f75849e", 2},
	} {
		a, b := keyValue(tc.t, tc.a), keyValue(tc.t, tc.b)
		if keyText(tc.t, a) != tc.a || keyText(tc.t, b) != tc.b {
			t.Fatalf("round trip: %s -> %s, %s -> %s", tc.a, keyText(tc.t, a), tc.b, keyText(tc.t, b))
		}
		cuts := spanCuts(a, b)
		if len(cuts) != tc.cuts {
			t.Errorf("(%s, %s): %d cuts, want %d", tc.a, tc.b, len(cuts), tc.cuts)
		}
		prev := a
		for _, c := range append(cuts, b) {
			if c.Cmp(prev) <= 0 {
				t.Errorf("(%s, %s): cuts %v not increasing strictly between the ends", tc.a, tc.b, cuts)
			}
			prev = c
		}
		if len(cuts) > 0 && keyValue(tc.t, keyText(tc.t, cuts[0])).Cmp(cuts[0]) != 0 {
			t.Errorf("cut %v does not survive its text", cuts[0])
		}
	}
}

// What both servers say of every table of a run is asked at once, the
// small tables summed whole at once too, and used while fresh: a table
// whose turn comes later is asked again (its keys may have moved). A table
// one server lacks fails the batch: each table is then asked about in its
// turn, and that error is its own.
func TestTablesAskedAboutAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 100})
	onBoth(ctx, t, p, `CREATE TABLE t_b (id bigint PRIMARY KEY, v text)`, `INSERT INTO t_b SELECT g, 'b' FROM generate_series(1, 30) g`)
	runSteps(ctx, t, []step{{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_b', false)`}})
	onBoth(ctx, t, p, `ANALYZE items_0`, `ANALYZE t_b`)
	var conns [2]*pgx.Conn
	for i, db := range []pgtest.DB{p.Provider, p.Subscriber} {
		conn, err := db.Cluster.Connect(ctx, db.Name)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		conns[i] = conn
	}
	tables, err := SetTables(ctx, conns[0], []string{"set_0"})
	if err != nil || len(tables) != 2 {
		t.Fatalf("tables %v, %v", tables, err)
	}
	rs := readRelInfos(ctx, conns[0], conns[1], tables)
	if rs == nil {
		t.Fatal("not asked at once")
	}
	highest := func(info [2]relInfo) string {
		if info[0].highest == nil {
			return "none"
		}
		return *info[0].highest
	}
	for _, tbl := range tables {
		one, err := readRelInfo(ctx, conns[1], tbl)
		if err != nil {
			t.Fatal(err)
		}
		got := rs.info[tbl.QualifiedName()]
		if got[1].version != one.version || got[1].kind != one.kind || *got[1].lowest != *one.lowest || *got[1].highest != *one.highest {
			t.Errorf("%s asked at once: %+v, alone: %+v", tbl.QualifiedName(), got[1], one)
		}
	}
	// Small tables are summed whole, all at once: under half of
	// chunk_rows rows on both servers.
	for _, tc := range []struct {
		chunk int
		whole []string
	}{{100000, []string{"public.items_0", "public.t_b"}}, {100, []string{"public.t_b"}}} {
		rs.readWholeTables(ctx, conns[0], conns[1], tables, Options{ChunkRows: tc.chunk})
		var whole []string
		for _, tbl := range tables {
			if a, ok := (&Comparer{rels: rs}).wholeTable(tbl); ok {
				whole = append(whole, tbl.QualifiedName())
				if a[0] != a[1] || a[0].count == 0 {
					t.Errorf("chunk_rows %d: %s summed %+v", tc.chunk, tbl.QualifiedName(), *a)
				}
			}
		}
		if !slices.Equal(whole, tc.whole) {
			t.Errorf("chunk_rows %d: summed whole %v, want %v", tc.chunk, whole, tc.whole)
		}
	}
	if got := highest(rs.info["public.t_b"]); got != "30" {
		t.Fatalf("t_b's highest key %s, want 30", got)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO t_b VALUES (31, 'new')"); err != nil {
		t.Fatal(err)
	}
	c := &Comparer{Provider: conns[0], Subscriber: conns[1], rels: rs}
	b := tables[slices.IndexFunc(tables, func(x Table) bool { return x.Name == "t_b" })]
	if info, err := c.relInfo(ctx, b); err != nil || highest(info) != "30" {
		t.Errorf("fresh: highest key %s, %v: want what was asked at the start, 30", highest(info), err)
	}
	rs.at, rs.wholeAt = rs.at.Add(-relInfoFresh), rs.wholeAt.Add(-relInfoFresh)
	if info, err := c.relInfo(ctx, b); err != nil || highest(info) != "31" {
		t.Errorf("stale: highest key %s, %v: want it asked again, 31", highest(info), err)
	}
	if _, ok := c.wholeTable(b); ok {
		t.Error("stale: its sums used")
	}

	if err := p.Subscriber.Exec(ctx, "DROP TABLE t_b"); err != nil {
		t.Fatal(err)
	}
	if rs := readRelInfos(ctx, conns[0], conns[1], tables); rs != nil {
		t.Errorf("a table the subscriber lacks: asked at once all the same: %+v", rs.info)
	}
}
