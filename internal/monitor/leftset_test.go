package monitor

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/seen"
)

// A table put in a set without its copy (synchronize_data := false: no
// sync status on the subscriber, so drift.LeftSets cannot see it), then
// taken out: table_left_set from what the monitor saw in the set, kept in
// the daemon's file so that a new monitor (a restarted daemon, status
// beside it) knows it too; it goes when the table is back, at the next
// cycle after pglmon forget takes it off, and when the subscriber's table
// is dropped, which takes it off the file.
func TestATableTakenOutOfASetWithoutItsCopy(t *testing.T) {
	p, m := pairMonitor(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "subscriptions-seen.json")
	m.KeepSetTables(seen.NewTables(file, true))
	again := func(write bool) *Monitor {
		t.Helper()
		m2 := New(m.Config())
		t.Cleanup(func() { m2.Close(ctx) })
		m2.KeepSetTables(seen.NewTables(file, write))
		return m2
	}
	kept := func() []drift.Relation {
		subs, err := seen.Read(file)
		if err != nil {
			t.Fatal(err)
		}
		return subs["subscriber/"+p.Sub()].Tables
	}
	plain := drift.Relation{Schema: "public", Name: "plain"}
	run(t,
		stmt{p.Provider, "CREATE TABLE plain (id int PRIMARY KEY, v text); INSERT INTO plain VALUES (1, 'a')"},
		stmt{p.Subscriber, "CREATE TABLE plain (id int PRIMARY KEY, v text); INSERT INTO plain VALUES (1, 'a')"},
		stmt{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'plain', false)"})
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		m.Cycle(ctx)
		return slices.Contains(kept(), plain)
	}); err != nil {
		t.Fatalf("the table put in the set is not kept: %+v", kept())
	}
	var n int
	if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM pglogical.local_sync_status WHERE sync_relname = 'plain'", []any{&n}); err != nil || n != 0 {
		t.Fatalf("the subscriber has %d sync status rows of a table put in a set without its copy (%v): the test no longer tests what pglogical cannot tell", n, err)
	}

	out := stmt{p.Provider, "SELECT pglogical.replication_set_remove_table('set_0', 'plain')"}
	back := stmt{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'plain', false)"}
	run(t, out)
	waitFinding(t, m, p, diagnose.CodeTableLeftSet, true)
	if _, r := hasFinding(t, m, p, diagnose.CodeTableLeftSet); !slices.Equal(leftOf(t, r, p), []string{"public.plain"}) {
		t.Errorf("tables_left_sets %v", leftOf(t, r, p))
	}
	// A new monitor with the file (the daemon restarted; status reading
	// it) knows it at its first comparison; without it, it cannot.
	for _, write := range []bool{true, false} {
		if got, r := hasFinding(t, again(write), p, diagnose.CodeTableLeftSet); !got {
			t.Errorf("a new monitor with the file (write %v): no table_left_set: %+v", write, r)
		}
	}
	if got, _ := hasFinding(t, New(m.Config()), p, diagnose.CodeTableLeftSet); got {
		t.Errorf("a new monitor without the file says table_left_set: the test cannot tell the file's part")
	}

	run(t, back)
	waitFinding(t, m, p, diagnose.CodeTableLeftSet, false)
	run(t, out)
	waitFinding(t, m, p, diagnose.CodeTableLeftSet, true)

	// pglmon forget --table: the monitor compares again at its next
	// cycle (not up to schemaEvery later), and a monitor reading the file
	// says nothing either.
	if gone, err := seen.ForgetTables(file, "", p.Sub(), []drift.Relation{{Name: "plain"}}); err != nil || len(gone) != 1 {
		t.Fatalf("forget: %v %v", gone, err)
	}
	if got, r := hasFinding(t, m, p, diagnose.CodeTableLeftSet); got {
		t.Errorf("the cycle after forget: %+v", r)
	}
	if got, r := hasFinding(t, again(false), p, diagnose.CodeTableLeftSet); got {
		t.Errorf("a new monitor after forget: %+v", r)
	}

	// Back in the set and out again, then dropped on the subscriber: the
	// finding goes at the next cycle (the subscriber's table definitions
	// changed), and the file no longer holds it.
	run(t, back)
	waitFinding(t, m, p, diagnose.CodeTableLeftSet, false)
	run(t, out)
	waitFinding(t, m, p, diagnose.CodeTableLeftSet, true)
	run(t, stmt{p.Subscriber, "DROP TABLE plain"})
	waitFinding(t, m, p, diagnose.CodeTableLeftSet, false)
	if slices.Contains(kept(), plain) {
		t.Errorf("the file still holds a table the subscriber dropped: %v", kept())
	}
}

// leftOf is the tables_left_sets of the pair's subscription in r.
func leftOf(t *testing.T, r diagnose.Report, p *pgtest.Pair) []string {
	t.Helper()
	s, _ := r.Subscription(p.Sub(), "subscriber")
	return s.TablesLeftSets
}
