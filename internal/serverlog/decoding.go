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

// DecodingError is the last error a provider's walsender raised while
// decoding a slot for its subscriber, as the provider's log says (the
// subscriber's says only "data stream ended"):
//
//	[9536] LOG:  starting logical decoding for slot "pgl_labdb_provider_labdb_sub_0"
//	[9536] ERROR:  permission denied for schema pglogical
//	[9536] CONTEXT:  slot "pgl_labdb_provider_labdb_sub_0", output plugin "pglogical_output", in the change callback, associated LSN 0/1A6A450
type DecodingError struct {
	Slot string `json:"slot"`
	// Prefix is the error line's prefix (its time, as the server wrote it).
	Prefix string `json:"prefix"`
	Error  string `json:"error"`
	// Callback is the output plugin's callback it failed in (startup,
	// change, commit, ...), LSN the change's position ("" when not said).
	Callback string `json:"callback"`
	LSN      string `json:"lsn,omitempty"`
}

var (
	decodingContextRE = regexp.MustCompile(`^slot "([^"]+)", output plugin "[^"]*", in the (\w+) callback(?:, associated LSN ([0-9A-F]+/[0-9A-F]+))?`)
	decodingStartRE   = regexp.MustCompile(`^starting logical decoding for slot "([^"]+)"`)
)

// DecodingErrors returns, by slot, the last error of a walsender decoding
// it, unless a later walsender started decoding it and raised none since
// (the cause passed).
func DecodingErrors(text string) map[string]DecodingError {
	type at struct {
		pid  string
		line int
	}
	pending := map[string]DecodingError{} // pid -> its last error so far
	started := map[string]at{}            // slot -> the last start of its decoding
	failed := map[string]at{}             // slot -> its error in out
	out := map[string]DecodingError{}
	n := 0
	for line := range strings.SplitSeq(text, "\n") {
		n++
		if !strings.Contains(line, "ERROR:") && !strings.Contains(line, "FATAL:") && !strings.Contains(line, "CONTEXT:") && !strings.Contains(line, "starting logical decoding") {
			continue
		}
		prefix, level, msg, ok := splitLine(line)
		if !ok {
			continue
		}
		pid, ok := pidOf(prefix)
		if !ok {
			continue
		}
		switch level {
		case "LOG":
			if m := decodingStartRE.FindStringSubmatch(msg); m != nil {
				started[m[1]] = at{pid, n}
			}
		case "ERROR", "FATAL":
			pending[pid] = DecodingError{Prefix: strings.TrimSpace(prefix), Error: level + ": " + msg}
		case "CONTEXT":
			m := decodingContextRE.FindStringSubmatch(msg)
			de, ok := pending[pid]
			if m == nil || !ok {
				continue
			}
			delete(pending, pid)
			de.Slot, de.Callback, de.LSN = m[1], m[2], m[3]
			out[de.Slot], failed[de.Slot] = de, at{pid, n}
		}
	}
	for slot, f := range failed {
		if s, ok := started[slot]; ok && s.pid != f.pid && s.line > f.line {
			delete(out, slot)
		}
	}
	return out
}

// StreamEnded says whether the apply worker's error is its provider's
// walsender ending the stream ("ERROR: data stream ended", measured with
// pglogical 2.4.2 when the walsender fails decoding a change): the
// provider's log says why (DecodingErrors).
func (w WorkerError) StreamEnded() bool { return strings.Contains(w.Error, "data stream ended") }

// permissionRE matches a decoding error for want of a privilege of the
// walsender's role.
var permissionRE = regexp.MustCompile(`permission denied for (schema|table|function|sequence) (\S+)`)

// AnnotateDecoding adds, to the finding of each down subscription whose
// provider is provider and whose slot's walsender failed decoding
// (DecodingErrors of the provider's log file), that error: the
// subscriber's log says only "data stream ended". A change that fails for
// want of a privilege is for a person: a stuck_down becomes
// provider_connection_failed, whose way out is not the grant alone.
func AnnotateDecoding(r *diagnose.Report, provider, file string, errs map[string]DecodingError) {
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		de, ok := errs[s.SlotName]
		if !ok || s.Provider != provider || s.Status != probe.StatusDown {
			continue
		}
		for j := range s.Findings {
			f := &s.Findings[j]
			if f.Code != diagnose.CodeStuckDown && f.Code != diagnose.CodeSubscriptionDown {
				continue
			}
			m := permissionRE.FindStringSubmatch(de.Error)
			if f.Code == diagnose.CodeStuckDown && m != nil && de.Callback != "startup" {
				*f = windowFinding(*s, file, de, m[1], m[2])
				break
			}
			f.Message = strings.TrimSuffix(f.Message, ".") + "; its walsender on provider " + provider + " fails decoding its slot (the provider's log, " + file + "): " + de.String()
			break
		}
	}
}

// String is the error as one line.
func (de DecodingError) String() string {
	s := de.Prefix + " " + de.Error + " (in the output plugin's " + de.Callback + " callback"
	if de.LSN != "" {
		s += ", at " + de.LSN
	}
	return s + ")"
}

// windowFinding is provider_connection_failed for a subscription whose
// walsender fails on a change for want of a privilege of its role (kind
// name). Measured with pglogical 2.4.2: logical decoding reads the
// catalogs as they were when the change was made, so a change made while
// the role lacked the privilege fails at every start, for ever, whatever
// the role may do now. For schema pglogical's USAGE, only a change made
// while the role had it revoked (a GRANT, a REVOKE, then the GRANT again);
// for EXECUTE on a function a row filter calls, any change made while the
// role lacked it, also one it never had. A role that could then (the
// owner, a superuser) decodes them; past them, the role can again.
func windowFinding(s diagnose.Subscription, file string, de DecodingError, kind, name string) diagnose.Finding {
	role := grantee(s.ProviderRole)
	at := ""
	if de.LSN != "" {
		at = " at " + de.LSN
	}
	what := "use " + kind + " " + name
	when := "if " + role + " lacked that privilege then (revoked, then granted again), each change committed meanwhile fails the same way at every start, for ever, whatever it may do now"
	grant := "grant it"
	if kind == "schema" {
		grant = "grant it (GRANT USAGE ON SCHEMA " + pgident.Ident(name) + " TO " + role + ";)"
	}
	way := "If it still lacks it, " + grant + " and restart; else move the subscription, until it has applied past those changes, to a provider connection as a role that could " + what + " then"
	if kind == "function" {
		what = "execute function " + name + " (a row filter's, evaluated by the walsender as that role)"
		when = "each change committed while " + role + " could not execute it fails the same way at every start, for ever, also after a GRANT (measured with pglogical 2.4.2, for a role that never could as well)"
		way = "Grant it for the changes to come (GRANT EXECUTE ON FUNCTION " + name + " TO " + role + ";), and move the subscription, until it has applied past the changes already made, to a provider connection as a role that could execute it then"
	}
	return diagnose.Finding{Code: diagnose.CodeProviderConnectFailed, Severity: diagnose.Critical, Human: true,
		Message: fmt.Sprintf("subscription %s is down: its walsender on provider %s fails decoding the change%s for the role of its provider connection, %s, which may not %s (the provider's log, %s: %s). Logical decoding reads the catalogs as they were when the change was made: %s. %s (its owner, or a superuser), then back (pglmon repair --subscription %s prints the calls). Restarting alone does not help; nothing is lost meanwhile (the provider's slot keeps the changes)",
			s.Name, orUnknown(s.Provider), at, role, what, file, de, when, way, shellword.Quote(s.Name))}
}
