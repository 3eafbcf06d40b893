package serverlog

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

// A provider's log as PostgreSQL 15 with pglogical 2.4.2 wrote it (the
// demo, a role whose USAGE on schema pglogical was revoked, then granted
// again): walsenders that fail decoding a change of the slot at each
// start, one of another slot that started since and streams, and one that
// failed in the startup callback.
const decodingLog = `2026-12-07 23:23:37.530 UTC [9589] LOG:  starting logical decoding for slot "pgl_labdb_provider_labdb_sub_0"
2026-12-07 23:23:37.530 UTC [9589] DETAIL:  Streaming transactions committing after 0/1A6A450, reading WAL from 0/1A6A418.
2026-12-07 23:23:37.534 UTC [9589] ERROR:  permission denied for schema pglogical
2026-12-07 23:23:37.534 UTC [9589] CONTEXT:  slot "pgl_labdb_provider_labdb_sub_0", output plugin "pglogical_output", in the change callback, associated LSN 0/1A6A450
2026-12-07 23:23:37.534 UTC [9589] STATEMENT:  START_REPLICATION SLOT "pgl_labdb_provider_labdb_sub_0" LOGICAL 0/1A6A418 (expected_encoding 'UTF8')
2026-12-07 23:23:40.100 UTC [9590] ERROR:  permission denied for schema pglogical
2026-12-07 23:23:40.100 UTC [9590] CONTEXT:  slot "pgl_other", output plugin "pglogical_output", in the change callback, associated LSN 0/1A6A500
2026-12-07 23:23:41.000 UTC [9600] LOG:  starting logical decoding for slot "pgl_other"
2026-12-07 23:23:42.544 UTC [9604] LOG:  starting logical decoding for slot "pgl_labdb_provider_labdb_sub_0"
2026-12-07 23:23:42.548 UTC [9604] ERROR:  permission denied for schema pglogical
2026-12-07 23:23:42.548 UTC [9604] CONTEXT:  slot "pgl_labdb_provider_labdb_sub_0", output plugin "pglogical_output", in the change callback, associated LSN 0/1A6ABC0
2026-12-07 23:23:43.000 UTC [9610] ERROR:  permission denied for schema pglogical
2026-12-07 23:23:43.000 UTC [9610] CONTEXT:  slot "pgl_start", output plugin "pglogical_output", in the startup callback
2026-12-07 23:23:44.000 UTC [9611] ERROR:  relation "public.t" does not exist
2026-12-07 23:23:44.000 UTC [9611] STATEMENT:  SELECT * FROM t
`

func TestDecodingErrors(t *testing.T) {
	got := DecodingErrors(decodingLog)
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if de := got["pgl_labdb_provider_labdb_sub_0"]; de.Error != "ERROR: permission denied for schema pglogical" || de.Callback != "change" || de.LSN != "0/1A6ABC0" ||
		de.Prefix != "2026-12-07 23:23:42.548 UTC [9604]" {
		t.Errorf("the last of the slot's errors: %+v", de)
	}
	if de := got["pgl_start"]; de.Callback != "startup" || de.LSN != "" {
		t.Errorf("startup: %+v", de)
	}
	// pgl_other: a walsender started since and raised nothing.
	if _, ok := got["pgl_other"]; ok {
		t.Errorf("pgl_other streams again: %+v", got["pgl_other"])
	}
	// RDS's log_line_prefix.
	rds := strings.ReplaceAll(decodingLog, " UTC [", " UTC:10.0.0.9(5432):repl@labdb:[")
	rds = strings.NewReplacer("] LOG:", "]:LOG:", "] ERROR:", "]:ERROR:", "] CONTEXT:", "]:CONTEXT:").Replace(rds)
	if got := DecodingErrors(rds); len(got) != 2 || got["pgl_labdb_provider_labdb_sub_0"].LSN != "0/1A6ABC0" {
		t.Errorf("RDS prefix: %+v", got)
	}
}

// A down subscription whose walsender fails decoding a change for want of
// USAGE on schema pglogical: provider_connection_failed, with the LSN and
// the way out; another error is added to the stuck_down, which keeps its
// restart; a subscription of another provider, or replicating, is left
// alone.
func TestAnnotateDecoding(t *testing.T) {
	errs := DecodingErrors(decodingLog)
	report := func(provider, slot, status string) *diagnose.Report {
		return &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "s", Provider: provider, SlotName: slot, Status: status,
			ProviderRole: "repl", Findings: []diagnose.Finding{{Code: diagnose.CodeStuckDown, Severity: diagnose.Critical, Remedy: diagnose.RemedyRestart,
				Message: "down; the last error of its apply worker in the subscriber's log (s.log): t [1] ERROR: data stream ended"}}}}}
	}
	r := report("p", "pgl_labdb_provider_labdb_sub_0", probe.StatusDown)
	AnnotateDecoding(r, "p", "p.log", errs)
	f := r.Subscriptions[0].Findings[0]
	for _, want := range []string{"subscription sub_0 is down: its walsender on provider p fails decoding the change at 0/1A6ABC0 for the role of its provider connection, repl, which may not use schema pglogical",
		"(the provider's log, p.log: 2026-12-07 23:23:42.548 UTC [9604] ERROR: permission denied for schema pglogical (in the output plugin's change callback, at 0/1A6ABC0))",
		"reads the catalogs as they were when the change was made", "to a provider connection as a role that could use schema pglogical then"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}
	if f.Code != diagnose.CodeProviderConnectFailed || f.Remedy != "" || !f.Human || f.Severity != diagnose.Critical {
		t.Errorf("finding: %+v", f)
	}
	other := map[string]DecodingError{"pgl_x": {Slot: "pgl_x", Prefix: "t [2]", Error: "ERROR: out of memory", Callback: "change", LSN: "0/10"}}
	r = report("p", "pgl_x", probe.StatusDown)
	AnnotateDecoding(r, "p", "p.log", other)
	if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeStuckDown || f.Remedy != diagnose.RemedyRestart ||
		!strings.HasSuffix(f.Message, "ERROR: data stream ended; its walsender on provider p fails decoding its slot (the provider's log, p.log): t [2] ERROR: out of memory (in the output plugin's change callback, at 0/10)") {
		t.Errorf("another error: %+v", f)
	}
	for name, r := range map[string]*diagnose.Report{
		"another provider": report("q", "pgl_labdb_provider_labdb_sub_0", probe.StatusDown),
		"replicating":      report("p", "pgl_labdb_provider_labdb_sub_0", probe.StatusReplicating),
	} {
		AnnotateDecoding(r, "p", "p.log", errs)
		if f := r.Subscriptions[0].Findings[0]; f.Code != diagnose.CodeStuckDown || strings.Contains(f.Message, "walsender") {
			t.Errorf("%s: %+v", name, f)
		}
	}
}

// A row filter's function the role may not execute (the demo, measured
// with pglogical 2.4.2): the finding names the function and its GRANT,
// and says the changes already made need another role whatever the GRANT
// does; the schema's finding keeps its own way.
func TestAnnotateDecodingFunction(t *testing.T) {
	log := `2026-12-08 02:11:02.908 UTC [7549] LOG:  starting logical decoding for slot "pgl_s"
2026-12-08 02:11:02.914 UTC [7549] ERROR:  permission denied for function rf_ok
2026-12-08 02:11:02.914 UTC [7549] CONTEXT:  slot "pgl_s", output plugin "pglogical_output", in the change callback, associated LSN 0/1A7AA60
`
	r := &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "s", Provider: "p", SlotName: "pgl_s", Status: probe.StatusDown,
		ProviderRole: "demo_copier", Findings: []diagnose.Finding{{Code: diagnose.CodeStuckDown, Severity: diagnose.Critical, Remedy: diagnose.RemedyRestart, Message: "down"}}}}}
	AnnotateDecoding(r, "p", "p.log", DecodingErrors(log))
	f := r.Subscriptions[0].Findings[0]
	for _, want := range []string{"for the role of its provider connection, demo_copier, which may not execute function rf_ok (a row filter's, evaluated by the walsender as that role)",
		"also after a GRANT", "Grant it for the changes to come (GRANT EXECUTE ON FUNCTION rf_ok TO demo_copier;), and move the subscription, until it has applied past the changes already made"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}
	if f.Code != diagnose.CodeProviderConnectFailed || strings.Contains(f.Message, "If it still lacks it") {
		t.Errorf("finding: %+v", f)
	}
	r.Subscriptions[0].Findings[0] = diagnose.Finding{Code: diagnose.CodeStuckDown, Message: "down"}
	AnnotateDecoding(r, "p", "p.log", DecodingErrors(strings.ReplaceAll(log, "function rf_ok", "schema pglogical")))
	if f := r.Subscriptions[0].Findings[0]; !strings.Contains(f.Message, "If it still lacks it, grant it (GRANT USAGE ON SCHEMA pglogical TO demo_copier;) and restart; else move") {
		t.Errorf("schema: %s", f.Message)
	}
}
