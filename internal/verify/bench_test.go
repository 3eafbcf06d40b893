package verify

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// BenchmarkVerifyMillionRows compares a 1,000,000-row table (bigint key, a
// few columns) equal, then with one differing row, against the full
// comparison: exporting both sides (COPY, key order) and comparing them.
// Run: go test -run '^$' -bench MillionRows -benchtime 1x -timeout 20m ./internal/verify/
// PGLMON_BENCH_CONF adds settings to both servers' configuration, separated
// by semicolons: 'shared_buffers = 256MB; huge_pages = on' (huge pages need
// vm.nr_hugepages, as root: echo 400 > /proc/sys/vm/nr_hugepages).
func BenchmarkVerifyMillionRows(b *testing.B) {
	ctx := context.Background()
	var conf []string
	for _, c := range strings.Split(os.Getenv("PGLMON_BENCH_CONF"), ";") {
		if c = strings.TrimSpace(c); c != "" {
			conf = append(conf, c)
		}
	}
	p := pgtest.NewPair(b, pgtest.PairOptions{Own: true, Rows: 1_000_000, ProviderConf: conf, SubscriberConf: conf})
	if len(conf) > 0 {
		var sb, hp string
		if err := p.Provider.QueryRow(ctx, "SELECT current_setting('shared_buffers'), current_setting('huge_pages')", []any{&sb, &hp}); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("servers with %s: shared_buffers %s, huge_pages %s\n", strings.Join(conf, "; "), sb, hp)
	}
	if _, err := p.WaitConverged(ctx, p.Tables[0], 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	var tableBytes int64
	if err := p.Provider.QueryRow(ctx, "SELECT pg_table_size('items_0')", []any{&tableBytes}); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(b, p)
	tg := targets(b, cfg, p.Sub())[0]
	run := func(label string) Result {
		r := Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 100000}, "")
		if r.Error != "" {
			b.Fatal(r.Error)
		}
		fmt.Printf("pglmon verify, %s: %s, %d rows compared, %d rows and %d bytes fetched (%.4f%% of the table's %d bytes), differing keys %v\n",
			label, r.Duration.Round(time.Millisecond), r.RowsChecked, r.RowsFetched, r.BytesFetched, 100*float64(r.BytesFetched)/float64(tableBytes), tableBytes, r.Tables[0].Keys)
		return r
	}
	b.ResetTimer()
	equal := run("equal tables")
	// What a count costs beside it (upgrade restore --compare count).
	if r := Run(ctx, cfg, tg, Options{Mode: ModeCount}, ""); r.Error != "" {
		b.Fatal(r.Error)
	} else {
		fmt.Printf("pglmon verify --mode count, equal tables: %s (checksum: %.1fx that)\n", r.Duration.Round(time.Millisecond), equal.Duration.Seconds()/r.Duration.Seconds())
	}
	if err := p.Subscriber.Exec(ctx, "UPDATE items_0 SET val = 'different' WHERE id = 765432"); err != nil {
		b.Fatal(err)
	}
	one := run("one differing row")
	if len(one.Tables[0].Keys) != 1 || one.Tables[0].Keys[0].Key != "765432" {
		b.Fatalf("differing keys: %v", one.Tables[0].Keys)
	}
	full, fullBytes, fullRows, diffs := exportAndCompare(b, p.Provider.DSN(), p.Subscriber.DSN())
	b.StopTimer()
	fmt.Printf("full comparison (COPY both sides in key order, compare): %s, %d rows and %d bytes fetched, %d differing lines\n", full.Round(time.Millisecond), fullRows, fullBytes, diffs)
	fmt.Printf("pglmon found the differing row %.1fx faster than the full comparison, fetching %.4f%% of its bytes\n",
		full.Seconds()/one.Duration.Seconds(), 100*float64(one.BytesFetched)/float64(fullBytes))
	b.ReportMetric(equal.Duration.Seconds(), "equal_s")
	b.ReportMetric(one.Duration.Seconds(), "one_diff_s")
	b.ReportMetric(full.Seconds(), "full_compare_s")
	b.ReportMetric(float64(one.BytesFetched), "one_diff_bytes")
	b.ReportMetric(float64(one.RowsFetched), "one_diff_rows_fetched")
	b.ReportMetric(float64(fullBytes), "full_compare_bytes")

	// Off loopback: pglmon usually runs on another host than the two servers
	// (RDS), so every byte of the full comparison crosses a network.
	for _, l := range []pgtest.Link{
		{Name: "1 Gbit/s, 0.5 ms one way", Bandwidth: 125_000_000, Delay: 500 * time.Microsecond},
		{Name: "100 Mbit/s, 0.5 ms one way", Bandwidth: 12_500_000, Delay: 500 * time.Microsecond},
		{Name: "25 Mbit/s, 10 ms one way", Bandwidth: 3_125_000, Delay: 10 * time.Millisecond},
	} {
		lcfg := linkConfig(b, p, l)
		provDSN, subDSN := lcfg.Nodes[0].DSN, lcfg.Nodes[1].DSN
		r := Run(ctx, lcfg, tg, Options{Mode: ModeChecksum, ChunkRows: 100000}, "")
		if r.Error != "" || len(r.Tables[0].Keys) != 1 {
			b.Fatalf("over %s: %s %v", l.Name, r.Error, r.Tables[0].Keys)
		}
		lfull, lbytes, _, _ := exportAndCompare(b, provDSN, subDSN)
		fmt.Printf("link %s: pglmon found the differing row in %s (%d bytes); full comparison %s (%d bytes): %.1fx faster\n",
			l.Name, r.Duration.Round(time.Millisecond), r.BytesFetched, lfull.Round(time.Millisecond), lbytes, lfull.Seconds()/r.Duration.Seconds())
	}
}

// exportAndCompare copies the table out of both servers concurrently and
// compares the streams line by line: time, bytes, rows, differing lines.
func exportAndCompare(b *testing.B, provDSN, subDSN string) (time.Duration, int64, int, int) {
	ctx := context.Background()
	start := time.Now()
	type export struct {
		lines []string
		bytes int64
		err   error
	}
	var out [2]export
	var wg sync.WaitGroup
	for i, dsn := range []string{provDSN, subDSN} {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				out[i].err = err
				return
			}
			defer conn.Close(ctx)
			pr, pw := io.Pipe()
			go func() {
				_, err := conn.PgConn().CopyTo(ctx, pw, "COPY (SELECT * FROM items_0 ORDER BY id) TO STDOUT")
				pw.CloseWithError(err)
			}()
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				out[i].lines = append(out[i].lines, sc.Text())
				out[i].bytes += int64(len(sc.Bytes()) + 1)
			}
			out[i].err = sc.Err()
		})
	}
	wg.Wait()
	for _, e := range out {
		if e.err != nil {
			b.Fatal(e.err)
		}
	}
	diffs := 0
	a, c := out[0].lines, out[1].lines
	for i := 0; i < max(len(a), len(c)); i++ {
		if i >= len(a) || i >= len(c) || a[i] != c[i] {
			diffs++
		}
	}
	return time.Since(start), out[0].bytes + out[1].bytes, len(a) + len(c), diffs
}

// BenchmarkVerifyScatteredRows compares 1,000,000-row tables whose rows lie
// in no order of their key on either server (loaded in random order, as a
// table updated for years or keyed by random UUIDs), one row differing:
// read through the key's index (verify.scan: index) and in page order
// (auto, which picks it for such a table). One table is keyed by a bigint,
// one by (tenant, id), the rows of its 1,000 tenants all over it; a third
// like it holds its rows in key order (auto reads a composite key in page
// order even so: key order costs a statement more per range). The last is
// keyed by md5 text, read in page order by a hash of its key.
// Run: go test -run '^$' -bench ScatteredRows -benchtime 1x -timeout 20m ./internal/verify/
func BenchmarkVerifyScatteredRows(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{Own: true, Rows: 10})
	onBoth(ctx, b, p,
		"CREATE TABLE scattered (id bigint PRIMARY KEY, val text, n int)",
		"INSERT INTO scattered SELECT g, md5(g::text), g % 100 FROM generate_series(1, 1000000) g ORDER BY random()",
		"CREATE TABLE scattered_tenant (tenant int, id bigint, val text, n int, PRIMARY KEY (tenant, id))",
		"INSERT INTO scattered_tenant SELECT g % 1000, g, md5(g::text), g % 100 FROM generate_series(1, 1000000) g ORDER BY random()",
		"CREATE TABLE ordered_tenant (tenant int, id bigint, val text, n int, PRIMARY KEY (tenant, id))",
		"INSERT INTO ordered_tenant SELECT g % 1000, g, md5(g::text), g % 100 FROM generate_series(1, 1000000) g ORDER BY g % 1000, g",
		"CREATE TABLE scattered_text (k text PRIMARY KEY, val text, n int)",
		"INSERT INTO scattered_text SELECT md5(g::text), md5(g::text), g % 100 FROM generate_series(1, 1000000) g",
		"VACUUM ANALYZE scattered, scattered_tenant, ordered_tenant, scattered_text")
	runSteps(ctx, b, []step{
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'scattered', false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'scattered_tenant', false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'ordered_tenant', false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'scattered_text', false)"},
		{p.Subscriber, "UPDATE scattered SET val = 'different' WHERE id = 765432"},
		{p.Subscriber, "UPDATE scattered_tenant SET val = 'different' WHERE id = 765432"},
		{p.Subscriber, "UPDATE ordered_tenant SET val = 'different' WHERE id = 765432"},
		{p.Subscriber, "UPDATE scattered_text SET val = 'different' WHERE k = md5('765432')"},
	})
	cfg := testConfig(b, p)
	tg := targets(b, cfg, p.Sub())[0]
	// With PGLMON_BENCH_DROP_CACHES=1 (as root) each run starts with the
	// kernel's page cache emptied: the table is read from disk, past the
	// clusters' 32 MB of shared buffers, as a table larger than memory is.
	cold := os.Getenv("PGLMON_BENCH_DROP_CACHES") == "1"
	b.ResetTimer()
	for _, tc := range []struct{ table, lead, key string }{
		{"scattered", "id", "765432"},
		{"scattered_tenant", "tenant", "(432,765432)"},
		{"ordered_tenant", "tenant", "(432,765432)"},
		{"scattered_text", "k", "a009d1b6599be4dd7aff23fc3630b093"},
	} {
		var tableBytes int64
		var corr float64
		if err := p.Provider.QueryRow(ctx, "SELECT pg_table_size($1::text::regclass), (SELECT correlation FROM pg_stats WHERE tablename = $1::text AND attname = $2::text)", []any{&tableBytes, &corr}, tc.table, tc.lead); err != nil {
			b.Fatal(err)
		}
		for _, scan := range []string{ScanIndex, ScanAuto, ScanIndex, ScanAuto} {
			cache := "warm cache"
			if cold {
				cache = "page cache dropped"
				if err := exec.Command("sync").Run(); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
					b.Fatal(err)
				}
			}
			r := Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 100000, Scan: scan}, tc.table)
			if r.Error != "" || len(r.Tables) != 1 || r.Tables[0].Error != "" || len(r.Tables[0].Keys) != 1 || r.Tables[0].Keys[0].Key != tc.key {
				b.Fatalf("%s, scan %s: %+v", tc.table, scan, r)
			}
			fmt.Printf("pglmon verify %s, %s, correlation of %s %.3f, scan %s (read by %s): %s, %d rows compared, %d rows and %d bytes fetched (%.4f%% of the table's %d bytes)\n",
				tc.table, cache, tc.lead, corr, scan, r.Tables[0].Scan, r.Duration.Round(time.Millisecond), r.RowsChecked, r.RowsFetched, r.BytesFetched,
				100*float64(r.BytesFetched)/float64(tableBytes), tableBytes)
			b.ReportMetric(r.Duration.Seconds(), tc.table+"_"+r.Tables[0].Scan+"_s")
		}
	}
}

// BenchmarkVerifyNoKey compares a 1,000,000-row table without a primary key
// (an insert-only set's) by its rows' contents, one row changed on the
// subscriber, and by count, which cannot see that change.
// Run: go test -run '^$' -bench NoKey -benchtime 1x -timeout 20m ./internal/verify/
func BenchmarkVerifyNoKey(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{Own: true, Rows: 10})
	onBoth(ctx, b, p,
		"CREATE TABLE events (at bigint, kind int, note text)",
		"INSERT INTO events SELECT g, g % 100, md5(g::text) FROM generate_series(1, 1000000) g",
		"VACUUM ANALYZE events")
	runSteps(ctx, b, []step{
		{p.Provider, "SELECT pglogical.create_replication_set('inserts', replicate_update := false, replicate_delete := false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('inserts', 'events', false)"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'inserts')"},
		{p.Subscriber, "UPDATE events SET note = 'different' WHERE at = 765432"},
	})
	// Streaming again after the set was added (its apply worker restarts).
	p.MustStream(b, 3*time.Minute)
	var tableBytes int64
	if err := p.Provider.QueryRow(ctx, "SELECT pg_table_size('events')", []any{&tableBytes}); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(b, p)
	tg := targets(b, cfg, p.Sub())[0]
	b.ResetTimer()
	for _, mode := range []string{ModeChecksum, ModeCount, ModeChecksum, ModeCount} {
		r := Run(ctx, cfg, tg, Options{Mode: mode, ChunkRows: 100000}, "events")
		if r.Error != "" || len(r.Tables) != 1 || r.Tables[0].Error != "" {
			b.Fatalf("mode %s: %+v", mode, r)
		}
		tr := r.Tables[0]
		if mode == ModeChecksum && (len(tr.Keys) != 1 || tr.Keys[0].Key != "(765432,32,"+md5sum("765432")+")") {
			b.Fatalf("mode %s: keys %v", mode, tr.Keys)
		}
		fmt.Printf("pglmon verify events (no primary key), mode %s: %s, %d rows compared, %d differing %v, %d expected, %d rows and %d bytes fetched (%.4f%% of the table's %d bytes)\n",
			mode, r.Duration.Round(time.Millisecond), tr.RowsCompared, tr.DifferingRows, tr.Keys, tr.ExpectedRows, r.RowsFetched, r.BytesFetched,
			100*float64(r.BytesFetched)/float64(tableBytes), tableBytes)
		b.ReportMetric(r.Duration.Seconds(), mode+"_s")
	}
}

// BenchmarkVerifyManyTables compares a subscription of 50 small tables
// (1,000 rows each, equal) on loopback and through a link of 10 ms each
// way, as pglmon verifies a provider in another region: there each round
// trip costs 20 ms, and the figure printed is how many the run took more
// than on loopback.
// Run: go test -run '^$' -bench ManyTables -benchtime 1x ./internal/verify/
func BenchmarkVerifyManyTables(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{Own: true, Rows: 10})
	const tables = 50
	var ddl, add []string
	for i := range tables {
		ddl = append(ddl,
			fmt.Sprintf("CREATE TABLE many_%d (id bigint PRIMARY KEY, val text, n int)", i),
			fmt.Sprintf("INSERT INTO many_%d SELECT g, md5(g::text), g %% 100 FROM generate_series(1, 1000) g", i))
		add = append(add, fmt.Sprintf("SELECT pglogical.replication_set_add_table('set_0', 'many_%d', false)", i))
	}
	onBoth(ctx, b, p, append(ddl, "ANALYZE")...) // as autovacuum has, on tables in use
	for _, sql := range add {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	cfg := testConfig(b, p)
	tg := targets(b, cfg, p.Sub())[0]
	run := func(cfg *config.Config) Result {
		r := Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 100000}, "")
		if r.Error != "" || !r.Equal || len(r.Tables) != tables+1 {
			b.Fatalf("%s, equal %v, %d tables", r.Error, r.Equal, len(r.Tables))
		}
		return r
	}
	b.ResetTimer()
	local := run(cfg)
	l := pgtest.Link{Name: "10 ms one way", Delay: 10 * time.Millisecond}
	far := run(linkConfig(b, p, l))
	b.StopTimer()
	trips := (far.Duration - local.Duration).Seconds() / (2 * l.Delay).Seconds()
	fmt.Printf("pglmon verify, %d tables of 1,000 rows, equal: loopback %s; link %s %s, about %.0f round trips (%.1f a table)\n",
		tables+1, local.Duration.Round(time.Millisecond), l.Name, far.Duration.Round(time.Millisecond), trips, trips/float64(tables+1))
	b.ReportMetric(local.Duration.Seconds(), "loopback_s")
	b.ReportMetric(far.Duration.Seconds(), "link_s")
	b.ReportMetric(trips, "round_trips")
}

// linkConfig is a configuration whose two nodes reach the pair's servers
// through link l.
func linkConfig(b *testing.B, p *pgtest.Pair, l pgtest.Link) *config.Config {
	b.Helper()
	ph, pp := pgtest.NewLinkProxy(b, p.Provider.Cluster, l)
	sh, sp := pgtest.NewLinkProxy(b, p.Subscriber.Cluster, l)
	cfg, err := config.Parse("link.yaml", []byte(fmt.Sprintf("nodes:\n  - name: provider\n    dsn: %q\n  - name: subscriber\n    dsn: %q\n",
		fmt.Sprintf("host=%s port=%d dbname=%s user=postgres sslmode=disable", ph, pp, p.Provider.Name),
		fmt.Sprintf("host=%s port=%d dbname=%s user=postgres sslmode=disable", sh, sp, p.Subscriber.Name))))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkVerifyRoundTrips counts the round trips of verifying a
// 200,000-row table through a link of 50 ms each way (a provider in
// another region: each round trip 100 ms): the time through the link less
// the time on loopback, in round trips. Checksum mode with the tables
// equal, count mode, then checksum mode with one row differing.
// Run: go test -run '^$' -bench RoundTrips -benchtime 1x ./internal/verify/
func BenchmarkVerifyRoundTrips(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{Own: true, Rows: 200_000})
	if _, err := p.WaitConverged(ctx, p.Tables[0], 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(b, p)
	tg := targets(b, cfg, p.Sub())[0]
	l := pgtest.Link{Name: "50 ms one way", Delay: 50 * time.Millisecond}
	far := linkConfig(b, p, l)
	trips := func(label string, opt Options, keys int) {
		local := Run(ctx, cfg, tg, opt, "")
		r := Run(ctx, far, tg, opt, "")
		for _, r := range []Result{local, r} {
			if r.Error != "" || len(r.Tables) != 1 || len(r.Tables[0].Keys) != keys {
				b.Fatalf("%s: %s %+v", label, r.Error, r.Tables)
			}
		}
		n := (r.Duration - local.Duration).Seconds() / (2 * l.Delay).Seconds()
		fmt.Printf("pglmon verify of 200,000 rows, %s: %.1f round trips (%s through a link of %s, %s on loopback)\n",
			label, n, r.Duration.Round(time.Millisecond), l.Name, local.Duration.Round(time.Millisecond))
		b.ReportMetric(n, strings.NewReplacer(" ", "_", ",", "").Replace(label)+"_round_trips")
	}
	b.ResetTimer()
	trips("checksum, equal", Options{Mode: ModeChecksum, ChunkRows: 100000}, 0)
	trips("count", Options{Mode: ModeCount}, 0)
	if err := p.Subscriber.Exec(ctx, "UPDATE items_0 SET val = 'different' WHERE id = 76543"); err != nil {
		b.Fatal(err)
	}
	trips("checksum, one differing row", Options{Mode: ModeChecksum, ChunkRows: 100000}, 1)
	b.StopTimer()
}
