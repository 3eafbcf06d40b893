package serverlog

import (
	"regexp"
	"strings"
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
type Copy struct {
	Subscription string `json:"subscription"`
	// Table is schema.table, without quotes.
	Table string `json:"table"`
	// Prefix is the finishing line's prefix (its time, as the server wrote it).
	Prefix string `json:"prefix"`
	// Error is the COPY's error ("" when it did not fail).
	Error string `json:"error,omitempty"`
}

// Failed reports whether the COPY failed.
func (c Copy) Failed() bool { return c.Error != "" }

var (
	syncStartRE = regexp.MustCompile(`^starting sync of table (\S+) for subscriber (.+)$`)
	syncEndRE   = regexp.MustCompile(`^finished sync of table (\S+) for subscriber (.+)$`)
	// pglogical's own COPY statement: every name quoted, a column list, stdin.
	copyStmtRE = regexp.MustCompile(`^COPY ("(?:[^"]|"")+"\."(?:[^"]|"")+") \(.*\) FROM stdin$`)
)

// unquote turns schema.table as either log line writes it into one form.
func unquote(name string) string { return strings.ReplaceAll(name, `"`, "") }

// Copies returns the table copies that finished in text, oldest first: a
// failed COPY of the table between the sync worker's start and finish
// lines makes its Copy failed. A copy whose start line is not in text is
// left out. (The first copy of create_subscription(synchronize_data) runs
// in the apply worker, which logs no such lines: not seen here.)
func Copies(text string) []Copy {
	type open struct{ sub, table, err string }
	running := map[string]*open{}  // sync worker pid -> its copy
	pending := map[string]string{} // pid -> its last ERROR, until its STATEMENT
	var out []Copy
	for _, line := range strings.Split(text, "\n") {
		m := levelRE.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		p := pidRE.FindStringSubmatch(m[1])
		if p == nil {
			continue
		}
		pid, level, msg := p[1], m[2], m[3]
		switch level {
		case "LOG":
			if s := syncStartRE.FindStringSubmatch(msg); s != nil {
				running[pid] = &open{sub: s[2], table: unquote(s[1])}
			} else if s := syncEndRE.FindStringSubmatch(msg); s != nil {
				if o, ok := running[pid]; ok && o.table == unquote(s[1]) && o.sub == s[2] {
					out = append(out, Copy{Subscription: o.sub, Table: o.table, Prefix: strings.TrimSpace(m[1]), Error: o.err})
				}
				delete(running, pid)
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
			table := unquote(c[1])
			for _, o := range running {
				if o.table == table && o.err == "" {
					o.err = e
				}
			}
		}
	}
	return out
}
