package serverlog

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

// Lines as pglogical 2.4.2 and PostgreSQL 15 wrote them on a subscriber
// whose subscription's provider role lacked SELECT on perm_t, then was
// granted it (the demo); the other tables' lines are made the same way.
const syncLog = `2026-12-07 17:59:48.864 UTC [17918] ERROR:  table copy failed
2026-12-07 17:59:48.864 UTC [17918] DETAIL:  Query 'COPY "public"."perm_t" ("id","v") TO stdout': ERROR:  permission denied for table perm_t
	
2026-12-07 17:59:48.864 UTC [17918] LOG:  sync worker [17918] at slot 4 generation 1863 exiting with error
2026-12-07 17:59:48.910 UTC [17924] LOG:  starting sync of table public.perm_t for subscriber sub_perm
2026-12-07 17:59:49.004 UTC [17924] ERROR:  table copy failed
2026-12-07 17:59:49.004 UTC [17924] DETAIL:  Query 'COPY "public"."perm_t" ("id","v") TO stdout': ERROR:  permission denied for table perm_t
	
2026-12-07 17:59:49.004 UTC [17924] LOG:  sync worker [17924] at slot 4 generation 1864 exiting with error
2026-12-07 17:59:49.019 UTC [17928] LOG:  unexpected EOF on client connection with an open transaction
2026-12-07 17:59:49.029 UTC [6247] LOG:  background worker "pglogical sync                      perm_t 16565:1297712045" (PID 17924) exited with exit code 1
2026-12-07 17:59:49.059 UTC [17932] LOG:  starting sync of table public.perm_t for subscriber sub_perm
2026-12-07 17:59:49.198 UTC [17932] ERROR:  table copy failed
2026-12-07 17:59:49.198 UTC [17932] DETAIL:  Query 'COPY "public"."perm_t" ("id","v") TO stdout': ERROR:  permission denied for table perm_t
	
2026-12-07 17:59:49.198 UTC [17932] LOG:  sync worker [17932] at slot 4 generation 1865 exiting with error
2026-12-07 17:59:49.244 UTC [17947] LOG:  starting sync of table public.perm_t for subscriber sub_perm
2026-12-07 17:59:49.300 UTC [17950] LOG:  starting sync of table public.perm_u for subscriber sub_perm
2026-12-07 17:59:49.301 UTC [17950] ERROR:  table copy failed
2026-12-07 17:59:49.301 UTC [17950] DETAIL:  Query 'COPY "public"."perm_u" ("id") TO stdout': ERROR:  permission denied for table perm_u
	
2026-12-07 17:59:49.302 UTC [17950] LOG:  sync worker [17950] at slot 5 generation 1 exiting with error
2026-12-07 17:59:49.310 UTC [6247] LOG:  background worker "pglogical sync                      perm_u 16565:1297712045" (PID 17950) exited with exit code 1
2026-12-07 17:59:49.320 UTC [18950] LOG:  starting sync of table public.perm_u for subscriber sub_perm
2026-12-07 17:59:49.321 UTC [18950] ERROR:  table copy failed
2026-12-07 17:59:49.321 UTC [18950] DETAIL:  Query 'COPY "public"."perm_u" ("id") TO stdout': ERROR:  permission denied for schema public
2026-12-07 17:59:49.322 UTC [18950] LOG:  sync worker [18950] at slot 8 generation 1 exiting with error
2026-12-07 17:59:49.330 UTC [6247] LOG:  background worker "pglogical sync                      perm_u 20000:42" (PID 18950) exited with exit code 1
2026-12-07 17:59:49.400 UTC [17960] LOG:  starting sync of table sales."Orders" for subscriber sub_perm
2026-12-07 17:59:49.401 UTC [17960] ERROR:  table copy failed
2026-12-07 17:59:49.401 UTC [17960] DETAIL:  Query 'COPY "sales"."Orders" ("id") TO stdout': ERROR:  permission denied for schema sales
	
2026-12-07 17:59:49.402 UTC [17960] LOG:  sync worker [17960] at slot 6 generation 1 exiting with error
2026-12-07 17:59:49.500 UTC [17970] LOG:  starting sync of table public.once for subscriber sub_perm
2026-12-07 17:59:49.501 UTC [17970] ERROR:  could not receive data from WAL stream: server closed the connection unexpectedly
2026-12-07 17:59:49.502 UTC [17970] LOG:  sync worker [17970] at slot 7 generation 1 exiting with error
2026-12-07 17:59:49.600 UTC [17980] LOG:  starting sync of table public.once for subscriber sub_perm
2026-12-07 17:59:49.700 UTC [17990] LOG:  starting apply for subscription sub_perm
2026-12-07 17:59:49.701 UTC [17990] ERROR:  unknown column name extra
2026-12-07 17:59:49.702 UTC [17990] LOG:  apply worker [17990] at slot 1 generation 2 exiting with error
2026-12-07 17:59:49.800 UTC [17951] LOG:  starting sync of table public.perm_u for subscriber sub_perm
2026-12-07 17:59:49.801 UTC [17951] ERROR:  table copy failed
2026-12-07 17:59:49.801 UTC [17951] DETAIL:  Query 'COPY "public"."perm_u" ("id") TO stdout': ERROR:  permission denied for table perm_u
	
2026-12-07 17:59:49.802 UTC [17951] LOG:  sync worker [17951] at slot 5 generation 2 exiting with error
2026-12-07 17:59:49.810 UTC [6247] LOG:  background worker "pglogical sync                      perm_u 16565:1297712045" (PID 17951) exited with exit code 1
2026-12-07 17:59:49.900 UTC [17961] LOG:  starting sync of table sales."Orders" for subscriber sub_perm
2026-12-07 17:59:49.901 UTC [17961] ERROR:  table copy failed
2026-12-07 17:59:49.901 UTC [17961] DETAIL:  Query 'COPY "sales"."Orders" ("id") TO stdout': ERROR:  permission denied for schema sales
	
2026-12-07 17:59:49.902 UTC [17961] LOG:  sync worker [17961] at slot 6 generation 2 exiting with error
2026-12-07 17:59:49.950 UTC [17962] LOG:  starting sync of table sales."Orders" for subscriber sub_perm
2026-12-07 17:59:50.243 UTC [17947] LOG:  finished sync of table public.perm_t for subscriber sub_perm
2026-12-07 17:59:50.243 UTC [17947] LOG:  sync worker [17947] at slot 4 generation 1866 detaching cleanly
2026-12-07 18:51:12.421 UTC [18848] LOG:  starting sync of table public.slot_t for subscriber sub_perm
2026-12-07 18:51:12.452 UTC [18848] ERROR:  could not create replication slot on provider: ERROR:  all replication slots are in use
	HINT:  Free one or increase max_replication_slots.
	
	
2026-12-07 18:51:12.452 UTC [18848] LOG:  sync worker [18848] at slot 2 generation 9 exiting with error
2026-12-07 18:51:43.765 UTC [19154] LOG:  starting sync of table public.slot_t for subscriber sub_perm
2026-12-07 18:51:43.777 UTC [19154] ERROR:  could not connect to the postgresql server in replication mode: connection to server at "127.0.0.1", port 15432 failed: FATAL:  number of requested standby connections exceeds max_wal_senders (currently 1)
	
2026-12-07 18:51:43.777 UTC [19154] DETAIL:  dsn was:  host=127.0.0.1 port=15432 dbname=labdb user=postgres password=s3cret sslmode=disable
2026-12-07 18:51:43.777 UTC [19154] LOG:  sync worker [19154] at slot 2 generation 40 exiting with error
`

func TestSyncFailures(t *testing.T) {
	denied := func(table string) string {
		return "ERROR: table copy failed (the provider: permission denied for " + table + ")"
	}
	const w = "16565:1297712045"
	want := SyncFailures{
		// perm_t failed three times, then was copied: gone. once failed
		// once and runs again. The apply worker's error is not a copy's.
		// perm_u of the same-named subscription of another database
		// (20000:42) is told apart by the postmaster's lines.
		w + "|sub_perm/public.perm_u":     {Subscription: "sub_perm", Table: "public.perm_u", Worker: w, Prefix: "2026-12-07 17:59:49.801 UTC [17951]", Error: denied("table perm_u"), Failures: 2},
		"20000:42|sub_perm/public.perm_u": {Subscription: "sub_perm", Table: "public.perm_u", Worker: "20000:42", Prefix: "2026-12-07 17:59:49.321 UTC [18950]", Error: denied("schema public"), Failures: 1},
		"|sub_perm/sales.Orders":          {Subscription: "sub_perm", Table: "sales.Orders", Prefix: "2026-12-07 17:59:49.901 UTC [17961]", Error: denied("schema sales"), Failures: 2},
		"|sub_perm/public.slot_t": {Subscription: "sub_perm", Table: "public.slot_t", Prefix: "2026-12-07 18:51:43.777 UTC [19154]", Failures: 2,
			Error: `ERROR: could not connect to the postgresql server in replication mode: connection to server at "127.0.0.1", port 15432 failed: FATAL:  number of requested standby connections exceeds max_wal_senders (currently 1)`},
		"|sub_perm/public.once": {Subscription: "sub_perm", Table: "public.once", Prefix: "2026-12-07 17:59:49.501 UTC [17970]",
			Error: "ERROR: could not receive data from WAL stream: server closed the connection unexpectedly", Failures: 1},
	}
	got := ParseSyncFailures(syncLog)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSyncFailures:\n got %+v\nwant %+v", got, want)
	}
	for _, c := range []struct {
		worker, table, key string
	}{
		{w, "public.perm_u", w + "|sub_perm/public.perm_u"},
		{"20000:42", "public.perm_u", "20000:42|sub_perm/public.perm_u"},
		{"", "public.perm_u", w + "|sub_perm/public.perm_u"}, // the most failures
		{w, "sales.Orders", "|sub_perm/sales.Orders"},        // no postmaster line read
	} {
		if f, ok := got.For("sub_perm", c.worker, c.table); !ok || !reflect.DeepEqual(f, want[c.key]) {
			t.Errorf("For(%q, %q): %+v, %v; want %s", c.worker, c.table, f, ok, c.key)
		}
	}
	if f, ok := got.For("sub_perm", "20000:42", "sales.Orders"); !ok || f.Table != "sales.Orders" {
		t.Errorf("For(another database, a table without postmaster lines): %+v %v", f, ok)
	}
	if _, ok := got.For("sub_perm", "30000:7", "public.perm_u"); ok {
		t.Error("For(a third database): found the others' failures")
	}
}

func TestAnnotateSync(t *testing.T) {
	notReady := []probe.TableSync{
		{Subscription: "sub_perm", Schema: "public", Table: "perm_u", Status: "d"},
		{Subscription: "sub_perm", Schema: "sales", Table: "Orders", Status: "i"},
		{Subscription: "sub_perm", Schema: "public", Table: "once", Status: "d"},
	}
	report := func(findings ...diagnose.Finding) diagnose.Report {
		return diagnose.Report{Health: diagnose.Warning, Subscriptions: []diagnose.Subscription{{
			Name: "sub_perm", Subscriber: "permsub", Provider: "prov", Health: diagnose.Warning, ApplyWorker: "16565:1297712045",
			ProviderConninfo: "host=10.0.0.1 port=5432 dbname=app user=Repl sslmode=require", ProviderRole: "Repl",
			TablesNotReady: notReady, Findings: findings}}}
	}
	fails := ParseSyncFailures(syncLog)
	stalled := diagnose.Finding{Code: diagnose.CodeTableSyncStalled, Severity: diagnose.Warning, Human: true, Table: "public.perm_u", Message: "stalled"}
	r := report(stalled)
	AnnotateSync(&r, "permsub", "/var/log/pg.log", fails)
	s := r.Subscriptions[0]
	if r.Health != diagnose.Critical || s.Health != diagnose.Critical || len(s.Findings) != 2 {
		t.Fatalf("health %s/%s, findings %+v", r.Health, s.Health, s.Findings)
	}
	for i, want := range []struct{ table, grant string }{
		{"public.perm_u", `run on prov GRANT SELECT ON public.perm_u TO "Repl";`},
		{"sales.Orders", `run on prov GRANT USAGE ON SCHEMA sales TO "Repl";`},
	} {
		f := s.Findings[i]
		if f.Code != diagnose.CodeTableSyncError || f.Severity != diagnose.Critical || !f.Human || f.Table != want.table ||
			!strings.Contains(f.Message, want.grant) || !strings.Contains(f.Message, "failed 2 times in a row") ||
			!strings.Contains(f.Message, "/var/log/pg.log at 2026-12-07 17:59:49.") {
			t.Errorf("finding %d: %+v", i, f)
		}
	}
	if !strings.Contains(s.Findings[1].Message, `table sales."Orders" of sub_perm is not copied (sync status "i")`) {
		t.Errorf("the table as SQL writes it: %s", s.Findings[1].Message)
	}

	// The provider out of walsenders, then of slots: the hint follows the
	// last error; the DETAIL that quotes the connection string (and its
	// password) never appears.
	r = report()
	r.Subscriptions[0].TablesNotReady = []probe.TableSync{{Subscription: "sub_perm", Schema: "public", Table: "slot_t", Status: "i"}}
	AnnotateSync(&r, "permsub", "/var/log/pg.log", fails)
	if f := r.Subscriptions[0].Findings; len(f) != 1 || !strings.Contains(f[0].Message, "provider prov has no walsender or connection free for the copy") ||
		strings.Contains(f[0].Message, "s3cret") || strings.Contains(f[0].Message, "dsn was") {
		t.Errorf("out of walsenders: %+v", f)
	}
	slot := fails["|sub_perm/public.slot_t"]
	slot.Error = "ERROR: could not create replication slot on provider: ERROR:  all replication slots are in use"
	r = report()
	r.Subscriptions[0].TablesNotReady = []probe.TableSync{{Subscription: "sub_perm", Schema: "public", Table: "slot_t", Status: "i"}}
	AnnotateSync(&r, "permsub", "/var/log/pg.log", SyncFailures{"|sub_perm/public.slot_t": slot})
	if f := r.Subscriptions[0].Findings; len(f) != 1 || !strings.Contains(f[0].Message, "provider prov has no replication slot free for the copy") {
		t.Errorf("out of slots: %+v", f)
	}

	// A try after the failures got past the COPY (rows arriving, or the
	// sync status past the data phase): the failures are over.
	rows := int64(1)
	for _, t2 := range []probe.TableSync{
		{Subscription: "sub_perm", Schema: "public", Table: "perm_u", Status: "d", CopiedRows: &rows},
		{Subscription: "sub_perm", Schema: "public", Table: "perm_u", Status: "u"},
	} {
		r = report()
		r.Subscriptions[0].TablesNotReady = []probe.TableSync{t2}
		AnnotateSync(&r, "permsub", "/var/log/pg.log", fails)
		if len(r.Subscriptions[0].Findings) != 0 {
			t.Errorf("a copy under way (status %s): %+v", t2.Status, r.Subscriptions[0].Findings)
		}
	}

	// Another subscriber's log, or a finding that already says why: nothing.
	r = report(stalled)
	AnnotateSync(&r, "othersub", "/var/log/pg.log", fails)
	if len(r.Subscriptions[0].Findings) != 1 || r.Health != diagnose.Warning {
		t.Errorf("another subscriber's log: %+v", r.Subscriptions[0].Findings)
	}
	r = report(diagnose.Finding{Code: diagnose.CodeOriginSlotsExhausted, Severity: diagnose.Critical})
	AnnotateSync(&r, "permsub", "/var/log/pg.log", fails)
	if len(r.Subscriptions[0].Findings) != 1 {
		t.Errorf("with origin_slots_exhausted: %+v", r.Subscriptions[0].Findings)
	}
	r = report(diagnose.Finding{Code: diagnose.CodeTableCopyRefused, Severity: diagnose.Critical, Table: "public.perm_u"})
	AnnotateSync(&r, "permsub", "/var/log/pg.log", fails)
	if f := r.Subscriptions[0].Findings; len(f) != 2 || f[1].Table != "sales.Orders" {
		t.Errorf("with table_copy_refused for perm_u: %+v", f)
	}
	// A provider connection whose role neither its connection string nor
	// a walsender says: the role is for the reader to fill in.
	r = report()
	r.Subscriptions[0].ProviderConninfo, r.Subscriptions[0].ProviderRole = "host=10.0.0.1 dbname=app", ""
	AnnotateSync(&r, "permsub", "/var/log/pg.log", fails)
	if f := r.Subscriptions[0].Findings; len(f) != 2 || !strings.Contains(f[0].Message, "GRANT SELECT ON public.perm_u TO <role>;") {
		t.Errorf("without a user: %+v", f)
	}
}
