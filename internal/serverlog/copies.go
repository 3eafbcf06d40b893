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

// Copy is the end of one table copy of pglogical's table sync, as the
// subscriber's log tells it. Checked on pglogical 2.4.2: when the COPY
// into the subscriber's table fails (rows already there: duplicate key),
// the sync worker still logs that it finished and marks the table ready,
// so the provider's rows never arrive and the catalogs say all is well:
//
//	[12813] LOG:  starting sync of table public.t2 for subscriber sub_0
//	[12820] ERROR:  duplicate key value violates unique constraint "t2_pkey"
//	[12820] STATEMENT:  COPY "public"."t2" ("id","v") FROM stdin
//	[12813] LOG:  finished sync of table public.t2 for subscriber sub_0
//
// (the COPY runs in a backend of its own, hence another PID).
//
// The first copy of create_subscription(synchronize_data := true) runs in
// the apply worker, which logs no such lines, and copies every table of the
// subscription's sets in one transaction on the subscriber. A COPY that
// fails there aborts that transaction: pglogical commits it (a rollback),
// so none of the tables copied before keep their rows either. When the
// failing table is the last one, nothing else fails: pglogical marks the
// subscription and every table ready and says replicating (checked on
// 2.4.2; when a later table's COPY follows, it fails with "current
// transaction is aborted", the apply worker exits with "table copy failed",
// and the subscription is down with init_failed):
//
//	[10558] LOG:  starting apply for subscription sub_0
//	[10566] ERROR:  duplicate key value violates unique constraint "cc_pkey"
//	[10566] STATEMENT:  COPY "public"."cc" ("id","v") FROM stdin
//
// Such a copy is an Initial one, of the subscription whose apply worker
// started last before it.
type Copy struct {
	Subscription string `json:"subscription"`
	// Table is schema.table, without quotes.
	Table string `json:"table"`
	// Prefix is the finishing line's prefix (its time, as the server wrote it).
	Prefix string `json:"prefix"`
	// Error is the COPY's error ("" when it did not fail).
	Error string `json:"error,omitempty"`
	// Initial marks the failed first copy of a subscription (Table is the
	// table whose COPY failed first; Prefix that COPY's line prefix).
	Initial bool `json:"initial,omitempty"`
}

// Failed reports whether the COPY failed.
func (c Copy) Failed() bool { return c.Error != "" }

// Key is where a copy stands among others (Standing): "subscription/table",
// "subscription/" for a first copy.
func (c Copy) Key() string {
	if c.Initial {
		return c.Subscription + "/"
	}
	return c.Subscription + "/" + c.Table
}

// Cause says what failed, and where the log (file) says so.
func (c Copy) Cause(file string) string {
	if c.Initial {
		return fmt.Sprintf("pglogical's first copy of subscription %s failed at table %s (%s, the subscriber's log %s at %s)", c.Subscription, c.Table, c.Error, file, c.Prefix)
	}
	return fmt.Sprintf("pglogical's copy of table %s for subscription %s failed (%s, the subscriber's log %s at %s)", c.Table, c.Subscription, c.Error, file, c.Prefix)
}

// Finding is the failed copy's finding, read from the log file:
// table_copy_failed, or initial_copy_failed for a first copy.
func (c Copy) Finding(file string) diagnose.Finding {
	if c.Initial {
		return diagnose.Finding{Code: diagnose.CodeInitialCopyFailed, Severity: diagnose.Critical, Human: true,
			Message: c.Cause(file) + ", yet pglogical marked the subscription and every table ready and replicates later changes: it copies all tables in one transaction on the subscriber, which that failure rolled back, so no table of the subscription holds the provider's rows from before it was created (changes to them fail or are skipped); resynchronise every table of it (each is TRUNCATEd on the subscriber, then copied; rows written only there are lost), or empty the tables and set the subscription up again; then pglmon verify"}
	}
	return diagnose.Finding{Code: diagnose.CodeTableCopyFailed, Severity: diagnose.Critical, Human: true,
		Message: c.Cause(file) + fmt.Sprintf(", yet pglogical marked the table ready and replicates later changes: the provider's rows that were not there before are missing on the subscriber, and changes to them fail or are skipped (pglogical 2.4.2 does this when the table already holds rows); resynchronise it (TRUNCATEs it on the subscriber, then copies): SELECT pglogical.alter_subscription_resynchronize_table(%s, %s); then pglmon verify",
			pgident.Literal(c.Subscription), pgident.Literal(pgident.RegclassOf(c.Table)))}
}

// Standing returns, of copies (oldest first, as Copies returns them), the
// failures that still stand as far as they tell, by Key: each table's last
// copy when it failed, and each subscription's last failed first copy
// (which Copies leaves out once the table whose COPY failed is copied again).
func Standing(copies []Copy) map[string]Copy {
	out := map[string]Copy{}
	for _, c := range copies {
		if c.Failed() {
			out[c.Key()] = c
		} else {
			delete(out, c.Key())
		}
	}
	return out
}

var (
	// The table as pglogical 2.4.2 writes it here: schema.table unquoted,
	// spaces and all (measured); subscription names have no space.
	syncStartRE = regexp.MustCompile(`^starting sync of table (.+) for subscriber (\S+)$`)
	syncEndRE   = regexp.MustCompile(`^finished sync of table (.+) for subscriber (\S+)$`)
	// pglogical's own COPY statement: every name quoted, a column list, stdin.
	copyStmtRE = regexp.MustCompile(`^COPY ("(?:[^"]|"")+"\."(?:[^"]|"")+") \(.*\) FROM stdin$`)
)

// unquote turns schema.table as SQL writes it (a part in double quotes
// where it needs them, "" for a quote inside) into the names themselves,
// as the sync lines write them.
func unquote(qualified string) string {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(qualified); i++ {
		switch c := qualified[i]; {
		case c == '"' && quoted && i+1 < len(qualified) && qualified[i+1] == '"':
			b.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Copies returns the table copies that finished in text, oldest first: a
// failed COPY of the table between the sync worker's start and finish
// lines makes its Copy failed. A copy whose start line is not in text is
// left out. A failed pglogical COPY of a table no sync worker copies is the
// failed first copy of the subscription whose apply worker started last
// (the aborted COPYs after it, in the same backend, are not copies of
// their own), unless a sync worker then logs that it finished that table:
// its start came before text, and the COPY was its own.
func Copies(text string) []Copy {
	type open struct{ sub, table, err string }
	running := map[string]*open{}  // sync worker pid -> its copy
	pending := map[string]string{} // pid -> its last ERROR, until its STATEMENT
	// applying is the subscription whose apply worker started last;
	// copying, by PID, the backends whose COPY of a first copy failed: the
	// COPYs after it there fail in its aborted transaction.
	applying, copying := "", map[string]bool{}
	var out []Copy
	for line := range strings.SplitSeq(text, "\n") {
		prefix, level, msg, ok := splitLine(line)
		if !ok || level == "LOG" && !strings.HasPrefix(msg, "starting ") && !strings.HasPrefix(msg, "finished sync ") {
			continue // none of the lines below
		}
		pid, ok := pidOf(prefix)
		if !ok {
			continue
		}
		switch level {
		case "LOG":
			if s := startRE.FindStringSubmatch(msg); s != nil {
				applying = s[1]
			} else if s := syncStartRE.FindStringSubmatch(msg); s != nil {
				running[pid] = &open{sub: s[2], table: unquote(s[1])}
			} else if s := syncEndRE.FindStringSubmatch(msg); s != nil {
				table := unquote(s[1])
				// pglmon's heartbeat table is not the application's data: a
				// subscription given its set (heartbeat install) has no sync
				// status of it, so alter_subscription_synchronize, as setup
				// apply runs when it adds a set, copies it again, onto the
				// heartbeats already there (duplicate key, measured). That
				// copy failing loses nothing: new heartbeats still arrive.
				if o, ok := running[pid]; ok && o.table == table && o.sub == s[2] && table != probe.HeartbeatTable {
					out = append(out, Copy{Subscription: o.sub, Table: o.table, Prefix: strings.TrimSpace(prefix), Error: o.err})
				}
				delete(running, pid)
				// A failed COPY of the table taken for a first copy was the
				// sync's own when its start came before text (and a first
				// copy that failed there is put right by this one).
				out = slices.DeleteFunc(out, func(c Copy) bool { return c.Initial && c.Table == table })
			}
		case "ERROR", "FATAL":
			pending[pid] = level + ": " + msg
		case "STATEMENT":
			e, ok := pending[pid]
			delete(pending, pid)
			c := copyStmtRE.FindStringSubmatch(msg)
			if !ok || c == nil {
				continue
			}
			table, synced := unquote(c[1]), false
			for _, o := range running {
				if o.table == table {
					synced = true
					if o.err == "" {
						o.err = e
					}
				}
			}
			if !synced && applying != "" && !copying[pid] {
				copying[pid] = true
				out = append(out, Copy{Subscription: applying, Table: table, Prefix: strings.TrimSpace(prefix), Error: e, Initial: true})
			}
		}
	}
	return out
}
