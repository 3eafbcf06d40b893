package verify

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// A table without a primary key (an insert-only set's) is compared by its
// rows' contents in checksum mode: a row deleted or changed on the
// subscriber is named by its text (a long one by its first 200 characters),
// one copy of a row held three times missing is named as that copy, rows
// the subscriber has more of are expected (the set replicates no DELETE);
// under a writer inserting rows on the provider nothing else is reported,
// and an equal table stays equal; rows missing all over a table are named
// for a part of it, the rest counted as left out.
func TestNoPrimaryKeyComparedByRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	onBoth(ctx, t, p,
		`CREATE TABLE events (at int, kind text, note text)`,
		`INSERT INTO events SELECT g, 'k' || g % 7, 'n' || g FROM generate_series(1, 20000) g`,
		`INSERT INTO events SELECT 5, 'dup', NULL FROM generate_series(1, 3)`,
		`INSERT INTO events VALUES (99998, 'long', repeat('x', 300))`,
		`CREATE TABLE events_same (at int, note text)`,
		`INSERT INTO events_same SELECT g, 'n' || g FROM generate_series(1, 20000) g`,
		`CREATE TABLE events_many (at int, note text)`,
		`INSERT INTO events_many SELECT g, 'n' || g FROM generate_series(1, 20000) g`,
		`ANALYZE events, events_same, events_many`)
	runSteps(ctx, t, []step{
		{p.Provider, "SELECT pglogical.create_replication_set('inserts', replicate_update := false, replicate_delete := false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('inserts', 'events', false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('inserts', 'events_many', false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('inserts', 'events_same', false)"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'inserts')"},
	})
	p.MustStream(t, 3*time.Minute)
	runSteps(ctx, t, []step{
		{p.Subscriber, "DELETE FROM events WHERE at = 17"},
		{p.Subscriber, "DELETE FROM events WHERE at = 99998"},
		{p.Subscriber, "DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE kind = 'dup' LIMIT 1)"},
		{p.Subscriber, "UPDATE events SET note = 'changed' WHERE at = 4242"},
		{p.Subscriber, "INSERT INTO events VALUES (99999, 'sub', 'only here')"},
		// A third of the rows: more than 4 x chunk_rows differ.
		{p.Subscriber, "DELETE FROM events_many WHERE at % 3 = 0"},
	})
	// A long row is named by its first 200 characters.
	long := ("(99998,long," + strings.Repeat("x", 300) + ")")[:200] + "..."
	want := sortedKeys([]KeyDiff{{"(17,k3,n17)", Missing}, {"(4242,k0,n4242)", Missing}, {"(5,dup,) #3", Missing}, {long, Missing}})
	cfg := testConfig(t, p)
	tg := targets(t, cfg, p.Sub())[0]
	check := func(label string, r Result) {
		t.Helper()
		tr := r.Tables[0]
		got := sortedKeys(tr.Keys)
		// The changed row's new text and the subscriber's own row are extra:
		// expected, the set replicating no DELETE.
		if tr.Mode != ModeChecksum || tr.Scan != ScanRows || !slices.Equal(got, want) || tr.DifferingRows != 4 || tr.ExpectedRows != 2 || tr.Equal {
			t.Errorf("%s: mode %s, read by %s, keys %v (%d differing, %d expected); want checksum, rows, %v (4, 2)", label, tr.Mode, tr.Scan, got, tr.DifferingRows, tr.ExpectedRows, want)
		}
		if tr.RowsCompared < 20004 {
			t.Errorf("%s: compared %d rows", label, tr.RowsCompared)
		}
	}
	r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 5000, LeafRows: 16}, "events"))
	check("events", r)
	if tr := r.Tables[0]; r.RowsFetched <= 0 || r.RowsFetched > tr.RowsCompared/4 {
		t.Errorf("events: %d rows fetched to compare %d", r.RowsFetched, tr.RowsCompared)
	}
	// --scan index has no key to read by: the same.
	check("events, scan index", oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 5000, LeafRows: 16, Scan: ScanIndex}, "events")))
	// Count mode counts.
	if tr := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeCount}, "events")).Tables[0]; tr.Mode != ModeCount || tr.ProviderRows != 20004 || tr.SubscriberRows != 20002 || tr.DifferingRows != 2 {
		t.Errorf("events, count mode: %+v", tr)
	}

	// 6,666 rows missing: the rows of the first differing buckets named,
	// the others' rows counted as left out.
	tr := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 1000, LeafRows: 16, MaxKeys: 10}, "events_many")).Tables[0]
	if tr.Equal || tr.DifferingRows < 100 || tr.DifferingRows >= 6666 || len(tr.Keys) != 10 || !strings.Contains(tr.Note, "were not compared row by row") {
		t.Errorf("events_many: %d differing, keys %v, note %q", tr.DifferingRows, tr.Keys, tr.Note)
	}
	for _, k := range tr.Keys {
		if k.Kind != Missing {
			t.Errorf("events_many: %v", k)
		}
	}

	// Under a writer inserting rows on the provider, still exactly the four.
	w, err := pgtest.StartStatements(p.Provider, 100000,
		"INSERT INTO events VALUES ($1::int, 'new', 'w')",
		"INSERT INTO events_same VALUES ($1::int, 'w')")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 3 {
		st := time.Now()
		r := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16}, "events"))
		t.Logf("under writes: %v, %d rows fetched, %d compared, %d unsettled", time.Since(st), r.RowsFetched, r.Tables[0].RowsCompared, r.Tables[0].Unsettled)
		check("under writes, run "+string(rune('1'+i)), r)
		if r.Tables[0].Unsettled != 0 {
			t.Errorf("under writes: %d rows unsettled", r.Tables[0].Unsettled)
		}
		// An equal table under the same writer: equal.
		same := oneTable(t, Run(ctx, cfg, tg, Options{Mode: ModeChecksum, ChunkRows: 2000, LeafRows: 16}, "events_same")).Tables[0]
		if !same.Equal || same.DifferingRows != 0 || same.Unsettled != 0 || same.Scan != ScanRows {
			t.Errorf("events_same under writes: %+v", same)
		}
	}
	writes, err := w.Stop()
	if err != nil || writes == 0 {
		t.Fatalf("the writer wrote %d rows: %v", writes, err)
	}
	t.Logf("%d rows inserted during the comparisons", writes)
}
