package serverlog

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

// Lines as PostgreSQL 15 with pglogical 2.4.2 wrote them when a column was
// added on the provider alone (test harness prefix '%m [%p] '), and the same
// in RDS's default prefix, with other processes' lines in between.
func TestWorkerErrors(t *testing.T) {
	for name, text := range map[string]string{
		"harness prefix": `2026-11-24 19:00:17.846 UTC [12848] LOG:  starting apply for subscription sub_0
2026-11-24 19:00:17.900 UTC [12850] ERROR:  relation "nope" does not exist at character 15
2026-11-24 19:00:18.057 UTC [12848] ERROR:  unknown column name extra
2026-11-24 19:00:18.057 UTC [12848] CONTEXT:  apply INSERT in commit before 0/1A42C68, xid 732 committed at 2026-11-24 19:00:17.960676+00 (action #2) from node replorigin 1
2026-11-24 19:00:18.057 UTC [12848] LOG:  apply worker [12848] at slot 1 generation 2 exiting with error
2026-11-24 19:00:23.849 UTC [12881] LOG:  starting apply for subscription sub_1
2026-11-24 19:00:24.000 UTC [12881] LOG:  some other line
`,
		"rds prefix": `2026-11-24 19:00:17 UTC::@:[12848]:LOG:  starting apply for subscription sub_0
2026-11-24 19:00:17 UTC:10.0.0.9(5432):app@db:[12850]:ERROR:  relation "nope" does not exist at character 15
2026-11-24 19:00:18 UTC::@:[12848]:ERROR:  unknown column name extra
2026-11-24 19:00:18 UTC::@:[12848]:CONTEXT:  apply INSERT in commit before 0/1A42C68, xid 732 committed at 2026-11-24 19:00:17.960676+00 (action #2) from node replorigin 1
2026-11-24 19:00:18 UTC::@:[12848]:LOG:  apply worker [12848] at slot 1 generation 2 exiting with error
2026-11-24 19:00:23 UTC::@:[12881]:LOG:  starting apply for subscription sub_1
`,
	} {
		got := WorkerErrors(text)
		we, ok := got.For("sub_0", "")
		if len(got) != 1 || !ok || we.Error != "ERROR: unknown column name extra" || we.PID != "12848" ||
			we.Context == "" || we.Prefix == "" {
			t.Errorf("%s: %+v", name, got)
		}
	}
	// A worker that restarted and runs: its earlier error is still the last one it exited with.
	if got := WorkerErrors("[1] LOG:  starting apply for subscription s\n[1] LOG:  apply worker [1] at slot 1 generation 2 exiting with error\n"); len(got) != 0 {
		t.Errorf("exit without an error line: %+v", got)
	}
}

func TestPermanentErrorsBecomeApplyError(t *testing.T) {
	for msg, permanent := range map[string]bool{
		`ERROR: new row for relation "items_0" violates check constraint "small_n"`:                true,
		`ERROR: null value in column "n" of relation "items_0" violates not-null constraint`:       true,
		`ERROR: insert or update on table "t" violates foreign key constraint "t_fk"`:              true,
		`ERROR: value too long for type character varying(3)`:                                      true,
		`ERROR: incorrect binary data format`:                                                      true, // bigint sent, integer here
		`ERROR: insufficient data left in message`:                                                 true, // integer sent, bigint here
		`ERROR: numeric field overflow`:                                                            true,
		`ERROR: could not find REPLICA IDENTITY index for table kb with oid 16568`:                 true,
		`ERROR: cannot truncate a table referenced in a foreign key constraint`:                    true, // a subscriber-only foreign key
		`ERROR: binary data has array element type 23 (integer) instead of expected 20 (bigint)`:   true,
		`ERROR: unknown column name extra`:                                                         false, // schema_mismatch says it
		`ERROR: could not receive data from WAL stream: server closed the connection unexpectedly`: false,
		`FATAL: terminating connection due to administrator command`:                               false,
		`ERROR: replication origin "pgl_labdb_provider_sub_0" does not exist`:                      false,
		`ERROR: could not connect to the postgresql server: connection refused`:                    false,
	} {
		if got := (WorkerError{Error: msg}).Permanent(); got != permanent {
			t.Errorf("%s: permanent %t, want %t", msg, got, permanent)
		}
	}
	report := func(code string) *diagnose.Report {
		return &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "s", Status: probe.StatusDown, Health: diagnose.Critical,
			Findings: []diagnose.Finding{{Code: code, Severity: diagnose.Critical, Remedy: diagnose.RemedyRestart, Message: "down."}}}}}
	}
	refused := Errors{{Subscription: "sub_0", Prefix: "t [1]", Error: `ERROR: new row for relation "t" violates check constraint "c"`, Context: "CONTEXT: apply INSERT"}}
	r := report(diagnose.CodeStuckDown)
	Annotate(r, "s", "log/x.log", refused)
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeApplyError || f.Remedy != "" || !f.Human || f.Severity != diagnose.Critical ||
		!strings.HasSuffix(f.Message, `the last error in the subscriber's log (log/x.log): t [1] ERROR: new row for relation "t" violates check constraint "c" (CONTEXT: apply INSERT)`) {
		t.Errorf("stuck_down with a refused row: %+v", f)
	}
	// Within down_grace the worker may be restarting anyway: told, not changed.
	r = report(diagnose.CodeSubscriptionDown)
	Annotate(r, "s", "log/x.log", refused)
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeSubscriptionDown || !strings.HasPrefix(f.Message, "down; the last error of its apply worker") {
		t.Errorf("subscription_down: %+v", f)
	}
	// Another subscriber's log says nothing about this one.
	r = report(diagnose.CodeStuckDown)
	Annotate(r, "other", "log/x.log", refused)
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeStuckDown || f.Message != "down." {
		t.Errorf("other subscriber's log: %+v", f)
	}
	// A worker that gave up after lock_timeout: apply_blocked, for a
	// person (the lock's holder), no restart.
	r = report(diagnose.CodeStuckDown)
	Annotate(r, "s", "log/x.log", Errors{{Subscription: "sub_0", Prefix: "t [2]", Error: "ERROR:  canceling statement due to lock timeout",
		Context: "CONTEXT:  apply UPDATE from remote relation public.items_0 in commit before 0/8BC0A650, xid 743"}})
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeApplyBlocked || f.Remedy != "" || !f.Human || f.Severity != diagnose.Critical ||
		!strings.Contains(f.Message, "waiting for a lock on public.items_0 that a session on subscriber s holds, after lock_timeout") {
		t.Errorf("lock timeout: %+v", f)
	}
	// Between two timeouts pglogical's next worker says replicating while
	// it waits for the lock: the outage is not over (UpSince), and the
	// finding stays; once over, nothing is said.
	lockTimeout := Errors{{Subscription: "sub_0", Error: "ERROR:  canceling statement due to lock timeout"}}
	up := time.Now()
	r = &diagnose.Report{Health: diagnose.OK, Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "s", Status: probe.StatusReplicating, Health: diagnose.OK, UpSince: &up}}}
	Annotate(r, "s", "log/x.log", lockTimeout)
	if s := r.Subscriptions[0]; len(s.Findings) != 1 || s.Findings[0].Code != diagnose.CodeApplyBlocked || s.Health != diagnose.Critical || r.Health != diagnose.Critical {
		t.Errorf("replicating between two lock timeouts: %+v", r)
	}
	r = &diagnose.Report{Health: diagnose.OK, Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "s", Status: probe.StatusReplicating, Health: diagnose.OK}}}
	Annotate(r, "s", "log/x.log", lockTimeout)
	if s := r.Subscriptions[0]; len(s.Findings) != 0 || r.Health != diagnose.OK {
		t.Errorf("replicating, its outage over: %+v", r)
	}
	// A transient error keeps the restart.
	r = report(diagnose.CodeStuckDown)
	Annotate(r, "s", "log/x.log", Errors{{Subscription: "sub_0", Error: "ERROR: could not receive data from WAL stream"}})
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeStuckDown || f.Remedy != diagnose.RemedyRestart {
		t.Errorf("transient: %+v", f)
	}
}

// Two databases on one subscriber, each with a subscription sub_0: their
// workers write the same start line; the postmaster's exit line names each
// worker's "<database oid>:<subscription id>".
func TestSameNamedSubscriptionsOfTwoDatabases(t *testing.T) {
	text := `2026-11-24 19:00:17.846 UTC [100] LOG:  starting apply for subscription sub_0
2026-11-24 19:00:17.850 UTC [200] LOG:  starting apply for subscription sub_0
2026-11-24 19:00:18.057 UTC [100] ERROR:  new row for relation "t" violates check constraint "a"
2026-11-24 19:00:18.057 UTC [100] LOG:  apply worker [100] at slot 1 generation 1 exiting with error
2026-11-24 19:00:18.060 UTC [1] LOG:  background worker "pglogical apply 16385:111" (PID 100) exited with exit code 1
2026-11-24 19:00:19.000 UTC [200] ERROR:  could not receive data from WAL stream: server closed the connection unexpectedly
2026-11-24 19:00:19.001 UTC [200] LOG:  apply worker [200] at slot 2 generation 1 exiting with error
2026-11-24 19:00:19.002 UTC [1] LOG:  background worker "pglogical apply 16386:111" (PID 200) exited with exit code 1
`
	errs := WorkerErrors(text)
	for worker, want := range map[string]string{"16385:111": `check constraint "a"`, "16386:111": "WAL stream", "": "WAL stream"} {
		we, ok := errs.For("sub_0", worker)
		if !ok || !strings.Contains(we.Error, want) || (worker != "" && we.Worker != worker) {
			t.Errorf("worker %q: %+v, want %s", worker, we, want)
		}
	}
	if we, ok := errs.For("sub_0", "16387:5"); ok {
		t.Errorf("a third database's sub_0 got %+v", we)
	}
}

// Lines pglogical 2.4.2 wrote (pglogical.conflict_log_level LOG), with
// their DETAIL lines, which quote rows and are not read.
func TestConflicts(t *testing.T) {
	text := `2026-11-24 21:00:02.281 UTC [29278] LOG:  CONFLICT: remote INSERT on relation public.items_0 (local index items_0_pkey). Resolution: apply_remote.
2026-11-24 21:00:02.281 UTC [29278] DETAIL:  existing local tuple {id[int8]:900001 val[text]:sub n[int4]:1} xid=788,origin=0,timestamp=2026-11-24 21:00:02.035305+00; remote tuple {id[int8]:900001 val[text]:prov n[int4]:2} in xact origin=1,timestamp=2026-11-24 21:00:02.079384+00,commit_lsn=0/1A80060
2026-11-24 21:00:02.281 UTC [29278] LOG:  CONFLICT: remote UPDATE on relation public.items_0 replica identity index items_0_pkey (tuple not found). Resolution: skip.
2026-11-24 21:00:02.281 UTC [29278] DETAIL:  remote tuple {id[int8]:10 val[text]:u n[int4]:10} in xact origin=1,timestamp=2026-11-24 21:00:02.170913+00,commit_lsn=0/1A80168
2026-11-24 21:00:03 UTC::@:[3001]:LOG:  CONFLICT: remote DELETE on relation "Odd".t replica identity index t_pkey (tuple not found). Resolution: skip.
2026-11-24 21:00:03.500 UTC [29278] LOG:  CONFLICT: remote UPDATE on relation "Sales"."Order Lines" replica identity index Order Lines_pkey (tuple not found). Resolution: skip.
2026-11-24 21:00:04.000 UTC [29278] LOG:  checkpoint complete
`
	got := Conflicts(text)
	want := []Conflict{
		{Prefix: "2026-11-24 21:00:02.281 UTC [29278]", Op: "INSERT", Table: "public.items_0", Found: "local index items_0_pkey", Resolution: "apply_remote"},
		{Prefix: "2026-11-24 21:00:02.281 UTC [29278]", Op: "UPDATE", Table: "public.items_0", Found: "tuple not found", Resolution: "skip"},
		{Prefix: "2026-11-24 21:00:03 UTC::@:[3001]:", Op: "DELETE", Table: "Odd.t", Found: "tuple not found", Resolution: "skip"},
		// As pglogical 2.4.2 wrote it (measured): the names, as verify names the table.
		{Prefix: "2026-11-24 21:00:03.500 UTC [29278]", Op: "UPDATE", Table: "Sales.Order Lines", Found: "tuple not found", Resolution: "skip"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, c := range got {
		if strings.Contains(c.String(), "900001") {
			t.Errorf("row values in %s", c)
		}
	}
}

// The slot held by another process, as pglogical 2.4.2 logged it on PG15:
// the refused command's two dozen options are left out of the quote.
func TestSlotActiveErrorQuotedShort(t *testing.T) {
	text := `2026-11-25 00:32:22.876 UTC [17295] LOG:  starting apply for subscription sub_0
2026-11-25 00:32:22.880 UTC [17295] FATAL:  could not send replication command "START_REPLICATION SLOT "pgl_t17176_1_provider3e1ff5e_sub_0" LOGICAL 0/1972CF0 (expected_encoding 'UTF8', min_proto_version '1', "binary.bigendian" '0', "hooks.setup_function" 'pglogical.pglogical_hooks_setup', "pglogical.forward_origins" '', "pglogical.replication_set_names" 'set_0', pglogical_apply_pid '17295')": ERROR:  replication slot "pgl_t17176_1_provider3e1ff5e_sub_0" is active for PID 17280
	
	, sqlstate: 55006
2026-11-25 00:32:22.880 UTC [17295] LOG:  apply worker [17295] at slot 1 generation 1 exiting with error
`
	we, ok := WorkerErrors(text).For("sub_0", "")
	if !ok {
		t.Fatal("no error found")
	}
	got := we.String()
	if !strings.Contains(got, `could not send replication command "START_REPLICATION SLOT "pgl_t17176_1_provider3e1ff5e_sub_0" LOGICAL 0/1972CF0 (...)": ERROR:  replication slot "pgl_t17176_1_provider3e1ff5e_sub_0" is active for PID 17280`) ||
		strings.Contains(got, "expected_encoding") {
		t.Errorf("got %q", got)
	}
}

// The apply worker cannot connect to its provider: the errors as pglogical
// 2.4.2 on PG15 logs them (password rotation checked on a real server).
func TestConnectFailures(t *testing.T) {
	const pre = `ERROR: could not connect to the postgresql server in replication mode: connection to server at "10.0.0.5", port 5432 failed: `
	for msg, want := range map[string]struct {
		permanent bool
		cause     string
	}{
		pre + `FATAL:  password authentication failed for user "repl"`:                                                                                {true, "rotated"},
		pre + `FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "repl", database "app", no encryption`:                                          {true, "pg_hba.conf"},
		`ERROR: could not connect to the postgresql server: could not translate host name "old-db.example.com" to address: Name or service not known`: {true, "does not resolve"},
		pre + `FATAL:  role "repl" does not exist`:                                                                                                    {true, "does not exist"},
		pre + `FATAL:  number of requested standby connections exceeds max_wal_senders (currently 10)`:                                                {false, "max_wal_senders"},
		pre + `Connection refused`:                        {false, "did not answer"},
		pre + `server closed the connection unexpectedly`: {false, "did not answer"},
	} {
		cause, permanent, ok := WorkerError{Error: msg}.ConnectFailure()
		if !ok || permanent != want.permanent || !strings.Contains(cause, want.cause) {
			t.Errorf("%s: got %t %t %q", msg, ok, permanent, cause)
		}
	}
	if _, _, ok := (WorkerError{Error: "ERROR: data stream ended"}).ConnectFailure(); ok {
		t.Error("data stream ended is not a connection failure")
	}

	report := func() *diagnose.Report {
		return &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "s", Provider: "p", Status: probe.StatusDown,
			Health: diagnose.Critical, ProviderInterface: "pw_if", ProviderConninfo: "host=10.0.0.5 port=5432 dbname=app user=repl",
			Findings: []diagnose.Finding{{Code: diagnose.CodeStuckDown, Severity: diagnose.Critical, Remedy: diagnose.RemedyRestart, Message: "down."}}}}}
	}
	r := report()
	Annotate(r, "s", "log/x.log", Errors{{Subscription: "sub_0", Prefix: "t [1]", Error: pre + `FATAL:  password authentication failed for user "repl"`}})
	f := r.Subscriptions[0].Findings[0]
	if f.Code != diagnose.CodeProviderConnectFailed || f.Remedy != "" || !f.Human || f.Severity != diagnose.Critical ||
		!strings.Contains(f.Message, "subscription sub_0 is down: its apply worker cannot connect to provider p through interface pw_if (host=10.0.0.5 port=5432 dbname=app user=repl): the provider refuses the password") ||
		!strings.HasSuffix(f.Message, `(log/x.log): t [1] `+pre+`FATAL:  password authentication failed for user "repl"`) {
		t.Errorf("rotated password: %+v", f)
	}
	// A role that may not read the connection string: the interface is still named.
	r = report()
	r.Subscriptions[0].ProviderConninfo = ""
	Annotate(r, "s", "log/x.log", Errors{{Subscription: "sub_0", Error: pre + `FATAL:  password authentication failed for user "repl"`}})
	if f := r.Subscriptions[0].Findings[0]; !strings.Contains(f.Message, "cannot connect to provider p through interface pw_if: the provider refuses") {
		t.Errorf("without conninfo: %+v", f)
	}
	// Refused connections after a provider restart: pglogical's backoff, which a restart ends.
	r = report()
	Annotate(r, "s", "log/x.log", Errors{{Subscription: "sub_0", Error: pre + "Connection refused"}})
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeStuckDown || f.Remedy != diagnose.RemedyRestart || !strings.Contains(f.Message, "cannot connect to the provider (the provider's address did not answer") {
		t.Errorf("connection refused: %+v", f)
	}
}

// The provider accepts the connection, then refuses to stream for want of
// a privilege of the role (measured with pglogical 2.4.2: no USAGE on the
// provider's schema pglogical). Not a change the subscriber refuses (it
// was apply_error, "permission denied for"): provider_connection_failed,
// with the GRANT to the role provider_role names; appended to a
// subscription_down; a slot in use is not such a refusal.
func TestStreamDenied(t *testing.T) {
	text := `2026-12-07 23:16:10.807 UTC [5916] LOG:  starting apply for subscription sub_0
2026-12-07 23:16:10.812 UTC [5916] FATAL:  could not send replication command "START_REPLICATION SLOT "pgl_labdb_provider_labdb_sub_0" LOGICAL 0/1A42A48 (expected_encoding 'UTF8', min_proto_version '1', "hooks.setup_function" 'pglogical.pglogical_hooks_setup', "pglogical.forward_origins" '', "pglogical.replication_set_names" 'set_0', pglogical_apply_pid '5916')": ERROR:  permission denied for schema pglogical
	CONTEXT:  slot "pgl_labdb_provider_labdb_sub_0", output plugin "pglogical_output", in the startup callback
	, sqlstate: 42501
2026-12-07 23:16:10.812 UTC [5916] LOG:  apply worker [5916] at slot 2 generation 3 exiting with error
`
	we, ok := WorkerErrors(text).For("sub_0", "")
	if !ok {
		t.Fatal("no error found")
	}
	if kind, name, ok := we.StreamDenied(); !ok || kind != "schema" || name != "pglogical" {
		t.Errorf("StreamDenied: %q %q %t", kind, name, ok)
	}
	if _, _, ok := (WorkerError{Error: `could not send replication command "START_REPLICATION SLOT "s" LOGICAL 0/1 (...)": ERROR:  replication slot "s" is active for PID 17280`}).StreamDenied(); ok {
		t.Error("a slot in use is not a refusal for want of a privilege")
	}
	report := func(code string, role string) *diagnose.Report {
		return &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "Sub 0", Subscriber: "s", Provider: "p", Status: probe.StatusDown,
			Health: diagnose.Critical, ProviderRole: role,
			Findings: []diagnose.Finding{{Code: code, Severity: diagnose.Critical, Remedy: diagnose.RemedyRestart, Message: "down."}}}}}
	}
	we.Subscription = "Sub 0"
	r := report(diagnose.CodeStuckDown, "Repl")
	Annotate(r, "s", "log/x.log", Errors{we})
	f := r.Subscriptions[0].Findings[0]
	if f.Code != diagnose.CodeProviderConnectFailed || f.Remedy != "" || !f.Human || f.Severity != diagnose.Critical ||
		!strings.Contains(f.Message, `subscription Sub 0 is down: provider p refuses to stream to it: the role of its provider connection, "Repl", may not use schema pglogical on the provider`) ||
		!strings.Contains(f.Message, `To fix, run on p: GRANT USAGE ON SCHEMA pglogical TO "Repl"; then pglmon repair --subscription 'Sub 0' --remedy restart`) ||
		!strings.HasSuffix(f.Message, `(log/x.log): 2026-12-07 23:16:10.812 UTC [5916] FATAL: could not send replication command "START_REPLICATION SLOT "pgl_labdb_provider_labdb_sub_0" LOGICAL 0/1A42A48 (...)": ERROR:  permission denied for schema pglogical`) {
		t.Errorf("stuck_down: %+v", f)
	}
	r = report(diagnose.CodeSubscriptionDown, "")
	Annotate(r, "s", "log/x.log", Errors{we})
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeSubscriptionDown ||
		!strings.Contains(f.Message, "down; the provider refuses to stream to it: the role of its provider connection, <role>, may not use schema pglogical") ||
		!strings.Contains(f.Message, "(to fix, run on p: GRANT USAGE ON SCHEMA pglogical TO <role>;)") {
		t.Errorf("subscription_down: %+v", f)
	}
}

// splitLine cuts a line where the regular expression it replaced did.
func TestSplitLine(t *testing.T) {
	re := regexp.MustCompile(`^(.*?)\b(LOG|ERROR|FATAL|CONTEXT|DETAIL|HINT|STATEMENT|WARNING):\s+(.*)$`)
	for _, line := range []string{
		"2026-11-24 19:00:17.846 UTC [12848] LOG:  starting apply for subscription sub_0",
		"2026-11-24 19:00:17 UTC:10.0.0.9(5432):app@db:[12850]:ERROR:  relation \"nope\" does not exist",
		"2026-11-24 19:00:17 UTC::@:[12848]:LOG:  x LOG:  y",
		"[1] XLOG:  not a level",
		"[1] _LOG:  not a level",
		"[1] LOG:no space",
		"[1] LOG:no space, then ERROR:\ta tab",
		"[1] LOG:",
		"[1] LOG: ",
		"[1] LOG: \r",
		"[1] STATEMENT:  COPY \"public\".\"t\" (\"a\") FROM stdin\r",
		"LOG:  at the start",
		"é LOG:  after a non-ASCII byte",
		"éLOG:  right after a non-ASCII byte",
		"9LOG:  after a digit",
		"[1] HINT:\f form feed",
		"no level here: at all",
		"",
		":::",
	} {
		prefix, level, msg, ok := splitLine(line)
		m := re.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if (m != nil) != ok || m != nil && (m[1] != prefix || m[2] != level || m[3] != msg) {
			t.Errorf("%q: got %q %q %q %v, the expression %q", line, prefix, level, msg, ok, m)
		}
	}
}

// The barrier's last line is found among lines that only mention it.
func TestLastBarrierHolderSkipsOtherMentions(t *testing.T) {
	text := "2026-11-24 19:00:17.846 UTC [5] LOG:  still waiting for backend with PID 42 to accept ProcSignalBarrier\n" +
		"2026-11-24 19:00:18.000 UTC [6] STATEMENT:  SELECT 'still waiting for backend with PID 7 to accept ProcSignalBarrier'\n"
	if h, ok := LastBarrierHolder(text); !ok || h.PID != 42 || h.Prefix != "2026-11-24 19:00:17.846 UTC [5]" {
		t.Errorf("got %+v %v", h, ok)
	}
	if _, ok := LastBarrierHolder(text[strings.IndexByte(text, '\n')+1:]); ok {
		t.Error("a statement that quotes the line is taken for it")
	}
}
