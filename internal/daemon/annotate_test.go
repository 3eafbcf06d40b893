package daemon

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/serverlog"
	"github.com/pglmon/pglmon/internal/verified"
	"github.com/pglmon/pglmon/internal/verify"
)

// data_divergence names up to five differing keys of a keyed table; rows of
// a table without key are named by their contents, which stay out of the
// finding (it goes to Slack, logs and the status API).
func TestDataDivergenceKeepsRowContentsOut(t *testing.T) {
	v := &verifier{results: map[string]subResult{"subscriber/sub_0": {Subscriber: "subscriber", Subscription: "sub_0", Tables: []verify.TableResult{
		{Table: "public.orders", Scan: verify.ScanIndex, DifferingRows: 2, Keys: []verify.KeyDiff{{Key: "17", Kind: verify.Missing}, {Key: "42", Kind: verify.Different}}},
		{Table: "public.events", Scan: verify.ScanRows, DifferingRows: 1, Keys: []verify.KeyDiff{{Key: "(5,alice@example.com)", Kind: verify.Missing}}},
		{Table: "public.Audit", Scan: verify.ScanRows, DifferingRows: 1, Keys: []verify.KeyDiff{{Key: "(6,bob@example.com)", Kind: verify.Missing}}},
	}}}}
	rep := diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber"}}}
	v.annotate(&rep)
	f, ok := rep.Subscriptions[0].Finding(diagnose.CodeDataDivergence)
	if !ok || f.Severity != diagnose.Critical {
		t.Fatalf("findings: %+v", rep.Subscriptions[0].Findings)
	}
	for _, want := range []string{"public.orders: 2 rows differ (17 missing, 42 different)", "public.events: 1 row differs (rows named by their contents: pglmon verify --table public.events)",
		`public.Audit: 1 row differs (rows named by their contents: pglmon verify --table 'public."Audit"')`} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}
	if strings.Contains(f.Message, "alice@example.com") || strings.Contains(f.Message, "bob@example.com") {
		t.Errorf("a row's contents in the finding: %s", f.Message)
	}
}

// A failed first copy: its own finding while the subscription replicates;
// the cause of init_failed when that copy failed loudly; gone once the
// subscription initialises again, or is verified equal as a whole after
// pglmon read the failure.
func TestFailedFirstCopyAnnotated(t *testing.T) {
	read := time.Now()
	failed := serverlog.Copy{Subscription: "sub_0", Table: "public.cc", Prefix: "2026-12-04 17:38:57.534 UTC [10566]", Initial: true,
		Error: `ERROR: duplicate key value violates unique constraint "cc_pkey"`}
	watcher := func() *logWatcher {
		return &logWatcher{errs: map[string]serverlog.Errors{}, files: map[string]string{"subscriber": "/var/log/pg.log"},
			copies: map[string]map[string]heldCopy{"subscriber": {failed.Key(): {Copy: failed, seen: read}}}}
	}
	report := func(status string, findings ...diagnose.Finding) diagnose.Report {
		return diagnose.Report{Time: read.Add(time.Second), Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Status: status, Findings: findings}}}
	}
	never := func(string, string, string) time.Time { return time.Time{} }

	w := watcher()
	rep := report("replicating")
	w.annotate(&rep, never)
	f, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed)
	if !ok || f.Severity != diagnose.Critical || !f.Human || rep.Health != diagnose.Critical ||
		!strings.HasPrefix(f.Message, `pglogical's first copy of subscription sub_0 failed at table public.cc (ERROR: duplicate key value violates unique constraint "cc_pkey", the subscriber's log /var/log/pg.log at 2026-12-04 17:38:57.534 UTC [10566])`) {
		t.Fatalf("replicating: %+v", rep)
	}
	if _, ok := rep.Subscriptions[0].Finding(diagnose.CodeTableCopyFailed); ok {
		t.Error("also a table_copy_failed")
	}

	// Loud: down with init_failed, which names the cause.
	rep = report("down", diagnose.Finding{Code: diagnose.CodeInitFailed, Message: "subscription sub_0 is down"})
	w.annotate(&rep, never)
	if len(rep.Subscriptions[0].Findings) != 1 || !strings.Contains(rep.Subscriptions[0].Findings[0].Message, "; the cause: pglogical's first copy of subscription sub_0 failed at table public.cc") {
		t.Fatalf("init_failed: %+v", rep.Subscriptions[0].Findings)
	}

	// Verified equal as a whole before the failure was read: held; after: gone.
	verified := func(at time.Time) func(string, string, string) time.Time {
		return func(subscriber, sub, table string) time.Time {
			if subscriber == "subscriber" && sub == "sub_0" && table == "" {
				return at
			}
			return time.Time{}
		}
	}
	rep = report("replicating")
	w.annotate(&rep, verified(read.Add(-time.Minute)))
	if _, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed); !ok {
		t.Fatal("gone after a verification older than the failure")
	}
	w.annotate(&rep, verified(read.Add(time.Minute)))
	rep = report("replicating")
	w.annotate(&rep, never)
	if _, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed); ok {
		t.Fatal("held after the subscription was verified equal")
	}

	// Initialising again (set up anew), seen after the failure was read.
	w = watcher()
	rep = report(probe.StatusInitializing)
	rep.Time = read.Add(-time.Second) // a report probed before the read changes nothing
	w.annotate(&rep, never)
	rep = report("replicating")
	w.annotate(&rep, never)
	if _, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed); !ok {
		t.Fatal("gone after an older report said initializing")
	}
	rep = report(probe.StatusInitializing)
	w.annotate(&rep, never)
	rep = report("replicating")
	w.annotate(&rep, never)
	if _, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed); ok {
		t.Fatal("held after the subscription initialised again")
	}
	// The log's tail, read again, does not bring it back; a new failure does.
	if _, _, fresh := w.hold("subscriber", failed, time.Now()); fresh {
		t.Fatal("the same failure read again is news")
	}
	w.annotate(&rep, never)
	if _, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed); ok {
		t.Fatal("back after the log was read again")
	}
	again := failed
	again.Prefix = "2026-12-04 18:02:11.010 UTC [12001]"
	if _, _, fresh := w.hold("subscriber", again, time.Now()); !fresh {
		t.Fatal("a later failure is not news")
	}
	rep = report("replicating")
	rep.Time = time.Now().Add(time.Second)
	w.annotate(&rep, never)
	if f, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed); !ok || !strings.Contains(f.Message, "[12001]") {
		t.Fatalf("a later failure: %+v", rep.Subscriptions[0].Findings)
	}
}

// What the log watcher read is kept in its state file: a restarted daemon,
// reading the log's tail again, neither brings back a failed first copy
// put right since (the subscription initialised again) nor forgets one
// that still stands.
func TestHeldCopiesKeptAcrossRestarts(t *testing.T) {
	read := time.Now().Add(-time.Hour)
	first := serverlog.Copy{Subscription: "sub_0", Table: "public.cc", Prefix: "2026-12-04 17:38:57.534 UTC [10566]", Initial: true, Error: "ERROR: duplicate key"}
	other := serverlog.Copy{Subscription: "sub_1", Table: "public.dd", Prefix: "2026-12-04 17:40:00.000 UTC [10600]", Initial: true, Error: "ERROR: duplicate key"}
	path := filepath.Join(t.TempDir(), "server-log-state.json")
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	fresh := func() *logWatcher {
		w := &logWatcher{state: path, errs: map[string]serverlog.Errors{}, files: map[string]string{"subscriber": "pg.log"}}
		st, err := loadState[logState](path)
		if err != nil {
			t.Fatal(err)
		}
		w.restore(st)
		return w
	}
	report := func(at time.Time, status string) diagnose.Report {
		return diagnose.Report{Time: at, Subscriptions: []diagnose.Subscription{
			{Name: "sub_0", Subscriber: "subscriber", Status: status}, {Name: "sub_1", Subscriber: "subscriber", Status: "replicating"}}}
	}
	never := func(string, string, string) time.Time { return time.Time{} }

	w := fresh()
	for _, c := range []serverlog.Copy{first, other} {
		w.hold("subscriber", c, read)
	}
	rep := report(read.Add(time.Second), probe.StatusInitializing) // sub_0 set up anew
	w.annotate(&rep, never)
	w.keep(d)

	w = fresh()
	for _, c := range []serverlog.Copy{first, other} { // the tail, read again
		if _, _, news := w.hold("subscriber", c, time.Now()); news {
			t.Errorf("%s read again after a restart is news", c.Key())
		}
	}
	rep = report(time.Now(), "replicating")
	w.annotate(&rep, never)
	if _, ok := rep.Subscriptions[0].Finding(diagnose.CodeInitialCopyFailed); ok {
		t.Error("sub_0's failed first copy, put right before the restart, is back")
	}
	if _, ok := rep.Subscriptions[1].Finding(diagnose.CodeInitialCopyFailed); !ok {
		t.Error("sub_1's failed first copy is forgotten")
	}
	// Verified equal after it was read (before the restart): gone.
	w.annotate(&rep, func(_, sub, table string) time.Time {
		if sub == "sub_1" && table == "" {
			return read.Add(time.Minute)
		}
		return time.Time{}
	})
	w.keep(d)
	rep = report(time.Now(), "replicating")
	fresh().annotate(&rep, never)
	if f := append(rep.Subscriptions[0].Findings, rep.Subscriptions[1].Findings...); len(f) > 0 {
		t.Errorf("after the second restart: %+v", f)
	}
}

// The verifier keeps when it found tables equal: what clears a failed
// table copy after a restart.
func TestEqualSinceKeptAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "verify-state.json")
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	v := &verifier{equal: map[string]time.Time{"subscriber/sub_0/public.t2": at, "subscriber/sub_0/": at}}
	if err := (&stateFile{path}).save(v.snapshot()); err != nil {
		t.Fatal(err)
	}
	st, err := (&stateFile{path}).load()
	if err != nil {
		t.Fatal(err)
	}
	var again verifier
	again.restore(st)
	for _, table := range []string{"public.t2", ""} {
		if got := again.equalSince("subscriber", "sub_0", table); !got.Equal(at) {
			t.Errorf("equal since %q: %s after a restart, want %s", table, got, at)
		}
	}
}

// The conflicts read within the hour are kept: a restarted daemon holds
// the node's apply_conflicts finding for the rest of that hour (it does not
// read those lines again: it reads on from where it stopped).
func TestConflictsKeptAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server-log-state.json")
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := serverlog.Conflict{Prefix: "2026-12-04 21:00:02.281 UTC [29278]", Op: "UPDATE", Table: "public.items_0", Found: "tuple not found", Resolution: "skip"}
	w := &logWatcher{state: path, dirty: true, errs: map[string]serverlog.Errors{}, recent: map[string][]countedConflict{
		"subscriber": {{c, time.Now().Add(-10 * time.Minute)}, {c, time.Now().Add(-2 * time.Hour)}}}}
	w.keep(d)

	st, err := loadState[logState](path)
	if err != nil {
		t.Fatal(err)
	}
	again := &logWatcher{errs: map[string]serverlog.Errors{}}
	again.restore(st)
	rep := diagnose.Report{Nodes: []diagnose.Node{{Name: "subscriber"}}}
	again.annotate(&rep, nil)
	if len(rep.Nodes[0].Findings) != 1 {
		t.Fatalf("after a restart: %+v", rep.Nodes[0].Findings)
	}
	if f := rep.Nodes[0].Findings[0]; f.Code != diagnose.CodeApplyConflicts || !strings.Contains(f.Message, "pglogical resolved 1 conflict by itself on subscriber") ||
		!strings.Contains(f.Message, "1x public.items_0: remote UPDATE (tuple not found), resolution skip") {
		t.Errorf("after a restart: %+v", rep.Nodes[0].Findings)
	}
}

// pglmon repair reads the data_divergence the daemon holds (its state
// file): it observes the nodes afresh, and found nothing wrong with a
// subscription whose data differs (the shipped alert's runbook sends people
// to it). A verification run by hand that found the table equal after the
// scheduled one clears it there too; a missing state file holds nothing.
func TestStandingDivergenceReadFromTheDaemonsState(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse("test.yaml", []byte("nodes:\n  - name: subscriber\n    dsn: \"host=127.0.0.1 dbname=app\"\nrepair:\n  audit_log: "+filepath.Join(dir, "audit.jsonl")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	report := func() (*diagnose.Report, *diagnose.Subscription) {
		r := &diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber", Health: diagnose.OK}}}
		return r, &r.Subscriptions[0]
	}
	r, s := report()
	if err := StandingDivergence(cfg, r); err != nil || len(s.Findings) != 0 {
		t.Fatalf("no state file: %v, %+v", err, s.Findings)
	}
	at := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	v := &verifier{last: at, results: map[string]subResult{"subscriber/sub_0": {Subscriber: "subscriber", Subscription: "sub_0", At: at,
		Tables: []verify.TableResult{{Table: "public.items_0", DifferingRows: 3, Keys: []verify.KeyDiff{{Key: "18", Kind: verify.Missing}}}}}}}
	if err := (&stateFile{cfg.VerifyStateFile()}).save(v.snapshot()); err != nil {
		t.Fatal(err)
	}
	r, s = report()
	if err := StandingDivergence(cfg, r); err != nil {
		t.Fatal(err)
	}
	f, ok := s.Finding(diagnose.CodeDataDivergence)
	if !ok || !strings.Contains(f.Message, "public.items_0: 3 rows differ (18 missing)") || s.Health != diagnose.Critical {
		t.Fatalf("held divergence: %+v", s)
	}
	// Found equal by hand, by a verification that started after: gone.
	if err := verified.Record(cfg.VerifiedFile(), []verified.Entry{{Subscriber: "subscriber", Subscription: "sub_0", Table: "public.items_0", Since: at.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	r, s = report()
	if err := StandingDivergence(cfg, r); err != nil || len(s.Findings) != 0 {
		t.Errorf("after a verification by hand found it equal: %v, %+v", err, s.Findings)
	}
}
