package verify

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scans: how checksum mode reads a table's rows.
const (
	// ScanAuto reads in page order a table whose rows lie in no particular
	// order of their key, in key order any other.
	ScanAuto = "auto"
	// ScanIndex reads every range of keys through the key's index.
	ScanIndex = "index"
	// ScanPages reads every table it can in page order.
	ScanPages = "pages"
)

// lowCorrelation: a key whose pg_stats correlation is below this (in
// absolute value) on either server has its rows scattered over the table,
// so reading a range of keys through the index reads pages at random.
const lowCorrelation = 0.9

// pageBuckets is how many key ranges a page-order scan sums rows into (at
// most): each statement returns at most one row per range.
const pageBuckets = 1000

// relInfo is what one server says of a table, to choose how to read it.
type relInfo struct {
	version  int
	kind     string
	corr     *float64 // pg_stats correlation of the key; nil: not analysed
	pages    int64    // the table's size in pages now
	tuples   float64  // pg_class.reltuples
	relpages int64    // pg_class.relpages
	// lowest and highest are its lowest and highest keys (nil: no rows).
	lowest, highest *string
}

// rows estimates the table's rows now, as the planner does: the rows per
// page its statistics last counted times its pages now (a table that grew
// since holds more). Negative: never counted (not vacuumed nor analysed).
func (ri relInfo) rows() float64 {
	if ri.relpages > 0 && ri.tuples >= 0 {
		return ri.tuples / float64(ri.relpages) * float64(ri.pages)
	}
	if ri.tuples == 0 {
		return 0
	}
	return -1
}

// atMostRows is rows, or for a table never counted the most its pages can
// hold (a heap page holds at most 291 rows).
func (ri relInfo) atMostRows() float64 {
	if n := ri.rows(); n >= 0 {
		return n
	}
	return float64(ri.pages) * 291
}

// readRelInfo asks one server about a table, in one statement.
func readRelInfo(ctx context.Context, conn *pgx.Conn, t Table) (relInfo, error) {
	var ri relInfo
	sql, args := relInfoSQL(t)
	err := ri.scan(conn.QueryRow(ctx, sql, args...))
	return ri, err
}

// relInfoSQL is the statement that asks a server about t, and its arguments.
func relInfoSQL(t Table) (string, []any) {
	edge := func(dir string) string {
		if len(t.Key) == 0 {
			return "NULL::text"
		}
		// keyTexts names the text otherwise: ORDER BY would sort it as text.
		return "(SELECT " + t.keyTexts()[0] + " FROM " + t.ident() + " ORDER BY " + t.lead() + dir + " LIMIT 1)"
	}
	attname := ""
	if len(t.Key) > 0 {
		attname = t.Key[0]
	}
	sql := `SELECT current_setting('server_version_num')::int, c.relkind::text,
	(SELECT s.correlation::float8 FROM pg_stats s WHERE s.schemaname = $1 AND s.tablename = $2 AND s.attname = $3 ORDER BY s.inherited LIMIT 1),
	pg_relation_size(c.oid) / current_setting('block_size')::bigint, c.reltuples::float8, c.relpages::bigint, ` + edge("") + ", " + edge(" DESC") + `
FROM pg_class c WHERE c.oid = $4::regclass`
	return sql, []any{t.Schema, t.Name, attname, t.ident()}
}

// scan reads the row of relInfoSQL.
func (ri *relInfo) scan(row pgx.Row) error {
	return row.Scan(&ri.version, &ri.kind, &ri.corr, &ri.pages, &ri.tuples, &ri.relpages, &ri.lowest, &ri.highest)
}

// relInfoFresh is how long what the servers said of the tables of a run,
// all asked at its start, is used: a table compared later is asked again
// (its first and last keys, its size may have moved since).
const relInfoFresh = 30 * time.Second

// relInfos is what both servers said of the tables of a run (schema.table
// -> provider's, subscriber's), asked at once, and when; and the count and
// hash sum of each small table's rows on both, read at once too (wholeAt).
type relInfos struct {
	at   time.Time
	info map[string][2]relInfo
	// whole: small tables' aggregates (provider's, subscriber's), read
	// with the others' in a few round trips (readWholeTables).
	whole   map[string][2]agg
	wholeAt time.Time
}

// readWholeTables reads, on both servers at once, the count and hash sum of
// every table small enough to be compared whole in one statement (what the
// walk would do with it: under half of chunk_rows rows on both servers, by
// what they said of it), several tables a batch, each batch about
// chunk_rows rows in all: a subscription of many small tables pays a few
// round trips for all of them instead of one or two each. A table whose
// sums are equal is then equal with no statement of its own; one that
// differs is bisected and settled as any range. A batch that fails (a
// statement timeout) leaves its tables to be compared in their turn.
func (rs *relInfos) readWholeTables(ctx context.Context, pc, sc *pgx.Conn, tables []Table, opt Options) {
	chunk := float64(opt.ChunkRows)
	var batch []Table
	rows := 0.0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		got := [2][]agg{make([]agg, len(batch)), make([]agg, len(batch))}
		sum := func(conn *pgx.Conn, provider bool, out []agg) func() error {
			return func() error {
				b := &pgx.Batch{}
				for i, t := range batch {
					where, args := t.where(nil, nil, provider)
					b.Queue(t.aggregateSQL()+where, args...).QueryRow(func(r pgx.Row) error { return r.Scan(&out[i].count, &out[i].sum) })
				}
				return conn.SendBatch(ctx, b).Close()
			}
		}
		if bothSides(sum(pc, true, got[0]), sum(sc, false, got[1])) == nil {
			for i, t := range batch {
				rs.whole[t.QualifiedName()] = [2]agg{got[0][i], got[1][i]}
			}
		}
		batch, rows = nil, 0
	}
	rs.whole, rs.wholeAt = map[string][2]agg{}, time.Now()
	for _, t := range tables {
		info, ok := rs.info[t.QualifiedName()]
		if !ok || len(t.Key) == 0 || opt.Resume[t.QualifiedName()] != nil {
			continue
		}
		p, s := info[0].atMostRows(), info[1].atMostRows()
		if info[0].version == 0 || info[1].version == 0 || p >= chunk/2 || s >= chunk/2 {
			continue // large, or maybe large: compared in its turn
		}
		if rows+max(p, s) > chunk {
			flush()
		}
		batch = append(batch, t)
		rows += max(p, s)
	}
	flush()
}

// wholeTable returns both servers' count and hash sum of t's rows when
// readWholeTables read them and that is fresh.
func (c *Comparer) wholeTable(t Table) (*[2]agg, bool) {
	rs := c.rels
	if rs == nil || time.Since(rs.wholeAt) >= relInfoFresh {
		return nil, false
	}
	a, ok := rs.whole[t.QualifiedName()]
	return &a, ok
}

// readRelInfos asks both servers about every table, in one round trip (a
// batch to each, at once), instead of one per table: a subscription of many
// small tables, over a slow link, paid one round trip each. Nil when
// either batch fails (a table dropped since, say): each table is then asked
// about when its turn comes, and that error is its own.
func readRelInfos(ctx context.Context, pc, sc *pgx.Conn, tables []Table) *relInfos {
	got := [2][]relInfo{make([]relInfo, len(tables)), make([]relInfo, len(tables))}
	ask := func(conn *pgx.Conn, out []relInfo) func() error {
		return func() error {
			b := &pgx.Batch{}
			for i, t := range tables {
				sql, args := relInfoSQL(t)
				b.Queue(sql, args...).QueryRow(out[i].scan)
			}
			return conn.SendBatch(ctx, b).Close()
		}
	}
	at := time.Now()
	if bothSides(ask(pc, got[0]), ask(sc, got[1])) != nil {
		return nil
	}
	rs := &relInfos{at: at, info: make(map[string][2]relInfo, len(tables))}
	for i, t := range tables {
		rs.info[t.QualifiedName()] = [2]relInfo{got[0][i], got[1][i]}
	}
	return rs
}

// relInfo is what both servers say of t: as the run asked at its start
// while that is fresh, or asked now.
func (c *Comparer) relInfo(ctx context.Context, t Table) ([2]relInfo, error) {
	if rs := c.rels; rs != nil && time.Since(rs.at) < relInfoFresh {
		if info, ok := rs.info[t.QualifiedName()]; ok {
			return info, nil
		}
	}
	var info [2]relInfo
	err := bothSides(
		func() (err error) { info[0], err = readRelInfo(ctx, c.Provider, t); return err },
		func() (err error) { info[1], err = readRelInfo(ctx, c.Subscriber, t); return err })
	return info, err
}

// pageKey reports whether the key can be summed by ranges in page order:
// its first column (the key, or the leading column of a composite key) of a
// type both servers sort alike, whatever their collations. Key ranges are
// then ranges of that column's values.
func (t Table) pageKey() bool {
	return len(t.Key) > 0 && slices.Contains([]string{"bigint", "integer", "smallint", "uuid"}, t.KeyTypes[0])
}

// leadInt reports whether the key's first column is an integer.
func (t Table) leadInt() bool {
	return slices.Contains([]string{"bigint", "integer", "smallint"}, t.KeyTypes[0])
}

// lead is the key's first column, quoted.
func (t Table) lead() string { return quoteAll(t.Key[:1])[0] }

// usePages decides whether the table is read in page order, and returns
// what each server said of it. Page order needs PostgreSQL 14+ (TID range
// scans) on both servers, a plain table and a key pageKey accepts; auto
// takes it only for a table of at least two chunks whose key is scattered
// on either server, or whose key has several columns (read in key order, it
// costs a statement more per range to find where each range ends: slower
// in page order even where its rows lie in key order). A table resumed at
// a key is read in key order.
func (c *Comparer) usePages(ctx context.Context, t Table, r *TableResult) (bool, [2]relInfo) {
	var info [2]relInfo
	if c.Opt.Scan == ScanIndex || r.ResumedFrom != nil || c.Opt.KeyOrder[t.QualifiedName()] || len(t.Key) == 0 {
		return false, info
	}
	info, err := c.relInfo(ctx, t)
	if err != nil {
		return false, info // key order, which reports any error of its own
	}
	for _, ri := range info {
		if ri.version < 140000 || ri.kind != "r" {
			return false, info
		}
	}
	if c.Opt.Scan == ScanPages {
		return true, info
	}
	scattered := func(ri relInfo) bool { return ri.corr != nil && math.Abs(*ri.corr) < lowCorrelation }
	return info[0].rows() >= 2*float64(c.Opt.ChunkRows) && (len(t.Key) > 1 || scattered(info[0]) || scattered(info[1])), info
}

// bucketSum is the rows of one key range found by a page-order scan.
type bucketSum struct {
	count int64
	sum   big.Int
}

// checksumByPages reads both servers' copies once each in page order (TID
// range scans, chunk_rows rows a statement, sized like key ranges), summing
// row hashes into key ranges cut at keys sampled from the provider. Key
// ranges whose sums differ are then compared as key order compares a range:
// both servers at once, bisected, settled, so a row written while the pages
// were read never counts as a difference. Each server reads its pages
// sequentially, where reading a scattered key's ranges through its index
// would read every page once per range.
func (c *Comparer) checksumByPages(ctx context.Context, t Table, r *TableResult, info [2]relInfo) error {
	if !t.pageKey() {
		return c.checksumByKeyHash(ctx, t, r, info)
	}
	// The lowest and highest keys on either server: stopped before the key
	// ranges are compared, the comparison goes on in key order from the
	// lowest; a key range too slow to compare in one statement is cut
	// between them.
	var lowest, highest *big.Int
	for _, ri := range info {
		if ri.lowest == nil || ri.highest == nil {
			continue // no rows on this server
		}
		lo, hi := keyValue(t, *ri.lowest), keyValue(t, *ri.highest)
		if lowest == nil || lo.Cmp(lowest) < 0 {
			lowest, c.next = lo, []string{*ri.lowest}
		}
		if highest == nil || hi.Cmp(highest) > 0 {
			highest = hi
		}
	}
	bounds, err := c.sampleBounds(ctx, t, info[0])
	if err != nil {
		return fmt.Errorf("sample the keys of %s: %w", t.QualifiedName(), err)
	}
	bucket, args := "0", []any(nil)
	if len(bounds) > 0 {
		bucket = fmt.Sprintf("width_bucket(%s, $1::%s[])", t.lead(), t.KeyTypes[0])
		args = append(args, "{"+strings.Join(bounds, ",")+"}")
	}
	sums, err := c.sumBuckets(ctx, t, bucket, "", args, info)
	if err != nil {
		return err
	}
	// The small ranges the differing buckets end in are settled together,
	// as a bisection's are (compareRange): differences all over the table
	// make every bucket differ, and settling each apart took a wait each.
	c.pending = []pendingRange{}
	defer func() { c.pending = nil }()
	settle := func() error {
		d, err := c.settlePending(ctx, t)
		c.addDiffs(r, d)
		if err != nil {
			return fmt.Errorf("compare %s: %w", t.QualifiedName(), err)
		}
		return nil
	}
	for _, id := range sums.ids() {
		p := sums[0][id]
		if sums.equal(id) {
			r.RowsCompared += p.count
			continue
		}
		// Bucket id holds the keys in [bounds[id-1], bounds[id]).
		var lo, hi []string
		if id > 0 {
			lo = []string{bounds[id-1]}
			c.reached(lo)
		}
		if id < len(bounds) {
			hi = []string{bounds[id]}
		}
		if err := c.compareSpan(ctx, t, lo, hi, lowest, highest, sums.rows(id), r); err != nil {
			return fmt.Errorf("compare %s: %w", t.QualifiedName(), err)
		}
		if c.pendingRows() >= int64(c.Opt.ChunkRows) {
			if err := settle(); err != nil {
				return err
			}
		}
	}
	return settle()
}

// checksumByKeyHash reads, in page order, a table whose key's first column
// is of a type the two servers may sort differently (text, under each one's
// collation): its rows are summed into buckets by a hash of the key's text,
// the same on both servers whatever they sort it by. Buckets whose sums
// differ are narrowed by reading the table again, summing only their rows
// into finer buckets (more bits of the same hash), until the differing
// ones hold at most 4 x chunk_rows rows; their keys and row hashes are then
// read, in page order again, and the keys that differ are settled as key
// order settles a range's (read by key on the provider, then on the
// subscriber once it applied that, then on the provider again), so rows
// written while the pages were read are never reported. Rows written during
// one read make a few buckets differ, which the next read's finer buckets
// leave behind; when a read does not halve the rows of the differing
// buckets (a difference spread over the whole table), the table is
// compared in key order instead.
//
// Stopped partway, there is no key below which every row was compared: the
// table has no resume_from, and its comparison starts again (the daemon's
// next window reads it in key order, which it can resume).
func (c *Comparer) checksumByKeyHash(ctx context.Context, t Table, r *TableResult, info [2]relInfo) error {
	base := r.RowsCompared
	n, err := c.narrowBuckets(ctx, t, r, info, fmt.Sprintf("hashtextextended(%s COLLATE \"C\", 0)", t.keyTextExpr()), false)
	if err != nil || n.filter == "" {
		return err
	}
	if n.spread {
		// Differences all over the table: compared row by row in key
		// order, which counts the rows the first read counted.
		r.RowsCompared = base
		r.Scan = ScanIndex
		c.uncount(n.counted / 2)
		return c.walk(ctx, t, nil, nil, r)
	}
	var rows [2][]leafRow
	read := func(conn *pgx.Conn, provider bool, ri relInfo, out *[]leafRow) func() error {
		return func() error {
			return c.pageRanges(ctx, conn, provider, t, ri, true, func(where string) (int64, error) {
				got, err := c.leaf(ctx, conn, t, "SELECT "+strings.Join(t.keyTexts(), ", ")+", "+t.rowHash()+" FROM "+t.ident()+
					" WHERE "+where+" AND "+n.filter, nil)
				*out = append(*out, got...)
				return int64(len(got)), err
			})
		}
	}
	err = bothSides(read(c.Provider, true, info[0], &rows[0]), read(c.Subscriber, false, info[1], &rows[1]))
	if err != nil {
		return fmt.Errorf("read the rows of %d differing key buckets of %s in page order: %w", n.buckets, t.QualifiedName(), err)
	}
	// A row read twice on one server (moved by an update while its pages
	// were read) is one key; which copy does not matter: settling reads it again.
	var keys [][]string
	seen := map[string]bool{}
	for _, d := range diffLeaves(rows[0], rows[1]) {
		if !seen[d.Key] {
			seen[d.Key] = true
			keys = append(keys, d.vals)
		}
	}
	for chunk := range slices.Chunk(keys, max(c.Opt.LeafRows, 1)*16) {
		diffs, u, err := c.settleRows(ctx, t, t.byKeys(chunk))
		if err != nil {
			return fmt.Errorf("compare %s: %w", t.QualifiedName(), err)
		}
		c.unsettled += u
		c.addDiffs(r, diffs)
	}
	r.RowsCompared += n.rows // compared once every differing key is settled
	return nil
}

// narrowed is what narrowBuckets found.
type narrowed struct {
	// filter selects the rows of the differing buckets ("": none differ).
	filter string
	// buckets is how many differ; rows the most rows either server holds
	// in them.
	buckets int
	rows    int64
	// spread: a narrowing read did not halve the differing rows (a
	// difference all over the table).
	spread bool
	// counted is the rows the first read counted as checked (both servers').
	counted int64
	// skipped is the rows of differing buckets left out (sample).
	skipped int64
}

// narrowBuckets reads both servers' copies in page order, summing rows into
// a power of two of buckets by hash (an int8 expression of the row), adds
// the rows of buckets whose sums are equal to r.RowsCompared, and reads the
// rows of the differing ones again into finer buckets (more bits of the
// same hash) until they hold at most 4 x chunk_rows rows. A read that does
// not halve them stops it (spread), unless sample: then it goes on with
// only the first differing buckets holding at most that many rows (at
// least one bucket), the others' rows skipped; and with sample it narrows
// on, while that halves them, to about a leaf of rows per bucket (their
// rows are then read three times, not once).
func (c *Comparer) narrowBuckets(ctx context.Context, t Table, r *TableResult, info [2]relInfo, hash string, sample bool) (narrowed, error) {
	var n narrowed
	est := info[0].rows()
	if est < 0 {
		var err error
		if est, err = c.planRows(ctx, t); err != nil {
			return n, fmt.Errorf("estimate the rows of %s: %w", t.QualifiedName(), err)
		}
	}
	// A power of two of buckets (up to 1,024), each of at least a leaf.
	// Each statement, about chunk_rows rows, returns a sum for every bucket
	// (a hash puts some of each in every page); a differing bucket's rows
	// are read: about the square root of chunk_rows buckets fetch the
	// fewest bytes for one differing row (1,000,000 rows, chunk_rows
	// 100,000: 256 buckets fetched 0.79 % of the table's bytes, 128 1.17 %).
	most := math.Min(math.Sqrt(float64(c.Opt.ChunkRows)), est/float64(max(c.Opt.LeafRows, 1)))
	bits := 0
	for bits < 10 && float64(int64(2)<<bits) <= most {
		bits++
	}
	bucketOf := func(bits int) string { return fmt.Sprintf("(%s & %d)", hash, int64(1)<<bits-1) }
	// in selects the rows of the buckets ids (an array constant: the server
	// hashes it to test a row, where a parameter it searches row by row).
	in := func(bits int, ids []int) string { return bucketOf(bits) + " = ANY(" + intArray(ids) + ")" }
	sums, err := c.sumBuckets(ctx, t, bucketOf(bits), "", nil, info)
	if err != nil {
		return n, err
	}
	for _, side := range sums {
		for _, b := range side {
			n.counted += b.count
		}
	}
	limit := 4 * int64(c.Opt.ChunkRows)
	var differ []int
	var before int64 = math.MaxInt64
	for {
		n.rows = 0
		differ = differ[:0]
		for _, id := range sums.ids() {
			if sums.equal(id) {
				r.RowsCompared += sums.rows(id)
			} else {
				differ = append(differ, id)
				n.rows += sums.rows(id)
			}
		}
		if len(differ) == 0 {
			return n, nil
		}
		// Sampling (no key): rows are settled by reading them three times
		// (the key-hash mode settles by key), so narrowed to about a leaf
		// per bucket as long as that halves them.
		fine := !sample || n.rows <= int64(4*len(differ)*max(c.Opt.LeafRows, 1))
		if n.rows <= limit && (fine || n.rows > before/2) {
			break
		}
		if n.rows > before/2 || bits >= maxHashBits {
			if !sample || bits >= maxHashBits {
				n.spread = true
				break
			}
			// The first buckets, the rest skipped.
			var kept int64
			for i, id := range differ {
				if i > 0 && kept+sums.rows(id) > limit {
					for _, rest := range differ[i:] {
						n.skipped += sums.rows(rest)
					}
					differ = differ[:i]
					break
				}
				kept += sums.rows(id)
			}
			if n.rows = kept; kept <= limit {
				break
			}
		}
		// Finer buckets of about a leaf each, at most maxHashSums of them.
		more := 1
		for more < 1<<(maxHashBits-bits) && len(differ)<<(more+1) <= maxHashSums && n.rows>>(more+1) >= int64(len(differ)*c.Opt.LeafRows) {
			more++
		}
		filter := in(bits, differ)
		before, bits = n.rows, bits+more
		if sums, err = c.sumBuckets(ctx, t, bucketOf(bits), filter, nil, info); err != nil {
			return n, err
		}
	}
	n.filter, n.buckets = in(bits, differ), len(differ)
	return n, nil
}

// Bounds of the key-hash buckets: hash bits used, and bucket sums one
// narrowing read returns from each server.
const (
	maxHashBits = 48
	maxHashSums = 1 << 16
)

// intArray is ids as an array constant.
func intArray(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return "'{" + strings.Join(s, ",") + "}'::int8[]"
}

// keyTextExpr is the key's text: its one column's, or its columns' as a row.
func (t Table) keyTextExpr() string {
	if len(t.Key) == 1 {
		return t.lead() + "::text"
	}
	return "ROW(" + t.keyList() + ")::text"
}

// bucketSums are each server's sums per bucket (provider, subscriber).
type bucketSums [2]map[int]*bucketSum

// sumBuckets reads both servers' copies at once in page order, summing each
// bucket's rows: every row (counted as checked), or only the rows filter
// selects (the table read again: paced, not counted).
func (c *Comparer) sumBuckets(ctx context.Context, t Table, bucket, filter string, args []any, info [2]relInfo) (bucketSums, error) {
	var sums bucketSums
	var read atomic.Int64 // rows both servers read so far
	err := bothSides(
		func() (err error) {
			sums[0], err = c.scanPages(ctx, c.Provider, true, t, bucket, filter, args, info[0], &read)
			return err
		},
		func() (err error) {
			sums[1], err = c.scanPages(ctx, c.Subscriber, false, t, bucket, filter, args, info[1], &read)
			return err
		})
	if err != nil {
		return sums, fmt.Errorf("read %s in page order: %w", t.QualifiedName(), err)
	}
	return sums, nil
}

// ids are the buckets either server holds rows in, in order.
func (s bucketSums) ids() []int {
	ids := slices.Collect(maps.Keys(s[0]))
	for id := range s[1] {
		if s[0][id] == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// equal reports whether both servers hold the same rows in bucket id.
func (s bucketSums) equal(id int) bool {
	p, q := s[0][id], s[1][id]
	return p != nil && q != nil && p.count == q.count && p.sum.Cmp(&q.sum) == 0
}

// rows is the most rows either server holds in bucket id.
func (s bucketSums) rows(id int) int64 {
	var n int64
	for _, b := range []*bucketSum{s[0][id], s[1][id]} {
		if b != nil {
			n = max(n, b.count)
		}
	}
	return n
}

// compareSpan compares the key range [lo, hi) as key order compares a
// range. One too slow to read within the statement timeout is cut into up
// to 16 ranges of equal key width (an open end counts from the lowest or
// highest key either server holds), each compared the same way. For a
// composite key lo and hi are values of its first column: a range that
// holds more than chunk_rows rows (rows, the most either server's pages
// held; 0 when not known), or one value of it too slow for one statement,
// is compared in key order, chunk_rows rows at a time.
func (c *Comparer) compareSpan(ctx context.Context, t Table, lo, hi []string, lowest, highest *big.Int, rows int64, r *TableResult) error {
	if len(t.Key) > 1 && rows > int64(c.Opt.ChunkRows) {
		return c.rewalk(ctx, t, lo, hi, r)
	}
	mark := len(c.pending)
	diffs, n, err := c.compareRange(ctx, t, lo, hi, nil)
	if err == nil {
		r.RowsCompared += n
		c.addDiffs(r, diffs)
		return nil
	}
	if c.pending != nil {
		c.pending = c.pending[:mark] // compared again below, if at all
	}
	if !c.timedOut(ctx, err) || lowest == nil {
		return err
	}
	a, b := lowest, highest
	if lo != nil {
		a = keyValue(t, lo[0])
	}
	if hi != nil {
		b = keyValue(t, hi[0])
	}
	cuts := spanCuts(a, b)
	if len(cuts) == 0 {
		if len(t.Key) > 1 {
			return c.rewalk(ctx, t, lo, hi, r) // one leading value: its rows a few at a time
		}
		return err // one key: the row cannot be read within the timeout
	}
	for i := range len(cuts) + 1 {
		slo, shi := lo, hi
		if i > 0 {
			slo = []string{keyText(t, cuts[i-1])}
			c.reached(slo)
		}
		if i < len(cuts) {
			shi = []string{keyText(t, cuts[i])}
		}
		if err := c.compareSpan(ctx, t, slo, shi, lowest, highest, 0, r); err != nil {
			return err
		}
	}
	return nil
}

// rewalk walks [lo, hi) in key order, its rows paced but not counted as
// checked again: the page-order read that summed them counted them.
func (c *Comparer) rewalk(ctx context.Context, t Table, lo, hi []string, r *TableResult) error {
	c.again = true
	defer func() { c.again = false }()
	return c.walk(ctx, t, lo, hi, r)
}

// spanCuts cuts (a, b) at up to 15 values strictly between them, evenly.
func spanCuts(a, b *big.Int) []*big.Int {
	width := new(big.Int).Sub(b, a)
	if width.Cmp(big.NewInt(2)) < 0 {
		return nil
	}
	step := new(big.Int).Quo(width, big.NewInt(16))
	if step.Sign() == 0 {
		step.SetInt64(1)
	}
	var out []*big.Int
	for v := new(big.Int).Add(a, step); v.Cmp(b) < 0 && len(out) < 15; v = new(big.Int).Add(v, step) {
		out = append(out, v)
	}
	return out
}

// keyValue is the value of a pageKey key's first column as a number (a
// uuid's 128 bits).
func keyValue(t Table, key string) *big.Int {
	v := new(big.Int)
	if t.leadInt() {
		v.SetString(key, 10)
	} else {
		v.SetString(strings.ReplaceAll(key, "-", ""), 16)
	}
	return v
}

// keyText is keyValue's inverse.
func keyText(t Table, v *big.Int) string {
	if t.leadInt() {
		return v.String()
	}
	h := fmt.Sprintf("%032x", v)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// sampleBounds cuts the provider's keys into up to pageBuckets ranges of
// about equal rows, from a sample of its pages (TABLESAMPLE SYSTEM): the
// lower bounds of every range but the first, in key order. They are values
// of the key's first column, each once: a value that many rows share (a
// composite key's leading column) makes a range of more rows.
func (c *Comparer) sampleBounds(ctx context.Context, t Table, ri relInfo) ([]string, error) {
	est := ri.rows()
	if est < 0 {
		// Never counted: the planner's guess from its pages and row width.
		var err error
		if est, err = c.planRows(ctx, t); err != nil {
			return nil, err
		}
	}
	// Ranges of at least 16 leaves, so few are compared once their sums differ.
	per := max(float64(16*c.Opt.LeafRows), est/pageBuckets)
	n := math.Floor(est / per)
	if n < 2 {
		return nil, nil
	}
	const every = 16 // sampled keys per range
	pct := min(100, 100*every*n/est)
	rows, err := c.Provider.Query(ctx, fmt.Sprintf(`SELECT pglmon_k FROM (SELECT %s::text AS pglmon_k, %s AS pglmon_key, row_number() OVER (ORDER BY %s) AS pglmon_rn
		FROM %s TABLESAMPLE SYSTEM ($1::float8)) s WHERE pglmon_rn %% %d = 0 ORDER BY pglmon_key`, t.lead(), t.lead(), t.lead(), t.ident(), every), pct)
	if err != nil {
		return nil, err
	}
	bounds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	// In order, so a value sampled again follows itself (its text is canonical).
	return slices.Compact(bounds), err
}

// planRows is the planner's estimate of the provider's rows in the table.
func (c *Comparer) planRows(ctx context.Context, t Table) (float64, error) {
	var p plan
	err := c.Provider.QueryRow(ctx, "EXPLAIN (FORMAT JSON) SELECT 1 FROM "+t.ident()).Scan(&p)
	return p.rows(), err
}

// bucketRow is one key range's part of a range of pages.
type bucketRow struct {
	ID    int
	Count int64
	Sum   string
}

// scanPages reads one server's copy in page order and sums each bucket's
// rows (bucket: an expression of the row, with its arguments args), of the
// rows filter selects when it is not empty.
func (c *Comparer) scanPages(ctx context.Context, conn *pgx.Conn, provider bool, t Table, bucket, filter string, args []any, ri relInfo, read *atomic.Int64) (map[int]*bucketSum, error) {
	out := map[int]*bucketSum{}
	err := c.pageRanges(ctx, conn, provider, t, ri, filter != "", func(where string) (int64, error) {
		if filter != "" {
			where += " AND " + filter
		}
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s, count(*), coalesce(sum(%s), 0)::text FROM %s WHERE %s GROUP BY 1",
			bucket, t.rowHash(), t.ident(), where), args...)
		if err != nil {
			return 0, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[bucketRow])
		if err != nil {
			return 0, err
		}
		var n int64
		for _, g := range got {
			v, ok := new(big.Int).SetString(g.Sum, 10)
			if !ok {
				return 0, fmt.Errorf("hash sum %q is not an integer", g.Sum)
			}
			b := out[g.ID]
			if b == nil {
				b = &bucketSum{}
				out[g.ID] = b
			}
			b.count += g.Count
			b.sum.Add(&b.sum, v)
			n += g.Count
		}
		if filter == "" {
			// Each server's rows count half: the two read the same rows (half
			// of the total so far, less the half counted before: no rounding lost).
			after := read.Add(n)
			c.tick(ctx, after/2-(after-n)/2)
		}
		return n, nil
	})
	return out, err
}

// pageRanges reads one server's copy of the table in ranges of pages, the
// last one open (pages added meanwhile are read too): read runs one
// statement over the rows where selects (a range of pages, and the row
// filter on the provider) and returns how many it read. Ranges are sized to
// about chunk_rows rows and a tenth of the statement timeout, as key ranges
// are, and narrowed to a quarter when one reaches the timeout; a statement
// that fails leaves nothing behind, so read keeps only what succeeded.
// With reread, read returns only some of the rows its pages hold: the rows
// the pages held when statistics were last gathered pace the read instead
// (the other server reads as many: each counts half).
func (c *Comparer) pageRanges(ctx context.Context, conn *pgx.Conn, provider bool, t Table, ri relInfo, reread bool, read func(where string) (int64, error)) error {
	perPage := 100.0
	if ri.relpages > 0 && ri.tuples > 0 {
		perPage = ri.tuples / float64(ri.relpages)
	}
	// Half the pages chunk_rows rows take, as key order starts at half its width.
	width := max(int64(float64(c.Opt.ChunkRows)/perPage/2), 1)
	for page := int64(0); ; {
		last := page+width >= ri.pages
		conds := []string{fmt.Sprintf("ctid >= '(%d,0)'::tid", page)}
		if !last {
			conds = append(conds, fmt.Sprintf("ctid < '(%d,0)'::tid", page+width))
		}
		if provider && t.RowFilter != "" {
			conds = append(conds, "("+t.RowFilter+")")
		}
		started := time.Now()
		n, err := read(strings.Join(conds, " AND "))
		if err != nil {
			if width > 1 && c.timedOut(ctx, err) {
				// Rows too slow to read so many pages in one statement: a
				// quarter as many, from the same page.
				width = max(width/4, 1)
				continue
			}
			return err
		}
		if reread {
			c.reread(ctx, int64(float64(min(width, max(ri.pages-page, 1)))*perPage/2))
			// What it returns is bounded by the buckets it asks for, not by
			// the pages: the range grows by time alone.
			n = 0
		}
		if last {
			return nil
		}
		page += width
		width = int64(min(max(float64(width)*c.growth(n, time.Since(started)), 1), float64(math.MaxInt32)))
	}
}
