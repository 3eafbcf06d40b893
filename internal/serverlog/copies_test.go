package serverlog

import (
	"reflect"
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
`

func TestCopies(t *testing.T) {
	want := []Copy{
		{Subscription: "sub_0", Table: "public.t2", Prefix: "2026-12-04 15:12:54.126 UTC [12813]",
			Error: `ERROR: duplicate key value violates unique constraint "t2_pkey"`},
		// An application's own COPY failing is not pglogical's; a copy
		// whose start was not read is left out.
		{Subscription: "sub_1", Table: "public.Late", Prefix: "2026-12-04 15:13:02.500 UTC [12913]"},
	}
	if got := Copies(copyLog); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !want[0].Failed() || want[1].Failed() {
		t.Error("Failed")
	}
}
