package verify

import (
	"context"
	"crypto/md5"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func testConfig(t testing.TB, p *pgtest.Pair) *config.Config {
	t.Helper()
	// Every walsender of the shared provider decodes all its WAL, the other
	// tests' too: under load a subscription can take longer than the default
	// 30 s to confirm a position (waiting for it is one statement).
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()+"verify:\n  statement_timeout: 90s\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func targets(t testing.TB, cfg *config.Config, sub string) []Target {
	t.Helper()
	m := monitor.New(cfg)
	defer m.Close(context.Background())
	_, snaps := m.Cycle(context.Background())
	tg, err := Targets(snaps, sub)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// fourTables: the subscriber misses id 17 of items_0, has an extra id 999999
// in items_1, a different value at id 4242 of items_2; items_3 is equal.
func fourTables(t *testing.T) (*pgtest.Pair, *config.Config) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Subscriptions: 4, Rows: 5000})
	p.MustConverge(t, 30*time.Second)
	for _, sql := range []string{
		"DELETE FROM items_0 WHERE id = 17",
		"INSERT INTO items_1 VALUES (999999, 'extra', 1)",
		"UPDATE items_2 SET val = 'changed on the subscriber' WHERE id = 4242",
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	return p, testConfig(t, p)
}

func TestChecksumNamesTheKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, cfg := fourTables(t)
	want := map[string][]KeyDiff{
		"public.items_0": {{"17", Missing}},
		"public.items_1": {{"999999", Extra}},
		"public.items_2": {{"4242", Different}},
		"public.items_3": nil,
	}
	// Small chunks and leaves so ranges are bisected, not read whole.
	opt := Options{Mode: ModeChecksum, ChunkRows: 1000, LeafRows: 16}
	for _, tg := range targets(t, cfg, "") {
		r := Run(ctx, cfg, tg, opt, "")
		if r.Error != "" || len(r.Tables) != 1 {
			t.Fatalf("%s: %+v", tg.Subscription, r)
		}
		tr := r.Tables[0]
		if tr.Error != "" {
			t.Fatalf("%s: %s", tr.Table, tr.Error)
		}
		if !slices.Equal(tr.Keys, want[tr.Table]) || tr.Equal != (want[tr.Table] == nil) || tr.DifferingRows != int64(len(want[tr.Table])) {
			t.Errorf("%s: got keys %v (equal %t, %d differing), want %v", tr.Table, tr.Keys, tr.Equal, tr.DifferingRows, want[tr.Table])
		}
		if tr.RowsCompared < 4999 {
			t.Errorf("%s: compared %d rows", tr.Table, tr.RowsCompared)
		}
		// Aggregates, cut keys and the leaves' row hashes: a small part of the rows.
		if r.RowsFetched <= 0 || r.RowsFetched > tr.RowsCompared/4 {
			t.Errorf("%s: %d rows fetched to compare %d", tr.Table, r.RowsFetched, tr.RowsCompared)
		}
	}
	_ = p
}

func TestCountReportsCountDifferences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, cfg := fourTables(t)
	want := map[string][2]int64{
		"public.items_0": {5000, 4999},
		"public.items_1": {5000, 5001},
		"public.items_2": {5000, 5000}, // a changed value: counts cannot see it
		"public.items_3": {5000, 5000},
	}
	for _, tg := range targets(t, cfg, "") {
		r := Run(ctx, cfg, tg, Options{Mode: ModeCount}, "")
		tr := r.Tables[0]
		if got := [2]int64{tr.ProviderRows, tr.SubscriberRows}; got != want[tr.Table] {
			t.Errorf("%s: got %v, want %v", tr.Table, got, want[tr.Table])
		}
		if tr.Equal != (want[tr.Table][0] == want[tr.Table][1]) {
			t.Errorf("%s: equal %t", tr.Table, tr.Equal)
		}
	}
}

func TestNoFalseAlarmUnderWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10000})
	cfg := testConfig(t, p)
	p.MustConverge(t, 30*time.Second)
	w, err := pgtest.StartMixedWriter(p.Provider, p.Tables[0], 100000, 10000)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	tg := targets(t, cfg, p.Sub())
	for _, opt := range []Options{{Mode: ModeChecksum}, {Mode: ModeChecksum, Scan: ScanPages}, {Mode: ModeCount}} {
		opt.ChunkRows = 5000
		r := Run(ctx, cfg, tg[0], opt, "")
		if r.Error != "" || !r.Equal || (opt.Scan != "" && (len(r.Tables) != 1 || r.Tables[0].Scan != opt.Scan)) {
			t.Errorf("%s (scan %q) under writes: got %+v", opt.Mode, opt.Scan, r.Tables)
		}
	}
	n, err := w.Stop()
	if err != nil || n == 0 {
		t.Fatalf("writer: %d rows, %v", n, err)
	}
	t.Logf("writer inserted %d rows and updated as many during the comparisons", n)
}

func TestTableFilterAndNoPrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	if r := Run(ctx, cfg, tg, Options{}, "nope"); r.Error == "" {
		t.Error("unknown table: no error")
	}
	if r := Run(ctx, cfg, tg, Options{}, "items_0"); r.Error != "" || len(r.Tables) != 1 || !r.Equal {
		t.Errorf("table filter: %+v", r)
	}
	// verify.exclude leaves tables out, unless one is asked for by name.
	excl := Options{Exclude: []string{"public.items_*"}}
	for _, ex := range []Options{excl, {Exclude: []string{`"public"."items_0"`}}} {
		if r := Run(ctx, cfg, tg, ex, ""); r.Error != "" || len(r.Tables) != 0 || !slices.Equal(r.Excluded, []string{"public.items_0"}) || !r.Equal {
			t.Errorf("excluded by %q: %+v", ex.Exclude, r)
		}
	}
	if r := Run(ctx, cfg, tg, Options{Exclude: []string{`"public"."ITEMS_0"`, `public."items_*"`}}, ""); r.Error != "" || len(r.Tables) != 1 || r.Excluded != nil {
		t.Errorf("excluded by names as SQL writes them that name other tables: %+v", r)
	}
	if r := Run(ctx, cfg, tg, excl, "items_0"); r.Error != "" || len(r.Tables) != 1 || r.Excluded != nil {
		t.Errorf("excluded but named: %+v", r)
	}
	if _, err := Targets(nil, "missing"); err == nil {
		t.Error("unknown subscription: no error")
	}
	// A table without primary key (pglogical takes one in a set that
	// replicates no UPDATE or DELETE) is compared by its rows' contents.
	// Both sides loaded alike, the subscriber then missing one row.
	load := "CREATE TABLE nopk (a int, b text); INSERT INTO nopk SELECT g, 'x' FROM generate_series(1, 50) g"
	runSteps(ctx, t, []step{
		{p.Provider, load},
		{p.Subscriber, load},
		{p.Subscriber, "DELETE FROM nopk WHERE a = 7"},
		{p.Provider, "SELECT pglogical.create_replication_set('inserts', replicate_update := false, replicate_delete := false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('inserts', 'nopk')"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'inserts')"},
	})
	p.MustStream(t, 3*time.Minute)
	tg = targets(t, cfg, p.Sub())[0] // now with the set
	tr := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum}, "nopk")).Tables[0]
	if tr.Mode != ModeChecksum || tr.Scan != ScanRows || tr.DifferingRows != 1 || tr.Equal || !slices.Equal(tr.Keys, []KeyDiff{{"(7,x)", Missing}}) {
		t.Errorf("table without primary key: %+v", tr)
	}
	// A table keyed by REPLICA IDENTITY USING INDEX instead (what pglogical
	// finds rows by): walked by that index, the differing row named.
	keyed := "CREATE TABLE keyed (code text NOT NULL, v int); CREATE UNIQUE INDEX keyed_code ON keyed (code); " +
		"ALTER TABLE keyed REPLICA IDENTITY USING INDEX keyed_code; INSERT INTO keyed SELECT 'k' || g, g FROM generate_series(1, 40) g"
	runSteps(ctx, t, []step{
		{p.Provider, keyed},
		{p.Subscriber, keyed},
		{p.Subscriber, "UPDATE keyed SET v = -1 WHERE code = 'k17'"},
		{p.Provider, "SELECT pglogical.create_replication_set('keyed_set')"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('keyed_set', 'keyed')"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'keyed_set')"},
	})
	p.MustStream(t, 3*time.Minute)
	tg = targets(t, cfg, p.Sub())[0]
	tr = oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum}, "keyed")).Tables[0]
	if tr.Mode != ModeChecksum || tr.DifferingRows != 1 || len(tr.Keys) != 1 || tr.Keys[0] != (KeyDiff{"k17", Different}) {
		t.Errorf("table keyed by its replica identity index: %+v", tr)
	}
}

// An integer key walked by value: gaps, negative keys, a far-away key, and
// rows only the subscriber has below the provider's first key and above its last.
func TestChecksumSparseIntegerKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 3000})
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (-7, 'neg', 1), (1000000000000, 'far', 1), (5000000000000, 'farther', 1)"); err != nil {
		t.Fatal(err)
	}
	if n, err := p.WaitConverged(ctx, "items_0", 30*time.Second); err != nil || n != 3003 {
		t.Fatalf("%d rows, %v", n, err)
	}
	for _, sql := range []string{
		"INSERT INTO items_0 VALUES (-100, 'below', 1), (9000000000000000, 'above', 1)",
		"DELETE FROM items_0 WHERE id IN (2500, 1000000000000)",
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, p)
	r := oneTable(t, Run(ctx, cfg, targets(t, cfg, p.Sub())[0], Options{Mode: ModeChecksum, ChunkRows: 500, LeafRows: 16}, ""))
	want := []KeyDiff{{"-100", Extra}, {"2500", Missing}, {"1000000000000", Missing}, {"9000000000000000", Extra}}
	if got := r.Tables[0].Keys; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := r.Tables[0].RowsCompared; got < 3003 {
		t.Errorf("compared %d rows", got)
	}
}

// Keys that are not one integer column: text, uuid, and a composite key,
// with values of types that hash by their own function (numeric,
// timestamptz, jsonb) or, without a hash opclass, by their text (json), and
// NULL against an empty string. Small chunks and leaves force every kind of
// split: offset-found ranges, row-number cuts and halving of composite keys.
func TestChecksumOtherKeyTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	ddl := []string{
		`CREATE TABLE t_text (code text PRIMARY KEY, amount numeric, at timestamptz, doc jsonb, note text)`,
		`INSERT INTO t_text SELECT 'k' || lpad(g::text, 5, '0'), g / 7.0, '2026-01-01'::timestamptz + g * interval '1 minute',
			jsonb_build_object('g', g), CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 3000) g`,
		`CREATE TABLE t_uuid (id uuid PRIMARY KEY, v int)`,
		`INSERT INTO t_uuid SELECT md5(g::text)::uuid, g FROM generate_series(1, 3000) g`,
		`CREATE TABLE t_comp (a int, b text, j json, v text, PRIMARY KEY (a, b))`,
		`INSERT INTO t_comp SELECT g % 50, 'b' || g, json_build_object('g', g), 'v' || g FROM generate_series(1, 3000) g`,
	}
	onBoth(ctx, t, p, ddl...)
	// Both sides loaded alike; replication carries later changes.
	for _, tbl := range []string{"t_text", "t_uuid", "t_comp"} {
		if err := p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', $1::regclass, false)", tbl); err != nil {
			t.Fatal(err)
		}
	}
	for _, sql := range []string{
		"DELETE FROM t_text WHERE code = 'k01234'",
		"INSERT INTO t_text VALUES ('k99999', 1, now(), '{}', 'extra')",
		"UPDATE t_text SET note = '' WHERE code = 'k00300'", // NULL on the provider
		"UPDATE t_text SET doc = '{\"g\": 2001}' WHERE code = 'k02000'",
		"UPDATE t_uuid SET v = -1 WHERE v = 1500",
		"DELETE FROM t_comp WHERE a = 7 AND b = 'b7'",
		"UPDATE t_comp SET j = '{\"g\":2222}' WHERE a = 22 AND b = 'b2222'", // json keeps its text: '{"g" : 2222}' on the provider
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// Servers whose defaults print times differently: timestamptz hashes
	// its text, which must not differ for that.
	if err := p.Subscriber.Exec(ctx, "ALTER DATABASE "+p.Subscriber.Name+" SET timezone = 'America/New_York'"); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, "ALTER DATABASE "+p.Subscriber.Name+" SET datestyle = 'SQL, DMY'"); err != nil {
		t.Fatal(err)
	}
	var uuid1500 string
	if err := p.Provider.QueryRow(ctx, "SELECT md5('1500')::uuid::text", []any{&uuid1500}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]KeyDiff{
		"public.t_text": {{"k00300", Different}, {"k01234", Missing}, {"k02000", Different}, {"k99999", Extra}},
		"public.t_uuid": {{uuid1500, Different}},
		"public.t_comp": {{"(22,b2222)", Different}, {"(7,b7)", Missing}},
	}
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	for tbl, keys := range want {
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 500, LeafRows: 16}, tbl))
		got := sortedKeys(r.Tables[0].Keys)
		if !slices.Equal(got, keys) {
			t.Errorf("%s: got %v, want %v", tbl, got, keys)
		}
		if n := r.Tables[0].RowsCompared; n < 2999 {
			t.Errorf("%s: compared %d rows", tbl, n)
		}
	}
}

// Only what the replication set replicates is compared: a column list (the
// subscriber has no such column at all) and a row filter (the subscriber
// holds a subset). Changes outside them are no difference; inside, they are.
func TestChecksumColumnListAndRowFilter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	runSteps(ctx, t, []step{
		{p.Provider, `CREATE TABLE t_cols (id int PRIMARY KEY, pub text, secret text)`},
		{p.Provider, `INSERT INTO t_cols SELECT g, 'p' || g, 's' || g FROM generate_series(1, 2000) g`},
		{p.Subscriber, `CREATE TABLE t_cols (id int PRIMARY KEY, pub text)`},
		{p.Subscriber, `INSERT INTO t_cols SELECT g, 'p' || g FROM generate_series(1, 2000) g`},
		{p.Provider, `CREATE TABLE t_filt (id int PRIMARY KEY, region text, v int)`},
		{p.Provider, `INSERT INTO t_filt SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 2000) g`},
		{p.Subscriber, `CREATE TABLE t_filt (id int PRIMARY KEY, region text, v int)`},
		{p.Subscriber, `INSERT INTO t_filt SELECT g, 'eu', g FROM generate_series(2, 2000, 2) g`},
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_cols', false, columns := '{id,pub}')`},
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_filt', false, row_filter := $$region = 'eu'$$)`},
		// Outside what is replicated: no difference.
		{p.Provider, `UPDATE t_cols SET secret = 'rotated' WHERE id = 5`},
		{p.Provider, `UPDATE t_filt SET v = -1 WHERE id = 7`},
		// Inside: differences.
		{p.Subscriber, `UPDATE t_cols SET pub = 'changed' WHERE id = 10`},
		{p.Subscriber, `DELETE FROM t_filt WHERE id = 100`},
		{p.Subscriber, `INSERT INTO t_filt VALUES (5001, 'us', 1)`},
	})
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	want := map[string][]KeyDiff{
		"public.t_cols": {{"10", Different}},
		"public.t_filt": {{"100", Missing}, {"5001", Extra}},
	}
	for tbl, keys := range want {
		for _, scan := range []string{ScanIndex, ScanPages} {
			r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 300, LeafRows: 16, Scan: scan}, tbl))
			if got := r.Tables[0].Keys; !slices.Equal(got, keys) || r.Tables[0].Scan != scan {
				t.Errorf("%s, scan %s: got %v (read by %s), want %v", tbl, scan, got, r.Tables[0].Scan, keys)
			}
		}
	}
	// Counts: the provider's 1000 'eu' rows against the subscriber's 999
	// plus one extra; equal counts, which is all count mode can tell.
	r := Run(ctx, cfg, tg, Options{Mode: ModeCount}, "t_filt")
	if tr := r.Tables[0]; tr.ProviderRows != 1000 || tr.SubscriberRows != 1000 {
		t.Errorf("count with a row filter: provider %d, subscriber %d (want 1000 and 1000)", tr.ProviderRows, tr.SubscriberRows)
	}
}

// A quiet provider can leave WAL holding no commit (the background
// running-transactions record) unflushed for as long as nothing else is
// written, and the walsender only decodes flushed WAL: waiting for the slot
// to confirm the insert position would last until the next checkpoint. Here
// the provider sends no keepalives at all (wal_sender_timeout = 0), so such
// a wait could only end at the statement timeout.
func TestSettlesOnAQuietProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prov := pgtest.NewCluster(t, pgtest.Options{ExtraConf: []string{"wal_sender_timeout = 0"}})
	subc := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: subc, Rows: 1000})
	p.MustConverge(t, 30*time.Second)
	if err := p.Subscriber.Exec(ctx, "DELETE FROM items_0 WHERE id = 17"); err != nil {
		t.Fatal(err)
	}
	// Wait for the state: inserted WAL beyond the flushed WAL, nothing
	// writing (the background writer logs running transactions every 15 s).
	conn, err := prov.Connect(ctx, p.Provider.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		var tail bool
		return conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn()").Scan(&tail) == nil && tail
	}); err != nil {
		t.Fatalf("the provider never left unflushed WAL: %v", err)
	}
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()+"verify:\n  statement_timeout: 10s\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := oneTable(t, Run(ctx, cfg, targets(t, cfg, p.Sub())[0], Options{Mode: ModeChecksum}, ""))
	if got, want := r.Tables[0].Keys, []KeyDiff{{"17", Missing}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Rows so slow to read that chunk_rows of them cannot be read within the
// statement timeout (a row filter that sleeps a millisecond per row stands
// in for wide, TOASTed rows): ranges are narrowed until each statement fits,
// and the comparison still names the differing key.
func TestRangesNarrowToTheStatementTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	// Rows of 320 bytes: about 22 to a page, so that one page (~25 ms of
	// sleeping) fits the timeout many times over on a loaded machine, while
	// 2,000 rows (2 s) do not. (At ~118 rows a page, a page took over 400 ms
	// once in CI, and no narrower range was left.)
	runSteps(ctx, t, []step{
		{p.Provider, `CREATE TABLE t_slow (id bigint PRIMARY KEY, v text)`},
		{p.Provider, `INSERT INTO t_slow SELECT g, repeat(md5(g::text), 10) FROM generate_series(1, 2000) g`},
		{p.Subscriber, `CREATE TABLE t_slow (id bigint PRIMARY KEY, v text)`},
		{p.Subscriber, `INSERT INTO t_slow SELECT g, repeat(md5(g::text), 10) FROM generate_series(1, 2000) g`},
		// The same with a text key, walked by row offset.
		{p.Provider, `CREATE TABLE t_slow_text (k text PRIMARY KEY, v text)`},
		{p.Provider, `INSERT INTO t_slow_text SELECT lpad(g::text, 5, '0'), repeat(md5(g::text), 10) FROM generate_series(1, 2000) g`},
		{p.Subscriber, `CREATE TABLE t_slow_text (k text PRIMARY KEY, v text)`},
		{p.Subscriber, `INSERT INTO t_slow_text SELECT lpad(g::text, 5, '0'), repeat(md5(g::text), 10) FROM generate_series(1, 2000) g`},
		// A composite key whose leading column has one value: key ranges of
		// that column cannot be cut any narrower.
		{p.Provider, `CREATE TABLE t_slow_comp (g int, id bigint, v text, PRIMARY KEY (g, id))`},
		{p.Provider, `INSERT INTO t_slow_comp SELECT 1, g, repeat(md5(g::text), 10) FROM generate_series(1, 2000) g`},
		{p.Subscriber, `CREATE TABLE t_slow_comp (g int, id bigint, v text, PRIMARY KEY (g, id))`},
		{p.Subscriber, `INSERT INTO t_slow_comp SELECT 1, g, repeat(md5(g::text), 10) FROM generate_series(1, 2000) g`},
		{p.Provider, `ANALYZE t_slow, t_slow_text, t_slow_comp`},
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_slow', false, row_filter := $$pg_sleep(0.001) IS NOT NULL$$)`},
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_slow_text', false, row_filter := $$pg_sleep(0.001) IS NOT NULL$$)`},
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_slow_comp', false, row_filter := $$pg_sleep(0.001) IS NOT NULL$$)`},
		{p.Subscriber, `DELETE FROM t_slow WHERE id = 1777`},
		{p.Subscriber, `DELETE FROM t_slow_text WHERE k = '01777'`},
		{p.Subscriber, `DELETE FROM t_slow_comp WHERE id = 1777`},
	})
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()+"verify:\n  statement_timeout: 400ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	tg := targets(t, cfg, p.Sub())[0]
	for _, tc := range []struct{ table, key, scan string }{
		{"t_slow", "1777", ""}, {"t_slow_text", "01777", ""},
		// In page order: ranges of pages narrow the same way, and so does the
		// comparison of a key range whose sums differ (here the whole table:
		// 2,000 rows are one range).
		{"t_slow", "1777", ScanPages},
		// Its one value of the leading column too slow for one statement:
		// compared in key order, in ranges of the whole key narrowed the same way.
		{"t_slow_comp", "(1,1777)", ScanPages},
	} {
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 2000, Scan: tc.scan}, tc.table))
		if got, want := r.Tables[0].Keys, []KeyDiff{{tc.key, Missing}}; !slices.Equal(got, want) {
			t.Errorf("%s, scan %q: got %v, want %v", tc.table, tc.scan, got, want)
		}
		if n := r.Tables[0].RowsCompared; n < 2000 {
			t.Errorf("%s, scan %q: compared %d rows", tc.table, tc.scan, n)
		}
	}
}

// Types whose hash depends on the server rather than the value: an enum
// hashes its label's OID, which each server assigns itself (an array of
// them, and a composite holding one, too): they must hash their text. Also
// money (no hash function: its text), a quoted mixed-case table and column,
// and a subscriber column of another integer type than the provider's.
func TestChecksumServerDependentTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	runSteps(ctx, t, []step{
		{p.Provider, `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`},
		{p.Subscriber, `CREATE TYPE filler AS ENUM ('x', 'y', 'z')`}, // the labels get other OIDs
		{p.Subscriber, `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`},
		{p.Provider, `CREATE TYPE holder AS (m mood, n int)`},
		{p.Subscriber, `CREATE TYPE holder AS (m mood, n int)`},
		{p.Provider, `CREATE TABLE "Mixed Case" ("Id" bigint PRIMARY KEY, "select" mood, moods mood[], h holder, price money, small bigint)`},
		{p.Subscriber, `CREATE TABLE "Mixed Case" ("Id" bigint PRIMARY KEY, "select" mood, moods mood[], h holder, price money, small int)`},
	})
	load := `INSERT INTO "Mixed Case" SELECT g, (ARRAY['sad','ok','happy'])[g % 3 + 1]::mood, ARRAY['ok','sad']::mood[],
		ROW('happy', g)::holder, g * 1.25, g FROM generate_series(1, 1000) g`
	onBoth(ctx, t, p, load)
	if err := p.Provider.Exec(ctx, `SELECT pglogical.replication_set_add_table('set_0', '"Mixed Case"', false)`); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, `UPDATE "Mixed Case" SET "select" = 'happy' WHERE "Id" = 501`); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, p)
	r := oneTable(t, Run(ctx, cfg, targets(t, cfg, p.Sub())[0], Options{Mode: ModeChecksum, ChunkRows: 300, LeafRows: 16}, `public.Mixed Case`))
	if got, want := r.Tables[0].Keys, []KeyDiff{{"501", Different}}; !slices.Equal(got, want) {
		t.Errorf("got %v (%d differing), want %v", got, r.Tables[0].DifferingRows, want)
	}
}

// The two servers sort text keys differently (another collation, or the
// same one from another glibc or ICU version, as across a major-version
// migration): a key near a range boundary falls into different ranges on
// each side. It must not be reported missing from one and extra in the other.
func TestChecksumKeysSortedDifferently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	// ICU sorts 'a' < 'B'; C sorts 'B' < 'a'.
	load := `INSERT INTO t_coll SELECT CASE WHEN g % 2 = 0 THEN upper(s) ELSE s END, g
		FROM (SELECT g, substr(md5(g::text), 1, 6) AS s FROM generate_series(1, 3000) g) x ON CONFLICT DO NOTHING`
	runSteps(ctx, t, []step{
		{p.Provider, `CREATE TABLE t_coll (k text COLLATE "und-x-icu" PRIMARY KEY, v int)`},
		{p.Subscriber, `CREATE TABLE t_coll (k text COLLATE "C" PRIMARY KEY, v int)`},
		{p.Provider, load},
		{p.Subscriber, load},
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_coll', false)`},
		{p.Subscriber, `UPDATE t_coll SET v = -1 WHERE v = 1234`},
	})
	var key string
	if err := p.Provider.QueryRow(ctx, "SELECT k FROM t_coll WHERE v = 1234", []any{&key}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, p)
	// In key order, and in page order by a hash of the key's bytes.
	for _, scan := range []string{ScanIndex, ScanPages} {
		r := oneTable(t, Run(ctx, cfg, targets(t, cfg, p.Sub())[0], Options{Mode: ModeChecksum, ChunkRows: 200, LeafRows: 16, Scan: scan}, "t_coll"))
		tr := r.Tables[0]
		if got, want := tr.Keys, []KeyDiff{{key, Different}}; tr.Scan != scan || !slices.Equal(got, want) || tr.DifferingRows != 1 || tr.RowsCompared < 2900 {
			t.Errorf("scan %s: read by %s, got %v (%d differing, %d compared), want %v", scan, tr.Scan, got, tr.DifferingRows, tr.RowsCompared, want)
		}
	}
}

// A table pglogical is still copying holds only part of its rows: it is not
// compared (reported as not compared, no differences), the others are.
func TestTableStillSynchronizingIsNotCompared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 500})
	p.MustConverge(t, 30*time.Second)
	onBoth(ctx, t, p, `CREATE TABLE t_other (id int PRIMARY KEY, v text)`,
		`INSERT INTO t_other SELECT g, 'v' || g FROM generate_series(1, 300) g`)
	if err := p.Provider.Exec(ctx, `SELECT pglogical.replication_set_add_table('set_0', 't_other', false)`); err != nil {
		t.Fatal(err)
	}
	// Resynchronize items_0 while its copy is held on the provider: an
	// exclusive lock there stops the sync worker's COPY.
	locker, err := p.Provider.Cluster.Connect(ctx, p.Provider.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(context.Background())
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "LOCK TABLE items_0 IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_resynchronize_table($1, 'items_0')", p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var n int
		err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pglogical.local_sync_status WHERE sync_relname = 'items_0' AND sync_status <> 'r'", []any{&n})
		return err == nil && n == 1
	}); err != nil {
		t.Fatalf("items_0 never left the ready state: %v", err)
	}
	cfg := testConfig(t, p)
	r := Run(ctx, cfg, targets(t, cfg, p.Sub())[0], Options{Mode: ModeChecksum}, "")
	if r.Error != "" || len(r.Tables) != 2 {
		t.Fatalf("%+v", r)
	}
	for _, tr := range r.Tables {
		switch tr.Table {
		case "public.items_0":
			if !strings.Contains(tr.Error, "not finished synchronizing") || tr.DifferingRows != 0 || tr.Equal {
				t.Errorf("items_0 while synchronizing: %+v", tr)
			}
		case "public.t_other":
			if tr.Error != "" || !tr.Equal || tr.RowsCompared != 300 {
				t.Errorf("t_other: %+v", tr)
			}
		}
	}
	// Let the copy finish: then items_0 is compared again, and equal.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := pgtest.Poll(ctx, 120*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT sync_status::text FROM pglogical.local_sync_status WHERE sync_relname = 'items_0'", []any{&status}) == nil && status == "r"
	}); err != nil {
		t.Fatalf("items_0 never became ready after its copy (sync status %q): %v", status, err)
	}
	r = Run(ctx, cfg, targets(t, cfg, p.Sub())[0], Options{Mode: ModeChecksum}, "items_0")
	if r.Error != "" || len(r.Tables) != 1 || r.Tables[0].Error != "" || !r.Tables[0].Equal {
		t.Errorf("items_0 after its copy: %+v", r)
	}
}

// A replication set that does not replicate DELETE (an archive keeps the
// rows the provider deletes): those extra rows are expected, counted apart
// and explained; a real difference in the same table is still reported.
func TestSetWithoutDeletesExpectsExtraRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	onBoth(ctx, t, p, `CREATE TABLE t_arch (id int PRIMARY KEY, v text)`,
		`INSERT INTO t_arch SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	runSteps(ctx, t, []step{
		{p.Provider, `SELECT pglogical.create_replication_set('archive', replicate_delete := false, replicate_truncate := false)`},
		{p.Provider, `SELECT pglogical.replication_set_add_table('archive', 't_arch', false)`},
		{p.Subscriber, `SELECT pglogical.alter_subscription_add_replication_set('` + p.Sub() + `', 'archive')`},
	})
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{`DELETE FROM t_arch WHERE id <= 10`, `UPDATE t_arch SET v = 'replicated' WHERE id = 500`} {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var v string
		return p.Subscriber.QueryRow(ctx, "SELECT v FROM t_arch WHERE id = 500", []any{&v}) == nil && v == "replicated"
	}); err != nil {
		t.Fatalf("the update never reached the subscriber: %v", err)
	}
	if err := p.Subscriber.Exec(ctx, `UPDATE t_arch SET v = 'local' WHERE id = 600`); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 200, LeafRows: 16}, "t_arch"))
	tr := r.Tables[0]
	if !slices.Equal(tr.Keys, []KeyDiff{{"600", Different}}) || tr.DifferingRows != 1 || tr.ExpectedRows != 10 || !strings.Contains(tr.Note, "DELETE") {
		t.Errorf("checksum: keys %v, %d differing, %d expected, note %q", tr.Keys, tr.DifferingRows, tr.ExpectedRows, tr.Note)
	}
	r = Run(ctx, cfg, tg, Options{Mode: ModeCount}, "t_arch")
	if tr := r.Tables[0]; !tr.Equal || tr.ExpectedRows != 10 || tr.ProviderRows != 990 || tr.SubscriberRows != 1000 {
		t.Errorf("count: %+v", tr)
	}
}

// oneTable fails the test unless r compared exactly one table without error.
func oneTable(t *testing.T, r Result) Result {
	t.Helper()
	if r.Error != "" || len(r.Tables) != 1 || r.Tables[0].Error != "" {
		t.Fatalf("%+v", r)
	}
	return r
}

// onBoth runs statements on the provider, then the same on the subscriber
// (tables loaded alike before replication carries later changes).
func onBoth(ctx context.Context, t testing.TB, p *pgtest.Pair, sqls ...string) {
	t.Helper()
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		for _, sql := range sqls {
			if err := d.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// newRole creates a login role on db's cluster for the test (named prefix_
// and db's name; dropped when the test ends), gives it each grant (a GRANT
// statement without its "TO role"), and returns its name.
func newRole(ctx context.Context, t testing.TB, db pgtest.DB, prefix string, grants ...string) string {
	t.Helper()
	role := prefix + "_" + db.Name
	t.Cleanup(func() {
		db.Exec(context.Background(), "DROP OWNED BY "+role)
		db.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	steps := []step{{db, "CREATE ROLE " + role + " LOGIN"}}
	for _, g := range grants {
		steps = append(steps, step{db, g + " TO " + role})
	}
	runSteps(ctx, t, steps)
	return role
}

// step is a statement to run on one side.
type step struct {
	db  pgtest.DB
	sql string
}

// runSteps runs statements in order, failing the test at the first error.
func runSteps(ctx context.Context, t testing.TB, steps []step) {
	t.Helper()
	for _, st := range steps {
		if err := st.db.Exec(ctx, st.sql); err != nil {
			t.Fatal(err)
		}
	}
}

// An interrupted comparison says where it stopped; resumed from there it
// compares exactly the rest: no row twice, none skipped, the differences on
// either side of the stop each found once. Integer and text keys.
func TestInterruptedComparisonResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 4000})
	ddl := []string{
		`CREATE TABLE t_text (code text PRIMARY KEY, v int)`,
		`INSERT INTO t_text SELECT 'k' || lpad(g::text, 5, '0'), g FROM generate_series(1, 4000) g`,
	}
	onBoth(ctx, t, p, ddl...)
	p.MustConverge(t, 30*time.Second)
	runSteps(ctx, t, []step{
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 't_text', false)"},
		{p.Subscriber, "UPDATE items_0 SET val = 'changed' WHERE id = 100"},
		{p.Subscriber, "DELETE FROM items_0 WHERE id = 3900"},
		{p.Subscriber, "UPDATE t_text SET v = -1 WHERE code = 'k00100'"},
		{p.Subscriber, "DELETE FROM t_text WHERE code = 'k03900'"},
	})
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	for _, tc := range []struct {
		table       string
		below, over KeyDiff
	}{
		{"public.items_0", KeyDiff{"100", Different}, KeyDiff{"3900", Missing}},
		{"public.t_text", KeyDiff{"k00100", Different}, KeyDiff{"k03900", Missing}},
	} {
		// Stopped (as by Ctrl-C or the end of a window) once 1000 rows were compared.
		stop, cancel := context.WithCancel(ctx)
		opt := Options{Mode: ModeChecksum, ChunkRows: 200, LeafRows: 16, Progress: func(pr Progress) {
			if pr.RowsChecked >= 1000 {
				cancel()
			}
		}}
		first := Run(stop, cfg, tg, opt, tc.table)
		cancel()
		if first.Error != "interrupted" || len(first.Tables) != 1 {
			t.Fatalf("%s: interrupted run: %+v", tc.table, first)
		}
		ft := first.Tables[0]
		if ft.Error == "" || len(ft.ResumeFrom) != 1 || ft.RowsCompared < 1000 || ft.RowsCompared >= 3900 {
			t.Fatalf("%s: interrupted table: %+v", tc.table, ft)
		}
		if !slices.Equal(ft.Keys, []KeyDiff{tc.below}) {
			t.Errorf("%s: keys before the stop: %v, want %v", tc.table, ft.Keys, tc.below)
		}
		opt = Options{Mode: ModeChecksum, ChunkRows: 200, LeafRows: 16, Resume: map[string][]string{tc.table: ft.ResumeFrom}}
		second := oneTable(t, Run(ctx, cfg, tg, opt, tc.table)).Tables[0]
		if !slices.Equal(second.Keys, []KeyDiff{tc.over}) || !slices.Equal(second.ResumedFrom, ft.ResumeFrom) {
			t.Errorf("%s: resumed at %v: keys %v (resumed from %v), want %v", tc.table, ft.ResumeFrom, second.Keys, second.ResumedFrom, tc.over)
		}
		if n := ft.RowsCompared + second.RowsCompared; n != 4000 {
			t.Errorf("%s: %d rows before the stop at %v + %d after = %d, want 4000", tc.table, ft.RowsCompared, ft.ResumeFrom, second.RowsCompared, n)
		}
	}
	// A resume key that does not fit the table is an error naming it.
	opt := Options{Mode: ModeChecksum, Resume: map[string][]string{"public.items_0": {"x"}}}
	r := Run(ctx, cfg, tg, opt, "items_0")
	if len(r.Tables) != 1 || !strings.Contains(r.Tables[0].Error, "public.items_0") || !strings.Contains(r.Tables[0].Error, `"x"`) {
		t.Errorf("bad resume key: %+v", r)
	}
	opt.Resume = map[string][]string{"items_0": {"1", "2"}}
	r = Run(ctx, cfg, tg, opt, "items_0")
	if len(r.Tables) != 1 || !strings.Contains(r.Tables[0].Error, "primary key has 1 columns") {
		t.Errorf("resume key of two columns: %+v", r)
	}
}

// pglogical's data gathering: one subscriber table fed by two providers.
// Each subscription's comparison expects the other provider's rows as extra
// (a note names the other subscription) and still finds its own
// provider's missing and different rows.
func TestGatheredTableExpectsTheOtherProvidersRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1000})
	p.MustConverge(t, 30*time.Second)
	// A second provider database on the provider's cluster, its own
	// pglogical node, the same table with other keys.
	db2 := pgtest.DB{Cluster: p.Provider.Cluster, Name: p.Provider.Name + "_b"}
	if err := db2.Cluster.Exec(ctx, "postgres", "CREATE DATABASE "+db2.Name); err != nil {
		t.Fatal(err)
	}
	load := "INSERT INTO items_0 SELECT g, md5(g::text), g % 100 FROM generate_series(100001, 101000) g"
	runSteps(ctx, t, []step{
		{db2, "CREATE EXTENSION pglogical"},
		{db2, "SELECT pglogical.create_node(node_name := 'provider_b_" + db2.Name + "', dsn := '" + db2.DSN() + "')"},
		{db2, "CREATE TABLE items_0 (id bigint PRIMARY KEY, val text, n int)"},
		{db2, load},
		{db2, "SELECT pglogical.create_replication_set('gather')"},
		{db2, "SELECT pglogical.replication_set_add_table('gather', 'items_0', false)"},
		{p.Subscriber, load}, // loaded alike; replication carries later changes
		{p.Subscriber, "SELECT pglogical.create_subscription(subscription_name := 'sub_b', provider_dsn := '" + db2.DSN() +
			"', replication_sets := ARRAY['gather'], synchronize_data := false, forward_origins := '{}')"},
	})
	if err := p.WaitStatus(ctx, "sub_b", "replicating", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	runSteps(ctx, t, []step{
		{db2, "INSERT INTO items_0 VALUES (101001, 'replicated from b', 1)"},
		{p.Subscriber, "DELETE FROM items_0 WHERE id = 17"},
		{p.Subscriber, "UPDATE items_0 SET n = -1 WHERE id = 100500"},
	})
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()+fmt.Sprintf("  - name: provider_b\n    dsn: %q\n", db2.DSN())))
	if err != nil {
		t.Fatal(err)
	}
	all := targets(t, cfg, "")
	sources := Sources(ctx, cfg, all)
	// Without provider_b configured, sub_b cannot be verified: it is named,
	// and the other subscription is still returned.
	m := monitor.New(testConfig(t, p))
	_, snaps := m.Cycle(ctx)
	m.Close(ctx)
	if tgs, err := Targets(snaps, ""); len(tgs) != 1 || tgs[0].Subscription != p.Sub() || err == nil || !strings.Contains(err.Error(), "sub_b") {
		t.Errorf("targets with a provider not configured: %+v, %v", tgs, err)
	}
	for _, tc := range []struct {
		sub, other string
		key        KeyDiff
		extra      int64
	}{
		{p.Sub(), "sub_b", KeyDiff{"17", Missing}, 1001},
		{"sub_b", p.Sub(), KeyDiff{"100500", Different}, 999},
	} {
		var tg Target
		for _, x := range all {
			if x.Subscription == tc.sub {
				tg = x
			}
		}
		opt := Options{Mode: ModeChecksum, ChunkRows: 300, LeafRows: 16, OtherSources: sources["subscriber/"+tc.sub]}
		tr := oneTable(t, Run(ctx, cfg, tg, opt, "")).Tables[0]
		if !slices.Equal(tr.Keys, []KeyDiff{tc.key}) || tr.DifferingRows != 1 || tr.ExpectedRows != tc.extra || !strings.Contains(tr.Note, "also fed by subscription "+tc.other) {
			t.Errorf("%s: %+v", tc.sub, tr)
		}
		opt.Mode = ModeCount
		tr = oneTable(t, Run(ctx, cfg, tg, opt, "")).Tables[0]
		if tr.DifferingRows != 0 || tr.ExpectedRows == 0 {
			t.Errorf("%s, count mode: %+v", tc.sub, tr)
		}
		// Without knowing the other source, its rows are extra: a false alarm.
		opt = Options{Mode: ModeChecksum, ChunkRows: 300, LeafRows: 16}
		if tr := oneTable(t, Run(ctx, cfg, tg, opt, "")).Tables[0]; tr.DifferingRows != 1+tc.extra {
			t.Errorf("%s without the other source: %d differing rows, want %d", tc.sub, tr.DifferingRows, 1+tc.extra)
		}
	}
}

// Sequences on real pglogical: one synchronized (ok), one behind, and a
// serial column's sequence in no set. They are reported, and do not make
// the subscription differ. (One in a set but absent on the subscriber stops
// the subscription at pglogical's next copy: TestStatusSequenceMissingOnTheSubscriber.)
func TestSequences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	onBoth(ctx, t, p, "CREATE SEQUENCE synced", "CREATE SEQUENCE lagging", "CREATE TABLE notes (id serial PRIMARY KEY, t text)")
	runSteps(ctx, t, []step{
		{p.Provider, "SELECT pglogical.create_replication_set('seqs')"},
		{p.Provider, "SELECT pglogical.replication_set_add_sequence('seqs', s, true) FROM unnest(ARRAY['synced', 'lagging']) s"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('seqs', 'notes', true)"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'seqs')"},
		{p.Provider, "SELECT nextval(s) FROM unnest(ARRAY['synced', 'lagging']) s, generate_series(1, 10)"},
		{p.Provider, "SELECT nextval('notes_id_seq') FROM generate_series(1, 2)"},
	})
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	// Copy them, until the copy arrives: the apply worker takes the new set
	// only after it reconnects, and a copy sent before is not for it. Wait
	// for the set's table (notes) to be synchronized too, or it is not compared.
	// One copy a second: each is a message every walsender of the shared
	// provider decodes (at Poll's pace it was 20 a second, load on all tests).
	var v int64
	var ready bool
	var copied time.Time
	if err := pgtest.Poll(ctx, 180*time.Second, func() bool {
		if time.Since(copied) >= time.Second {
			if err := p.Provider.Exec(ctx, "SELECT pglogical.synchronize_sequence(s) FROM unnest(ARRAY['synced', 'lagging']) s"); err != nil {
				t.Fatal(err)
			}
			copied = time.Now()
		}
		return p.Subscriber.QueryRow(ctx, `SELECT coalesce((SELECT last_value FROM pg_sequences WHERE sequencename = 'synced'), 0),
			NOT EXISTS (SELECT 1 FROM pglogical.local_sync_status WHERE sync_status <> 'r')`, []any{&v, &ready}) == nil && v >= 10 && ready
	}); err != nil {
		t.Fatalf("synced never copied (%d), or a table never synchronized (%t)", v, ready)
	}
	for attempt := 1; ; attempt++ {
		// Behind, as between two of pglogical's periodic copies.
		if err := p.Subscriber.Exec(ctx, "SELECT setval('lagging', 3)"); err != nil {
			t.Fatal(err)
		}
		r := Run(ctx, cfg, tg, Options{Mode: ModeChecksum}, "")
		got := map[string]SequenceResult{}
		for _, s := range r.Sequences {
			got[s.Sequence] = s
		}
		if lag := got["public.lagging"]; lag.Result != SeqBehind {
			var now int64
			if p.Subscriber.QueryRow(ctx, "SELECT last_value FROM lagging", []any{&now}) == nil && now != 3 && attempt < 3 {
				continue // pglogical's periodic copy came in between: set it back
			}
			t.Errorf("lagging: %+v", lag)
		}
		if r.Error != "" || !r.Equal || r.SequenceError != "" || len(r.Sequences) != 3 {
			t.Fatalf("result: %+v", r)
		}
		if s := got["public.synced"]; s.Result != SeqOK || s.Provider == nil || *s.Provider != 10 || s.Subscriber == nil || *s.Subscriber < 10 {
			t.Errorf("synced: %+v", s)
		}
		if s := got["public.notes_id_seq"]; s.Result != SeqNotReplicated || s.Table != "public.notes" || s.Provider == nil || *s.Provider != 2 {
			t.Errorf("notes_id_seq: %+v", s)
		}
		break
	}
	// One table named: its rows only, no sequences.
	if r := Run(ctx, cfg, tg, Options{Mode: ModeChecksum}, "notes"); r.Error != "" || r.Sequences != nil {
		t.Errorf("--table: %+v", r)
	}

	// A provider role that may read the sets' tables but not pglogical's
	// sequence sets: the tables are compared all the same (their listing
	// shares a round trip with the sequences'), the sequences' error is
	// said apart.
	role := newRole(ctx, t, p.Provider, "noseq", "GRANT USAGE ON SCHEMA pglogical",
		"GRANT SELECT ON pglogical.replication_set, pglogical.replication_set_table, items_0, notes")
	limited, err := config.Parse("t.yaml", []byte(strings.Replace(p.NodesYAML(), "user=postgres", "user="+role, 1)+"verify:\n  statement_timeout: 90s\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := Run(ctx, limited, tg, Options{Mode: ModeChecksum}, "")
	if r.Error != "" || !r.Equal || len(r.Tables) != 2 || r.Sequences != nil || !strings.Contains(r.SequenceError, "list the sequences of the replication sets") {
		t.Errorf("sequence sets unreadable: %+v", r)
	}
}

// verify.parallel compares several tables of a subscription at once, each
// over its own pair of connections, with the same results as one at a time
// and under one rate limit for them all.
func TestParallelTablesSameResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	var steps []step
	// The same rows on both sides, no copy by pglogical: its table sync is
	// not what this test is about, and on a loaded box a copy has stayed in
	// catch-up (sync status u) for minutes.
	for _, tb := range []string{"pa", "pb", "pc"} {
		ddl := fmt.Sprintf("CREATE TABLE %s (id bigint PRIMARY KEY, v text)", tb)
		fill := fmt.Sprintf("INSERT INTO %s SELECT g, md5(g::text) FROM generate_series(1, 3000) g", tb)
		steps = append(steps, step{p.Provider, ddl}, step{p.Subscriber, ddl}, step{p.Provider, fill}, step{p.Subscriber, fill},
			step{p.Provider, fmt.Sprintf("SELECT pglogical.replication_set_add_table('set_0', '%s', false)", tb)})
	}
	runSteps(ctx, t, steps)
	runSteps(ctx, t, []step{
		{p.Subscriber, "DELETE FROM pa WHERE id = 17"},
		{p.Subscriber, "INSERT INTO pb VALUES (999999, 'extra')"},
		{p.Subscriber, "UPDATE pc SET v = 'changed' WHERE id = 2024"},
	})
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	serial := Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 500}, "")
	// While it runs, count pglmon's sessions on the provider.
	var mu sync.Mutex
	most := 0
	opt := Options{Mode: ModeChecksum, ChunkRows: 500, Parallel: 3, MaxRowsPerSecond: 4000, Progress: func(Progress) {
		var n int
		if p.Provider.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pglmon verify' AND datname = current_database()", []any{&n}) == nil {
			mu.Lock()
			most = max(most, n)
			mu.Unlock()
		}
	}}
	par := Run(ctx, cfg, tg, opt, "")
	summary := func(r Result) []string {
		var out []string
		for _, tr := range r.Tables {
			out = append(out, fmt.Sprintf("%s equal=%t rows=%d keys=%v err=%q", tr.Table, tr.Equal, tr.RowsCompared, tr.Keys, tr.Error))
		}
		return out
	}
	want := []string{
		"public.items_0 equal=true rows=10 keys=[] err=\"\"",
		"public.pa equal=false rows=3000 keys=[{17 missing}] err=\"\"",
		"public.pb equal=false rows=3001 keys=[{999999 extra}] err=\"\"",
		"public.pc equal=false rows=3000 keys=[{2024 different}] err=\"\"",
	}
	if got := summary(serial); !slices.Equal(got, want) {
		t.Errorf("one at a time:\n%s", strings.Join(got, "\n"))
	}
	if got := summary(par); !slices.Equal(got, want) || par.Error != "" || par.RowsChecked != serial.RowsChecked {
		t.Errorf("three at a time (error %q, rows %d vs %d):\n%s", par.Error, par.RowsChecked, serial.RowsChecked, strings.Join(got, "\n"))
	}
	if most != 3 {
		t.Errorf("at most %d pglmon sessions on the provider at once, want 3", most)
	}
	// One limit for all three: 9,011 rows at 4,000 a second take 2.25 s at least
	// (0.3 s unpaced here; three limits of 4,000 would let it end in about 1 s).
	if floor := time.Duration(float64(par.RowsChecked) / 4000 * float64(time.Second)); par.Duration < floor {
		t.Errorf("%d rows in %s: faster than max_rows_per_second allows (%s)", par.RowsChecked, par.Duration, floor)
	}
}

// A subscription with apply_delay confirms a change that long after its
// commit: settling a difference waits at least as long, past a shorter
// statement_timeout. The comparison still names exactly the real difference,
// and the change still in its delay is not reported.
func TestDelayedSubscriptionSettles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 1000, ApplyDelay: 6 * time.Second})
	p.MustConverge(t, 60*time.Second)
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()+"verify:\n  statement_timeout: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	tg := targets(t, cfg, p.Sub())[0]
	if tg.ApplyDelay != 6*time.Second {
		t.Fatalf("target's apply_delay: %s", tg.ApplyDelay)
	}
	if err := p.Subscriber.Exec(ctx, "DELETE FROM items_0 WHERE id = 17"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "UPDATE items_0 SET val = 'in its delay' WHERE id = 42"); err != nil {
		t.Fatal(err)
	}
	// Small ranges: a range whose settling times out is narrowed to the
	// row at once, not waited out over many narrower tries.
	r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 10}, ""))
	if got, want := r.Tables[0].Keys, []KeyDiff{{"17", Missing}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A subscription that does not stream (here disabled) cannot settle a
// difference: verify says so, naming the slot, instead of guessing.
func TestNotStreamingSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	if err := p.Disable(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	runSteps(ctx, t, []step{{p.Provider, "INSERT INTO items_0 VALUES (1000, 'not yet on the subscriber', 1)"}})
	cfg, err := config.Parse("t.yaml", []byte(p.NodesYAML()+"verify:\n  statement_timeout: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	tg := targets(t, cfg, p.Sub())[0]
	start := time.Now()
	r := Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 500}, "")
	msg := r.Error
	for _, tr := range r.Tables {
		msg += " " + tr.Error
	}
	slot, _ := p.SlotName(ctx, p.Sub())
	if !strings.Contains(msg, "nothing streams from slot "+slot+" on the provider") {
		t.Errorf("after %s: %+v", time.Since(start).Round(time.Second), r)
	}
}

// A row a server cannot read within statement_timeout, after a gap in the
// keys: narrowing used to put the range in the gap, the gap's jump widened
// it back over the row, for ever. Now the range narrows from the gap's end
// down to that row, and the table ends with the server's error. The slow
// row: a row-level security policy on the subscriber that sleeps on it,
// for pglmon's own role there (the apply worker, a superuser, is not
// subject to it).
func TestSlowRowAfterGapEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	var steps []step
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		steps = append(steps, step{d, `CREATE TABLE t_gap (id bigint PRIMARY KEY, v text)`},
			step{d, `INSERT INTO t_gap SELECT g, md5(g::text) FROM generate_series(1, 50) g UNION ALL SELECT 1000000, 'far'`})
	}
	runSteps(ctx, t, append(steps, step{p.Provider, `ANALYZE t_gap`},
		step{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_gap', false)`}))
	cfg := slowReaderConfig(ctx, t, p, "t_gap", "CASE WHEN id = 1000000 THEN pg_sleep(5) IS NOT NULL ELSE true END")
	tg := targets(t, cfg, p.Sub())[0]
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r := Run(cctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 10}, "t_gap")
	if cctx.Err() != nil {
		t.Fatal("verify did not end within 2 minutes")
	}
	if len(r.Tables) != 1 || !strings.Contains(r.Tables[0].Error, "statement timeout") || r.Tables[0].RowsCompared != 50 {
		t.Errorf("got %+v", r.Tables)
	}
}

// Past the provider's last key pglmon reads what is left in one open
// range (a table the first range would hold whole: from the start). Where
// that holds more rows than one statement reads (here 300
// rows only the subscriber has, each slowed by a row-level security
// policy for pglmon's role; in the field, a table appended to fast while
// the comparison ran), the range times out and the rest is walked in
// ranges instead: every extra row is named, and the table has no error.
func TestTooManyRowsPastTheLastKeyAreWalked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	runSteps(ctx, t, []step{
		{p.Provider, `CREATE TABLE t_tail (id bigint PRIMARY KEY, v text)`},
		{p.Provider, `INSERT INTO t_tail SELECT g, md5(g::text) FROM generate_series(1, 100) g`},
		{p.Subscriber, `CREATE TABLE t_tail (id bigint PRIMARY KEY, v text)`},
		{p.Subscriber, `INSERT INTO t_tail SELECT g, md5(g::text) FROM generate_series(1, 400) g`},
		{p.Provider, `ANALYZE t_tail`},
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 't_tail', false)`},
	})
	// 300 rows of 10 ms: 3 s, past the 2 s statement timeout in one
	// statement; a few dozen at a time fit.
	cfg := slowReaderConfig(ctx, t, p, "t_tail", "CASE WHEN id > 100 THEN pg_sleep(0.01) IS NOT NULL ELSE true END")
	tg := targets(t, cfg, p.Sub())[0]
	// chunk_rows 100: two ranges of the provider's 100 rows, then the open
	// one past them; 1,000: the table is one open range from the start.
	for _, chunk := range []int{100, 1000} {
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: chunk, MaxKeys: 1000, Scan: ScanIndex}, "t_tail"))
		tr := r.Tables[0]
		if tr.DifferingRows != 300 || len(tr.Keys) != 300 || tr.Keys[0] != (KeyDiff{"101", Extra}) || tr.Keys[299] != (KeyDiff{"400", Extra}) {
			t.Errorf("chunk_rows %d: differing rows %d, keys %d: %v ... ", chunk, tr.DifferingRows, len(tr.Keys), tr.Keys[:min(3, len(tr.Keys))])
		}
		if tr.RowsCompared != 400 {
			t.Errorf("chunk_rows %d: compared %d rows, want 400", chunk, tr.RowsCompared)
		}
	}
}

// slowReaderConfig is a configuration (statement_timeout 2s) whose
// subscriber role is one of its own, for whom a row-level security policy
// on table, USING slow, makes rows slow to read (the apply worker, a
// superuser, is not subject to it).
func slowReaderConfig(ctx context.Context, t *testing.T, p *pgtest.Pair, table, slow string) *config.Config {
	t.Helper()
	role := newRole(ctx, t, p.Subscriber, "slowreader", "GRANT pg_read_all_data, pg_monitor",
		"GRANT SELECT ON pg_replication_origin, pg_replication_origin_status",
		"GRANT EXECUTE ON FUNCTION pg_show_replication_origin_status()")
	runSteps(ctx, t, []step{
		{p.Subscriber, `ALTER TABLE ` + table + ` ENABLE ROW LEVEL SECURITY`},
		{p.Subscriber, `CREATE POLICY slow ON ` + table + ` FOR SELECT USING (` + slow + `)`},
	})
	nodes := fmt.Sprintf("nodes:\n  - name: provider\n    dsn: %q\n  - name: subscriber\n    dsn: %q\n", p.Provider.DSN(),
		strings.Replace(p.Subscriber.DSN(), "user=postgres", "user="+role, 1))
	if !strings.Contains(nodes, "user="+role) {
		t.Fatalf("no role in %s", nodes)
	}
	cfg, err := config.Parse("t.yaml", []byte(nodes+"verify:\n  statement_timeout: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Tables whose rows lie in no order of their key (loaded in random order,
// each server its own) are read in page order; a table in key order, or one
// told to, through the index. Both name exactly the differing keys, a row
// below every key the provider has included. Stopped while reading pages,
// the comparison goes on in key order from the lowest key either side has.
func TestPageOrderScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	onBoth(ctx, t, p,
		`CREATE TABLE t_scat (id bigint PRIMARY KEY, val text, n int)`,
		`INSERT INTO t_scat SELECT g, md5(g::text), g % 100 FROM generate_series(1, 20000) g ORDER BY random()`,
		`CREATE TABLE t_uscat (id uuid PRIMARY KEY, v int)`,
		`INSERT INTO t_uscat SELECT md5(g::text)::uuid, g FROM generate_series(1, 20000) g`,
		`CREATE TABLE t_seq (id bigint PRIMARY KEY, val text)`,
		`INSERT INTO t_seq SELECT g, md5(g::text) FROM generate_series(1, 20000) g`,
		// A composite key whose leading column is scattered (rows of every
		// tenant all over the table), one tenant holding 8,000 rows: more than
		// chunk_rows share one value of the column key ranges are cut by.
		`CREATE TABLE t_comp (tenant int, id bigint, val text, PRIMARY KEY (tenant, id))`,
		`INSERT INTO t_comp SELECT CASE WHEN g <= 8000 THEN 1 ELSE g % 50 + 2 END, g, md5(g::text) FROM generate_series(1, 20000) g ORDER BY random()`,
		// The same in key order: auto reads it in page order too.
		`CREATE TABLE t_comp_seq (tenant int, id bigint, val text, PRIMARY KEY (tenant, id))`,
		`INSERT INTO t_comp_seq SELECT g % 50, g, md5(g::text) FROM generate_series(1, 20000) g ORDER BY g % 50, g`,
		`ANALYZE t_scat, t_uscat, t_seq, t_comp, t_comp_seq`,
		// Never vacuumed nor analysed: no statistics to cut its key ranges by.
		`CREATE TABLE t_fresh (id bigint PRIMARY KEY, val text) WITH (autovacuum_enabled = false)`,
		`INSERT INTO t_fresh SELECT g, md5(g::text) FROM generate_series(1, 20000) g ORDER BY random()`)
	var steps []step
	for _, tbl := range []string{"t_scat", "t_uscat", "t_seq", "t_comp", "t_comp_seq", "t_fresh"} {
		steps = append(steps, step{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', '" + tbl + "', false)"})
	}
	steps = append(steps,
		step{p.Subscriber, "DELETE FROM t_scat WHERE id = 17"},
		step{p.Subscriber, "INSERT INTO t_scat VALUES (999999, 'extra', 1), (-5, 'below every key', 1)"},
		step{p.Subscriber, "UPDATE t_scat SET val = 'changed' WHERE id = 4242"},
		step{p.Subscriber, "UPDATE t_uscat SET v = -1 WHERE v = 1500"},
		step{p.Subscriber, "UPDATE t_seq SET val = 'changed' WHERE id = 777"},
		step{p.Subscriber, "DELETE FROM t_comp WHERE (tenant, id) IN ((1, 17), (1, 7999))"},
		step{p.Subscriber, "INSERT INTO t_comp VALUES (3, 999999, 'extra'), (0, 5, 'below every key')"},
		step{p.Subscriber, "UPDATE t_comp SET val = 'changed' WHERE id = 4242"},
		step{p.Subscriber, "UPDATE t_comp_seq SET val = 'changed' WHERE id = 4242"},
		step{p.Subscriber, "UPDATE t_fresh SET val = 'changed' WHERE id = 4242"})
	runSteps(ctx, t, steps)
	var uuid1500 string
	if err := p.Provider.QueryRow(ctx, "SELECT md5('1500')::uuid::text", []any{&uuid1500}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	scat := []KeyDiff{{"-5", Extra}, {"17", Missing}, {"4242", Different}, {"999999", Extra}}
	comp := []KeyDiff{{"(0,5)", Extra}, {"(1,17)", Missing}, {"(1,4242)", Different}, {"(1,7999)", Missing}, {"(3,999999)", Extra}}
	for _, tc := range []struct {
		table, scan, want string
		keys              []KeyDiff
	}{
		{"public.t_scat", "", ScanPages, scat},
		{"public.t_scat", ScanIndex, ScanIndex, scat},
		{"public.t_uscat", ScanAuto, ScanPages, []KeyDiff{{uuid1500, Different}}},
		{"public.t_seq", "", ScanIndex, []KeyDiff{{"777", Different}}},
		{"public.t_seq", ScanPages, ScanPages, []KeyDiff{{"777", Different}}},
		{"public.items_0", ScanPages, ScanPages, nil},
		{"public.t_comp", ScanAuto, ScanPages, comp},
		{"public.t_comp", ScanIndex, ScanIndex, comp},
		{"public.t_comp_seq", ScanAuto, ScanPages, []KeyDiff{{"(42,4242)", Different}}},
		{"public.t_fresh", ScanAuto, ScanIndex, []KeyDiff{{"4242", Different}}},
		{"public.t_fresh", ScanPages, ScanPages, []KeyDiff{{"4242", Different}}},
	} {
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16, Scan: tc.scan}, tc.table))
		tr := r.Tables[0]
		got := sortedKeys(tr.Keys)
		if tr.Scan != tc.want || !slices.Equal(got, tc.keys) || tr.DifferingRows != int64(len(tc.keys)) {
			t.Errorf("%s, scan %q: read by %s, keys %v (%d differing); want %s, %v", tc.table, tc.scan, tr.Scan, got, tr.DifferingRows, tc.want, tc.keys)
		}
		// Rows checked (progress, the metric): each row once, also those a
		// differing key range compares again in key order.
		if rows := int64(20000); tc.table != "public.items_0" && (tr.RowsCompared < rows-2 || tr.RowsCompared > rows+2 || r.RowsChecked < rows-2 || r.RowsChecked > rows+2) {
			t.Errorf("%s, scan %q: compared %d rows, %d checked", tc.table, tc.scan, tr.RowsCompared, r.RowsChecked)
		}
		// Sums per range of keys and the leaves' row hashes: a small part of the rows.
		if r.RowsFetched <= 0 || r.RowsFetched > max(tr.RowsCompared/4, 100) {
			t.Errorf("%s, scan %q: %d rows fetched to compare %d", tc.table, tc.scan, r.RowsFetched, tr.RowsCompared)
		}
	}

	// Without statistics the planner's estimate of its rows (from its pages)
	// cuts the key ranges: about 20,000 / (16 leaves of 16 rows).
	conn, err := Connect(ctx, cfg.Nodes[0], time.Minute, &Counter{}, ModeChecksum)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tables, err := SetTables(ctx, conn, []string{"set_0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tbl := range tables {
		if tbl.Name != "t_fresh" {
			continue
		}
		ri, err := readRelInfo(ctx, conn, tbl)
		if err != nil {
			t.Fatal(err)
		}
		c := &Comparer{Provider: conn, Opt: Options{LeafRows: 16, ChunkRows: 2000}}
		bounds, err := c.sampleBounds(ctx, tbl, ri)
		if err != nil || ri.rows() >= 0 || len(bounds) < 20 || len(bounds) > 200 {
			t.Errorf("t_fresh never analysed (%.0f rows estimated): %d key ranges cut (%v)", ri.rows(), len(bounds), err)
		}
	}

	// Stopped while reading pages, a comparison goes on in key order from
	// the lowest key on either server (for a composite key, the lowest
	// value of its leading column) and finds every difference.
	for _, tc := range []struct {
		table, from string
		keys        []KeyDiff
	}{{"public.t_scat", "-5", scat}, {"public.t_comp", "0", comp}} {
		stop, cancel := context.WithCancel(ctx)
		opt := Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16, Progress: func(pr Progress) {
			if pr.RowsChecked >= 4000 {
				cancel()
			}
		}}
		first := Run(stop, cfg, tg, opt, tc.table)
		cancel()
		if first.Error != "interrupted" || len(first.Tables) != 1 {
			t.Fatalf("%s, interrupted run: %+v", tc.table, first)
		}
		ft := first.Tables[0]
		if ft.Scan != ScanPages || !slices.Equal(ft.ResumeFrom, []string{tc.from}) || len(ft.Keys) != 0 {
			t.Fatalf("%s, interrupted while reading pages: %+v", tc.table, ft)
		}
		opt = Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16, Resume: map[string][]string{tc.table: ft.ResumeFrom}}
		second := oneTable(t, Run(ctx, cfg, tg, opt, tc.table)).Tables[0]
		got := sortedKeys(second.Keys)
		if second.Scan != ScanIndex || !slices.Equal(got, tc.keys) || second.RowsCompared != 20001 {
			t.Errorf("%s, resumed at %v: read by %s, keys %v, %d rows compared; want index, %v, 20001", tc.table, ft.ResumeFrom, second.Scan, got, second.RowsCompared, tc.keys)
		}
	}
}

// Keys the two servers may sort differently (text, under each one's
// collation; composite keys led by text) are read in page order by a hash of
// the key's text: exact keys named, in agreement with key order; under a
// writer, no false alarm; too many differing rows, key order; stopped
// partway, no resume key, and key order on request finds every difference.
func TestKeyHashPageOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	onBoth(ctx, t, p,
		`CREATE TABLE t_text (k text PRIMARY KEY, v text, n int)`,
		`INSERT INTO t_text SELECT md5(g::text), 'v' || g, g FROM generate_series(1, 20000) g`,
		`CREATE TABLE t_text_comp (region text, id bigint, v text, PRIMARY KEY (region, id))`,
		`INSERT INTO t_text_comp SELECT (ARRAY['eu', 'us', 'ap'])[g % 3 + 1], g, 'v' || g FROM generate_series(1, 20000) g`,
		`CREATE TABLE t_text_many (k text PRIMARY KEY, n int)`,
		`INSERT INTO t_text_many SELECT md5(g::text), g FROM generate_series(1, 20000) g`,
		`ANALYZE t_text, t_text_comp, t_text_many`)
	var steps []step
	for _, tbl := range []string{"t_text", "t_text_comp", "t_text_many"} {
		steps = append(steps, step{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', '" + tbl + "', false)"})
	}
	steps = append(steps,
		step{p.Subscriber, "DELETE FROM t_text WHERE n = 17"},
		step{p.Subscriber, "INSERT INTO t_text VALUES ('extra', 'x', 0), ('', 'empty key', 0)"},
		step{p.Subscriber, "UPDATE t_text SET v = 'changed' WHERE n = 4242"},
		step{p.Subscriber, "DELETE FROM t_text_comp WHERE id = 17"},
		step{p.Subscriber, "INSERT INTO t_text_comp VALUES ('xx', 5, 'extra')"},
		step{p.Subscriber, "UPDATE t_text_comp SET v = 'changed' WHERE id = 4242"},
		// A third of the rows: more than 4 x chunk_rows differ.
		step{p.Subscriber, "DELETE FROM t_text_many WHERE n % 3 = 0"})
	runSteps(ctx, t, steps)
	text := sortedKeys([]KeyDiff{{"", Extra}, {md5sum("17"), Missing}, {md5sum("4242"), Different}, {"extra", Extra}})
	comp := []KeyDiff{{"(ap,17)", Missing}, {"(eu,4242)", Different}, {"(xx,5)", Extra}}
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	for _, tc := range []struct {
		table, scan, want string
		keys              []KeyDiff
	}{
		{"public.t_text", ScanAuto, ScanPages, text},
		{"public.t_text", ScanIndex, ScanIndex, text},
		{"public.t_text_comp", ScanAuto, ScanPages, comp},
		{"public.t_text_comp", ScanIndex, ScanIndex, comp},
	} {
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 5000, LeafRows: 16, Scan: tc.scan}, tc.table))
		tr := r.Tables[0]
		got := sortedKeys(tr.Keys)
		if tr.Scan != tc.want || !slices.Equal(got, tc.keys) || tr.DifferingRows != int64(len(tc.keys)) {
			t.Errorf("%s, scan %q: read by %s, keys %v (%d differing); want %s, %v", tc.table, tc.scan, tr.Scan, got, tr.DifferingRows, tc.want, tc.keys)
		}
		if tr.RowsCompared < 19999 || tr.RowsCompared > 20002 {
			t.Errorf("%s, scan %q: compared %d rows", tc.table, tc.scan, tr.RowsCompared)
		}
		if r.RowsFetched <= 0 || r.RowsFetched > max(tr.RowsCompared/4, 100) {
			t.Errorf("%s, scan %q: %d rows fetched to compare %d", tc.table, tc.scan, r.RowsFetched, tr.RowsCompared)
		}
	}

	// 6,666 rows missing: compared in key order after the page read.
	r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 1000, LeafRows: 16, MaxKeys: 10}, "t_text_many"))
	// The first read's rows are not counted as checked twice.
	if tr := r.Tables[0]; tr.Scan != ScanIndex || tr.DifferingRows != 6666 || tr.RowsCompared != 20000 || r.RowsChecked != 20000 {
		t.Errorf("t_text_many: read by %s, %d differing, %d rows compared (%d checked); want index, 6666, 20000", tr.Scan, tr.DifferingRows, tr.RowsCompared, r.RowsChecked)
	}

	// Stopped while reading pages: no key to resume at; read in key order
	// (the daemon's next window), every difference is found.
	stop, cancel := context.WithCancel(ctx)
	opt := Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16, Progress: func(pr Progress) {
		if pr.RowsChecked >= 4000 {
			cancel()
		}
	}}
	first := Run(stop, cfg, tg, opt, "t_text")
	cancel()
	if len(first.Tables) != 1 || first.Tables[0].Error != "interrupted" || first.Tables[0].Scan != ScanPages || first.Tables[0].ResumeFrom != nil {
		t.Fatalf("interrupted while reading pages: %+v", first)
	}
	opt = Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16, KeyOrder: map[string]bool{"public.t_text": true}}
	second := oneTable(t, Run(ctx, cfg, tg, opt, "t_text")).Tables[0]
	got := sortedKeys(second.Keys)
	if second.Scan != ScanIndex || !slices.Equal(got, text) {
		t.Errorf("in key order after the stop: read by %s, keys %v; want index, %v", second.Scan, got, text)
	}

	// Under a writer inserting and updating rows of t_text_comp on the
	// provider, its differences are still exactly the three (rows
	// 10001-20000 updated only: the differing rows stay as they are).
	w, err := pgtest.StartStatements(p.Provider, 100000,
		"INSERT INTO t_text_comp VALUES ('us', $1::bigint, 'new')",
		"UPDATE t_text_comp SET v = v || '.' WHERE id = 10001 + $1::bigint % 10000")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for range 3 {
		st := time.Now()
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16}, "t_text_comp"))
		t.Logf("under writes: %v, %d rows fetched, %d compared", time.Since(st), r.RowsFetched, r.Tables[0].RowsCompared)
		got := sortedKeys(r.Tables[0].Keys)
		if r.Tables[0].Scan != ScanPages || !slices.Equal(got, comp) {
			t.Errorf("under writes: read by %s, keys %v; want pages, %v", r.Tables[0].Scan, got, comp)
		}
	}
	writes, err := w.Stop()
	if err != nil || writes == 0 {
		t.Fatalf("the writer wrote %d rows: %v", writes, err)
	}
	t.Logf("%d rows inserted and as many updated during the comparisons", writes)
}

func md5sum(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }

// sortedKeys is a copy of keys in the order of their text, for keys a
// comparison may name in another order (text keys, page order).
func sortedKeys(keys []KeyDiff) []KeyDiff {
	out := slices.Clone(keys)
	slices.SortFunc(out, func(a, b KeyDiff) int { return strings.Compare(a.Key, b.Key) })
	return out
}
