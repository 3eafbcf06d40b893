// Package serverlog reads pglogical's worker errors out of PostgreSQL
// server log text: why a subscription is down is written there and
// nowhere in the catalogs. It knows the lines pglogical 2 writes (checked
// on a real server):
//
//	[12848] LOG:  starting apply for subscription sub_0
//	[12848] ERROR:  unknown column name extra
//	[12848] CONTEXT:  apply INSERT in commit before 0/1A42C68, xid 732 ...
//	[12848] LOG:  apply worker [12848] at slot 1 generation 2 exiting with error
//
// Lines are matched by the process ID in brackets that log_line_prefix
// holds by default on RDS ("%t:%r:%u@%d:[%p]:") and in most setups ("[%p]").
// A csvlog or jsonlog file's records are read as such lines (AsLines).
// It also reads the conflicts pglogical resolves by itself:
//
//	LOG:  CONFLICT: remote UPDATE on relation public.items_0 replica identity index items_0_pkey (tuple not found). Resolution: skip.
package serverlog

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/shellword"
)

// WorkerError is the last error an apply worker of a subscription exited with.
type WorkerError struct {
	Subscription string `json:"subscription"`
	PID          string `json:"pid"`
	// Worker is "<database oid>:<subscription id>" from the postmaster's
	// line on the worker's exit, "" when that line is not in the text.
	Worker string `json:"worker,omitempty"`
	// Prefix is the log line's prefix (its time, as the server wrote it).
	Prefix  string `json:"prefix"`
	Error   string `json:"error"`
	Context string `json:"context,omitempty"`
}

// Errors are the apply workers' errors found in a log, oldest first.
type Errors []WorkerError

// For returns the last error of the subscription's apply worker. worker is
// the subscription's "<database oid>:<subscription id>" ("" when unknown):
// it tells apart same-named subscriptions of two databases on one server,
// whose workers write the same start line.
func (es Errors) For(name, worker string) (WorkerError, bool) {
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.Subscription == name && (worker == "" || e.Worker == "" || e.Worker == worker) {
			return e, true
		}
	}
	return WorkerError{}, false
}

// splitLine cuts a log line at its level ("... [pid] LOG:  message"): the
// prefix before it, the level, and the message after the colon and the
// space that follow it. It finds the first level word (a whole word:
// LOG, ERROR, FATAL, CONTEXT, DETAIL, HINT, STATEMENT or WARNING) followed
// by a colon and white space; ok is false when the line has none.
// Hand-written: a regular expression took most of the time of reading a
// log tail (BenchmarkParseTail).
func splitLine(line string) (prefix, level, msg string, ok bool) {
	line = strings.TrimRight(line, "\r")
	for i := 0; ; {
		j := strings.IndexByte(line[i:], ':')
		if j < 0 {
			return "", "", "", false
		}
		colon := i + j
		i = colon + 1
		start := colon
		for start > 0 && isWordByte(line[start-1]) {
			start--
		}
		switch line[start:colon] {
		case "LOG", "ERROR", "FATAL", "CONTEXT", "DETAIL", "HINT", "STATEMENT", "WARNING":
		default:
			continue
		}
		rest := line[colon+1:]
		body := strings.TrimLeft(rest, " \t\f\r") // \s
		if len(body) == len(rest) {
			continue // no white space after the colon
		}
		return line[:start], line[start:colon], body, true
	}
}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

var (
	pidRE   = regexp.MustCompile(`\[(\d+)\]`)
	startRE = regexp.MustCompile(`^starting apply for subscription (.+)$`)
	exitRE  = regexp.MustCompile(`^apply worker \[(\d+)\] .*exiting with error`)
	// The postmaster's line, after the worker's own.
	bgExitRE = regexp.MustCompile(`^background worker "pglogical apply (\d+:\d+)" \(PID (\d+)\) exited`)
)

// pidOf is the process ID a log line's prefix holds in brackets.
func pidOf(prefix string) (string, bool) {
	p := pidRE.FindStringSubmatch(prefix)
	if p == nil {
		return "", false
	}
	return p[1], true
}

// WorkerErrors returns the last error of each apply worker that exited with
// one. Workers whose start line is not in text are left out (their
// subscription is unknown).
func WorkerErrors(text string) Errors {
	subOf := map[string]string{}        // pid -> subscription
	pending := map[string]WorkerError{} // pid -> its last error so far
	exited := map[string]int{}          // pid -> its entry in out
	var out Errors
	contextOf := "" // the pid whose CONTEXT the line before ended
	for line := range strings.SplitSeq(text, "\n") {
		// A message's further lines start with a tab: a CONTEXT's next
		// level (queued SQL: the transaction it runs in, with its commit),
		// or the rest of a statement it quotes.
		if strings.HasPrefix(line, "\t") {
			if we, ok := pending[contextOf]; ok && contextOf != "" && len(we.Context) < maxContext {
				we.Context = hidePasswords(we.Context + " " + strings.TrimSpace(line))
				pending[contextOf] = we
			}
			continue
		}
		contextOf = ""
		prefix, level, msg, ok := splitLine(line)
		if !ok {
			continue
		}
		if !strings.HasPrefix(msg, "background worker \"pglogical apply ") && !strings.HasPrefix(msg, "starting apply ") && !strings.HasPrefix(msg, "apply worker [") &&
			level != "ERROR" && level != "FATAL" && level != "CONTEXT" {
			continue // none of the lines below
		}
		if b := bgExitRE.FindStringSubmatch(msg); b != nil && level == "LOG" {
			if i, ok := exited[b[2]]; ok {
				out[i].Worker = b[1]
			}
			continue
		}
		pid, ok := pidOf(prefix)
		if !ok {
			continue
		}
		switch level {
		case "LOG":
			if s := startRE.FindStringSubmatch(msg); s != nil {
				subOf[pid] = s[1]
				delete(pending, pid)
				delete(exited, pid)
			} else if e := exitRE.FindStringSubmatch(msg); e != nil && e[1] == pid {
				if we, ok := pending[pid]; ok && subOf[pid] != "" {
					we.Subscription = subOf[pid]
					exited[pid] = len(out)
					out = append(out, we)
				}
			}
		case "ERROR", "FATAL":
			pending[pid] = WorkerError{PID: pid, Prefix: strings.TrimSpace(prefix), Error: level + ": " + msg}
		case "CONTEXT": // not DETAIL: it may quote row values
			if we, ok := pending[pid]; ok && we.Context == "" {
				we.Context = hidePasswords(level + ": " + msg)
				pending[pid] = we
				contextOf = pid
			}
		}
	}
	return out
}

// maxContext bounds what further lines add to an error's CONTEXT (a long
// queued statement).
const maxContext = 2000

// passwordRE finds a password given as a literal in a statement a CONTEXT
// quotes (CREATE ROLE ... PASSWORD '...', a user mapping's password '...'):
// DDL queued through pglogical.replicate_ddl_command may hold one.
var passwordRE = regexp.MustCompile(`(?i)(\bpassword\s*(?:=\s*)?)'(?:[^']|'')*'`)

// hidePasswords replaces the password literals in s.
func hidePasswords(s string) string {
	if !strings.Contains(strings.ToLower(s), "password") {
		return s
	}
	return passwordRE.ReplaceAllString(s, "$1'(hidden)'")
}

// queuedSQLRE finds, in an apply worker's CONTEXT, the statement of DDL
// queued on the provider through pglogical.replicate_ddl_command, up to
// the next context level (the transaction it runs in).
var queuedSQLRE = regexp.MustCompile(`during execution of queued SQL statement: (.*?)(?:\s+apply QUEUED_SQL |$)`)

// QueuedSQL is the queued DDL statement the worker failed to run ("" when
// its error came from anything else).
func (w WorkerError) QueuedSQL() string {
	if m := queuedSQLRE.FindStringSubmatch(w.Context); m != nil {
		return m[1]
	}
	return ""
}

// String is the error as one line.
func (w WorkerError) String() string {
	s := w.Prefix + " " + startReplicationRE.ReplaceAllString(w.Error, "$1 (...)")
	if w.Context != "" {
		s += " (" + w.Context + ")"
	}
	return s
}

// startReplicationRE matches the option list of the START_REPLICATION
// command pglogical quotes when the provider refuses it: two dozen protocol
// options that say nothing about why.
var startReplicationRE = regexp.MustCompile(`(START_REPLICATION SLOT "[^"]*" LOGICAL [0-9A-F]+/[0-9A-F]+) \([^)]*\)`)

// connectCauses say what an apply worker's failure to connect to its
// provider means, by the libpq error it quotes ("could not connect to the
// postgresql server [in replication mode]: ... failed: FATAL: ..."). The
// permanent ones last until a person changes something: restarting the
// subscription cannot help.
var connectCauses = []struct {
	re        *regexp.Regexp
	cause     string
	permanent bool
}{
	{regexp.MustCompile(`password authentication failed|no password supplied|PAM authentication failed|authentication failed for user`),
		"the provider refuses the password in the subscription's connection string: the role's password was changed (rotated) since the subscription was set up", true},
	{regexp.MustCompile(`no pg_hba\.conf entry`),
		"the provider's pg_hba.conf has no entry for the subscriber's address, role and database (for the replication connection, an entry for the \"replication\" database); on RDS with rds.force_ssl=1, a connection without SSL", true},
	{regexp.MustCompile(`could not translate host name`),
		"the provider's host name in the subscription's connection string does not resolve on the subscriber: an endpoint renamed or deleted (a restored or replaced instance has a new one)", true},
	{regexp.MustCompile(`role "[^"]*" does not exist|database "[^"]*" does not exist|is not permitted to log in|must be superuser or replication role|permission denied to start WAL sender`),
		"the role or database in the subscription's connection string does not exist on the provider, or the role may not log in or replicate", true},
	{regexp.MustCompile(`SSL off|SSL is not enabled|server does not support SSL|SSL required|requires SSL|SSL connection is required|certificate verify failed|sslmode`),
		"the SSL settings of the subscription's connection string (sslmode) and of the provider disagree", true},
	{regexp.MustCompile(`number of requested standby connections exceeds max_wal_senders|too many connections|remaining connection slots are reserved|sorry, too many clients`),
		"the provider has no connection left for it (max_wal_senders or max_connections is used up); see what holds them before raising the setting", false},
	{regexp.MustCompile(`Connection refused|timeout expired|timed out|No route to host|Network is unreachable|server closed the connection unexpectedly|the database system is (starting up|shutting down|in recovery mode)`),
		"the provider's address did not answer the subscriber (the provider restarting, or the network path from the subscriber: security group, firewall, route)", false},
}

var connectRE = regexp.MustCompile(`could not connect to the postgresql server`)

// ConnectFailure says whether the error is the worker failing to connect to
// its provider, why, and whether that lasts until a person acts.
func (w WorkerError) ConnectFailure() (cause string, permanent, ok bool) {
	if !connectRE.MatchString(w.Error) {
		return "", false, false
	}
	for _, c := range connectCauses {
		if c.re.MatchString(w.Error) {
			return c.cause, c.permanent, true
		}
	}
	return "the connection failed; the quoted error says why", false, true
}

// streamDeniedRE matches the provider refusing pglogical's
// START_REPLICATION for want of a privilege of the provider connection's
// role. Measured with pglogical 2.4.2: a role without USAGE on the
// provider's schema pglogical logs, in the subscriber's log, `could not
// send replication command "START_REPLICATION SLOT ... (...)": ERROR:
// permission denied for schema pglogical` (its output plugin's startup
// callback); the manager starts the worker again 5 s later, then every
// 180 s. USAGE on the schema alone is enough (no SELECT on pglogical's
// tables), measured.
var streamDeniedRE = regexp.MustCompile(`could not send replication command "START_REPLICATION .*": ERROR:\s+permission denied for (schema|table|function|sequence) (\S+)`)

// StreamDenied says whether the error is the provider refusing to stream
// for want of a privilege, and on what (a schema, table, function or
// sequence, and its name).
func (w WorkerError) StreamDenied() (kind, name string, ok bool) {
	m := streamDeniedRE.FindStringSubmatch(w.Error)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// grantee is role as a GRANT names it, or "<role>" when unknown (libpq's
// default then: PGUSER or the OS user of the subscriber's server, which
// no walsender said).
func grantee(role string) string {
	if role == "" {
		return "<role>"
	}
	return pgident.Ident(role)
}

// streamDenied is why the provider refuses to stream to subscription s
// (StreamDenied), and what to run there: the GRANT, to the role
// s.ProviderRole says.
func streamDenied(s diagnose.Subscription, kind, name string) (cause, fix string) {
	role := grantee(s.ProviderRole)
	cause = fmt.Sprintf("the role of its provider connection, %s, may not use %s %s on the provider, which pglogical's output plugin needs to start streaming (the changes themselves need no grant)", role, kind, name)
	fix = fmt.Sprintf("give %s that privilege on %s", role, orUnknown(s.Provider))
	if kind == "schema" {
		fix = fmt.Sprintf("run on %s: GRANT USAGE ON SCHEMA %s TO %s;", orUnknown(s.Provider), pgident.Ident(name), role)
	}
	return cause, fix
}

// streamDeniedFinding replaces a stuck_down whose worker the provider
// refuses to stream to (StreamDenied): a restart fails the same way until
// the grant is given; pglogical's own next try may be 180 s away then.
func streamDeniedFinding(s diagnose.Subscription, file string, we WorkerError, kind, name string) diagnose.Finding {
	cause, fix := streamDenied(s, kind, name)
	return diagnose.Finding{Code: diagnose.CodeProviderConnectFailed, Severity: diagnose.Critical, Human: true,
		Message: fmt.Sprintf("subscription %s is down: provider %s refuses to stream to it: %s. To fix, %s then pglmon repair --subscription %s --remedy restart, as pglogical's own next try may be 180 s away; restarting does not help before. Nothing is lost meanwhile (the provider's slot keeps the changes). The error in the subscriber's log (%s): %s",
			s.Name, orUnknown(s.Provider), cause, fix, shellword.Quote(s.Name), file, we)}
}

// connectFinding replaces a stuck_down whose worker cannot log in to its
// provider: a restart would fail the same way.
func connectFinding(s diagnose.Subscription, file string, we WorkerError, cause string) diagnose.Finding {
	// The conninfo is empty for a role that may not read it: the
	// interface's name still says which connection string to replace.
	via := ""
	if s.ProviderInterface != "" {
		via = " through interface " + s.ProviderInterface
	}
	if s.ProviderConninfo != "" {
		via += " (" + s.ProviderConninfo + ")"
	}
	return diagnose.Finding{Code: diagnose.CodeProviderConnectFailed, Severity: diagnose.Critical, Human: true,
		Message: fmt.Sprintf("subscription %s is down: its apply worker cannot connect to provider %s%s: %s. Restarting does not help until that is fixed (pglogical retries by itself, backing off up to 180 s; pglmon itself reaches the provider). The error in the subscriber's log (%s): %s",
			s.Name, orUnknown(s.Provider), via, cause, file, we)}
}

func orUnknown(s string) string {
	if s == "" {
		return "(not configured)"
	}
	return s
}

// explained are the findings of a down subscription that its apply
// worker's error explains.
var explained = map[string]bool{diagnose.CodeStuckDown: true, diagnose.CodeSubscriptionDown: true, diagnose.CodeSlotInUse: true,
	diagnose.CodeInitFailed: true, diagnose.CodeSchemaMismatch: true, diagnose.CodeNotStreaming: true}

// permanentRE matches errors that applying the same change again raises
// again: the subscriber refuses the row itself. The second line: a column
// of another type than the provider's, whose binary value (pglogical sends
// built-in types so between servers of the same major version) the
// subscriber's type cannot read, or whose value it does not hold; then a
// table without a key to find an update's or delete's row by; then a
// replicated TRUNCATE of a table the subscriber's own foreign key refers
// to (measured with pglogical 2.4.2; see drift.compareType,
// drift.compareKeys).
var permanentRE = regexp.MustCompile(`violates (check|not-null|foreign key|unique|exclusion) constraint|` +
	`duplicate key value violates|value too long for type|invalid input syntax for|out of range|` +
	`incorrect binary data format|insufficient data left in message|unsupported jsonb version number|` +
	`binary data has array element type|invalid byte sequence for encoding|numeric field overflow|` +
	`invalid input value for enum|could not find REPLICA IDENTITY index|` +
	`cannot truncate a table referenced in a foreign key constraint|permission denied for|null value in column|` +
	`cannot apply conflicting row`)

// transientRE matches errors that may pass by themselves: a lock, a
// timeout, a conflict with another session, a resource running short.
var transientRE = regexp.MustCompile(`lock timeout|statement timeout|deadlock detected|could not obtain lock|could not serialize|` +
	`canceling statement|terminating connection|out of memory|out of shared memory|No space left|could not extend file|` +
	`could not receive data|server closed the connection`)

// Permanent reports whether restarting the subscription cannot help: the
// worker would apply the same change and fail the same way. A queued DDL
// statement the subscriber refuses is run again as it is at each start
// (measured with pglogical 2.4.2: "relation ... does not exist" for a
// table only the provider has; the manager starts the worker again 5 s
// after a failure, then every 180 s while it fails at once), whatever the
// error, unless it may pass by itself. So is a function of the
// subscriber's that raises the error (a trigger that fires on replicated
// rows: ENABLE ALWAYS or ENABLE REPLICA), run again on the same row at
// each start.
func (w WorkerError) Permanent() bool {
	if (w.QueuedSQL() != "" || functionRE.MatchString(w.Context)) && !transientRE.MatchString(w.Error) {
		return true
	}
	return permanentRE.MatchString(w.Error)
}

// ConflictStop reports whether the worker stopped at a conflict because
// pglogical.conflict_resolution is error on the subscriber (measured with
// pglogical 2.4.2: "cannot apply conflicting row", for an INSERT of a key
// a row written on the subscriber held, and for an UPDATE of a row changed
// there, with no CONFLICT line logged; retried 5 s later, then every 180
// s. An UPDATE of a row the subscriber lacks is still skipped, as a
// conflict resolved "skip").
func (w WorkerError) ConflictStop() bool {
	return strings.Contains(w.Error, "cannot apply conflicting row")
}

// functionRE finds a function in an error's CONTEXT: PostgreSQL's
// "PL/pgSQL function no_77() line 4 at RAISE", "SQL function ...", and
// the other procedural languages' own.
var functionRE = regexp.MustCompile(`^CONTEXT:\s+(PL/\w+|SQL) function `)

// LockTimeout reports whether the worker gave up waiting for a lock:
// lock_timeout reaches pglogical's workers when set for the database, for
// every role, or for the whole server (postgresql.conf, an RDS parameter
// group). Measured with pglogical 2.4.2: the worker exits with "canceling
// statement due to lock timeout", pglogical starts it again about 5 s
// later, and it gives up again, for as long as the lock is held; once it
// is released the change applies without a restart.
func (w WorkerError) LockTimeout() bool {
	return strings.Contains(w.Error, "canceling statement due to lock timeout")
}

// contextTableRE finds the table in an apply worker's CONTEXT line:
// "apply UPDATE from remote relation public.items_0 in commit before ...".
var contextTableRE = regexp.MustCompile(`from remote relation (\S+)`)

// lockTimeoutFinding is apply_blocked for a subscription whose apply worker
// keeps giving up on a lock (WorkerError.LockTimeout).
func lockTimeoutFinding(s diagnose.Subscription, file string, we WorkerError) diagnose.Finding {
	on := "a table of its"
	if m := contextTableRE.FindStringSubmatch(we.Context); m != nil {
		on = m[1]
	}
	return diagnose.Finding{Code: diagnose.CodeApplyBlocked, Severity: diagnose.Critical, Human: true,
		Message: fmt.Sprintf("subscription %s keeps stopping: its apply worker gives up waiting for a lock on %s that a session on subscriber %s holds, after lock_timeout (set for the database, for every role, or for the whole server, e.g. in an RDS parameter group: it reaches pglogical's workers too), and pglogical starts it again about 5 s later to wait and give up again; nothing of %s is applied until the lock is released, and then it goes on by itself (restarting does not help); the last error in the subscriber's log (%s): %s",
			s.Name, on, s.Subscriber, s.Name, file, we)}
}

// Annotate adds to the finding of each down subscription of subscriber the
// last error of its apply worker found in the log file. A stuck_down whose
// error is permanent becomes apply_error: restarting replays the change
// that fails, so it is for a person, and the daemon does not try.
func Annotate(r *diagnose.Report, subscriber, file string, errs Errors) {
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		we, ok := errs.For(s.Name, s.ApplyWorker)
		if _, blocked := s.Finding(diagnose.CodeApplyBlocked); ok && s.Subscriber == subscriber && s.UpSince != nil && !blocked && we.LockTimeout() {
			// Between two timeouts: pglogical's new worker says replicating
			// while it waits for the same lock (the outage is not over).
			s.Findings = append(s.Findings, lockTimeoutFinding(*s, file, we))
			s.Health = diagnose.Worst(s.Health, diagnose.Critical)
			r.Health = diagnose.Worst(r.Health, diagnose.Critical)
			continue
		}
		_, hangs := s.Finding(diagnose.CodeNotStreaming)
		if !ok || s.Subscriber != subscriber || (s.Status != probe.StatusDown && !hangs) {
			continue
		}
		for j := range s.Findings {
			f := &s.Findings[j]
			if !explained[f.Code] {
				continue
			}
			if kind, name, ok := we.StreamDenied(); ok {
				if f.Code == diagnose.CodeStuckDown {
					*f = streamDeniedFinding(*s, file, we, kind, name)
					break
				}
				cause, fix := streamDenied(*s, kind, name)
				f.Message = strings.TrimSuffix(f.Message, ".") + "; the provider refuses to stream to it: " + cause + " (to fix, " + fix + "); the last error in the subscriber's log (" + file + "): " + we.String()
				break
			}
			if cause, permanent, ok := we.ConnectFailure(); ok {
				if f.Code == diagnose.CodeStuckDown && permanent {
					*f = connectFinding(*s, file, we, cause)
					break
				}
				f.Message = strings.TrimSuffix(f.Message, ".") + "; its apply worker cannot connect to the provider (" + cause + "); the last error in the subscriber's log (" + file + "): " + we.String()
				break
			}
			if f.Code == diagnose.CodeStuckDown && we.LockTimeout() {
				*f = lockTimeoutFinding(*s, file, we)
				break
			}
			if f.Code == diagnose.CodeStuckDown && we.Permanent() {
				msg := fmt.Sprintf("subscription %s is down: its apply worker fails on a change the subscriber refuses, and restarting replays the same change; the last error in the subscriber's log (%s): %s", s.Name, file, we)
				if we.ConflictStop() {
					msg = fmt.Sprintf("subscription %s is down: pglogical.conflict_resolution is error on subscriber %s, so a change from provider %s that conflicts with a row written on the subscriber (an INSERT of a key it holds already, an UPDATE of a row changed there) stops its apply worker instead of being resolved, and restarting replays the same change; the last error in the subscriber's log (%s): %s",
						s.Name, s.Subscriber, orUnknown(s.Provider), file, we)
				}
				if stmt := we.QueuedSQL(); stmt != "" {
					msg = fmt.Sprintf("subscription %s is down: its apply worker fails to run DDL queued on provider %s through pglogical.replicate_ddl_command (%s), which subscriber %s refuses, and restarting runs the same statement again; nothing committed on %s after it is applied until the statement succeeds there or its transaction is skipped; the last error in the subscriber's log (%s): %s",
						s.Name, orUnknown(s.Provider), stmt, s.Subscriber, orUnknown(s.Provider), file, we)
				}
				*f = diagnose.Finding{Code: diagnose.CodeApplyError, Severity: diagnose.Critical, Human: true, Message: msg}
				break
			}
			f.Message = strings.TrimSuffix(f.Message, ".") + "; the last error of its apply worker in the subscriber's log (" + file + "): " + we.String()
			break
		}
	}
}

// Conflict is a conflict pglogical resolved by itself while applying, as
// its LOG line says (pglogical.conflict_log_level, LOG by default). Its
// DETAIL line, which quotes both rows, is never read.
type Conflict struct {
	// Prefix is the line's prefix (its time, as the server wrote it).
	Prefix string `json:"prefix"`
	// Op is the remote change: INSERT, UPDATE or DELETE.
	Op    string `json:"op"`
	Table string `json:"table"`
	// What pglogical found: e.g. "local index items_0_pkey" (the row was
	// there already) or "tuple not found" (it was not).
	Found      string `json:"found"`
	Resolution string `json:"resolution"`
}

// String is the conflict as one line.
func (c Conflict) String() string {
	return fmt.Sprintf("%s remote %s (%s), resolution %s", c.Prefix, c.Op, c.Found, c.Resolution)
}

// The relation as SQL writes it: schema.table, a part in double quotes
// where it needs them ("Sales"."Order Lines").
var conflictRE = regexp.MustCompile(`^CONFLICT: remote (INSERT|UPDATE|DELETE) on relation ((?:"(?:[^"]|"")+"|[^\s."]+)\.(?:"(?:[^"]|"")+"|[^\s."]+))\s*(.*?)\. Resolution: (\w+)\.?$`)

// Conflicts returns the conflicts logged in text, oldest first.
func Conflicts(text string) []Conflict {
	var out []Conflict
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.Contains(line, "CONFLICT: remote ") {
			continue
		}
		prefix, level, msg, ok := splitLine(line)
		if !ok || level != "LOG" {
			continue
		}
		c := conflictRE.FindStringSubmatch(msg)
		if c == nil {
			continue
		}
		found := strings.TrimSpace(c[3])
		if i, j := strings.LastIndex(found, "("), strings.LastIndex(found, ")"); i >= 0 && j > i {
			found = found[i+1 : j]
		}
		out = append(out, Conflict{Prefix: strings.TrimSpace(prefix), Op: c[1], Table: unquote(c[2]), Found: found, Resolution: c[4]})
	}
	return out
}
