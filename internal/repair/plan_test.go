package repair

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// data_divergence's plan is for a person: both ways to repair, and where
// resynchronising loses rows (an archive's) or copying by key does not apply.
func TestDataDivergencePlan(t *testing.T) {
	f := diagnose.Finding{Code: diagnose.CodeDataDivergence, Message: "public.orders: 3 rows differ", Human: true}
	s := diagnose.Subscription{Name: "sub_o'1", Subscriber: "sub", Provider: "prov"}
	p := HumanPlan(f, s)
	if !p.Human {
		t.Error("not for a person")
	}
	for _, want := range []string{
		"public.orders: 3 rows differ",
		"SELECT pglogical.alter_subscription_resynchronize_table('sub_o''1', 'schema.table');",
		`pglmon verify --config FILE --subscription 'sub_o'\''1' --table schema.table --copy-script rows.psql`,
		"A table without primary key has its rows named by their contents",
		"resynchronising it undoes them; copy the differing rows instead",
	} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, p.Text)
		}
	}
}

// table_left_set's plan names each table as SQL reads it in the SQL and as
// verify's --table takes it on the command line, and puts it back in a set
// of the subscription that holds tables of rows.
func TestTableLeftSetPlan(t *testing.T) {
	f := diagnose.Finding{Code: diagnose.CodeTableLeftSet, Message: "m", Human: true}
	s := diagnose.Subscription{Name: "sub_1", Subscriber: "sub", Provider: "prov", ReplicationSets: []string{"pglmon_heartbeat", "app"},
		TablesLeftSets: []string{"Sales.Order Lines", "public.t"}}
	p := HumanPlan(f, s)
	for _, want := range []string{
		`SELECT pglogical.replication_set_add_table('app', '"Sales"."Order Lines"', synchronize_data := false);`,
		`SELECT pglogical.replication_set_add_table('app', 'public.t', synchronize_data := false);`,
		`SELECT pglogical.alter_subscription_resynchronize_table('sub_1', '"Sales"."Order Lines"');`,
		`pglmon verify --config FILE --subscription sub_1 --table '"Sales"."Order Lines"' --copy-script rows.psql`,
		`pglmon verify --config FILE --subscription sub_1 --table public.t --copy-script rows.psql`,
		`sub.sub_name = 'sub_1' AND s.sync_status = 'r'
        AND (s.sync_nspname::text, s.sync_relname::text) IN (('Sales', 'Order Lines'), ('public', 't'));`,
	} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, p.Text)
		}
	}
	s.ReplicationSets = []string{"pglmon_heartbeat", "ddl_sql"}
	if p := HumanPlan(f, s); !strings.Contains(p.Text, `replication_set_add_table('<set>', 'public.t'`) {
		t.Errorf("no set of rows: %s", p.Text)
	}
}

// sequence_behind's plan sends each sequence's value from the provider,
// named as SQL reads it.
func TestSequenceBehindPlan(t *testing.T) {
	f := diagnose.Finding{Code: diagnose.CodeSequenceBehind, Message: "m", Human: true}
	s := diagnose.Subscription{Name: "sub_1", Subscriber: "sub", Provider: "prov",
		SequencesBehind: []diagnose.SequenceBehind{{Sequence: `"Sales"."Orders_id_seq"`}, {Sequence: "public.t_id_seq"}}}
	p := HumanPlan(f, s)
	for _, want := range []string{
		"  -- on provider prov\n  SELECT pglogical.synchronize_sequence('\"Sales\".\"Orders_id_seq\"');\n  SELECT pglogical.synchronize_sequence('public.t_id_seq');\nIt reaches subscriber sub",
		"pglmon verify --config FILE --subscription sub_1\n",
	} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, p.Text)
		}
	}
}

// Every pglmon and psql command line a plan prints is one a person can paste
// into a shell: a subscription named with a quote, a space and a $, and a
// connection string with a quoted value, reach the command as one argument
// each, unchanged (run by a real bash, the commands replaced by functions
// that print their arguments).
func TestPlanCommandLinesQuoteNames(t *testing.T) {
	name := "it's $sub 0"
	conninfo := "host=db.example port=5432 dbname=app user=rep application_name='a b'"
	s := diagnose.Subscription{Name: name, Subscriber: "sub", Provider: "prov", SlotName: "pgl_app_prov_it_s", ProviderConninfo: conninfo, ProviderInterface: "prov_if", ProviderNode: "prov"}
	checked := 0
	for _, code := range []string{diagnose.CodeSlotMissing, diagnose.CodeDataDivergence, diagnose.CodeSchemaMismatch,
		diagnose.CodeApplyError, diagnose.CodeApplyBlocked, diagnose.CodeSlotInUse, diagnose.CodeProviderConnectFailed,
		diagnose.CodeNotStreaming, diagnose.CodeTableLeftSet, diagnose.CodeProviderElsewhere, diagnose.CodeForwardLoop, diagnose.CodeTableCopyRefused,
		diagnose.CodeSequenceBehind, diagnose.CodeTableSyncError, diagnose.CodeCopyNotPermitted} {
		p := HumanPlan(diagnose.Finding{Code: code, Message: "m (CONTEXT: apply INSERT in commit before 0/1972DB0)", Human: true}, s)
		var lines []string
		for _, l := range strings.Split(p.Text, "\n") {
			i := strings.Index(l, "pglmon ")
			if j := strings.Index(l, "psql "); i < 0 || (j >= 0 && j < i) {
				i = j
			}
			if i < 0 {
				continue
			}
			line := l[i:]
			if strings.Contains(l[:i], "(") {
				// A command in parentheses: "(watch: pglmon status ...)."
				line = line[:strings.LastIndex(line, ")")]
			}
			if strings.Contains(line, "--subscription") || strings.HasPrefix(line, "psql \"") || strings.HasPrefix(line, "psql '") {
				lines = append(lines, line)
			}
		}
		if len(lines) == 0 {
			t.Errorf("%s: no command line naming the subscription:\n%s", code, p.Text)
		}
		for _, line := range lines {
			script := `pglmon() { printf '%s\0' "$@"; }; psql() { printf '%s\0' "$@"; }; sub=X; ` + line
			out, err := exec.Command("bash", "-c", script).Output()
			if err != nil {
				t.Fatalf("%s: %s: %v", code, line, err)
			}
			args := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
			want := name
			flag := "--subscription"
			if strings.HasPrefix(line, "psql") {
				want, flag = conninfo+" connect_timeout=5", ""
			}
			i := 0
			if flag != "" {
				for i < len(args) && args[i] != flag {
					i++
				}
				i++
			}
			if i >= len(args) || args[i] != want {
				t.Errorf("%s: %s\n  reaches the command as %q, want %q after %q", code, line, args, want, flag)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Errorf("%d command lines checked", checked)
	}
}

// schema_mismatch's plan gives each column of another type the provider's
// type on the subscriber, and an enum short of labels those labels where
// the provider has them; names quoted as SQL needs.
func TestSchemaMismatchPlanGivesTheProviderTypes(t *testing.T) {
	s := diagnose.Subscription{Name: "sub", Subscriber: "sub", Provider: "prov", ReplicationSets: []string{"set_0"}, ColumnTypes: []diagnose.TypeDiff{
		{Table: "Sales.Order Lines", Column: "Qty", Provider: "bigint", Subscriber: "integer", Effect: diagnose.TypeBreaks, Binary: true},
		{Table: "public.t", Column: "at", Provider: "timestamp with time zone", Subscriber: "timestamp without time zone", Effect: diagnose.TypeShifts, Binary: true},
		{Table: "public.t", Column: "m", Provider: "mood", Subscriber: "mood", Effect: diagnose.TypeLimits, Binary: true,
			Enum: "public.mood", MissingLabels: []string{"new0", "it's"}, LabelPositions: []string{"BEFORE 'sad'", "AFTER 'happy'"}},
	}}
	s.Keys = []diagnose.KeyDiff{
		{Table: "public.nokey", Effect: diagnose.KeyMissing, Provider: []string{"id", "Part"}},
		{Table: "public.wide", Effect: diagnose.KeySkips, Provider: []string{"id"}, Subscriber: []string{"id", "n"}},
	}
	p := HumanPlan(diagnose.Finding{Code: diagnose.CodeSchemaMismatch, Message: "m", Human: true}, s)
	for _, want := range []string{
		`ALTER TABLE public.nokey ADD PRIMARY KEY (id, "Part");`,
		`ALTER TABLE public.wide DROP CONSTRAINT <its primary key: \d public.wide names it>, ADD PRIMARY KEY (id);   -- (id, n) there now`,
		"pglmon verify --config FILE --subscription sub\n--copy-script rows.psql",
		`ALTER TABLE "Sales"."Order Lines" ALTER COLUMN "Qty" TYPE bigint USING "Qty"::bigint;   -- integer there now`,
		`ALTER TABLE public.t ALTER COLUMN at TYPE timestamp with time zone USING at::timestamp with time zone;`,
		"SET TimeZone = 'UTC'",
		`ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'new0' BEFORE 'sad';   -- column m of public.t`,
		`ALTER TYPE public.mood ADD VALUE IF NOT EXISTS 'it''s' AFTER 'happy';`,
		"replicate_ddl_command",
	} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, p.Text)
		}
	}
}

// provider_rewound's written plan (Slack's, the held finding's): while it
// lasts, the choice between following the restored provider and keeping the
// subscriber's data; always, the verification.
func TestProviderRewoundPlan(t *testing.T) {
	f := diagnose.Finding{Code: diagnose.CodeProviderRewound, Human: true}
	s := diagnose.Subscription{Name: "sub_o'1", Subscriber: "sub", Provider: "prov",
		Rewound: &diagnose.Rewind{OriginLSN: "0/3000000", ProviderLSN: "0/1000100", SlotConfirmedLSN: "0/1000000"}}
	live := HumanPlan(f, s).Text
	for _, want := range []string{
		"Provider prov is behind what subscriber sub applied from it",
		`pglmon repair --config FILE --subscription 'sub_o'\''1' --remedy rewind-origin`,
		"SELECT pglogical.alter_subscription_disable('sub_o''1', true);",
		`pglmon verify --config FILE --subscription 'sub_o'\''1' --copy-script rows.psql`,
	} {
		if !strings.Contains(live, want) {
			t.Errorf("plan lacks %q:\n%s", want, live)
		}
	}
	s.Rewound = nil
	held := HumanPlan(f, s).Text
	if strings.Contains(held, "rewind-origin") || !strings.Contains(held, "pglmon verify --config FILE --subscription") {
		t.Errorf("the held finding's plan:\n%s", held)
	}
	unsure := HumanPlan(diagnose.Finding{Code: diagnose.CodeProviderTimelineChanged, Human: true}, s).Text
	if strings.Contains(unsure, "rewind-origin") || !strings.Contains(unsure, "Provider prov went on to a new timeline") ||
		!strings.Contains(unsure, `pglmon verify --config FILE --subscription 'sub_o'\''1' --copy-script rows.psql`) {
		t.Errorf("provider_timeline_changed's plan:\n%s", unsure)
	}
	lost := HumanPlan(diagnose.Finding{Code: diagnose.CodeSubscriberRewound, Human: true}, s).Text
	if !strings.Contains(lost, "Subscriber sub lost changes it had applied from provider prov") ||
		!strings.Contains(lost, `pglmon verify --config FILE --subscription 'sub_o'\''1' --copy-script rows.psql`) ||
		!strings.Contains(lost, "SELECT pglogical.alter_subscription_resynchronize_table('sub_o''1', 'schema.table');") {
		t.Errorf("subscriber_rewound's plan:\n%s", lost)
	}
	moved := HumanPlan(diagnose.Finding{Code: diagnose.CodeSlotAdvanced, Human: true, Slot: "pgl_x"}, s).Text
	if !strings.Contains(moved, `Provider prov's slot pgl_x moved on while subscription 'sub_o'\''1' could not consume it`) ||
		!strings.Contains(moved, `pglmon verify --config FILE --subscription 'sub_o'\''1' --copy-script rows.psql`) {
		t.Errorf("slot_advanced's plan:\n%s", moved)
	}
	// heartbeats_lost names the carrier's siblings, which it could not
	// measure: verify them too.
	beats := HumanPlan(diagnose.Finding{Code: diagnose.CodeHeartbeatsLost, Human: true}, s).Text
	if !strings.Contains(beats, `pglmon verify --config FILE --subscription 'sub_o'\''1' --copy-script rows.psql`) || strings.Contains(beats, "Verify them too") {
		t.Errorf("heartbeats_lost's plan:\n%s", beats)
	}
	beats = HumanPlan(diagnose.Finding{Code: diagnose.CodeHeartbeatsLost, Human: true, Subscriptions: []string{"sub_2", "it's"}}, s).Text
	if !strings.Contains(beats, "The other subscriptions from prov on sub do not carry the heartbeats") ||
		!strings.Contains(beats, "Verify them too:\n  pglmon verify --config FILE --subscription sub_2\n  pglmon verify --config FILE --subscription 'it'\\''s'\n") {
		t.Errorf("heartbeats_lost's plan with siblings:\n%s", beats)
	}
}

// apply_error's plan for DDL queued through pglogical and for a conflict
// under pglogical.conflict_resolution = error: their own way out first,
// the skip of the transaction named in the CONTEXT after.
func TestApplyErrorPlans(t *testing.T) {
	s := diagnose.Subscription{Name: "sub_0", Subscriber: "sub", Provider: "prov", SlotName: "pgl_db_prov_sub_0"}
	ctx := " (CONTEXT: apply INSERT from remote relation public.Items in commit before 0/1A429B0, xid 732 committed at 2026-12-07 20:45:34.99+00 (action #2) from node replorigin 1)"
	for name, tc := range map[string]struct {
		message string
		want    []string
	}{
		"ddl": {"subscription sub_0 is down: its apply worker fails to run DDL queued on provider prov through pglogical.replicate_ddl_command (ALTER TABLE t ADD c int), which subscriber sub refuses" + ctx,
			[]string{"pglogical runs DDL queued on the provider", "create what it needs that only provider prov has", "the subscriber has the change already",
				"--remedy skip-transaction --lsn 0/1A429B0", "--remedy restart"}},
		"conflict": {"subscription sub_0 is down: pglogical.conflict_resolution is error on subscriber sub, so ... ERROR: cannot apply conflicting row" + ctx,
			[]string{"a) take the subscriber's rows out of the way.\n    The provider's transaction (xid 732) wrote these rows of public.\"Items\"", `SELECT * FROM public."Items" WHERE xmin = '732'::xid;`,
				"On subscriber sub, delete or correct the rows with the keys the provider's change writes", "--remedy skip-transaction --lsn 0/1A429B0", "to apply_remote"}},
		"conflict on an update": {"subscription sub_0 is down: pglogical.conflict_resolution is error on subscriber sub, so ... ERROR: cannot apply conflicting row" + strings.Replace(ctx, "apply INSERT", "apply UPDATE", 1),
			[]string{"a) the provider's rows win, this once.\n    The provider's transaction (xid 732)", `SELECT * FROM public."Items" WHERE xmin = '732'::xid;`,
				"deleting it instead would have the update skipped", "set pglogical.conflict_resolution = apply_remote on subscriber\n    sub", "and once it replicates, set error again"}},
		"conflict, no context": {"subscription sub_0 is down: pglogical.conflict_resolution is error on subscriber sub, so ... ERROR: cannot apply conflicting row",
			[]string{"a) take the subscriber's rows out of the way.\n    On subscriber sub, delete or correct the rows with the keys the provider's change writes", "--remedy skip-transaction --lsn <LSN>"}},
		"a row refused": {"subscription sub_0 is down: its apply worker fails on a change the subscriber refuses" + ctx,
			[]string{"make the change applicable on subscriber sub", "a trigger\n    of the subscriber's", "--remedy skip-transaction --lsn 0/1A429B0"}},
	} {
		p := HumanPlan(diagnose.Finding{Code: diagnose.CodeApplyError, Message: tc.message, Human: true}, s)
		for _, want := range tc.want {
			if !strings.Contains(p.Text, want) {
				t.Errorf("%s: plan lacks %q:\n%s", name, want, p.Text)
			}
		}
	}
}

// provider_connection_failed where the provider accepts the connection
// and refuses to stream (serverlog.StreamDenied): the grant and a restart,
// not a new connection string.
func TestStreamDeniedPlan(t *testing.T) {
	s := diagnose.Subscription{Name: "sub 0", Subscriber: "sub", Provider: "prov", ProviderInterface: "repl_if"}
	msg := "subscription sub 0 is down: provider prov refuses to stream to it: the role of its provider connection, repl, may not use schema pglogical on the provider. To fix, run on prov: GRANT USAGE ON SCHEMA pglogical TO repl; then ..."
	p := HumanPlan(diagnose.Finding{Code: diagnose.CodeProviderConnectFailed, Message: msg, Human: true}, s)
	for _, want := range []string{msg, "The connection string is right", "pglmon repair --config FILE --subscription 'sub 0' --remedy restart"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("plan lacks %q:\n%s", want, p.Text)
		}
	}
	if strings.Contains(p.Text, "alter_node_add_interface") {
		t.Errorf("a new connection string offered:\n%s", p.Text)
	}

	// A change its role may not decode (serverlog.AnnotateDecoding): the
	// grant, or a role that could use the schema then, through an
	// interface of its own, then back.
	s.ProviderNode, s.ProviderConninfo = "prov_node", "host=10.0.0.5 port=5432 dbname=app user=repl sslmode=require"
	msg = "subscription sub 0 is down: its walsender on provider prov fails decoding the change at 0/1A6ABC0 for the role of its provider connection, repl, which may not use schema pglogical (...)"
	p = HumanPlan(diagnose.Finding{Code: diagnose.CodeProviderConnectFailed, Message: msg, Human: true}, s)
	for _, want := range []string{msg, "--subscription 'sub 0' --remedy restart", "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'pglogical';",
		"SELECT pglogical.alter_node_add_interface('prov_node', 'repl_if_owner', 'host=10.0.0.5 port=5432 dbname=app sslmode=require user=<owner> password=<its password>');",
		"SELECT pglogical.alter_subscription_interface('sub 0', 'repl_if_owner');", "is past 0/1A6ABC0",
		"SELECT pglogical.alter_subscription_interface('sub 0', 'repl_if');", "SELECT pglogical.alter_node_drop_interface('prov_node', 'repl_if_owner');"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("decoding: plan lacks %q:\n%s", want, p.Text)
		}
	}
	if !strings.Contains(p.Text, "GRANT USAGE ON SCHEMA pglogical TO <role>;") {
		t.Errorf("decoding, the role not known: plan:\n%s", p.Text)
	}

	// A row filter's function: its GRANT for the changes to come, and the
	// function's owner for those made.
	s.ProviderRole = "repl"
	msg = "subscription sub 0 is down: its walsender on provider prov fails decoding the change at 0/1A7AA60 for the role of its provider connection, repl, which may not execute function rf_ok (a row filter's, evaluated by the walsender as that role) (...)"
	p = HumanPlan(diagnose.Finding{Code: diagnose.CodeProviderConnectFailed, Message: msg, Human: true}, s)
	for _, want := range []string{"GRANT EXECUTE ON FUNCTION rf_ok TO repl;", "(b is needed whatever it does)", "SELECT DISTINCT proowner::regrole FROM pg_proc WHERE proname = 'rf_ok';",
		"SELECT pglogical.alter_subscription_interface('sub 0', 'repl_if_owner');", "is past 0/1A7AA60"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("function: plan lacks %q:\n%s", want, p.Text)
		}
	}
	if strings.Contains(p.Text, "nspowner") || strings.Contains(p.Text, "GRANT USAGE") {
		t.Errorf("function: the schema's plan:\n%s", p.Text)
	}
}
