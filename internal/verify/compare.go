package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/serverlog"
)

// Modes.
const (
	ModeCount    = "count"
	ModeChecksum = "checksum"
)

// Options tune a comparison; zero values get defaults.
type Options struct {
	Mode string
	// ChunkRows is how many provider rows one range covers.
	ChunkRows int
	// LeafRows: ranges at most this large are compared row by row.
	LeafRows int
	// MaxRowsPerSecond paces the reads (0: no limit), of all tables
	// compared at once together.
	MaxRowsPerSecond int
	// Parallel is how many tables Run compares at once (0 or 1: one).
	Parallel int
	// MaxKeys caps the keys reported per table (the total is always
	// counted), and the key values kept with them to maxKeptBytes.
	MaxKeys int
	// Scan is how checksum mode reads rows: ScanAuto (""), ScanIndex or ScanPages.
	Scan string
	// Retries is how many times a difference is re-checked after the
	// subscriber caught up, before it is reported.
	Retries int
	// Slot is the subscription's slot on the provider, waited on to let the
	// subscriber catch up before a difference is believed.
	Slot string
	// ApplyDelay is the subscription's apply_delay: that wait lasts at least
	// as long, so it may take that much more than StatementTimeout.
	ApplyDelay time.Duration
	// StatementTimeout is the sessions' statement_timeout: ranges are sized
	// to take a tenth of it, and a range that reaches it is narrowed.
	StatementTimeout time.Duration
	// Progress, when set, is called after each range.
	Progress func(Progress)
	// Resume starts the named tables (schema.table) at a key, the
	// ResumeFrom of an interrupted comparison (checksum mode); rows below
	// it are not compared.
	Resume map[string][]string
	// KeyOrder names tables (schema.table) read in key order whatever Scan
	// says: a comparison that stopped in page order with no key to resume
	// at goes on this way, which a later stop does not lose.
	KeyOrder map[string]bool
	// Skip leaves the named tables out (compared earlier in the same pass).
	Skip map[string]bool
	// Exclude leaves out the tables matching these schema.table patterns
	// (path.Match), unless Run is asked for one table by name.
	Exclude []string
	// OtherSources names, per table, the subscriber's other subscriptions
	// that replicate it (see Sources).
	OtherSources map[string][]string
}

// Progress is reported while comparing.
type Progress struct {
	Table       string
	TableIndex  int
	Tables      int
	RowsChecked int64
	// RowsEstimated is the provider's estimate over all tables.
	RowsEstimated int64
	Elapsed       time.Duration
}

// Diff kinds.
const (
	Missing   = "missing"   // on the provider, not on the subscriber
	Extra     = "extra"     // on the subscriber, not on the provider
	Different = "different" // on both, with different values
)

// KeyDiff is one row that differs.
type KeyDiff struct {
	Key  string `json:"key"`
	Kind string `json:"kind"`
}

// rowDiff is a KeyDiff with the row hash of the side that has the row
// (missing: the provider's; extra: the subscriber's).
type rowDiff struct {
	KeyDiff
	vals []string // the key's columns as text
	hash int64
}

// TableResult is the comparison of one table.
type TableResult struct {
	Table        string `json:"table"`
	Mode         string `json:"mode"`
	Scan         string `json:"scan,omitempty"` // checksum mode: ScanIndex or ScanPages, as read
	Equal        bool   `json:"equal"`
	RowsCompared int64  `json:"rows_compared"`
	// ProviderRows and SubscriberRows are the exact counts (count mode).
	ProviderRows   int64 `json:"provider_rows"`
	SubscriberRows int64 `json:"subscriber_rows"`
	// DifferingRows is the total; Keys holds at most MaxKeys of them.
	DifferingRows int64 `json:"differing_rows"`
	// Unsettled counts rows that kept changing on the provider through every
	// re-check: not reported as differing, not proven equal either.
	Unsettled int64 `json:"unsettled_rows,omitempty"`
	// ExpectedRows differ only as the replication set makes them: changes it
	// does not replicate (Note says which). Not counted as differing.
	ExpectedRows int64     `json:"expected_rows,omitempty"`
	Note         string    `json:"note,omitempty"`
	Keys         []KeyDiff `json:"keys,omitempty"`
	// KeyValues holds, beside each of Keys, its key's columns as text (as
	// the verify sessions print them: UTC, ISO); nil for a table without
	// primary key, whose rows are named by their contents.
	KeyValues [][]string `json:"-"`
	// Spec is what was compared: the replicated columns, the key, the row
	// filter (for the script that copies the differing rows, rowcopy).
	Spec Table `json:"-"`
	// ResyncWarning is set for a table pglogical cannot copy (Table.ResyncWarning).
	ResyncWarning string        `json:"resync_warning,omitempty"`
	Duration      time.Duration `json:"duration_ns"`
	Error         string        `json:"error,omitempty"`
	// ResumeFrom is where an interrupted checksum comparison stopped: every
	// key below it was compared. Options.Resume continues from there.
	ResumeFrom []string `json:"resume_from,omitempty"`
	// ResumedFrom is the key this comparison started at (Options.Resume).
	ResumedFrom []string `json:"resumed_from,omitempty"`
	// Conflicts are, for a table that differs, the last conflicts pglogical
	// resolved on it by itself, found in the end of the subscriber's log
	// (filled by the command line); ConflictsLogged counts them all.
	Conflicts       []serverlog.Conflict `json:"conflicts,omitempty"`
	ConflictsLogged int                  `json:"conflicts_logged,omitempty"`
	ConflictLog     string               `json:"conflict_log,omitempty"`
}

// Comparer compares tables between a provider and a subscriber connection.
type Comparer struct {
	Provider, Subscriber *pgx.Conn
	Opt                  Options

	// run is shared by the comparers of one run: rate limit and progress.
	run       *pace
	unsettled int64
	// indexOnly: both sessions have enable_seqscan off (checksum mode).
	indexOnly bool
	// reported holds this table's differing keys when they are not one
	// integer column (whose order can differ between the servers).
	reported map[string]bool
	// current is the table being compared.
	current Table
	// kept is the size of the keys and values the current table's result holds.
	kept int
	// depth is how deep compareRange recursed.
	depth int
	// walWriterGrace bounds how long a commit can stay unflushed on the provider.
	walWriterGrace time.Duration
	// graced is the last insert position waited out, and the target it gave.
	graced [2]string
	// noOrigin: the subscriber's replication origins are not readable;
	// noWorker: nor is its apply worker's transaction; noFlush: the
	// provider refused the transaction that flushes its WAL (flush).
	noOrigin, noWorker, noFlush bool
	// rels is what both servers said of the run's tables at its start
	// (nil: each table is asked about in its turn).
	rels *relInfos
	// noEarly: asking the subscriber whether it applied a position in the
	// batch that reads its rows failed (appliedFirst); not asked so again.
	noEarly bool
	// pending are the small ranges a bisection ended in, to settle
	// together (nil: no bisection under way).
	pending []pendingRange
	// again: walk compares rows a page-order read counted as checked.
	again bool
	// next is where the current table's walk continues: every key below it
	// was compared (nil: from the start).
	next []string
}

// timedOut reports whether err is the server's statement timeout (not a
// cancellation of ours: Ctrl-C cancels statements with the same code).
func (c *Comparer) timedOut(ctx context.Context, err error) bool {
	var pe *pgconn.PgError
	return ctx.Err() == nil && errors.As(err, &pe) && pe.Code == "57014"
}

func (c *Comparer) defaults() {
	if c.Opt.Mode == "" {
		c.Opt.Mode = ModeChecksum
	}
	if c.Opt.ChunkRows <= 0 {
		c.Opt.ChunkRows = 100000
	}
	if c.Opt.LeafRows <= 0 {
		c.Opt.LeafRows = 256
	}
	if c.Opt.MaxKeys <= 0 {
		c.Opt.MaxKeys = 100
	}
	if c.Opt.Retries <= 0 {
		c.Opt.Retries = 3
	}
}

// CompareAll compares the tables with several comparers at once (each its
// own pair of connections), one table each at a time, largest first, under
// one rate limit; results are in the order of tables. With one comparer
// the tables go in their order.
func CompareAll(ctx context.Context, cs []*Comparer, tables []Table) []TableResult {
	// The comparers of a run share their options.
	run := &pace{start: time.Now(), progress: Progress{Tables: len(tables)}, report: cs[0].Opt.Progress, limit: cs[0].Opt.MaxRowsPerSecond}
	for _, t := range tables {
		run.progress.RowsEstimated += t.EstimatedRows
	}
	order := make([]int, len(tables))
	for i := range order {
		order[i] = i
	}
	if len(cs) > 1 {
		slices.SortStableFunc(order, func(a, b int) int { return cmpDesc(tables[a].EstimatedRows, tables[b].EstimatedRows) })
	}
	results := make([]*TableResult, len(tables))
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, c := range cs {
		c.defaults()
		c.run = run
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1)) - 1
				if k >= len(order) {
					return
				}
				t := tables[order[k]]
				if c.Opt.Skip[t.QualifiedName()] {
					continue
				}
				run.begin(t.QualifiedName())
				r := c.table(ctx, t)
				results[order[k]] = &r
			}
		})
	}
	wg.Wait()
	out := make([]TableResult, 0, len(tables))
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out
}

func cmpDesc(a, b int64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// pace counts the rows of a run, reports progress and paces the reads of
// all its comparers to one limit.
type pace struct {
	mu       sync.Mutex
	start    time.Time
	rows     int64
	started  int
	progress Progress
	report   func(Progress)
	limit    int
	// reread is rows read again (a page-order read narrowing the buckets
	// that differ): paced, not counted as checked.
	reread int64
}

// begin notes that a table's comparison starts.
func (p *pace) begin(table string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started++
	p.progress.Table, p.progress.TableIndex = table, p.started
}

func (c *Comparer) table(ctx context.Context, t Table) TableResult {
	start := time.Now()
	c.kept = 0
	r := TableResult{Table: t.QualifiedName(), Mode: c.Opt.Mode, Spec: t, ResyncWarning: t.ResyncWarning()}
	if c.Opt.Mode == ModeChecksum && len(t.Key) > 0 && t.SyncStatus == "" {
		r.ResumedFrom = c.Opt.Resume[r.Table]
	}
	var err error
	switch {
	case t.SyncStatus != "":
		err = fmt.Errorf("not compared: pglogical has not finished synchronizing it on the subscriber (sync status %s); compare it once it is ready", syncStatusName(t.SyncStatus))
	case c.Opt.Mode == ModeCount:
		err = c.count(ctx, t, &r)
	case len(t.Key) == 0:
		// No key to walk or to name rows by: rows named by their contents,
		// or exact counts where pages cannot be read in ranges.
		if ok, info := c.rowsInPages(ctx, t); ok {
			r.Scan = ScanRows
			c.unsettled, c.reported, c.current, c.next = 0, nil, t, nil
			err = c.checksumRows(ctx, t, &r, info)
			r.Unsettled = c.unsettled
			break
		}
		r.Mode = ModeCount
		if err = c.count(ctx, t, &r); err == nil {
			r.Note = "no primary key: compared by row count (PostgreSQL 13 or older, or not a plain table)"
		}
	case r.ResumedFrom != nil && (len(r.ResumedFrom) == 0 || len(r.ResumedFrom) > len(t.Key)):
		// A key, or its leading columns (where a page-order read of a
		// composite key stopped): rows from there on.
		err = fmt.Errorf("cannot resume %s at %q: its primary key has %d columns (%s); give its value or the values of its leading columns", t.QualifiedName(), r.ResumedFrom, len(t.Key), strings.Join(t.Key, ", "))
	default:
		c.unsettled, c.reported, c.current = 0, nil, t
		if !t.intKey() {
			c.reported = map[string]bool{}
		}
		c.next = nil
		err = c.checksum(ctx, t, &r)
		r.Unsettled = c.unsettled
		if err != nil && ctx.Err() != nil {
			r.ResumeFrom = c.next
		}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		r.Error = "interrupted" // Ctrl-C, or the end of the daemon's window
	case err != nil:
		r.Error = err.Error()
	}
	if r.ExpectedRows > 0 {
		r.Note = strings.TrimPrefix(r.Note+"; ", "; ") + fmt.Sprintf("%d rows differ as expected: %s", r.ExpectedRows, t.expectation())
	}
	r.Equal = err == nil && r.DifferingRows == 0
	r.Duration = time.Since(start)
	return r
}

// --- SQL built from quoted identifiers; values are always bound ---

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

// intKey reports whether the primary key is one integer column, walked by value.
func (t Table) intKey() bool {
	return len(t.Key) == 1 && slices.Contains([]string{"bigint", "integer", "smallint"}, t.KeyTypes[0])
}

func (t Table) keyList() string { return strings.Join(quoteAll(t.Key), ", ") }

// keyTexts selects the key columns as text under other names: an output
// column named like the key would make ORDER BY sort the text, not the key.
func (t Table) keyTexts() []string {
	out := make([]string, len(t.Key))
	for i, k := range quoteAll(t.Key) {
		out[i] = fmt.Sprintf("%s::text AS pglmon_k%d", k, i)
	}
	return out
}

// rowHash is a 64-bit hash of the replicated columns of a row: each column
// hashed by its type's own hash function with a seed of its position (so
// swapped values differ), values cast to the provider's types on both sides,
// NULL hashed as a constant. Types without a hash opclass hash their text.
func (t Table) rowHash() string {
	if len(t.HashFuncs) != len(t.Columns) {
		return "hashtextextended(ROW(" + strings.Join(quoteAll(t.Columns), ", ") + ")::text, 0)"
	}
	parts := make([]string, len(t.Columns))
	for i, c := range quoteAll(t.Columns) {
		seed := i + 1
		switch {
		case t.HashFuncs[i] != "" && t.ColumnTypes[i] != "":
			parts[i] = fmt.Sprintf("coalesce(%s(%s::%s, %d), %d)", t.HashFuncs[i], c, t.ColumnTypes[i], seed, 7919*seed)
		default:
			parts[i] = fmt.Sprintf("coalesce(hashtextextended(%s::text, %d), %d)", c, seed, 7919*seed)
		}
	}
	return "(" + strings.Join(parts, " # ") + ")"
}

// bound compares the key's first cols columns (all of them, or a leading
// part: a key range cut by its first column alone) with bound parameters
// starting at $n. Keys whose leading columns are at least v are the keys
// at least (v, lowest of the rest); below v, below (v, lowest of the rest).
func (t Table) bound(op string, n, cols int) string {
	params := make([]string, cols)
	for i, typ := range t.KeyTypes[:cols] {
		params[i] = fmt.Sprintf("$%d::%s", n+i, typ)
	}
	names := strings.Join(quoteAll(t.Key[:cols]), ", ")
	if cols == 1 {
		return names + " " + op + " " + params[0]
	}
	return "(" + names + ") " + op + " (" + strings.Join(params, ", ") + ")"
}

// where builds the range condition [lo, hi) and its arguments; nil is open.
// A bound may hold fewer values than the key has columns: its leading ones.
func (t Table) where(lo, hi []string, provider bool) (string, []any) {
	var conds []string
	var args []any
	if lo != nil {
		conds = append(conds, t.bound(">=", len(args)+1, len(lo)))
		for _, v := range lo {
			args = append(args, v)
		}
	}
	if hi != nil {
		conds = append(conds, t.bound("<", len(args)+1, len(hi)))
		for _, v := range hi {
			args = append(args, v)
		}
	}
	if provider && t.RowFilter != "" {
		conds = append(conds, "("+t.RowFilter+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

type agg struct {
	count int64
	sum   string
}

func (c *Comparer) aggregate(ctx context.Context, conn *pgx.Conn, t Table, lo, hi []string, provider bool) (agg, error) {
	where, args := t.where(lo, hi, provider)
	var a agg
	err := conn.QueryRow(ctx, t.aggregateSQL()+where, args...).Scan(&a.count, &a.sum)
	return a, err
}

// aggregateSQL counts and sums the row hashes of the table, before its WHERE.
func (t Table) aggregateSQL() string {
	return "SELECT count(*), coalesce(sum(" + t.rowHash() + "), 0)::text FROM " + t.ident()
}

// boundary returns the key at offset n from lo, below hi (nil when there is none).
func (c *Comparer) boundary(ctx context.Context, conn *pgx.Conn, t Table, lo, hi []string, n int64, provider bool) ([]string, error) {
	where, args := t.where(lo, hi, provider)
	casts := t.keyTexts()
	args = append(args, n)
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s%s ORDER BY %s OFFSET $%d LIMIT 1",
		strings.Join(casts, ", "), t.ident(), where, t.keyList(), len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]string, len(t.Key))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	return vals, rows.Err()
}

type leafRow struct {
	key  string
	vals []string // the key's columns as text
	hash int64
}

func (c *Comparer) leaf(ctx context.Context, conn *pgx.Conn, t Table, sql string, args []any) ([]leafRow, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return collectLeaf(t, rows)
}

// leaves reads the rows each query selects, in one round trip.
func (c *Comparer) leaves(ctx context.Context, conn *pgx.Conn, t Table, qs []query) ([][]leafRow, error) {
	rows := make([][]leafRow, len(qs))
	b := &pgx.Batch{}
	queueLeaves(b, t, qs, rows)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return rows, nil
}

// queueLeaves queues the queries, the rows of query i to go to rows[i].
func queueLeaves(b *pgx.Batch, t Table, qs []query, rows [][]leafRow) {
	for i, q := range qs {
		b.Queue(q.sql, q.args...).Query(func(r pgx.Rows) error {
			var err error
			rows[i], err = collectLeaf(t, r)
			return err
		})
	}
}

// leafSQL selects the key (as text) and hash of every row of [lo, hi).
func (t Table) leafSQL(lo, hi []string, provider bool) (string, []any) {
	where, args := t.where(lo, hi, provider)
	return "SELECT " + strings.Join(t.keyTexts(), ", ") + ", " + t.rowHash() + " FROM " + t.ident() + where + " ORDER BY " + t.keyList(), args
}

// keysSQL selects the key (as text) and hash of the rows with the given
// keys (each a list of the key's columns as text), found by equality: the
// same rows on both servers whatever order each sorts the keys in.
func (t Table) keysSQL(keys [][]string, provider bool) (string, []any) {
	cols := make([][]string, len(t.Key))
	for _, k := range keys {
		for i, v := range k {
			cols[i] = append(cols[i], v)
		}
	}
	args := make([]any, len(cols))
	arrays := make([]string, len(cols))
	names := make([]string, len(cols))
	on := make([]string, len(cols))
	for i, col := range quoteAll(t.Key) {
		args[i] = cols[i]
		arrays[i] = fmt.Sprintf("$%d::text[]::%s[]", i+1, t.KeyTypes[i])
		names[i] = fmt.Sprintf("pglmon_u%d", i)
		on[i] = fmt.Sprintf("%s = pglmon_u.%s", col, names[i])
	}
	where := ""
	if provider && t.RowFilter != "" {
		where = " WHERE (" + t.RowFilter + ")"
	}
	return "SELECT " + strings.Join(t.keyTexts(), ", ") + ", " + t.rowHash() + " FROM " + t.ident() +
		" JOIN unnest(" + strings.Join(arrays, ", ") + ") AS pglmon_u(" + strings.Join(names, ", ") + ") ON " +
		strings.Join(on, " AND ") + where + " ORDER BY " + t.keyList(), args
}

func collectLeaf(t Table, rows pgx.Rows) ([]leafRow, error) {
	defer rows.Close()
	var out []leafRow
	vals := make([]string, len(t.Key))
	ptrs := make([]any, len(vals)+1)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var h int64
	ptrs[len(vals)] = &h
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		key := vals[0]
		if len(vals) > 1 {
			key = "(" + strings.Join(vals, ",") + ")"
		}
		out = append(out, leafRow{key, slices.Clone(vals), h})
	}
	return out, rows.Err()
}

// diffLeaves merges two key-ordered row lists. Keys compare by the order
// the server returned them in, so it walks both lists by position of keys.
func diffLeaves(p, s []leafRow) []rowDiff {
	sm := make(map[string]int64, len(s))
	for _, r := range s {
		sm[r.key] = r.hash
	}
	pm := make(map[string]bool, len(p))
	var out []rowDiff
	for _, r := range p {
		pm[r.key] = true
		h, ok := sm[r.key]
		switch {
		case !ok:
			out = append(out, rowDiff{KeyDiff{r.key, Missing}, r.vals, r.hash})
		case h != r.hash:
			out = append(out, rowDiff{KeyDiff{r.key, Different}, r.vals, 0})
		}
	}
	for _, r := range s {
		if !pm[r.key] {
			out = append(out, rowDiff{KeyDiff{r.key, Extra}, r.vals, r.hash})
		}
	}
	return out
}

func (c *Comparer) checksum(ctx context.Context, t Table, r *TableResult) error {
	// Every statement reads one key range: through the primary key's index,
	// whatever the planner's statistics say, so none turns into a scan of
	// the whole table (stale statistics make open-ended ranges look large).
	// Run's sessions have it so from their start (Connect).
	if !c.indexOnly {
		set := func(conn *pgx.Conn) func() error {
			return func() error { _, err := conn.Exec(ctx, "SET enable_seqscan = off"); return err }
		}
		if err := bothSides(set(c.Provider), set(c.Subscriber)); err != nil {
			return err
		}
		c.indexOnly = true
	}
	ok, info := c.usePages(ctx, t, r)
	if ok {
		r.Scan = ScanPages
		return c.checksumByPages(ctx, t, r, info)
	}
	r.Scan = ScanIndex
	if known, ok := c.wholeTable(t); ok {
		// Small: summed whole with the run's other small tables.
		return c.oneRange(ctx, t, r, known)
	}
	if t.intKey() {
		return c.checksumByValue(ctx, t, r, info[0])
	}
	return c.walk(ctx, t, r.ResumedFrom, nil, r)
}

// walk compares [lo, hi) in key order, one range of about chunk_rows of the
// provider's rows after another, each ending at the key found at that
// offset on the provider.
func (c *Comparer) walk(ctx context.Context, t Table, lo, hi []string, r *TableResult) error {
	if lo != nil {
		c.reached(lo)
	}
	rows := int64(c.Opt.ChunkRows)
	for {
		// Rows too slow to read chunk_rows of them in one statement: a
		// quarter as many, from the same start.
		narrow := func(err error) bool {
			if rows > 1 && c.timedOut(ctx, err) {
				rows = max(rows/4, 1)
				return true
			}
			return false
		}
		end, err := c.boundary(ctx, c.Provider, t, lo, hi, rows, true)
		if err != nil {
			if narrow(err) {
				continue
			}
			return fmt.Errorf("find the next range of %s: %w", t.QualifiedName(), err)
		}
		if end == nil {
			end = hi // the rest of [lo, hi): fewer than rows rows on the provider
		}
		started := time.Now()
		diffs, n, err := c.compareRange(ctx, t, lo, end, nil)
		if err != nil {
			if end != nil && narrow(err) {
				continue
			}
			return fmt.Errorf("compare %s: %w", t.QualifiedName(), err)
		}
		r.RowsCompared += n
		c.addDiffs(r, diffs)
		if c.again {
			c.reread(ctx, n)
		} else {
			c.tick(ctx, n)
		}
		if slices.Equal(end, hi) {
			return nil
		}
		rows = max(int64(float64(rows)*c.growth(n, time.Since(started))), 1)
		lo = end
		c.reached(end)
	}
}

// compareRange compares [lo, hi); known holds the aggregates when the caller
// already read them. It returns the differences after settling and the rows
// compared. The small ranges the bisection ends in are settled together, up
// to about chunk_rows rows (and settleBatch ranges) at a time: one wait for
// the subscriber each, not one a range. Differences all over a range end
// in hundreds of small ranges, each wait up to the provider's
// wal_writer_delay (200 ms) when the last re-check's own commit is still
// unflushed: settled 32 ranges at a time, 505,000 rows missing took 26 s.
func (c *Comparer) compareRange(ctx context.Context, t Table, lo, hi []string, known *[2]agg) ([]rowDiff, int64, error) {
	if c.pending != nil {
		return c.narrowRange(ctx, t, lo, hi, known) // within a bisection
	}
	c.pending = []pendingRange{}
	defer func() { c.pending = nil }()
	diffs, n, err := c.narrowRange(ctx, t, lo, hi, known)
	if err != nil {
		return nil, 0, err
	}
	d, err := c.settlePending(ctx, t)
	if err != nil {
		return nil, 0, err
	}
	return append(diffs, d...), n, nil
}

// settlePending settles the small ranges pending, up to about chunk_rows
// rows (and settleBatch ranges) at a time, and returns their differences.
func (c *Comparer) settlePending(ctx context.Context, t Table) ([]rowDiff, error) {
	var diffs []rowDiff
	for len(c.pending) > 0 {
		var rows int64
		k := 0
		for k < len(c.pending) && k < settleBatch && (k == 0 || rows+c.pending[k].rows <= int64(c.Opt.ChunkRows)) {
			rows += c.pending[k].rows
			k++
		}
		batch := make([][2][]string, k)
		for i, r := range c.pending[:k] {
			batch[i] = [2][]string{r.lo, r.hi}
		}
		c.pending = c.pending[k:]
		d, u, err := c.settleRanges(ctx, t, batch)
		if err != nil {
			return diffs, err
		}
		c.unsettled += u
		diffs = append(diffs, d...)
	}
	return diffs, nil
}

// pendingRows is the rows of the ranges pending.
func (c *Comparer) pendingRows() int64 {
	var n int64
	for _, r := range c.pending {
		n += r.rows
	}
	return n
}

// reached notes that every key below key was compared, unless ranges a
// bisection ended in still wait to be settled: their rows are not.
func (c *Comparer) reached(key []string) {
	if len(c.pending) == 0 {
		c.next = key
	}
}

// pendingRange is a small range a bisection ended in, and the most rows
// either server holds in it.
type pendingRange struct {
	lo, hi []string
	rows   int64
}

// settleBatch is how many small ranges are settled together at most (each
// a statement of the batch that reads them).
const settleBatch = 1024

// narrowRange compares [lo, hi) as compareRange does, leaving the small
// ranges it ends in to be settled.
func (c *Comparer) narrowRange(ctx context.Context, t Table, lo, hi []string, known *[2]agg) ([]rowDiff, int64, error) {
	var pa, sa agg
	if known != nil {
		pa, sa = known[0], known[1]
	} else {
		// Both servers hash their range at the same time.
		err := bothSides(
			func() (err error) { pa, err = c.aggregate(ctx, c.Provider, t, lo, hi, true); return err },
			func() (err error) { sa, err = c.aggregate(ctx, c.Subscriber, t, lo, hi, false); return err })
		if err != nil {
			return nil, 0, err
		}
	}
	n := max(pa.count, sa.count)
	if pa == sa {
		return nil, n, nil
	}
	// Splitting narrows a range on one server; where the servers sort the
	// keys differently it may not narrow it on the other: compare rows
	// once splitting stops making ranges smaller.
	c.depth++
	defer func() { c.depth-- }()
	if n <= int64(c.Opt.LeafRows) || c.depth > maxDepth {
		d, u, err := c.settle(ctx, t, lo, hi, n)
		c.unsettled += u
		return d, n, err
	}
	// Split on the side holding more rows.
	conn, provider := c.Provider, true
	if sa.count > pa.count {
		conn, provider = c.Subscriber, false
	}
	if len(t.Key) == 1 {
		return c.splitRange(ctx, conn, provider, t, lo, hi, n)
	}
	mid, err := c.boundary(ctx, conn, t, lo, hi, n/2, provider)
	if err != nil {
		return nil, 0, err
	}
	if mid == nil || slices.Equal(mid, lo) {
		d, u, err := c.settle(ctx, t, lo, hi, n)
		c.unsettled += u
		return d, n, err
	}
	left, _, err := c.compareRange(ctx, t, lo, mid, nil)
	if err != nil {
		return nil, 0, err
	}
	right, _, err := c.compareRange(ctx, t, mid, hi, nil)
	if err != nil {
		return nil, 0, err
	}
	return append(left, right...), n, nil
}

// settle decides which rows of a small range really differ while the
// provider keeps changing. It reads the provider (P1, with the WAL position
// after it), waits until the subscriber applied that position, reads the
// subscriber (S), then the provider again (P2). A row whose provider copy is
// the same in P1 and P2 was the same while S was read, and the subscriber had
// applied at least P1 by then: if S differs from it, the difference is real.
// Rows that changed between P1 and P2 are read again, up to Retries times;
// those still moving are counted as unsettled, never reported as differing.
//
// Within a bisection the range is kept for compareRange to settle with the
// others it ends in.
func (c *Comparer) settle(ctx context.Context, t Table, lo, hi []string, rows int64) ([]rowDiff, int64, error) {
	if c.pending != nil {
		c.pending = append(c.pending, pendingRange{lo, hi, rows})
		return nil, 0, nil
	}
	return c.settleRanges(ctx, t, [][2][]string{{lo, hi}})
}

// settleRanges settles the rows of the ranges together: one snapshot of the
// provider, one wait, one read of the subscriber and one of the provider again.
func (c *Comparer) settleRanges(ctx context.Context, t Table, ranges [][2][]string) ([]rowDiff, int64, error) {
	diffs, unstable, err := c.settleRows(ctx, t, func(provider bool) []query {
		qs := make([]query, len(ranges))
		for i, r := range ranges {
			qs[i].sql, qs[i].args = t.leafSQL(r[0], r[1], provider)
		}
		return qs
	})
	if err != nil || t.intKey() {
		return diffs, unstable, err
	}
	// Keys that are not one integer column may sort differently on the two
	// servers (another collation, or the same one from another glibc or
	// ICU): a row can then sit in this range on one side only. Rows missing
	// or extra here are looked up by key on both sides before being believed.
	var keys [][]string
	kept := diffs[:0]
	for _, d := range diffs {
		if d.Kind == Different {
			kept = append(kept, d)
		} else {
			keys = append(keys, d.vals)
		}
	}
	if len(keys) == 0 {
		return diffs, unstable, nil
	}
	byKey, u, err := c.settleRows(ctx, t, t.byKeys(keys))
	return append(kept, byKey...), unstable + u, err
}

// query is one statement and its arguments.
type query struct {
	sql  string
	args []any
}

// byKeys selects, on either server, the rows with the given keys (keysSQL).
func (t Table) byKeys(keys [][]string) func(provider bool) []query {
	return func(provider bool) []query {
		sql, args := t.keysSQL(keys, provider)
		return []query{{sql, args}}
	}
}

// settleRows does the settling for the rows the queries select on each
// side, each query's rows apart (its differences in its order); a query
// whose rows kept changing is read again, up to Retries times in all.
func (c *Comparer) settleRows(ctx context.Context, t Table, queries func(provider bool) []query) ([]rowDiff, int64, error) {
	pq, sq := queries(true), queries(false)
	found := make([][]rowDiff, len(pq))
	unstable := make([]int64, len(pq))
	todo := make([]int, len(pq))
	for i := range todo {
		todo[i] = i
	}
	pick := func(qs []query) []query {
		out := make([]query, len(todo))
		for j, i := range todo {
			out[j] = qs[i]
		}
		return out
	}
	for range c.Opt.Retries {
		p1, at, err := c.providerLeafAt(ctx, t, pick(pq))
		if err != nil {
			return nil, 0, err
		}
		s, err := c.subscriberLeaves(ctx, t, pick(sq), at)
		if err != nil {
			return nil, 0, err
		}
		p2, err := c.leaves(ctx, c.Provider, t, pick(pq))
		if err != nil {
			return nil, 0, err
		}
		var again []int
		for j, i := range todo {
			stable := stableRows(p1[j], p2[j])
			found[i], unstable[i] = nil, 0
			for _, d := range diffLeaves(p1[j], s[j]) {
				if stable(d.Key) {
					found[i] = append(found[i], d)
				} else {
					unstable[i]++
				}
			}
			if unstable[i] > 0 {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			break
		}
		todo = again
	}
	var diffs []rowDiff
	var moving int64
	for i := range found {
		diffs = append(diffs, found[i]...)
		moving += unstable[i]
	}
	return diffs, moving, nil
}

// stableRows reports, for a key, whether its provider row was the same in
// both reads: present with the same values in both, or absent from both.
func stableRows(p1, p2 []leafRow) func(key string) bool {
	h1 := make(map[string]int64, len(p1))
	for _, r := range p1 {
		h1[r.key] = r.hash
	}
	h2 := make(map[string]int64, len(p2))
	for _, r := range p2 {
		h2[r.key] = r.hash
	}
	return func(key string) bool {
		a, inA := h1[key]
		b, inB := h2[key]
		return inA == inB && a == b
	}
}

// positions are what the provider said of its WAL in providerLeafAt's
// batch: the insert position when its snapshot was taken (lsn), and once
// the rows were read its flush position and how far the subscription's
// slot had confirmed ("" when it has no slot there).
type positions struct {
	lsn, flushed, confirmed string
}

// positionsSQL reads the provider's flush position and how far the slot
// named $1 confirmed ("" without it).
const positionsSQL = "SELECT pg_current_wal_flush_lsn()::text, coalesce((SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1), '')"

// providerLeafAt reads the queries' rows in a repeatable-read snapshot of
// the provider, and the positions of its WAL (providerAt).
func (c *Comparer) providerLeafAt(ctx context.Context, t Table, qs []query) ([][]leafRow, positions, error) {
	rows := make([][]leafRow, len(qs))
	at, err := c.providerAt(ctx, func(b *pgx.Batch) { queueLeaves(b, t, qs, rows) })
	if err != nil {
		return nil, positions{}, err
	}
	return rows, at, nil
}

// providerAt runs the statements queue queues in a repeatable-read snapshot
// of the provider, with the WAL position after it: every change the
// snapshot saw is at or before it. The transaction is one batch: one round
// trip.
func (c *Comparer) providerAt(ctx context.Context, queue func(*pgx.Batch)) (positions, error) {
	var at positions
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	// The insert position, not pg_current_wal_lsn (the write position): with
	// synchronous_commit = off a transaction is visible before its commit
	// record is written, and waiting for the write position would let the
	// subscriber be read before it applied a change the snapshot saw. Read
	// first: that statement takes the snapshot, so every commit it sees ends
	// at or before the position; read after the rows, it would also count
	// the WAL those reads write (pruning the pages they visit), past the
	// last commit, where a quiet provider's origin never goes.
	b.Queue("SELECT pg_current_wal_insert_lsn()::text").QueryRow(func(r pgx.Row) error { return r.Scan(&at.lsn) })
	queue(b)
	// Read after the rows, so usually past lsn already: on a quiet
	// provider the slot has then confirmed it (pglogical confirms the
	// walsender's keepalives), and no wait is needed at all.
	b.Queue(positionsSQL, c.Opt.Slot).QueryRow(func(r pgx.Row) error { return r.Scan(&at.flushed, &at.confirmed) })
	if c.Opt.Slot != "" && !c.noFlush {
		// A transaction id, so that COMMIT writes a commit record past
		// lsn (as flush does): the WAL writer, woken by it, flushes lsn
		// within milliseconds on a quiet provider, and the commit, an empty
		// transaction, reaches the subscriber soon after, whose slot then
		// confirms it.
		b.Queue("SELECT txid_current()")
	}
	b.Queue("COMMIT")
	if err := c.Provider.SendBatch(ctx, b).Close(); err != nil {
		// A failed batch leaves the transaction aborted: end it.
		c.Provider.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return positions{}, err
	}
	return at, nil
}

// subscriberLeaves reads the queries' rows on the subscriber once it
// applied every commit the provider had at at.lsn (subscriberAfter).
func (c *Comparer) subscriberLeaves(ctx context.Context, t Table, qs []query, at positions) ([][]leafRow, error) {
	rows := make([][]leafRow, len(qs))
	err := c.subscriberAfter(ctx, at, true, func(b *pgx.Batch) { queueLeaves(b, t, qs, rows) })
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// subscriberAfter runs the statements queue queues on the subscriber once
// it applied every commit the provider had at its insert position at.lsn,
// with as few round trips as the positions allow: none to wait when the
// slot had confirmed it already. Otherwise, when the statements are cheap
// enough to run for nothing (cheap), the subscriber is asked whether it
// applied the position in the round trip that runs them (appliedFirst),
// which a subscriber keeping up with a provider's writes usually has by
// then. Only when it had not does it look at the provider again (a quiet
// one's slot has confirmed providerAt's empty transaction by then), wait if
// need be, and run them again.
func (c *Comparer) subscriberAfter(ctx context.Context, at positions, cheap bool, queue func(*pgx.Batch)) error {
	run := func() error {
		b := &pgx.Batch{}
		queue(b)
		return c.Subscriber.SendBatch(ctx, b).Close()
	}
	if c.Opt.Slot == "" || lsnCovers(at.confirmed, at.lsn) {
		return run()
	}
	if cheap && !c.noOrigin && !c.noWorker && !c.noEarly {
		applied, err := c.appliedFirst(ctx, at.lsn, queue)
		switch {
		case err == nil && applied:
			return nil
		case err != nil && ctx.Err() != nil:
			return err
		case err != nil:
			// A role that may not read the origin or the apply worker:
			// the wait finds out which.
			c.noEarly = true
		}
	}
	// A second look at the provider: on a quiet one the slot confirms
	// the empty transaction within milliseconds, origin or not (pglogical
	// moves no origin for a transaction that changed nothing).
	if err := c.Provider.QueryRow(ctx, positionsSQL, c.Opt.Slot).Scan(&at.flushed, &at.confirmed); err != nil {
		return fmt.Errorf("read the provider's WAL flush position: %w", err)
	}
	wait := c.waitApplied
	switch {
	case lsnCovers(at.confirmed, at.lsn):
		wait = nil
	case lsnCovers(at.flushed, at.lsn):
		wait = c.waitFor // flushed: no need to look again
	}
	if wait != nil {
		if err := wait(ctx, at.lsn); err != nil {
			return err
		}
	}
	return run()
}

// lsnCovers reports whether WAL position a is at or past b (false when
// either is empty or not a position).
func lsnCovers(a, b string) bool {
	x, err1 := probe.ParseLSN(a)
	y, err2 := probe.ParseLSN(b)
	return a != "" && b != "" && err1 == nil && err2 == nil && x >= y
}

// appliedFirst reads, in one round trip, whether the subscriber applied
// every commit before target (as originApplied decides: its origin past
// it, or at it with the apply worker holding no transaction id), then runs
// the statements queue queues. What they read counts only when it had:
// each statement of the batch sees what committed before it began.
func (c *Comparer) appliedFirst(ctx context.Context, target string, queue func(*pgx.Batch)) (bool, error) {
	var past, reached *bool
	var idle bool
	b := &pgx.Batch{}
	b.Queue(originSQL, c.Opt.Slot, target).QueryRow(func(r pgx.Row) error { return r.Scan(&past, &reached) })
	b.Queue(workerIdleSQL, c.Opt.Slot).QueryRow(func(r pgx.Row) error { return r.Scan(&idle) })
	queue(b)
	if err := c.Subscriber.SendBatch(ctx, b).Close(); err != nil {
		return false, err
	}
	return (past != nil && *past) || (reached != nil && *reached && idle), nil
}

// waitApplied waits until the subscription's slot confirms every
// transaction the provider had committed when its insert position was lsn.
func (c *Comparer) waitApplied(ctx context.Context, lsn string) error {
	if c.Opt.Slot == "" {
		return nil
	}
	target, err := c.flushedTarget(ctx, lsn)
	if err != nil {
		return fmt.Errorf("read the provider's WAL flush position: %w", err)
	}
	return c.waitFor(ctx, target)
}

// waitFor waits until the subscriber applied every commit before target, a
// flushed position of the provider (waitApplied).
func (c *Comparer) waitFor(ctx context.Context, target string) error {
	if c.appliedSoon(ctx, target) {
		return nil
	}
	if d, st := c.Opt.ApplyDelay, c.Opt.StatementTimeout; d > 0 && st > 0 {
		// A delayed subscription confirms a change apply_delay after its
		// commit at the earliest: this one statement may take that long.
		if _, err := c.Provider.Exec(ctx, fmt.Sprintf("SET statement_timeout = %d", (d+st).Milliseconds())); err != nil {
			return err
		}
		defer c.Provider.Exec(context.WithoutCancel(ctx), fmt.Sprintf("SET statement_timeout = %d", st.Milliseconds()))
	}
	// A wait that times out is not a range too wide to read: narrowing
	// would not shorten it. While the slot streams the subscriber is only
	// slow, and it gets a second wait; then the error ends the table (it
	// wraps no server error, so no caller narrows the range for it).
	for attempt := 1; ; attempt++ {
		_, err := c.Provider.Exec(ctx, "SELECT pglogical.wait_slot_confirm_lsn($1, $2::pg_lsn)", c.Opt.Slot, target)
		if err == nil {
			return nil
		}
		if !c.timedOut(ctx, err) {
			return fmt.Errorf("wait for the subscriber to apply up to %s: %w", target, err)
		}
		var active *bool
		if c.Provider.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", c.Opt.Slot).Scan(&active) != nil || active == nil {
			return fmt.Errorf("wait for the subscriber to apply up to %s: slot %s is not on the provider (pglmon status)", target, c.Opt.Slot)
		}
		if !*active {
			return fmt.Errorf("wait for the subscriber to apply up to %s: nothing streams from slot %s on the provider, so a difference cannot be told from a change still on its way (pglmon status says why the subscription does not stream)", target, c.Opt.Slot)
		}
		if attempt == 2 {
			return fmt.Errorf("wait for the subscriber to apply up to %s: slot %s streams but did not confirm it within two statement timeouts (verify.statement_timeout); the subscriber lags (pglmon status)", target, c.Opt.Slot)
		}
	}
}

// appliedSoon polls, for up to a second, whether the subscriber applied
// every transaction committed before target: the subscription's origin on
// the subscriber (named as its slot) has applied a commit after it (commits
// apply in order; strictly after, as the origin moves just before the
// commit it records turns visible), or has reached it and the apply worker
// then held no transaction id (so that commit is visible: a quiet
// provider's last commit ends at target, and nothing commits after it), or the slot
// confirms it. pglogical's wait_slot_confirm_lsn looks once a second: under
// writes every range that differs for a moment waited a second for it
// (measured: 1.0 s a wait, where the origin passes the position within
// milliseconds); on a quiet provider the slot confirmed the last commit
// only after more than a second. A delayed subscription applies target
// later: after the second, the wait is pglogical's.
func (c *Comparer) appliedSoon(ctx context.Context, target string) bool {
	deadline := time.Now().Add(time.Second)
	for {
		if c.originApplied(ctx, target) {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var slot *bool
		if err := c.Provider.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1", c.Opt.Slot, target).Scan(&slot); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return false // the wait says why
		}
		if slot != nil && *slot {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond): // polling both positions, bounded by the deadline
		}
	}
}

// originApplied reports whether the subscription's origin on the
// subscriber shows every commit before target applied and visible: a commit
// after it applied, or target reached and the apply worker holding no
// transaction id since.
func (c *Comparer) originApplied(ctx context.Context, target string) bool {
	if c.noOrigin {
		return false
	}
	var past, reached *bool
	err := c.Subscriber.QueryRow(ctx, originSQL, c.Opt.Slot, target).Scan(&past, &reached)
	if err != nil {
		if ctx.Err() == nil {
			c.noOrigin = true // not readable by this role: the slot alone
		}
		return false
	}
	return (past != nil && *past) || (reached != nil && *reached && c.workerIdle(ctx))
}

// originSQL reads whether the origin named $1 (the subscription's slot)
// applied a commit past position $2, and whether it reached $2.
const originSQL = "SELECT max(remote_lsn) > $2::pg_lsn, max(remote_lsn) >= $2::pg_lsn FROM pg_replication_origin_status WHERE external_id = $1"

// workerIdleSQL reads whether the apply worker of the subscription whose
// slot is $1 runs holding no transaction id.
const workerIdleSQL = `SELECT count(*) = 1 AND bool_and(a.backend_xid IS NULL)
FROM pg_stat_activity a JOIN pglogical.subscription s
  ON a.backend_type = 'pglogical apply ' || (SELECT oid FROM pg_database WHERE datname = current_database()) || ':' || s.sub_id
WHERE s.sub_slot_name = $1 AND a.state IS NOT NULL`

// workerIdle reports whether the subscription's apply worker holds no
// transaction id now. Read after its origin reached a position, that says
// the commit which moved it there has turned visible (the id is cleared
// then; a later transaction that wrote nothing yet has none). False when
// the worker is not running or this role cannot see its session
// (pg_read_all_stats); a role that cannot read these catalogs is not asked
// again.
func (c *Comparer) workerIdle(ctx context.Context) bool {
	if c.noWorker {
		return false
	}
	var idle bool
	err := c.Subscriber.QueryRow(ctx, workerIdleSQL, c.Opt.Slot).Scan(&idle)
	if err != nil {
		if ctx.Err() == nil {
			c.noWorker = true
		}
		return false
	}
	return idle
}

// flushedTarget is the position to wait for instead of the insert position
// lsn. The walsender only decodes flushed WAL, and a quiet server may leave
// WAL that holds no commit (a background running-transactions record)
// unflushed for as long as nothing else is written: waiting for lsn itself
// then lasts until the next checkpoint, or forever. Every commit record
// before lsn is flushed within three wal_writer_delay (asynchronous commits
// included), so after that long the flush position covers them all.
func (c *Comparer) flushedTarget(ctx context.Context, lsn string) (string, error) {
	if lsn == c.graced[0] {
		// Nothing written since the last wait: its target still holds.
		return c.graced[1], nil
	}
	var deadline time.Time
	for flushed := false; ; {
		var reached bool
		var flush string
		var secs float64 // wal_writer_delay, read with the first look: no round trip of its own
		if err := c.Provider.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn, pg_current_wal_flush_lsn()::text, extract(epoch FROM current_setting('wal_writer_delay')::interval)::float8", lsn).Scan(&reached, &flush, &secs); err != nil {
			return "", err
		}
		if reached {
			return lsn, nil
		}
		if c.walWriterGrace == 0 {
			c.walWriterGrace = 3*time.Duration(secs*float64(time.Second)) + 200*time.Millisecond
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(c.walWriterGrace)
		}
		if !flushed {
			// Once: the flush position then reaches lsn within
			// wal_writer_delay, which the loop polls for.
			flushed = true
			c.flush(ctx)
		}
		if time.Now().After(deadline) {
			c.graced = [2]string{lsn, flush}
			return flush, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond): // polling the flush position, bounded by the deadline
		}
	}
}

// flush commits, on the provider, a transaction that holds a transaction
// id and writes nothing else. Its commit record is an asynchronous one (the
// transaction wrote no WAL of its own), which the WAL writer flushes within
// wal_writer_delay, and with it the WAL before, lsn included: without it,
// WAL holding no commit (pruning by the reads of a verification, a
// background running-transactions record) stays unflushed on a quiet
// provider, and flushedTarget waits out its whole grace (measured with
// shared_buffers = 256MB: a one-differing-row run over 1,000,000 rows took
// 1.0 s, 0.37 s with it). It takes no lock but its own transaction id's,
// and works in the read-only transactions of pglmon's sessions. A provider
// that refuses it (a standby) is not asked again.
func (c *Comparer) flush(ctx context.Context) {
	if c.noFlush {
		return
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SELECT txid_current()")
	b.Queue("COMMIT")
	if err := c.Provider.SendBatch(ctx, b).Close(); err != nil {
		c.Provider.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		if ctx.Err() == nil {
			c.noFlush = true
		}
	}
}

func (c *Comparer) count(ctx context.Context, t Table, r *TableResult) error {
	where, args := t.where(nil, nil, true)
	for range c.Opt.Retries {
		// The count and the position in one round trip (providerAt), the
		// subscriber's count once it applied that position: never run
		// before on the chance it had (a count reads the whole table).
		var p1, sn int64
		at, err := c.providerAt(ctx, func(b *pgx.Batch) {
			b.Queue("SELECT count(*) FROM "+t.ident()+where, args...).QueryRow(func(r pgx.Row) error { return r.Scan(&p1) })
		})
		if err != nil {
			return fmt.Errorf("count %s on the provider: %w", t.QualifiedName(), err)
		}
		err = c.subscriberAfter(ctx, at, false, func(b *pgx.Batch) {
			b.Queue("SELECT count(*) FROM " + t.ident()).QueryRow(func(r pgx.Row) error {
				if err := r.Scan(&sn); err != nil {
					return fmt.Errorf("count %s on the subscriber: %w", t.QualifiedName(), err)
				}
				return nil
			})
		})
		if err != nil {
			return err // the wait's own error, or the count's
		}
		var p2 int64
		if err := c.Provider.QueryRow(ctx, "SELECT count(*) FROM "+t.ident()+where, args...).Scan(&p2); err != nil {
			return fmt.Errorf("count %s on the provider: %w", t.QualifiedName(), err)
		}
		r.ProviderRows, r.SubscriberRows = p2, sn
		r.RowsCompared = max(p2, sn)
		// The subscriber applied at least P1 and at most what the provider
		// had when P2 was read: a count between them proves nothing wrong.
		lo, hi := min(p1, p2), max(p1, p2)
		switch {
		case sn >= lo && sn <= hi:
			r.DifferingRows = 0
			if p1 != p2 {
				r.ProviderRows = sn
			}
		case sn < lo:
			r.DifferingRows = lo - sn
		default:
			r.DifferingRows = sn - hi
		}
		kind := Missing
		if sn > hi {
			kind = Extra
		}
		if r.DifferingRows > 0 && t.expects(kind) {
			// Fewer rows without INSERT replicated, more without DELETE or
			// with other providers feeding the table.
			r.ExpectedRows, r.DifferingRows = r.DifferingRows, 0
		}
		c.tick(ctx, p2)
		if r.DifferingRows == 0 {
			return nil
		}
	}
	return nil
}

func (c *Comparer) addDiffs(r *TableResult, diffs []rowDiff) {
	for _, d := range diffs {
		if c.reported != nil {
			// Ranges cut by one server's order can overlap in the other's:
			// a row is counted once.
			if c.reported[d.Key] {
				continue
			}
			if len(c.reported) < maxReported {
				c.reported[d.Key] = true
			}
		}
		if c.current.expects(d.Kind) {
			r.ExpectedRows++
			continue
		}
		r.DifferingRows++
		size := len(d.Key)
		for _, v := range d.vals {
			size += len(v)
		}
		if len(r.Keys) < c.Opt.MaxKeys && c.kept+size <= maxKeptBytes {
			r.Keys = append(r.Keys, d.KeyDiff)
			r.KeyValues = append(r.KeyValues, d.vals)
			c.kept += size
		}
	}
}

// maxDepth bounds the recursion of compareRange: 16-way splits reach one
// row of 2^64 in 16 steps, halving in 64.
const maxDepth = 80

// maxKeptBytes bounds the keys and values a table's result holds (a table
// without key holds its rows' text), whatever MaxKeys says.
const maxKeptBytes = 64 << 20

// maxReported bounds the differing keys remembered per table to count each once.
const maxReported = 1 << 20

// tick counts rows, reports progress and paces to MaxRowsPerSecond (over
// all the comparers of the run).
func (c *Comparer) tick(ctx context.Context, rows int64) { c.account(ctx, rows, 0) }

// reread paces rows read again (not checked again): the rate limit counts
// them, the progress does not.
func (c *Comparer) reread(ctx context.Context, rows int64) { c.account(ctx, 0, rows) }

// uncount moves rows counted as checked to the rows read again: they are
// to be checked another way.
func (c *Comparer) uncount(rows int64) {
	p := c.run
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows -= rows
	p.reread += rows
}

// account counts rows checked and rows read again, and paces both.
func (c *Comparer) account(ctx context.Context, rows, reread int64) {
	p := c.run
	p.mu.Lock()
	p.rows += rows
	p.reread += reread
	p.progress.RowsChecked = p.rows
	p.progress.Elapsed = time.Since(p.start)
	if p.report != nil {
		p.report(p.progress)
	}
	var wait time.Duration
	if p.limit > 0 {
		due := time.Duration(float64(p.rows+p.reread) / float64(p.limit) * float64(time.Second))
		wait = due - time.Since(p.start)
	}
	p.mu.Unlock()
	if wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(wait): // pacing to the rate limit
		}
	}
}

// ErrNoTables is returned when a subscription replicates no table.
var ErrNoTables = errors.New("no tables to compare")

// growth is the factor to size the next range by, from the rows and the
// duration of the last one: towards chunk_rows rows, at most fourfold at
// once, and no longer than a tenth of the statement timeout whatever the
// rows' width.
func (c *Comparer) growth(n int64, took time.Duration) float64 {
	f := 2.0
	if n > 0 {
		f = min(max(float64(c.Opt.ChunkRows)/float64(n), 0.25), 4)
	}
	if aim := c.Opt.StatementTimeout / 10; aim > 0 {
		f = min(f, max(float64(aim)/float64(max(took, time.Millisecond)), 0.25))
	}
	return f
}

// bothSides runs the provider's and the subscriber's part at the same time.
func bothSides(provider, subscriber func() error) error {
	var perr error
	var wg sync.WaitGroup
	wg.Go(func() { perr = provider() })
	serr := subscriber()
	wg.Wait()
	return errors.Join(perr, serr)
}

// minFanout and maxFanout bound how many sub-ranges a differing range of a
// single-column key is split into per step (fanout): one or two round
// trips per step (the cut keys unless the key is an integer, then every
// sub-range's aggregate on both servers at once) instead of three per
// halving, so a far-away server costs few round trips.
const minFanout, maxFanout = 16, 64

// fanout is how many sub-ranges a differing range of n rows is split into:
// as few steps as can reach ranges of leaf_rows (one step up to 64 x
// leaf_rows rows, two up to 4,096 x: the square root of the ratio), each
// statement reading about as many rows as with fewer, wider steps: with
// the default 256 leaf rows, a differing range of 100,000 rows takes two
// steps of 20 where 16 took three.
func (c *Comparer) fanout(n int64) int64 {
	ratio := (n + int64(c.Opt.LeafRows) - 1) / int64(c.Opt.LeafRows)
	if ratio > maxFanout {
		ratio = int64(math.Ceil(math.Sqrt(float64(ratio))))
	}
	return min(max(ratio, minFanout), maxFanout)
}

// splitRange splits [lo, hi) into up to fanout(n) sub-ranges of about
// equal size on conn's side, and compares those that differ.
func (c *Comparer) splitRange(ctx context.Context, conn *pgx.Conn, provider bool, t Table, lo, hi []string, n int64) ([]rowDiff, int64, error) {
	parts := c.fanout(n)
	bounds := valueCuts(t, lo, hi, parts)
	if bounds == nil {
		var err error
		if bounds, err = c.boundaries(ctx, conn, t, lo, hi, (n+parts-1)/parts, provider); err != nil {
			return nil, 0, err
		}
	}
	if len(bounds) == 0 {
		d, u, err := c.settle(ctx, t, lo, hi, n)
		c.unsettled += u
		return d, n, err
	}
	var pa, sa []agg
	err := bothSides(
		func() (err error) { pa, err = c.bucketAggregates(ctx, c.Provider, t, lo, hi, bounds, true); return err },
		func() (err error) {
			sa, err = c.bucketAggregates(ctx, c.Subscriber, t, lo, hi, bounds, false)
			return err
		})
	if err != nil {
		return nil, 0, err
	}
	var out []rowDiff
	for i := range len(bounds) + 1 {
		if pa[i] == sa[i] {
			continue
		}
		blo, bhi := lo, hi
		if i > 0 {
			blo = []string{bounds[i-1]}
		}
		if i < len(bounds) {
			bhi = []string{bounds[i]}
		}
		var d []rowDiff
		var err error
		if max(pa[i].count, sa[i].count) >= n {
			// Not narrower (the other server sorts these keys differently):
			// compare its rows.
			var u int64
			d, u, err = c.settle(ctx, t, blo, bhi, max(pa[i].count, sa[i].count))
			c.unsettled += u
		} else {
			d, _, err = c.compareRange(ctx, t, blo, bhi, &[2]agg{pa[i], sa[i]})
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d...)
	}
	return out, n, nil
}

// boundaries returns every step-th key of [lo, hi) after the first, in key
// order: the lower bounds of all sub-ranges but the first.
func (c *Comparer) boundaries(ctx context.Context, conn *pgx.Conn, t Table, lo, hi []string, step int64, provider bool) ([]string, error) {
	where, args := t.where(lo, hi, provider)
	args = append(args, step)
	k := t.keyList()
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT pglmon_k FROM (SELECT %s::text AS pglmon_k, %s AS pglmon_key, row_number() OVER (ORDER BY %s) AS pglmon_rn FROM %s%s) s
		WHERE pglmon_rn > 1 AND (pglmon_rn - 1) %% $%d = 0 ORDER BY pglmon_key`, k, k, k, t.ident(), where, len(args)), args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// bucketAggregates returns the count and hash sum of each sub-range of
// [lo, hi) cut at bounds (len(bounds)+1 of them): one range statement each,
// sent together in one round trip. Each reads its rows through the key's
// index; no grouping, which costs as much per row as the hashing does.
func (c *Comparer) bucketAggregates(ctx context.Context, conn *pgx.Conn, t Table, lo, hi, bounds []string, provider bool) ([]agg, error) {
	out := make([]agg, len(bounds)+1)
	b := &pgx.Batch{}
	for i := range out {
		blo, bhi := lo, hi
		if i > 0 {
			blo = []string{bounds[i-1]}
		}
		if i < len(bounds) {
			bhi = []string{bounds[i]}
		}
		where, args := t.where(blo, bhi, provider)
		b.Queue(t.aggregateSQL()+where, args...).QueryRow(func(row pgx.Row) error {
			return row.Scan(&out[i].count, &out[i].sum)
		})
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// checksumByValue walks an integer key in ranges of key values, so both
// servers hash each range at once with no statement to find where a range
// ends. The width of the first range comes from the key at offset
// chunk_rows; each later width is adapted to the rows the last range held,
// keeping ranges near chunk_rows rows however dense the keys are. The first
// and last ranges are open, catching rows written below or above the span.
func (c *Comparer) checksumByValue(ctx context.Context, t Table, r *TableResult, prov relInfo) error {
	first, last, est := prov.lowest, prov.highest, prov.rows()
	if prov.version == 0 || t.RowFilter != "" || est <= 0 {
		// Not read already (usePages was not asked), or not what span
		// reads: the keys and rows a row filter passes, the planner's
		// guess for a table never counted.
		var err error
		if first, last, est, err = c.span(ctx, t); err != nil {
			return fmt.Errorf("find the first and last keys of %s: %w", t.QualifiedName(), err)
		}
	}
	if first == nil || last == nil {
		return c.oneRange(ctx, t, r, nil)
	}
	lo, _ := strconv.ParseInt(*first, 10, 64)
	hi, _ := strconv.ParseInt(*last, 10, 64)
	chunk := int64(c.Opt.ChunkRows)
	var width int64
	if est > 0 {
		// Half the width the planner's row estimate suggests: a wrong
		// estimate must not make the first statement long; the width then
		// adapts to the rows each range held.
		span := float64(hi) - float64(lo) + 1
		width = int64(min(span*float64(chunk)/est/2, float64(math.MaxInt64/4)))
	} else {
		// No statistics: the key at offset chunk_rows.
		sample, err := c.boundary(ctx, c.Provider, t, nil, nil, chunk, true)
		if err != nil {
			return fmt.Errorf("find the first range of %s: %w", t.QualifiedName(), err)
		}
		if sample == nil {
			return c.oneRange(ctx, t, r, nil)
		}
		next, _ := strconv.ParseInt(sample[0], 10, 64)
		width = next - lo
	}
	width = max(width, 1)
	var loKey []string // open below
	if from := r.ResumedFrom; from != nil {
		// Continue an interrupted comparison: the rows below from were compared.
		v, err := strconv.ParseInt(from[0], 10, 64)
		if err != nil {
			return fmt.Errorf("resume %s at %q: %w", t.QualifiedName(), from[0], err)
		}
		loKey, c.next, lo = from, from, max(lo, v)
	}
	next := lo + width
	if lo > math.MaxInt64-width {
		next = math.MaxInt64
	}
	// gapEnd is, after an empty range, the provider's next key, where the
	// current range's rows begin (math.MinInt64: no gap).
	gapEnd := int64(math.MinInt64)
	// tail: the current range is open above, begun past the provider's
	// last key (hi) or holding the whole table; openTail: one may still be
	// begun. A table the first range would hold whole is one open range:
	// no second statement for what lies past hi.
	tail, openTail := false, true
	if next > hi {
		next, tail = math.MaxInt64, true
	}
	for {
		var hiKey []string
		if next < math.MaxInt64-1 {
			hiKey = []string{strconv.FormatInt(next, 10)}
		}
		started := time.Now()
		diffs, n, err := c.compareRange(ctx, t, loKey, hiKey, nil)
		if err != nil {
			// A bounded range, or an open one begun past hi or holding
			// the whole table: more rows there than one statement reads (a
			// table appended to fast while the comparison ran, or larger
			// than its statistics say) are walked in ranges from then on,
			// ending as before hi was known. (Other open ranges hold no
			// provider rows: narrowing them would find none, for ever.)
			narrowable := hiKey != nil || tail
			if narrowable && width > 1 && c.timedOut(ctx, err) {
				tail, openTail = false, false
				// Rows too wide for chunk_rows of them in one statement:
				// the same start, a quarter of the width. After a gap the
				// width counts from the gap's end: counted from its start
				// the range would fall in the gap, whose jump would widen
				// it over the same rows again, for ever.
				width = max(width/4, 1)
				lower := lo
				if loKey != nil {
					lower, _ = strconv.ParseInt(loKey[0], 10, 64)
				}
				next = max(lower, gapEnd)
				if next > math.MaxInt64-width {
					next = math.MaxInt64
				} else {
					next += width
				}
				continue
			}
			return fmt.Errorf("compare %s: %w", t.QualifiedName(), err)
		}
		r.RowsCompared += n
		c.addDiffs(r, diffs)
		c.tick(ctx, n)
		if hiKey == nil {
			return nil
		}
		if n == 0 {
			// A gap in the keys, or the end: jump to the provider's next key,
			// or finish with one open range.
			more, err := c.boundary(ctx, c.Provider, t, hiKey, nil, 0, true)
			if err != nil {
				return err
			}
			loKey, c.next = hiKey, hiKey
			if more == nil {
				next = math.MaxInt64
				continue
			}
			k, _ := strconv.ParseInt(more[0], 10, 64)
			next, gapEnd = k, k
		} else {
			gapEnd = math.MinInt64
		}
		f := c.growth(n, time.Since(started))
		width = int64(min(max(float64(width)*f, 1), float64(math.MaxInt64/4)))
		loKey, c.next = hiKey, hiKey
		switch {
		case openTail && next > hi:
			tail = true
			// Past the provider's last key when the comparison began: one
			// open range holds what is left (rows inserted since, the
			// subscriber's beyond it), with no empty range and no look
			// for the next key first: two round trips less a table.
			next = math.MaxInt64
		case next > math.MaxInt64-width:
			next = math.MaxInt64
		default:
			next += width
		}
	}
}

// span returns the provider's first and last keys (nil without rows) and the
// planner's estimate of its rows (from the statistics scaled to the table's
// current size, or from its size alone when never analysed; 0 when
// unknown), in one round trip.
func (c *Comparer) span(ctx context.Context, t Table) (first, last *string, est float64, err error) {
	where, args := t.where(nil, nil, true)
	var plan plan
	b := &pgx.Batch{}
	for _, dir := range []struct {
		order string
		dst   **string
	}{{"", &first}, {" DESC", &last}} {
		b.Queue("SELECT "+t.keyTexts()[0]+" FROM "+t.ident()+where+" ORDER BY "+t.keyList()+dir.order+" LIMIT 1", args...).Query(func(rows pgx.Rows) error {
			k, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if len(k) > 0 {
				*dir.dst = &k[0]
			}
			return err
		})
	}
	b.Queue("EXPLAIN (FORMAT JSON) SELECT 1 FROM "+t.ident()+where, args...).QueryRow(func(row pgx.Row) error {
		if row.Scan(&plan) == nil {
			est = plan.rows()
		}
		return nil
	})
	err = c.Provider.SendBatch(ctx, b).Close()
	return first, last, est, err
}

// plan is the output of EXPLAIN (FORMAT JSON).
type plan []struct {
	Plan struct {
		Rows float64 `json:"Plan Rows"`
	} `json:"Plan"`
}

// rows is the planner's estimate of the rows the statement returns (0: none).
func (p plan) rows() float64 {
	if len(p) == 0 {
		return 0
	}
	return p[0].Plan.Rows
}

// oneRange compares the whole table as one open range (at most chunk_rows
// rows); known holds both sides' aggregates when they were read already.
func (c *Comparer) oneRange(ctx context.Context, t Table, r *TableResult, known *[2]agg) error {
	diffs, n, err := c.compareRange(ctx, t, nil, nil, known)
	if err != nil {
		return fmt.Errorf("compare %s: %w", t.QualifiedName(), err)
	}
	r.RowsCompared += n
	c.addDiffs(r, diffs)
	c.tick(ctx, n)
	return nil
}

// valueCuts cuts a closed range of an integer key into parts ranges of
// equal key width, with no statement; nil when the key is not an integer or
// the range is open or narrow.
func valueCuts(t Table, lo, hi []string, parts int64) []string {
	if lo == nil || hi == nil || !t.intKey() {
		return nil
	}
	a, err1 := strconv.ParseInt(lo[0], 10, 64)
	b, err2 := strconv.ParseInt(hi[0], 10, 64)
	if err1 != nil || err2 != nil || b <= a || (b-a)/parts < 1 || b-a < 0 {
		return nil
	}
	step := (b - a) / parts
	out := make([]string, 0, parts-1)
	for i := int64(1); i < parts; i++ {
		out = append(out, strconv.FormatInt(a+i*step, 10))
	}
	return out
}
