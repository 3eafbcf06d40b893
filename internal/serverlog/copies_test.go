package serverlog

import (
	"reflect"
	"strings"
	"testing"
)

// Lines as pglogical 2.4.2 and PostgreSQL 15 wrote them on a subscriber
// (Debian's log_line_prefix), a copy onto rows already there included.
const copyLog = `2026-12-04 15:12:53.123 UTC [12813] LOG:  starting sync of table public.t2 for subscriber sub_0
2026-12-04 15:12:53.349 UTC [12820] ERROR:  duplicate key value violates unique constraint "t2_pkey"
2026-12-04 15:12:53.349 UTC [12820] DETAIL:  Key (id)=(1) already exists.
2026-12-04 15:12:53.349 UTC [12820] CONTEXT:  COPY t2, line 1
2026-12-04 15:12:53.349 UTC [12820] STATEMENT:  COPY "public"."t2" ("id","v") FROM stdin
2026-12-04 15:12:54.126 UTC [12813] LOG:  finished sync of table public.t2 for subscriber sub_0
2026-12-04 15:12:54.126 UTC [12813] LOG:  sync worker [12813] at slot 1 generation 15 detaching cleanly
2026-12-04 15:13:01.002 UTC [12900] ERROR:  duplicate key value violates unique constraint "t3_pkey"
2026-12-04 15:13:01.002 UTC [12900] STATEMENT:  COPY t3 FROM STDIN
2026-12-04 15:13:02.100 UTC [12913] LOG:  starting sync of table public."Late" for subscriber sub_1
2026-12-04 15:13:02.500 UTC [12913] LOG:  finished sync of table public."Late" for subscriber sub_1
2026-12-04 15:13:03.000 UTC [12950] LOG:  finished sync of table public.t4 for subscriber sub_0
2026-12-05 16:30:36.275 UTC [21674] LOG:  starting sync of table pglmon.heartbeat for subscriber sub_0
2026-12-05 16:30:36.497 UTC [21683] ERROR:  duplicate key value violates unique constraint "heartbeat_pkey"
2026-12-05 16:30:36.497 UTC [21683] CONTEXT:  COPY heartbeat, line 1
2026-12-05 16:30:36.497 UTC [21683] STATEMENT:  COPY "pglmon"."heartbeat" ("node","ts") FROM stdin
2026-12-05 16:30:36.842 UTC [21674] LOG:  finished sync of table pglmon.heartbeat for subscriber sub_0
`

func TestCopies(t *testing.T) {
	want := []Copy{
		{Subscription: "sub_0", Table: "public.t2", Prefix: "2026-12-04 15:12:54.126 UTC [12813]",
			Error: `ERROR: duplicate key value violates unique constraint "t2_pkey"`},
		// An application's own COPY failing is not pglogical's; a copy
		// whose start was not read is left out; so is pglmon's heartbeat
		// table's, copied again onto its rows by alter_subscription_synchronize
		// after setup apply added a set (measured).
		{Subscription: "sub_1", Table: "public.Late", Prefix: "2026-12-04 15:13:02.500 UTC [12913]"},
	}
	if got := Copies(copyLog); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !want[0].Failed() || want[1].Failed() {
		t.Error("Failed")
	}
}

// The first copy of create_subscription(synchronize_data := true), as
// pglogical 2.4.2 and PostgreSQL 15 logged it on a subscriber: the last
// table's COPY failing (quiet: the subscription replicates, every table
// ready, none of the copy committed), then, set up again, a COPY failing
// before another table's (the apply worker exits, init_failed).
const initialCopyLog = `2026-12-04 17:38:57.336 UTC [10556] LOG:  manager worker [10556] at slot 1 generation 17 detaching cleanly
2026-12-04 17:38:57.339 UTC [10558] LOG:  starting apply for subscription sub_0
2026-12-04 17:38:57.385 UTC [10561] LOG:  manager worker [10561] at slot 1 generation 18 detaching cleanly
2026-12-04 17:38:57.534 UTC [10566] ERROR:  duplicate key value violates unique constraint "cc_pkey"
2026-12-04 17:38:57.534 UTC [10566] DETAIL:  Key (id)=(5) already exists.
2026-12-04 17:38:57.534 UTC [10566] CONTEXT:  COPY cc, line 5
2026-12-04 17:38:57.534 UTC [10566] STATEMENT:  COPY "public"."cc" ("id","v") FROM stdin
2026-12-04 17:39:10.001 UTC [10600] ERROR:  duplicate key value violates unique constraint "orders_pkey"
2026-12-04 17:39:10.001 UTC [10600] STATEMENT:  COPY public.orders (id, v) FROM stdin;
2026-12-04 17:40:26.208 UTC [10417] LOG:  starting apply for subscription sub_1
2026-12-04 17:40:26.368 UTC [10424] ERROR:  duplicate key value violates unique constraint "cb_pkey"
2026-12-04 17:40:26.368 UTC [10424] DETAIL:  Key (id)=(5) already exists.
2026-12-04 17:40:26.368 UTC [10424] CONTEXT:  COPY cb, line 5
2026-12-04 17:40:26.368 UTC [10424] STATEMENT:  COPY "public"."cb" ("id","v") FROM stdin
2026-12-04 17:40:26.368 UTC [10424] ERROR:  current transaction is aborted, commands ignored until end of transaction block
2026-12-04 17:40:26.368 UTC [10424] STATEMENT:  COPY "public"."cc" ("id","v") FROM stdin
2026-12-04 17:40:26.389 UTC [10417] ERROR:  table copy failed
2026-12-04 17:40:26.389 UTC [10417] DETAIL:  Query 'COPY "public"."cc" ("id","v") FROM stdin': 
2026-12-04 17:40:26.389 UTC [10417] LOG:  apply worker [10417] at slot 2 generation 4 exiting with error
2026-12-04 17:40:31.843 UTC [10443] LOG:  starting apply for subscription sub_1
2026-12-04 17:40:31.843 UTC [10443] ERROR:  subscriber sub_1 initialization failed during nonrecoverable step (d), please try the setup again
`

func TestInitialCopies(t *testing.T) {
	want := []Copy{
		{Subscription: "sub_0", Table: "public.cc", Prefix: "2026-12-04 17:38:57.534 UTC [10566]", Initial: true,
			Error: `ERROR: duplicate key value violates unique constraint "cc_pkey"`},
		// An application's COPY (pg_dump's form) is not pglogical's; the
		// aborted COPY after the first failure is not a copy of its own.
		{Subscription: "sub_1", Table: "public.cb", Prefix: "2026-12-04 17:40:26.368 UTC [10424]", Initial: true,
			Error: `ERROR: duplicate key value violates unique constraint "cb_pkey"`},
	}
	if got := Copies(initialCopyLog); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// A table sync's failed COPY stays the table's, not an initial copy;
	// also when the sync's start came before the text read.
	if got := Copies("[1] LOG:  starting apply for subscription sub_0\n" + copyLog); len(got) != 2 || got[0].Initial {
		t.Fatalf("with a table sync: %+v", got)
	}
	syncStartedBefore := copyLog[strings.Index(copyLog, "\n")+1:]
	if got := Copies("[1] LOG:  starting apply for subscription sub_9\n" + syncStartedBefore); len(got) != 1 || got[0].Table != "public.Late" {
		t.Fatalf("a table sync started before the text: %+v", got)
	}
}

// What stands of a log's copies: a table's last copy when it failed; a
// failed first copy until the table whose COPY failed is copied again.
func TestStanding(t *testing.T) {
	resync := `2026-12-04 17:50:00.000 UTC [11000] LOG:  starting sync of table public.cc for subscriber sub_0
2026-12-04 17:50:01.000 UTC [11000] LOG:  finished sync of table public.cc for subscriber sub_0
`
	got := Standing(Copies(copyLog + initialCopyLog))
	if len(got) != 3 || !got["sub_0/public.t2"].Failed() || !got["sub_0/"].Initial || got["sub_1/"].Table != "public.cb" {
		t.Fatalf("before: %+v", got)
	}
	got = Standing(Copies(copyLog + initialCopyLog + resync))
	if _, ok := got["sub_0/"]; ok || len(got) != 2 {
		t.Fatalf("after cc was copied again: %+v", got)
	}
	f := got["sub_1/"].Finding("/var/log/pg.log")
	if f.Code != "initial_copy_failed" || !strings.HasPrefix(f.Message, "pglogical's first copy of subscription sub_1 failed at table public.cb (ERROR: duplicate key") {
		t.Errorf("finding: %+v", f)
	}
}

// The resynchronisation a failed copy's finding prints names the table as
// a regclass reads it (pglogical logs it without quotes).
func TestCopyFindingQuotesTheTable(t *testing.T) {
	f := Copy{Subscription: "sub_o'1", Table: "Sales.OrderLines", Error: "duplicate key"}.Finding("postgresql.log")
	if want := `SELECT pglogical.alter_subscription_resynchronize_table('sub_o''1', '"Sales"."OrderLines"')`; !strings.Contains(f.Message, want) {
		t.Errorf("message lacks %s:\n%s", want, f.Message)
	}
}

// A table whose name has capitals and a space, as pglogical 2.4.2 logs its
// copy (measured): the sync lines unquoted, its COPY quoted.
func TestCopyOfANameWithASpace(t *testing.T) {
	text := `2026-12-04 15:13:04.100 UTC [12960] LOG:  starting sync of table Sales.New Tab for subscriber sub_0
2026-12-04 15:13:04.200 UTC [12961] ERROR:  duplicate key value violates unique constraint "New Tab_pkey"
2026-12-04 15:13:04.200 UTC [12961] CONTEXT:  COPY New Tab, line 1
2026-12-04 15:13:04.200 UTC [12961] STATEMENT:  COPY "Sales"."New Tab" ("id") FROM stdin
2026-12-04 15:13:05.000 UTC [12960] LOG:  finished sync of table Sales.New Tab for subscriber sub_0
`
	want := []Copy{{Subscription: "sub_0", Table: "Sales.New Tab", Prefix: "2026-12-04 15:13:05.000 UTC [12960]",
		Error: `ERROR: duplicate key value violates unique constraint "New Tab_pkey"`}}
	if got := Copies(text); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := unquote(`"we""ird"."x y"`); got != `we"ird.x y` {
		t.Errorf("unquote: %s", got)
	}
}
