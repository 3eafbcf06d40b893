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
package serverlog

import (
	"regexp"
	"strings"
)

// WorkerError is the last error an apply worker of a subscription exited with.
type WorkerError struct {
	Subscription string `json:"subscription"`
	PID          string `json:"pid"`
	// Prefix is the log line's prefix (its time, as the server wrote it).
	Prefix  string `json:"prefix"`
	Error   string `json:"error"`
	Context string `json:"context,omitempty"`
}

var (
	pidRE   = regexp.MustCompile(`\[(\d+)\]`)
	levelRE = regexp.MustCompile(`^(.*?)\b(LOG|ERROR|FATAL|CONTEXT|DETAIL|HINT|STATEMENT|WARNING):\s+(.*)$`)
	startRE = regexp.MustCompile(`^starting apply for subscription (.+)$`)
	exitRE  = regexp.MustCompile(`^apply worker \[(\d+)\] .*exiting with error`)
)

// WorkerErrors returns, by subscription, the last error of its apply
// workers that exited with one. Workers whose start line is not in text
// are left out (their subscription is unknown).
func WorkerErrors(text string) map[string]WorkerError {
	subOf := map[string]string{}        // pid -> subscription
	pending := map[string]WorkerError{} // pid -> its last error so far
	out := map[string]WorkerError{}
	for _, line := range strings.Split(text, "\n") {
		m := levelRE.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		prefix, level, msg := m[1], m[2], m[3]
		p := pidRE.FindStringSubmatch(prefix)
		if p == nil {
			continue
		}
		pid := p[1]
		switch level {
		case "LOG":
			if s := startRE.FindStringSubmatch(msg); s != nil {
				subOf[pid] = s[1]
				delete(pending, pid)
			} else if e := exitRE.FindStringSubmatch(msg); e != nil && e[1] == pid {
				if we, ok := pending[pid]; ok && subOf[pid] != "" {
					we.Subscription = subOf[pid]
					out[we.Subscription] = we
				}
			}
		case "ERROR", "FATAL":
			pending[pid] = WorkerError{PID: pid, Prefix: strings.TrimSpace(prefix), Error: level + ": " + msg}
		case "CONTEXT": // not DETAIL: it may quote row values
			if we, ok := pending[pid]; ok && we.Context == "" {
				we.Context = level + ": " + msg
				pending[pid] = we
			}
		}
	}
	return out
}

// String is the error as one line.
func (w WorkerError) String() string {
	s := w.Prefix + " " + w.Error
	if w.Context != "" {
		s += " (" + w.Context + ")"
	}
	return s
}
