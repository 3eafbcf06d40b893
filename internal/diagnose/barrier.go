package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/probe"
)

// barrierFixed is the first pglogical release whose supervisor and apply
// workers accept a ProcSignalBarrier (2ndQuadrant/pglogical#403, #427).
const barrierFixed = "2.4.6"

// barrierFinding reports a statement that has waited longer than
// thresholds.signal_barrier_wait for every process of the server to accept
// its ProcSignalBarrier: PostgreSQL 15+ makes DROP DATABASE, DROP
// TABLESPACE and ALTER DATABASE SET TABLESPACE wait so, and a pglogical
// before 2.4.6 accepts one in its supervisor or apply workers only when
// something else wakes them (measured with 2.4.2; its manager accepts it),
// so the statement can wait for ever. The finding names the session, pglogical's processes that can hold
// it, and what ending each costs; cancelling the statement is worse.
func (d *diagnosis) barrierFinding(s *probe.Snapshot) (Finding, bool) {
	limit := d.Thresholds.SignalBarrierWait.D()
	if limit <= 0 || len(s.BarrierWaits) == 0 {
		return Finding{}, false
	}
	w := s.BarrierWaits[0]
	for _, o := range s.BarrierWaits[1:] {
		if o.Seconds > w.Seconds {
			w = o
		}
	}
	if time.Duration(w.Seconds*float64(time.Second)) < limit {
		return Finding{}, false
	}
	what := "a statement"
	if w.Statement != "" {
		what = w.Statement
	}
	w.State, w.StateSeconds = "", nil // the state is "active": nothing to say
	var b strings.Builder
	fmt.Fprintf(&b, "%s, run by %s, has waited %s for every process of %s to accept a ProcSignalBarrier (PostgreSQL 15+ makes DROP DATABASE, DROP TABLESPACE and ALTER DATABASE SET TABLESPACE wait so; a process that checks for interrupts accepts it within milliseconds)",
		what, describeSession(w.Session), seconds(w.Seconds), s.Node)
	if n := len(s.BarrierWaits) - 1; n > 0 {
		fmt.Fprintf(&b, "; %d more session(s) wait so", n)
	}
	var apply, other []string
	supervisor := 0
	for _, p := range w.Pglogical {
		switch {
		case p.Type == "pglogical supervisor":
			supervisor = p.PID
		case strings.HasPrefix(p.Type, "pglogical apply"):
			apply = append(apply, fmt.Sprint(p.PID))
		case !strings.HasPrefix(p.Type, "pglogical manager"):
			other = append(other, fmt.Sprintf("%s (pid %d)", p.Type, p.PID))
		}
	}
	if IgnoresBarriers(s.PglogicalVersion) {
		fmt.Fprintf(&b, ". pglogical %s runs here: before %s its supervisor and apply workers accept one only when something else wakes them, so the statement can wait for ever", s.PglogicalVersion, barrierFixed)
	}
	if supervisor == 0 && len(apply) == 0 && len(other) == 0 {
		b.WriteString(". No pglogical process it may wait for runs here: the server log names the process (\"still waiting for backend with PID n to accept ProcSignalBarrier\", every 5 s)")
		return Finding{Code: CodeSignalBarrierStuck, Severity: Warning, Human: true, Message: b.String()}, true
	}
	if w.Statement == "" || strings.HasPrefix(strings.ToUpper(w.Statement), "DROP DATABASE") {
		b.WriteString(". Do not cancel a DROP DATABASE: PostgreSQL 15.4+ has already marked the database invalid, and cancelling the statement leaves it unusable (\"cannot connect to invalid database\") until dropped again, which waits the same way")
	}
	b.WriteString(". Let it finish by ending the pglogical processes it waits for (the server log names one at a time: \"still waiting for backend with PID n to accept ProcSignalBarrier\")")
	if len(apply) > 0 {
		fmt.Fprintf(&b, ": first the apply workers, SELECT pg_terminate_backend(pid) FROM unnest('{%s}'::int[]) pid; pglogical's manager starts each again within seconds and it resumes where its replication origin stands, nothing lost. That is often enough: their restart has the supervisor look at the databases, and it accepts the barrier then", strings.Join(apply, ","))
	}
	if supervisor != 0 {
		sep := ": "
		if len(apply) > 0 {
			sep = ". If the log then names the supervisor, "
		}
		fmt.Fprintf(&b, "%send it, SELECT pg_terminate_backend(%d); pglogical does not start its supervisor again until PostgreSQL restarts (measured with 2.4.2): meanwhile a pglogical manager that exits is not started again (supervisor_not_running), so restart PostgreSQL at a quiet time", sep, supervisor)
	}
	if supervisor != 0 || len(apply) > 0 {
		b.WriteString(". Never end pglogical's manager for this: it is not started again either, and that does not release the statement")
	}
	if len(other) > 0 {
		fmt.Fprintf(&b, "; it may also wait for %s", strings.Join(other, ", "))
	}
	if IgnoresBarriers(s.PglogicalVersion) {
		fmt.Fprintf(&b, ". pglogical %s or later ends this (on RDS it comes with the engine's minor version: ALTER EXTENSION pglogical UPDATE after the upgrade)", barrierFixed)
	}
	return Finding{Code: CodeSignalBarrierStuck, Severity: Warning, Human: true, Message: b.String()}, true
}

// supervisorFinding reports a server with pglogical preloaded whose
// supervisor does not run (ended by pg_terminate_backend, which a
// DROP DATABASE on pglogical before 2.4.6 needs: it is not started again
// until PostgreSQL restarts). The supervisor starts each database's
// manager, which starts the apply workers: without it, a manager that
// exits stays gone and with it every subscription of its database.
// Said once the server has run for 15 s (the supervisor starts with
// it) and only where pglmon sees every process's type.
func supervisorFinding(s *probe.Snapshot) (Finding, bool) {
	w := s.Workers
	if w == nil || s.PglogicalVersion == "" || !w.Preloaded || w.SupervisorRunning || w.UptimeSeconds < supervisorGrace.Seconds() {
		return Finding{}, false
	}
	msg := fmt.Sprintf("pglogical's supervisor is not running on %s (the server has run for %s): it starts each database's pglogical manager, which starts the apply workers; without it a manager that exits is not started again, and the subscriptions of its database stop with it. pglogical does not start it again by itself (ended by pg_terminate_backend, it stays gone until PostgreSQL restarts: measured with 2.4.2)",
		s.Node, seconds(w.UptimeSeconds))
	if !w.ManagerRunning {
		msg += fmt.Sprintf("; the manager of database %s is not running either: pglogical starts no worker there (an apply worker, a table copy)", s.Database)
	}
	msg += ". Restart PostgreSQL at a quiet time (RDS: reboot the instance)"
	return Finding{Code: CodeSupervisorNotRunning, Severity: Warning, Human: true, Message: msg}, true
}

// invalidDatabaseFinding reports the databases an interrupted DROP
// DATABASE left invalid: what a cancelled DROP waiting on pglogical's
// workers (signal_barrier_stuck) leaves behind.
func invalidDatabaseFinding(s *probe.Snapshot) (Finding, bool) {
	if len(s.InvalidDatabases) == 0 {
		return Finding{}, false
	}
	what := "database " + s.InvalidDatabases[0] + " on " + s.Node + " is"
	if len(s.InvalidDatabases) > 1 {
		what = "databases " + strings.Join(s.InvalidDatabases, ", ") + " on " + s.Node + " are"
	}
	var drops []string
	for _, d := range s.InvalidDatabases {
		drops = append(drops, `DROP DATABASE "`+strings.ReplaceAll(d, `"`, `""`)+`";`)
	}
	msg := fmt.Sprintf("%s invalid (datconnlimit -2): a DROP DATABASE was interrupted (cancelled, its session ended or the server stopped) after PostgreSQL had begun removing it. Nobody can connect to it (\"cannot connect to invalid database\"), pg_dump and pg_dumpall skip it, and a major-version upgrade refuses while it exists (pglmon upgrade check). Finish the drop: %s",
		what, strings.Join(drops, " "))
	if IgnoresBarriers(s.PglogicalVersion) {
		msg += fmt.Sprintf(" With pglogical %s (before %s) it can wait for pglogical's workers again: signal_barrier_stuck then says which to end; do not cancel it", s.PglogicalVersion, barrierFixed)
	}
	return Finding{Code: CodeInvalidDatabase, Severity: Warning, Human: true, Message: msg}, true
}

// supervisorGrace is how long after the server's start a missing
// supervisor is not yet a finding.
const supervisorGrace = 15 * time.Second

// IgnoresBarriers reports whether pglogical version v is one whose
// supervisor and apply workers do not accept a ProcSignalBarrier by
// themselves (before 2.4.6).
func IgnoresBarriers(v string) bool { return olderThan(v, barrierFixed) }

// olderThan reports whether pglogical version v ("2.4.2") is below want;
// false when v is empty or unreadable.
func olderThan(v, want string) bool {
	parse := func(s string) []int {
		var out []int
		for _, f := range strings.Split(s, ".") {
			n := 0
			if f == "" {
				return nil
			}
			for _, c := range f {
				if c < '0' || c > '9' {
					return nil
				}
				n = n*10 + int(c-'0')
			}
			out = append(out, n)
		}
		return out
	}
	a, b := parse(v), parse(want)
	if a == nil || b == nil {
		return false
	}
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return x < y
		}
	}
	return false
}
