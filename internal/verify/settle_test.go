package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// On a quiet provider the last commit ends at the insert position a settle
// waits for, and no commit follows it: the subscription's origin reaching
// that position, with the apply worker in no transaction, is enough (the
// slot confirmed it only after more than a second). While the apply worker
// is inside a transaction (here waiting for a row lock on the subscriber,
// having inserted a row),
// reaching it is not: that worker may not have made the commit visible.
func TestOriginReachedOnAQuietProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Own clusters: on the shared ones other tests' WAL follows this
	// test's commit, and the position after it is never reached.
	p, c := ownQuietPair(ctx, t)
	prov, sub := c.Provider, c.Subscriber

	// One commit, then the position after it. A record the server writes
	// by itself in between (a running-transactions snapshot, every 15 s)
	// puts the position past the commit: then another try.
	var target string
	applied := false
	for i := int64(1); i <= 3 && !applied; i++ {
		id := 100000 + i
		if _, err := prov.Exec(ctx, "INSERT INTO items_0 VALUES ($1, 'last', 1)", id); err != nil {
			t.Fatal(err)
		}
		if err := prov.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&target); err != nil {
			t.Fatal(err)
		}
		if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
			var n int
			return sub.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = $1", id).Scan(&n) == nil && n == 1
		}); err != nil {
			t.Fatalf("row %d never arrived: %v", id, err)
		}
		applied = c.originApplied(ctx, target)
	}
	if !applied {
		t.Errorf("origin at the provider's last commit %s, apply worker idle: not taken as applied (3 tries)", target)
	}

	// The apply worker inside a transaction: reaching target is not enough.
	lock, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(ctx)
	if _, err := lock.Exec(ctx, "BEGIN; SELECT * FROM items_0 WHERE id = 5 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	// An insert first: the worker has a transaction id when it waits.
	if _, err := prov.Exec(ctx, "BEGIN; INSERT INTO items_0 VALUES (100010, 'first', 1); UPDATE items_0 SET val = 'locked out' WHERE id = 5; COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var waiting bool
		return sub.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type LIKE 'pglogical apply %' AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL)").Scan(&waiting) == nil && waiting
	}); err != nil {
		t.Fatalf("the apply worker never waited for the lock: %v", err)
	}
	if c.originApplied(ctx, target) {
		t.Error("origin at target while the apply worker is in a transaction: taken as applied")
	}
	if _, err := lock.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	// Once that commit is applied, the origin is past target.
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return c.originApplied(ctx, target) }); err != nil {
		t.Errorf("origin past target: not taken as applied: %v", err)
	}
}

// The position a settle waits for is read before the provider's rows: every
// commit the snapshot sees ends at or before it, and the WAL the reads
// themselves write (pruning pages of dead rows) is not waited for (on a
// quiet provider nothing would commit past it, and the origin would not
// reach it).
func TestSettlePositionBeforeTheReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Own clusters: on the shared ones another test's open transaction can
	// hold the dead rows visible, so reading them prunes nothing and writes
	// no WAL (seen once in CI: "nothing tested").
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 5000, Own: true})
	p.MustConverge(t, 30*time.Second)
	prov, err := p.Provider.Cluster.Connect(ctx, p.Provider.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Close(ctx)
	// Dead rows on every page (no vacuum to remove them first).
	for _, sql := range []string{"ALTER TABLE items_0 SET (autovacuum_enabled = false)", "UPDATE items_0 SET n = n + 1", "UPDATE items_0 SET n = n + 1"} {
		if _, err := prov.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var before, after string
	if err := prov.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&before); err != nil {
		t.Fatal(err)
	}
	c := &Comparer{Provider: prov}
	tbl := Table{Key: []string{"id"}}
	_, at, err := c.providerLeafAt(ctx, tbl, []query{{"SELECT id::text, 0::bigint FROM items_0", nil}})
	if err != nil {
		t.Fatal(err)
	}
	var wrote, past bool
	if err := prov.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_insert_lsn() > $1::pg_lsn, $2::pg_lsn < pg_current_wal_insert_lsn()", before, at.lsn).Scan(&after, &wrote, &past); err != nil {
		t.Fatal(err)
	}
	if !wrote {
		t.Fatalf("reading the rows wrote no WAL (%s before, %s after): nothing tested", before, after)
	}
	if !past {
		t.Errorf("position %s is not before the WAL the reads wrote (%s before them, %s after)", at.lsn, before, after)
	}
}

// WAL without a commit after the position a settle waits for (the
// background writer's running-transactions record, pruning by the reads of
// a verification) stays unflushed on a quiet provider while its WAL writer
// hibernates, for seconds: the target is the position itself, flushed once
// flush's empty transaction woke the WAL writer, not the older flush
// position after the grace (the walk then read on from there).
func TestUnflushedWALIsFlushed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Own clusters: on the shared ones other tests' commits flush the WAL.
	// Synchronous commits, as servers run (the test clusters' asynchronous
	// ones keep the WAL writer busy).
	sync := pgtest.Options{ExtraConf: []string{"synchronous_commit = on"}}
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: pgtest.NewCluster(t, sync), Subscriber: pgtest.NewCluster(t, sync), Rows: 10})
	p.MustConverge(t, 30*time.Second)
	prov, err := p.Provider.Cluster.Connect(ctx, p.Provider.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Close(ctx)
	if _, err := prov.Exec(ctx, "SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	var lsn string
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		var tail bool
		return prov.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn(), pg_current_wal_insert_lsn()::text").Scan(&tail, &lsn) == nil && tail
	}); err != nil {
		t.Fatalf("the provider never left unflushed WAL: %v", err)
	}
	c := &Comparer{Provider: prov}
	target, err := c.flushedTarget(ctx, lsn)
	if err != nil || target != lsn {
		t.Errorf("flushedTarget(%s) = %s, %v: want the position itself, flushed", lsn, target, err)
	}
}

// A settle waits for nothing when the provider's batch says its slot had
// confirmed the position already (a quiet provider, once pglogical
// answered a keepalive). Otherwise, a subscriber that applied the position
// is asked so in the round trip that reads its rows (appliedFirst): the
// rows count; one that did not (a position the provider never reached) is
// not taken as applied. A role that may not read the origin or the apply
// worker gets its rows all the same, by the wait that polls the slot, and
// is not asked so again.
func TestSettleAsksAppliedWithTheRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, c := ownQuietPair(ctx, t)
	prov, sub, slot := c.Provider, c.Subscriber, c.Opt.Slot
	tbl := Table{Schema: "public", Name: "items_0", Key: []string{"id"}, KeyTypes: []string{"bigint"}, Columns: []string{"id", "val", "n"}}
	qs := func(provider bool) []query {
		sql, args := tbl.leafSQL([]string{"10"}, []string{"20"}, provider)
		return []query{{sql, args}}
	}
	appliedLeaves := func(target string) ([][]leafRow, bool, error) {
		rows := make([][]leafRow, 1)
		ok, err := c.appliedFirst(ctx, target, func(b *pgx.Batch) { queueLeaves(b, tbl, qs(false), rows) })
		return rows, ok, err
	}

	// A row written, then the position after it: once the row arrived,
	// the origin is at or past that position.
	if _, err := prov.Exec(ctx, "UPDATE items_0 SET val = 'moved' WHERE id = 15"); err != nil {
		t.Fatal(err)
	}
	_, at, err := c.providerLeafAt(ctx, tbl, qs(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var v string
		return sub.QueryRow(ctx, "SELECT val FROM items_0 WHERE id = 15").Scan(&v) == nil && v == "moved"
	}); err != nil {
		t.Fatal(err)
	}
	// The worker may still be between the commit and its idle state for a
	// moment: polled, with a deadline.
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rows, ok, err := appliedLeaves(at.lsn)
		if err != nil {
			t.Fatal(err)
		}
		return ok && len(rows) == 1 && len(rows[0]) == 10
	}); err != nil {
		t.Errorf("position %s applied and 10 rows: not taken as applied with its rows: %v", at.lsn, err)
	}
	// Nothing written since: once pglogical confirmed that commit (it does
	// after flushing its own), the batch says so (a record the server
	// writes by itself, every 15 s, may put the position past it: then
	// another try).
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		if _, at, err = c.providerLeafAt(ctx, tbl, qs(true)); err != nil {
			t.Fatal(err)
		}
		return lsnCovers(at.confirmed, at.lsn)
	}); err != nil {
		t.Errorf("quiet provider: the slot's confirmation of the position never read in the batch (%+v): %v", at, err)
	}
	if _, ok, err := appliedLeaves("FFFFFFFF/0"); err != nil || ok {
		t.Errorf("a position the provider never reached: applied %v, %v", ok, err)
	}

	// A role that may read the table but neither the origins nor pglogical's catalog.
	role := newRole(ctx, t, p.Subscriber, "norigin", "GRANT SELECT ON items_0")
	cfg, err := pgx.ParseConfig(strings.Replace(p.Subscriber.DSN(), "user=postgres", "user="+role, 1))
	if err != nil {
		t.Fatal(err)
	}
	limited, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer limited.Close(ctx)
	c = &Comparer{Provider: prov, Subscriber: limited, Opt: Options{Slot: slot}}
	if _, at, err = c.providerLeafAt(ctx, tbl, qs(true)); err != nil {
		t.Fatal(err)
	}
	// The early question is asked when the position was flushed and the
	// slot had not confirmed it: make it so.
	at.flushed, at.confirmed = at.lsn, ""
	rows, err := c.subscriberLeaves(ctx, tbl, qs(false), at)
	if err != nil || len(rows) != 1 || len(rows[0]) != 10 {
		t.Fatalf("limited role: rows %v, %v", rows, err)
	}
	if !c.noEarly {
		t.Error("limited role: asked with its rows again next time")
	}
}

// ownQuietPair is a pair of clusters of the test's own (on the shared ones
// other tests' WAL follows any commit of this one), converged, and a
// comparer over a connection to each side (closed when the test ends) that
// settles by the subscription's slot.
func ownQuietPair(ctx context.Context, t *testing.T) (*pgtest.Pair, *Comparer) {
	t.Helper()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 100})
	p.MustConverge(t, 30*time.Second)
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	c := &Comparer{Opt: Options{Slot: slot}}
	for _, side := range []struct {
		db   pgtest.DB
		conn **pgx.Conn
	}{{p.Provider, &c.Provider}, {p.Subscriber, &c.Subscriber}} {
		conn, err := side.db.Cluster.Connect(ctx, side.db.Name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		*side.conn = conn
	}
	return p, c
}

// Rows missing all over a table end a bisection in hundreds of small
// ranges: they are settled together, about chunk_rows rows a re-check, not
// a few dozen ranges each (every re-check commits an empty transaction on
// the provider, and each waited up to its wal_writer_delay for the one
// before). Counted by the transaction ids the run takes. The rows checked
// are the table's rows, though the subscriber holds half of them.
func TestDifferencesAllOverSettledTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 20000})
	p.MustConverge(t, 30*time.Second)
	if err := p.Subscriber.Exec(ctx, "DELETE FROM items_0 WHERE id % 2 = 0"); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	xid := func() int64 {
		var n int64
		if err := p.Provider.QueryRow(ctx, "SELECT txid_current()", []any{&n}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, scan := range []string{ScanIndex, ScanPages} {
		before := xid()
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 10000, LeafRows: 16, Scan: scan}, "public.items_0"))
		taken := xid() - before - 1
		tr := r.Tables[0]
		if tr.Scan != scan || tr.DifferingRows != 10000 || tr.RowsCompared != 20000 || r.RowsChecked != 20000 || tr.Error != "" {
			t.Errorf("scan %s: read by %s, %d differing, %d compared, %d checked, error %q; want 10000 differing of 20000", scan, tr.Scan, tr.DifferingRows, tr.RowsCompared, r.RowsChecked, tr.Error)
		}
		// Two or three re-checks of 10,000 rows, each a transaction id
		// and at most one more to flush the provider's WAL.
		if taken > 8 {
			t.Errorf("scan %s: %d transaction ids taken on the provider: settled in %d re-checks or more, want 2-4", scan, taken, taken/2)
		}
		t.Logf("scan %s: %d differing rows in %s, %d transaction ids", scan, tr.DifferingRows, r.Duration.Round(time.Millisecond), taken)
	}
}
