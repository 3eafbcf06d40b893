package serverlog

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

// Lines as PostgreSQL 15 with pglogical 2.4.2 wrote them when DDL queued
// on the provider through pglogical.replicate_ddl_command named a table
// only the provider had: the CONTEXT's second level (the transaction the
// statement runs in, with its commit) is on a line of its own, after a tab.
const queuedSQLLog = `2026-12-07 20:19:49.962 UTC [7099] LOG:  starting apply for subscription sub_0
2026-12-07 20:19:50.122 UTC [7099] ERROR:  relation "public.only_prov" does not exist
2026-12-07 20:19:50.122 UTC [7099] CONTEXT:  during execution of queued SQL statement: ALTER TABLE public.only_prov ADD COLUMN w text
	apply QUEUED_SQL in commit before 0/1A475C0, xid 733 committed at 2026-12-07 20:19:49.97293+00 (action #2) from node replorigin 1
2026-12-07 20:19:50.122 UTC [7099] LOG:  apply worker [7099] at slot 2 generation 2 exiting with error
2026-12-07 20:19:50.125 UTC [6675] LOG:  background worker "pglogical apply 16384:3147399666" (PID 7099) exited with exit code 1
`

func TestQueuedDDLTheSubscriberRefuses(t *testing.T) {
	we, ok := WorkerErrors(queuedSQLLog).For("sub_0", "16384:3147399666")
	if !ok || we.QueuedSQL() != "ALTER TABLE public.only_prov ADD COLUMN w text" || !we.Permanent() ||
		!strings.Contains(we.Context, "ADD COLUMN w text apply QUEUED_SQL in commit before 0/1A475C0, xid 733") {
		t.Fatalf("%+v (queued %q)", we, we.QueuedSQL())
	}
	// A statement over several lines, with a password: each line joins the
	// CONTEXT, the password never.
	multi := strings.NewReplacer("ALTER TABLE public.only_prov ADD COLUMN w text", "CREATE ROLE app_ro LOGIN\n\tENCRYPTED PASSWORD 'it''s-Secret'\n\tIN ROLE reader",
		`relation "public.only_prov" does not exist`, `role "app_ro" already exists`).Replace(queuedSQLLog)
	we, ok = WorkerErrors(multi).For("sub_0", "")
	if !ok || we.QueuedSQL() != "CREATE ROLE app_ro LOGIN ENCRYPTED PASSWORD '(hidden)' IN ROLE reader" || strings.Contains(we.String(), "Secret") || !we.Permanent() {
		t.Errorf("%+v (queued %q)", we, we.QueuedSQL())
	}
	// A tab-led line after another process's line is not the CONTEXT's.
	other := strings.Replace(queuedSQLLog, "\tapply QUEUED_SQL", "2026-12-07 20:19:50.122 UTC [7100] LOG:  other\n\tapply QUEUED_SQL", 1)
	if we, _ := WorkerErrors(other).For("sub_0", ""); strings.Contains(we.Context, "QUEUED_SQL") {
		t.Errorf("another process's line joined: %+v", we)
	}
	// The same statement waiting on a lock, or cancelled, may pass.
	for _, e := range []string{"ERROR: canceling statement due to lock timeout", "ERROR: deadlock detected", "ERROR: canceling statement due to statement timeout"} {
		if w := (WorkerError{Error: e, Context: we.Context}); w.Permanent() {
			t.Errorf("%s: permanent", e)
		}
	}
	// stuck_down becomes apply_error, naming the statement and keeping the
	// commit the skip needs.
	r := &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Provider: "provider", Status: probe.StatusDown, Health: diagnose.Critical,
		Findings: []diagnose.Finding{{Code: diagnose.CodeStuckDown, Severity: diagnose.Critical, Remedy: diagnose.RemedyRestart, Message: "down."}}}}}
	Annotate(r, "subscriber", "server.log", WorkerErrors(multi))
	f := r.Subscriptions[0].Findings[0]
	for _, want := range []string{"fails to run DDL queued on provider provider through pglogical.replicate_ddl_command (CREATE ROLE app_ro LOGIN ENCRYPTED PASSWORD '(hidden)' IN ROLE reader), which subscriber subscriber refuses",
		`ERROR: role "app_ro" already exists`, "in commit before 0/1A475C0"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}
	if f.Code != diagnose.CodeApplyError || f.Remedy != "" || !f.Human || strings.Contains(f.Message, "Secret") {
		t.Errorf("%+v", f)
	}
}

// A trigger of the subscriber's raising the error: its function is in
// the CONTEXT, the apply's commit on the line after.
func TestATriggerRefusingARowIsPermanent(t *testing.T) {
	text := strings.NewReplacer(`relation "public.only_prov" does not exist`, "n 77 is not taken here",
		"during execution of queued SQL statement: ALTER TABLE public.only_prov ADD COLUMN w text", "PL/pgSQL function no_77() line 4 at RAISE",
		"apply QUEUED_SQL in commit", "apply INSERT from remote relation public.items_0 in commit").Replace(queuedSQLLog)
	we, ok := WorkerErrors(text).For("sub_0", "")
	if !ok || !we.Permanent() || we.QueuedSQL() != "" || !strings.Contains(we.String(), "at RAISE apply INSERT from remote relation public.items_0 in commit before 0/1A475C0") {
		t.Errorf("%+v", we)
	}
	if (WorkerError{Error: "ERROR: canceling statement due to statement timeout", Context: we.Context}).Permanent() {
		t.Error("a trigger's statement timeout: permanent")
	}
}

// pglogical.conflict_resolution = error: a conflict stops the worker
// with no CONFLICT line (pglogical 2.4.2's, measured on the demo).
func TestAConflictStopUnderResolutionError(t *testing.T) {
	text := strings.NewReplacer(`relation "public.only_prov" does not exist`, "cannot apply conflicting row",
		"during execution of queued SQL statement: ALTER TABLE public.only_prov ADD COLUMN w text\n\tapply QUEUED_SQL in commit",
		"apply INSERT from remote relation public.items_0 in commit").Replace(queuedSQLLog)
	r := &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Provider: "provider", Status: probe.StatusDown, Health: diagnose.Critical,
		Findings: []diagnose.Finding{{Code: diagnose.CodeStuckDown, Severity: diagnose.Critical, Remedy: diagnose.RemedyRestart, Message: "down."}}}}}
	Annotate(r, "subscriber", "server.log", WorkerErrors(text))
	f := r.Subscriptions[0].Findings[0]
	if f.Code != diagnose.CodeApplyError || f.Remedy != "" || !f.Human ||
		!strings.Contains(f.Message, "pglogical.conflict_resolution is error on subscriber subscriber") ||
		!strings.Contains(f.Message, "ERROR: cannot apply conflicting row (CONTEXT: apply INSERT from remote relation public.items_0 in commit before 0/1A475C0") {
		t.Errorf("%+v", f)
	}
}

func TestHidePasswords(t *testing.T) {
	for in, want := range map[string]string{
		"ALTER ROLE a PASSWORD 'x''y' VALID UNTIL 'infinity'":                 "ALTER ROLE a PASSWORD '(hidden)' VALID UNTIL 'infinity'",
		"CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password 'p')": "CREATE USER MAPPING FOR a SERVER s OPTIONS (user 'a', password '(hidden)')",
		"ALTER TABLE t ADD COLUMN password text DEFAULT 'x'":                  "ALTER TABLE t ADD COLUMN password text DEFAULT 'x'",
		"no secrets here": "no secrets here",
	} {
		if got := hidePasswords(in); got != want {
			t.Errorf("%s: %s", in, got)
		}
	}
}
