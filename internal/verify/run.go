package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/seqcompare"
)

// Target is a subscription to verify.
type Target struct {
	Subscription string `json:"subscription"`
	Subscriber   string `json:"subscriber"`
	Provider     string `json:"provider"`
	Slot         string `json:"slot"`
	Sets         []string
	// ApplyDelay is the subscription's apply_delay: the subscriber applies
	// a change that long after its commit at the earliest.
	ApplyDelay time.Duration `json:"-"`
}

// Result is the verification of one subscription.
type Result struct {
	Subscription string        `json:"subscription"`
	Subscriber   string        `json:"subscriber"`
	Provider     string        `json:"provider"`
	Mode         string        `json:"mode"`
	Equal        bool          `json:"equal"`
	Tables       []TableResult `json:"tables"`
	RowsChecked  int64         `json:"rows_checked"`
	// BytesFetched is what pglmon read from both servers.
	BytesFetched int64 `json:"bytes_fetched"`
	// RowsFetched counts the result rows pglmon received (aggregates, keys, row hashes).
	RowsFetched int64 `json:"rows_fetched"`
	// Excluded are the tables verify.exclude left out.
	Excluded []string `json:"excluded,omitempty"`
	// Sequences compares the subscription's sequences (whole-subscription
	// runs only). They do not make the result differ: see SeqBehind.
	Sequences     []SequenceResult `json:"sequences,omitempty"`
	SequenceError string           `json:"sequence_error,omitempty"`
	Duration      time.Duration    `json:"duration_ns"`
	Error         string           `json:"error,omitempty"`
	// NotReplicated says that none of the tables Run was limited to is in
	// the subscription's replication sets (Error says so too).
	NotReplicated bool `json:"-"`
	// NotReplicatedTables are the names Run was limited to that pick no
	// table of the subscription's replication sets.
	NotReplicatedTables []string `json:"not_replicated_tables,omitempty"`
	// Alike are, for each of NotReplicatedTables, the tables of the sets
	// it names but for case (sales.orders for Sales.Orders): see DidYouMean.
	Alike map[string][]string `json:"-"`
}

// DidYouMean is " (did you mean ...?)" naming the tables of results' sets
// that names pick but for case, or "".
func DidYouMean(names []string, results ...Result) string {
	var alike []string
	for _, r := range results {
		for _, n := range names {
			alike = append(alike, r.Alike[n]...)
		}
	}
	slices.Sort(alike)
	alike = slices.Compact(alike)
	if len(alike) == 0 {
		return ""
	}
	return " (did you mean " + strings.Join(alike, ", ") + "?)"
}

// alike are the tables name picks but for case.
func alike(name string, tables []Table) []string {
	if strings.ContainsAny(name, "*?[") {
		return nil
	}
	name = strings.ReplaceAll(name, `"`, "")
	var out []string
	for _, t := range tables {
		if strings.EqualFold(name, t.QualifiedName()) || strings.EqualFold(name, t.Name) {
			out = append(out, t.QualifiedName())
		}
	}
	return out
}

// NotReplicatedBy says that the tables names pick are not replicated by
// the subscriptions.
func NotReplicatedBy(names []string, subscriptions ...string) string {
	what := "table " + names[0] + " is"
	if len(names) > 1 {
		what = "tables " + strings.Join(names, ", ") + " are"
	}
	if len(subscriptions) == 1 {
		return what + " not replicated by " + subscriptions[0]
	}
	return what + " not replicated by any subscription (" + strings.Join(subscriptions, ", ") + ")"
}

// Targets picks the subscriptions to verify from probe snapshots: all, or
// the one named. A subscription's provider is the configured node whose
// pglogical node name matches. Subscriptions whose provider is not a
// reachable configured node are left out, each named in the error: the
// others are still returned.
func Targets(snaps []probe.Snapshot, name string) ([]Target, error) {
	byLocal := map[string]string{}
	for _, s := range snaps {
		if s.Up() && s.LocalNode != "" {
			byLocal[s.LocalNode] = s.Node
		}
	}
	var out []Target
	var errs []error
	for _, s := range snaps {
		for _, sub := range s.Subscriptions {
			if name != "" && sub.Name != name {
				continue
			}
			prov, ok := byLocal[sub.ProviderNode]
			if !ok {
				errs = append(errs, fmt.Errorf("subscription %s: its provider (pglogical node %q) is not a reachable configured node", sub.Name, sub.ProviderNode))
				continue
			}
			out = append(out, Target{Subscription: sub.Name, Subscriber: s.Node, Provider: prov, Slot: sub.SlotName, Sets: sub.ReplicationSets,
				ApplyDelay: time.Duration(sub.ApplyDelaySeconds * float64(time.Second))})
		}
	}
	if name != "" && len(out) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("subscription %q not found on any reachable subscriber", name)
	}
	return out, errors.Join(errs...)
}

// Counter counts what pglmon fetched over its connections: bytes read, and
// rows the servers returned (from each SELECT's command tag).
type Counter struct{ bytes, rows atomic.Int64 }

// Bytes is the total read.
func (c *Counter) Bytes() int64 { return c.bytes.Load() }

// Rows is the total of result rows received.
func (c *Counter) Rows() int64 { return c.rows.Load() }

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// rowTracer adds the rows of every SELECT, alone or in a batch, to n.
type rowTracer struct{ n *atomic.Int64 }

func (t rowTracer) add(tag pgconn.CommandTag) {
	if tag.Select() {
		t.n.Add(tag.RowsAffected())
	}
}

func (t rowTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (t rowTracer) TraceQueryEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	t.add(d.CommandTag)
}
func (t rowTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (t rowTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	t.add(d.CommandTag)
}
func (t rowTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// Connect opens a read-only connection to a node whose statements are
// bounded by timeout, counting the bytes and rows it reads. For checksum
// mode its session has enable_seqscan off from the start (see checksum).
func Connect(ctx context.Context, node config.Node, timeout time.Duration, counter *Counter, mode string) (*pgx.Conn, error) {
	cfg, err := probe.ConnConfig(node, timeout)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.RuntimeParams["application_name"] = "pglmon verify"
	// One backend per server: a range statement must not take parallel
	// workers from the application (on a busy server they also make it
	// slower), nor spend longer compiling (JIT) than reading.
	cfg.RuntimeParams["max_parallel_workers_per_gather"] = "0"
	cfg.RuntimeParams["jit"] = "off"
	if mode == ModeChecksum {
		// Set at the start: no round trip of its own.
		cfg.RuntimeParams["enable_seqscan"] = "off"
	}
	// Values hashed by their text must read the same on both servers,
	// whatever each one's defaults are.
	for k, v := range map[string]string{"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
		"extra_float_digits": "1", "bytea_output": "hex", "lc_monetary": "C"} {
		cfg.RuntimeParams[k] = v
	}
	cfg.ConnectTimeout = min(timeout, 10*time.Second)
	// One round trip per statement: parse, bind and execute sent together,
	// no separate prepare (a far-away server pays for every round trip).
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: &counter.bytes}, nil
	}
	cfg.Tracer = rowTracer{&counter.rows}
	return probe.Open(ctx, node, cfg)
}

// Run verifies one subscription; only, when set, limits it to the tables
// those names pick (see Table.Matches).
func Run(ctx context.Context, cfg *config.Config, tg Target, opt Options, only ...string) Result {
	start := time.Now()
	res := Result{Subscription: tg.Subscription, Subscriber: tg.Subscriber, Provider: tg.Provider, Mode: opt.Mode}
	if res.Mode == "" {
		res.Mode = ModeChecksum
	}
	fail := func(err error) Result {
		res.Error, res.Duration = err.Error(), time.Since(start)
		return res
	}
	pn, ok := cfg.Node(tg.Provider)
	if !ok {
		return fail(fmt.Errorf("node %s is not configured", tg.Provider))
	}
	sn, ok := cfg.Node(tg.Subscriber)
	if !ok {
		return fail(fmt.Errorf("node %s is not configured", tg.Subscriber))
	}
	timeout := cfg.Verify.StatementTimeout.D()
	var counter Counter
	// Both servers at once: over a slow link, connecting is several round trips.
	var pc, sc *pgx.Conn
	err := bothSides(
		func() (err error) { pc, err = Connect(ctx, pn, timeout, &counter, res.Mode); return err },
		func() (err error) { sc, err = Connect(ctx, sn, timeout, &counter, res.Mode); return err })
	for _, c := range []*pgx.Conn{pc, sc} {
		if c != nil {
			defer c.Close(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		return fail(err)
	}
	// The provider's tables (and, when every table is compared, its
	// sequences) and the subscriber's synchronization status at once: one
	// round trip, not three, over a slow link.
	only = slices.DeleteFunc(slices.Clone(only), func(name string) bool { return name == "" })
	var tables []Table
	var seqs *seqcompare.List
	var notReady map[string]string
	var notReadyErr error
	err = bothSides(
		func() error {
			b := &pgx.Batch{}
			set := queueSetTables(b, tg.Sets)
			if len(only) == 0 {
				seqs = seqcompare.Queue(b, tg.Sets)
			}
			err := pc.SendBatch(ctx, b).Close()
			if seqs != nil && seqs.Err() != nil && ctx.Err() == nil {
				// The tables were read (the sequences come after them):
				// a sequence error is reported with the sequences.
				err = nil
			}
			tables = *set
			return err
		},
		func() error { notReady, notReadyErr = syncNotReady(ctx, sc, tg.Subscription); return nil })
	if err != nil {
		return fail(err)
	}
	if len(only) > 0 {
		// A partitioned table's name picks its partitions: pglogical
		// replicates those, not the parent.
		parts := map[string]map[string]bool{}
		for _, name := range only {
			if strings.ContainsAny(name, "*?[") || slices.ContainsFunc(tables, func(t Table) bool { return t.Matches(name) }) {
				continue
			}
			leaves, err := partitionsOf(ctx, pc, name)
			if err != nil {
				return fail(fmt.Errorf("read the partitions of %s: %w", name, err))
			}
			parts[name] = leaves
		}
		picks := func(name string, t Table) bool { return t.Matches(name) || parts[name][t.QualifiedName()] }
		var keep []Table
		for _, t := range tables {
			if slices.ContainsFunc(only, func(name string) bool { return picks(name, t) }) {
				keep = append(keep, t)
			}
		}
		for _, name := range only {
			if !slices.ContainsFunc(keep, func(t Table) bool { return picks(name, t) }) {
				res.NotReplicatedTables = append(res.NotReplicatedTables, name)
				if a := alike(name, tables); a != nil {
					if res.Alike == nil {
						res.Alike = map[string][]string{}
					}
					res.Alike[name] = a
				}
			}
		}
		if len(keep) == 0 {
			res.NotReplicated = true
			return fail(errors.New(NotReplicatedBy(only, tg.Subscription) + DidYouMean(only, res)))
		}
		tables = keep
		// A resume key given for the table as it was named.
		for _, name := range only {
			from, ok := opt.Resume[name]
			if !ok {
				continue
			}
			resume := map[string][]string{}
			for _, t := range keep {
				if picks(name, t) {
					resume[t.QualifiedName()] = from
				}
			}
			opt.Resume = resume
		}
	}
	if len(only) == 0 && len(opt.Exclude) > 0 {
		var keep []Table
		for _, t := range tables {
			if Excluded(opt.Exclude, t.QualifiedName()) {
				res.Excluded = append(res.Excluded, t.QualifiedName())
			} else {
				keep = append(keep, t)
			}
		}
		tables = keep
	}
	if len(tables) == 0 {
		if len(res.Excluded) > 0 {
			// Every table excluded: nothing to compare, nothing differs.
			res.Equal, res.Duration = true, time.Since(start)
			return res
		}
		return fail(ErrNoTables)
	}
	if notReadyErr != nil {
		return fail(fmt.Errorf("read the synchronization status of %s: %w", tg.Subscription, notReadyErr))
	}
	if st, ok := notReady[""]; ok {
		return fail(fmt.Errorf("not compared: the initial synchronization of %s is not finished (sync status %s)", tg.Subscription, syncStatusName(st)))
	}
	for i := range tables {
		tables[i].SyncStatus = notReady[tables[i].QualifiedName()]
		tables[i].OtherSources = opt.OtherSources[tables[i].QualifiedName()]
	}
	opt.Slot = tg.Slot
	opt.ApplyDelay = tg.ApplyDelay
	opt.StatementTimeout = timeout
	indexOnly := res.Mode == ModeChecksum // Connect turned enable_seqscan off
	var rels *relInfos
	var ask []Table
	if res.Mode == ModeChecksum && opt.Scan != ScanIndex && len(tables) > 1 {
		// What each server says of every table (its layout, first and
		// last keys), in one round trip rather than one per table.
		for _, t := range tables {
			if t.SyncStatus == "" && !opt.Skip[t.QualifiedName()] {
				ask = append(ask, t)
			}
		}
		if len(ask) > 1 {
			rels = readRelInfos(ctx, pc, sc, ask)
		}
	}
	cs := []*Comparer{{Provider: pc, Subscriber: sc, Opt: opt, indexOnly: indexOnly, rels: rels}}
	// More pairs of connections for the tables compared at once.
	for i := 1; i < min(opt.Parallel, len(tables)) && ctx.Err() == nil; i++ {
		var p2, s2 *pgx.Conn
		err := bothSides(
			func() (err error) { p2, err = Connect(ctx, pn, timeout, &counter, res.Mode); return err },
			func() (err error) { s2, err = Connect(ctx, sn, timeout, &counter, res.Mode); return err })
		for _, c := range []*pgx.Conn{p2, s2} {
			if c != nil {
				defer c.Close(context.WithoutCancel(ctx))
			}
		}
		if err != nil {
			return fail(fmt.Errorf("open connection pair %d of %d (verify.parallel): %w", i+1, opt.Parallel, err))
		}
		cs = append(cs, &Comparer{Provider: p2, Subscriber: s2, Opt: opt, indexOnly: indexOnly, rels: rels})
	}
	if rels != nil && opt.Scan != ScanPages {
		// The small tables summed whole, many at a time.
		cs[0].defaults()
		rels.readWholeTables(ctx, pc, sc, ask, cs[0].Opt)
	}
	res.Tables = CompareAll(ctx, cs, tables)
	// The rows each table compared: the run's progress counts half of
	// both servers' rows read in page order, which falls short of them
	// where the subscriber lacks rows.
	for _, t := range res.Tables {
		res.RowsChecked += t.RowsCompared
	}
	res.BytesFetched = counter.Bytes()
	res.RowsFetched = counter.Rows()
	res.Duration = time.Since(start)
	res.Equal = len(res.Tables) == len(tables)
	for _, t := range res.Tables {
		if !t.Equal {
			res.Equal = false
		}
	}
	if ctx.Err() != nil {
		res.Error = "interrupted"
		return res
	}
	if seqs != nil {
		if res.Sequences, err = seqcompare.Compare(ctx, pc, sc, seqs); err != nil {
			res.SequenceError = err.Error()
		}
	}
	return res
}

// partitionsOf is, on the provider, the leaf partitions (schema.table) of
// the partitioned table name (schema.table, or table in the search path);
// none when name is not a partitioned table there.
func partitionsOf(ctx context.Context, conn *pgx.Conn, name string) (map[string]bool, error) {
	rows, err := conn.Query(ctx, `SELECT n.nspname::text || '.' || c.relname::text
FROM pg_partition_tree(to_regclass($1)) p
JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE p.isleaf AND p.level > 0`, regclassOfName(name))
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42883" {
		return nil, nil // PostgreSQL 11 and older: no pg_partition_tree
	}
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out, err
}

// regclassOfName is a table named as --table names one, as a regclass
// reads it: a name with double quotes is SQL already (Table.Matches).
func regclassOfName(name string) string {
	if strings.Contains(name, `"`) {
		return name
	}
	return pgident.RegclassOf(name)
}

// ConfigOptions are the comparison options verify's configuration sets.
func ConfigOptions(v config.Verify, mode string) Options {
	return Options{Mode: mode, ChunkRows: v.ChunkRows, MaxRowsPerSecond: v.MaxRowsPerSecond, MaxKeys: v.MaxKeys, Exclude: v.Exclude, Parallel: v.Parallel, Scan: v.Scan}
}

// Excluded reports whether table (schema.table) matches a verify.exclude pattern.
// A pattern with double quotes is a table name as SQL writes it
// ("Sales"."Audit Log"), matched exactly.
func Excluded(patterns []string, table string) bool {
	for _, p := range patterns {
		if strings.Contains(p, `"`) {
			if parts, err := pgident.Split(p); err == nil && len(parts) == 2 && parts[0]+"."+parts[1] == table {
				return true
			}
			continue
		}
		if ok, _ := path.Match(p, table); ok {
			return true
		}
	}
	return false
}

// syncNotReady reads, on the subscriber, the subscription's tables whose
// pglogical synchronization is not ready (schema.table -> status; "" for
// the subscription's own initial synchronization). Comparing them would
// report the rows a copy has not reached yet.
func syncNotReady(ctx context.Context, conn *pgx.Conn, sub string) (map[string]string, error) {
	rows, err := conn.Query(ctx, `SELECT coalesce(ls.sync_nspname::text || '.' || ls.sync_relname::text, ''), ls.sync_status::text
		FROM pglogical.local_sync_status ls JOIN pglogical.subscription s ON s.sub_id = ls.sync_subid
		WHERE s.sub_name = $1 AND ls.sync_status <> 'r'`, sub)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var table, status string
	_, err = pgx.ForEachRow(rows, []any{&table, &status}, func() error {
		out[table] = status
		return nil
	})
	return out, err
}

// syncStatusName spells out pglogical's one-letter sync status.
func syncStatusName(s string) string {
	names := map[string]string{"i": "init", "s": "structure", "d": "data copy", "c": "constraints",
		"w": "waiting for the apply worker", "u": "catching up", "y": "synchronized, apply catching up"}
	if n, ok := names[s]; ok {
		return fmt.Sprintf("%q, %s", s, n)
	}
	return fmt.Sprintf("%q", s)
}

// Sources finds the tables that several subscriptions of one subscriber
// replicate (pglogical's data gathering: one table fed by several
// providers), reading each provider's replication sets once. The result,
// by subscriber/subscription, names per table the other subscriptions:
// Options.OtherSources. Providers it cannot read are left out (verifying
// their subscriptions fails anyway).
func Sources(ctx context.Context, cfg *config.Config, targets []Target) map[string]map[string][]string {
	type key struct{ subscriber, table string }
	feeds := map[key][]string{} // subscriber and table -> subscriptions
	tablesOf := map[string][]string{}
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	var counter Counter
	for _, tg := range targets {
		conn, ok := conns[tg.Provider]
		if !ok {
			node, found := cfg.Node(tg.Provider)
			if !found {
				continue
			}
			c, err := Connect(ctx, node, cfg.Verify.StatementTimeout.D(), &counter, "")
			if err != nil {
				continue
			}
			conns[tg.Provider], conn = c, c
		}
		if conn == nil {
			continue
		}
		tables, err := SetTables(ctx, conn, tg.Sets)
		if err != nil {
			continue
		}
		id := tg.Subscriber + "/" + tg.Subscription
		for _, t := range tables {
			k := key{tg.Subscriber, t.QualifiedName()}
			feeds[k] = append(feeds[k], tg.Subscription)
			tablesOf[id] = append(tablesOf[id], t.QualifiedName())
		}
	}
	out := map[string]map[string][]string{}
	for _, tg := range targets {
		id := tg.Subscriber + "/" + tg.Subscription
		for _, table := range tablesOf[id] {
			var others []string
			for _, s := range feeds[key{tg.Subscriber, table}] {
				if s != tg.Subscription {
					others = append(others, s)
				}
			}
			if len(others) > 0 {
				if out[id] == nil {
					out[id] = map[string][]string{}
				}
				out[id][table] = others
			}
		}
	}
	return out
}
