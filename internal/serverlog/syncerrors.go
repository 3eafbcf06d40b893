package serverlog

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
)

// SyncFailure is a table copy of pglogical's table sync whose sync worker
// exited with an error, again and again, as the subscriber's log tells it.
// pglogical starts another sync worker for the table at once, for as long
// as the cause lasts, and the table receives nothing meanwhile. Measured
// with pglogical 2.4.2, the role of the subscription's provider
// connection lacking SELECT on a table added to a set (about 7 failures a
// second, each logged on both servers: 1,863 in 4.5 minutes, 1.6 MB of
// the provider's log):
//
//	[6643] LOG:  starting sync of table public.perm_t for subscriber sub_perm
//	[6643] ERROR:  table copy failed
//	[6643] DETAIL:  Query 'COPY "public"."perm_t" ("id","v") TO stdout': ERROR:  permission denied for table perm_t
//	[6643] LOG:  sync worker [6643] at slot 4 generation 39 exiting with error
//
// A COPY that fails on the subscriber's side (rows already there) is not
// one: pglogical marks that table ready (see Copy).
type SyncFailure struct {
	Subscription string `json:"subscription"`
	// Table is schema.table, without quotes.
	Table string `json:"table"`
	// Prefix is the last failed attempt's error line prefix (its time, as
	// the server wrote it).
	Prefix string `json:"prefix"`
	// Error is that attempt's error; for pglogical's "table copy failed",
	// with the provider's error its DETAIL quotes (pglogical's own text:
	// the COPY it ran and what the provider answered, no row values).
	Error string `json:"error"`
	// Failures counts the attempts that failed in a row, since the last
	// copy of the table that finished (as far as the text goes back).
	Failures int `json:"failures"`
	// Worker is "<database oid>:<subscription id>" from the postmaster's
	// line on the worker's exit, "" when that line is not in the text.
	Worker string `json:"worker,omitempty"`
}

var (
	syncExitRE = regexp.MustCompile(`^sync worker \[(\d+)\] .*exiting with error`)
	// pglogical's DETAIL of "table copy failed": the query it ran on the
	// provider, and the provider's error.
	copyDetailRE = regexp.MustCompile(`^Query '.*': (?:ERROR|FATAL):\s+(.+)$`)
	// What the provider says when the connection's role may not read the
	// table, or use its schema.
	deniedRE = regexp.MustCompile(`permission denied for (table|schema) `)
	// What the provider says when it has no slot, walsender or connection
	// left for the copy's own.
	noSlotRE   = regexp.MustCompile(`all replication slots are in use`)
	noSenderRE = regexp.MustCompile(`exceeds max_wal_senders|remaining connection slots are reserved|too many connections`)
)

// SyncFailures are the table copies whose last tries failed, by
// "worker|subscription/table" (worker: see SyncFailure.Worker).
type SyncFailures map[string]SyncFailure

// For returns the failures of the copy of table (schema.table) of the
// subscription named sub whose worker is "<database oid>:<subscription
// id>" ("" when unknown): those of a same-named subscription of another
// database of the server, whose sync workers write the same lines, are
// told apart by the postmaster's line on each worker's exit.
func (fs SyncFailures) For(sub, worker, table string) (SyncFailure, bool) {
	if f, ok := fs[worker+"|"+sub+"/"+table]; ok && worker != "" {
		return f, true
	}
	var best SyncFailure
	found := false
	for _, f := range fs {
		if f.Subscription == sub && f.Table == table && (worker == "" || f.Worker == "") && (!found || f.Failures > best.Failures) {
			best, found = f, true
		}
	}
	return best, found
}

var syncBgExitRE = regexp.MustCompile(`^background worker "pglogical sync .*?(\d+:\d+)" \(PID (\d+)\) exited`)

// ParseSyncFailures returns the table copies of text whose last tries
// failed: the tries since the table's last finished copy, when the last of
// them failed or one runs after one that failed.
func ParseSyncFailures(text string) SyncFailures {
	type attempt struct{ sub, table, prefix, err string }
	running := map[string]*attempt{} // sync worker pid -> its try
	exited := map[string]*attempt{}  // pid -> its failed try, until the postmaster's line
	var order []string               // the pids of exited, in the order they failed
	out := SyncFailures{}
	record := func(a *attempt, worker string) {
		key := worker + "|" + a.sub + "/" + a.table
		f := out[key]
		out[key] = SyncFailure{Subscription: a.sub, Table: a.table, Worker: worker, Prefix: a.prefix, Error: a.err, Failures: f.Failures + 1}
	}
	for line := range strings.SplitSeq(text, "\n") {
		prefix, level, msg, ok := splitLine(line)
		if !ok || level == "LOG" && !strings.HasPrefix(msg, "starting sync ") && !strings.HasPrefix(msg, "finished sync ") &&
			!strings.HasPrefix(msg, "sync worker [") && !strings.HasPrefix(msg, `background worker "pglogical sync `) {
			continue
		}
		if level != "LOG" && level != "ERROR" && level != "FATAL" && level != "DETAIL" {
			continue
		}
		if b := syncBgExitRE.FindStringSubmatch(msg); b != nil && level == "LOG" {
			if a, ok := exited[b[2]]; ok {
				record(a, b[1])
				delete(exited, b[2])
			}
			continue
		}
		pid, ok := pidOf(prefix)
		if !ok {
			continue
		}
		a := running[pid]
		switch level {
		case "LOG":
			if s := syncStartRE.FindStringSubmatch(msg); s != nil {
				running[pid] = &attempt{sub: s[2], table: unquote(s[1])}
			} else if s := syncEndRE.FindStringSubmatch(msg); s != nil {
				// Whichever database's: a finished copy of these names
				// errs towards saying nothing.
				for key, f := range out {
					if f.Subscription == s[2] && f.Table == unquote(s[1]) {
						delete(out, key)
					}
				}
				for p, x := range exited {
					if x.sub == s[2] && x.table == unquote(s[1]) {
						delete(exited, p)
					}
				}
				delete(running, pid)
			} else if e := syncExitRE.FindStringSubmatch(msg); e != nil && e[1] == pid && a != nil {
				delete(running, pid)
				if a.err != "" {
					exited[pid] = a
					order = append(order, pid)
				}
			}
		case "ERROR", "FATAL":
			if a != nil && a.err == "" {
				a.err, a.prefix = level+": "+msg, strings.TrimSpace(prefix)
			}
		case "DETAIL":
			if a != nil && a.err == "ERROR: table copy failed" {
				if d := copyDetailRE.FindStringSubmatch(msg); d != nil {
					a.err += " (the provider: " + strings.TrimSpace(d[1]) + ")"
				}
			}
		}
	}
	// Tries whose postmaster line the text does not hold (yet), in order.
	for _, pid := range order {
		if a, ok := exited[pid]; ok {
			record(a, "")
			delete(exited, pid)
		}
	}
	return out
}

// syncFailuresShown is how many failures in a row make a SyncFailure a
// finding: one may be passing (a connection dropped mid-copy), and the
// next attempt's copy may be running fine.
const syncFailuresShown = 2

// AnnotateSync adds table_sync_error to each subscription of subscriber
// for each table not ready whose copy failed syncFailuresShown times or
// more in a row (fails, read from the log file), in place of its
// table_sync_stalled: its sync worker fails at each try, and the error
// says why. Not where a finding already says why the copy cannot be made
// (table_copy_refused, partitioned_table, origin_slots_exhausted).
func AnnotateSync(r *diagnose.Report, subscriber, file string, fails SyncFailures) {
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		if s.Subscriber != subscriber || len(s.TablesNotReady) == 0 {
			continue
		}
		if _, ok := s.Finding(diagnose.CodeOriginSlotsExhausted); ok {
			continue // the copies fail for want of an origin state
		}
		for _, t := range s.TablesNotReady {
			table := t.Schema + "." + t.Table
			f, ok := fails.For(s.Name, s.ApplyWorker, table)
			if !ok || f.Failures < syncFailuresShown || Copying(t) || explainedCopy(s, table) {
				continue
			}
			s.Findings = slices.DeleteFunc(s.Findings, func(x diagnose.Finding) bool {
				return x.Code == diagnose.CodeTableSyncStalled && x.Table == table
			})
			r.AddFinding(s, syncFinding(*s, t, file, f))
		}
	}
}

// Copying: the table's copy is under way, or done: a try after the
// failures got past the COPY (its rows arriving, pg_stat_progress_copy,
// PostgreSQL 14+; or its sync status past the data phase: constraints,
// waiting for the apply worker, catching up, synced). The log's failures
// are then over, though no line says so until the copy finishes.
func Copying(t probe.TableSync) bool {
	switch t.Status {
	case "c", "w", "u", "y":
		return true
	}
	return t.CopiedRows != nil && *t.CopiedRows > 0
}

// explainedCopy: subscription s has a finding that says why table cannot
// be copied.
func explainedCopy(s *diagnose.Subscription, table string) bool {
	for _, x := range s.Findings {
		switch x.Code {
		case diagnose.CodeTableCopyRefused, diagnose.CodePartitionedTable, diagnose.CodeTableSyncError:
			if x.Table == table {
				return true
			}
		}
	}
	return false
}

// syncFinding is table_sync_error for table t of subscription s.
func syncFinding(s diagnose.Subscription, t probe.TableSync, file string, f SyncFailure) diagnose.Finding {
	msg := fmt.Sprintf("table %s of %s is not copied (sync status %q): pglogical's sync worker failed %d times in a row (in the end of the subscriber's log pglmon read), and pglogical starts another within a second, for as long as the cause lasts (each failure logged on both servers); the table receives nothing meanwhile; the last error in the subscriber's log (%s at %s): %s%s",
		pgident.Regclass(t.Schema, t.Table), s.Name, t.Status, f.Failures, file, f.Prefix, f.Error, f.Hint(s.Provider, s.ProviderRole, t.Schema, t.Table))
	return diagnose.Finding{Code: diagnose.CodeTableSyncError, Severity: diagnose.Critical, Human: true, Table: t.Schema + "." + t.Table, Message: msg}
}

// Hint is what to do about the failure, where its error says ("" where
// not), beginning with "; ": the GRANT to run on provider for role (the
// user of the subscription's provider connection; "" when it names none)
// for permission denied on table schema.table, or the setting to raise on
// the provider when it has no slot, walsender or connection for the copy.
func (f SyncFailure) Hint(provider, role, schema, table string) string {
	if m := deniedRE.FindStringSubmatch(f.Error); m != nil {
		role = grantee(role)
		grant := fmt.Sprintf("GRANT SELECT ON %s TO %s;", pgident.Regclass(schema, table), role)
		if m[1] == "schema" {
			grant = fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", pgident.Ident(schema), role)
		}
		return fmt.Sprintf("; the role of the subscription's provider connection, %s, may not read it (pglogical's copy needs its SELECT; the changes it streams need none): run on %s %s and pglogical copies the table at its next try, within a second", role, provider, grant)
	}
	switch {
	case noSlotRE.MatchString(f.Error):
		return fmt.Sprintf("; provider %s has no replication slot free for the copy, which takes one of its own besides the subscription's (measured: one try a second): raise max_replication_slots there (a restart; RDS: the parameter group, then a reboot), or drop a slot nothing uses (orphan_slot), and pglogical copies the table at its next try", provider)
	case noSenderRE.MatchString(f.Error):
		return fmt.Sprintf("; provider %s has no walsender or connection free for the copy, which takes one of its own besides the subscription's: raise max_wal_senders or max_connections there (a restart), or end what holds them, and pglogical copies the table at its next try", provider)
	}
	return ""
}
