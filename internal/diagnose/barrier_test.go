package diagnose

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/probe"
)

// nodeFinding is node name's finding code in the report, if any.
func nodeFinding(r Report, name, code string) (Finding, bool) {
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if n.Name == name && f.Code == code {
				return f, true
			}
		}
	}
	return Finding{}, false
}

// A DROP DATABASE waiting past signal_barrier_wait for pglogical's workers
// to accept its barrier: the finding names it, the apply workers and the
// supervisor to end (in that order, with what each costs), never the
// manager (which accepts it), and warns against cancelling.
func TestSignalBarrierStuck(t *testing.T) {
	w := healthy()
	w.sub.PglogicalVersion = "2.4.2"
	wait := probe.BarrierWait{Session: probe.Session{PID: 7, User: "app", Application: "migrate", State: "active"}, Statement: "DROP DATABASE scratch", Seconds: 20,
		Pglogical: []probe.Process{{PID: 100, Type: "pglogical supervisor"}, {PID: 101, Type: "pglogical manager 16384"}, {PID: 102, Type: "pglogical apply 16384:1"}, {PID: 103, Type: "pglogical apply 16384:2"}}}
	w.sub.BarrierWaits = []probe.BarrierWait{wait}
	if f, ok := nodeFinding(w.run(), "s", CodeSignalBarrierStuck); ok {
		t.Errorf("20 s: %+v", f)
	}
	w.sub.BarrierWaits[0].Seconds = 95
	w.sub.BarrierWaits = append(w.sub.BarrierWaits, probe.BarrierWait{Session: probe.Session{PID: 8}, Seconds: 40})
	r := w.run()
	f, ok := nodeFinding(r, "s", CodeSignalBarrierStuck)
	if !ok || f.Severity != Warning || !f.Human || f.Remedy != "" {
		t.Fatalf("95 s: %+v", r.Nodes)
	}
	for _, want := range []string{
		"DROP DATABASE scratch, run by pid 7 (user app, application migrate), has waited 1m35s for every process of s to accept a ProcSignalBarrier",
		"; 1 more session(s) wait so",
		"pglogical 2.4.2 runs here: before 2.4.6 its supervisor and apply workers accept one only when something else wakes them",
		"Do not cancel a DROP DATABASE",
		"first the apply workers, SELECT pg_terminate_backend(pid) FROM unnest('{102,103}'::int[]) pid;",
		"That is often enough: their restart has the supervisor look at the databases",
		"If the log then names the supervisor, end it, SELECT pg_terminate_backend(100); pglogical does not start its supervisor again until PostgreSQL restarts",
		"Never end pglogical's manager",
		"pglogical 2.4.6 or later ends this",
	} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("lacks %q:\n%s", want, f.Message)
		}
	}
	if strings.Contains(f.Message, "101") || strings.Contains(f.Message, "active") || strings.Contains(f.Message, "manager 16384") {
		t.Errorf("names the manager or the state:\n%s", f.Message)
	}
	if n := r.Nodes[1]; len(n.BarrierWaits) != 2 {
		t.Errorf("node JSON: %+v", n.BarrierWaits)
	}
	// Fixed pglogical, DROP TABLESPACE: still waiting (someone else's
	// worker), but neither the version's blame nor the warning about an
	// invalid database.
	w.sub.PglogicalVersion = "2.4.6"
	w.sub.BarrierWaits = []probe.BarrierWait{{Session: probe.Session{PID: 9}, Statement: "DROP TABLESPACE t", Seconds: 60}}
	f, ok = nodeFinding(w.run(), "s", CodeSignalBarrierStuck)
	if !ok || strings.Contains(f.Message, "wakes them") || strings.Contains(f.Message, "cancel") || !strings.Contains(f.Message, "No pglogical process it may wait for runs here") {
		t.Errorf("fixed pglogical: %+v", f)
	}
	// Off.
	old := thresholds.SignalBarrierWait
	thresholds.SignalBarrierWait = 0
	defer func() { thresholds.SignalBarrierWait = old }()
	if f, ok := nodeFinding(w.run(), "s", CodeSignalBarrierStuck); ok {
		t.Errorf("off: %+v", f)
	}
}

// A server with pglogical preloaded and no supervisor (ended to let a DROP
// DATABASE finish) is a warning once it has run a minute.
func TestSupervisorNotRunning(t *testing.T) {
	w := healthy()
	w.sub.PglogicalVersion = "2.4.2"
	w.sub.Database = "appdb"
	w.sub.Workers = &probe.Workers{InUse: 2, Pglogical: 2, Max: 8, ManagerRunning: true, Preloaded: true, UptimeSeconds: 10}
	if f, ok := nodeFinding(w.run(), "s", CodeSupervisorNotRunning); ok {
		t.Errorf("server just started: %+v", f)
	}
	w.sub.Workers.UptimeSeconds = 3600
	f, ok := nodeFinding(w.run(), "s", CodeSupervisorNotRunning)
	if !ok || f.Severity != Warning || !strings.Contains(f.Message, "pglogical's supervisor is not running on s (the server has run for 1h0m0s)") ||
		!strings.Contains(f.Message, "Restart PostgreSQL at a quiet time") || strings.Contains(f.Message, "manager of database") {
		t.Errorf("no supervisor: %+v", f)
	}
	w.sub.Workers.ManagerRunning = false
	if f, _ := nodeFinding(w.run(), "s", CodeSupervisorNotRunning); !strings.Contains(f.Message, "the manager of database appdb is not running either: pglogical starts no worker there") {
		t.Errorf("no manager either: %+v", f)
	}
	for name, bend := range map[string]func(*probe.Workers){
		"running":       func(w *probe.Workers) { w.SupervisorRunning = true },
		"not preloaded": func(w *probe.Workers) { w.Preloaded = false },
	} {
		ws := *w.sub.Workers
		bend(w.sub.Workers)
		if f, ok := nodeFinding(w.run(), "s", CodeSupervisorNotRunning); ok {
			t.Errorf("%s: %+v", name, f)
		}
		*w.sub.Workers = ws
	}
	// Types hidden (no pg_read_all_stats): Workers is nil, nothing said.
	w.sub.Workers = nil
	if f, ok := nodeFinding(w.run(), "s", CodeSupervisorNotRunning); ok {
		t.Errorf("hidden: %+v", f)
	}
}

func TestOlderThan(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{{"2.4.2", true}, {"2.4.5", true}, {"2.4.6", false}, {"2.4.10", false}, {"2.5", false}, {"2.4", true}, {"3.0.0", false}, {"", false}, {"2.4.2-beta", false}} {
		if got := olderThan(c.v, "2.4.6"); got != c.want {
			t.Errorf("olderThan(%q) = %t", c.v, got)
		}
	}
}

// A database a cancelled DROP DATABASE left invalid is a warning with the
// statement that finishes it, and pglogical's part when its version has it.
func TestInvalidDatabase(t *testing.T) {
	w := healthy()
	if f, ok := nodeFinding(w.run(), "s", CodeInvalidDatabase); ok {
		t.Fatalf("healthy: %+v", f)
	}
	w.sub.PglogicalVersion = "2.4.2"
	w.sub.InvalidDatabases = []string{"scratch"}
	f, ok := nodeFinding(w.run(), "s", CodeInvalidDatabase)
	if !ok || f.Severity != Warning || !f.Human || !strings.Contains(f.Message, "database scratch on s is invalid") ||
		!strings.Contains(f.Message, `Finish the drop: DROP DATABASE "scratch";`) || !strings.Contains(f.Message, "With pglogical 2.4.2 (before 2.4.6)") {
		t.Errorf("one invalid database: %+v", f)
	}
	w.sub.PglogicalVersion = "2.4.6"
	w.sub.InvalidDatabases = []string{"a", `we"ird`}
	f, _ = nodeFinding(w.run(), "s", CodeInvalidDatabase)
	if !strings.Contains(f.Message, `databases a, we"ird on s are invalid`) || !strings.Contains(f.Message, `DROP DATABASE "a"; DROP DATABASE "we""ird";`) || strings.Contains(f.Message, "pglogical 2.4.6") {
		t.Errorf("two invalid databases, fixed pglogical: %+v", f)
	}
}
