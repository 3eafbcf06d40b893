package serverlog

import (
	"regexp"
	"strings"
)

// Crash is a server process that ended abnormally, as the postmaster logs
// it; PostgreSQL then ends every other process and replays WAL: each crash
// restarts the whole server. Seen with pglogical 2.4.2 (measured): its
// apply worker crashes with a segmentation fault at a change to a table
// whose generated column the provider does not send, and again at every
// start, so the server restarts in a loop:
//
//	[14043] LOG:  starting apply for subscription sub_0
//	[13982] LOG:  background worker "pglogical apply 16384:3147399666" (PID 14043) was terminated by signal 11: Segmentation fault
//	[13982] LOG:  terminating any other active server processes
//
// The out-of-memory killer's SIGKILL of a backend reads the same way
// ("server process (PID 4242) was terminated by signal 9: Killed").
type Crash struct {
	// Prefix is the postmaster's line prefix (its time, as the server wrote it).
	Prefix string `json:"prefix"`
	// Process is the process as the postmaster names it: `background
	// worker "pglogical apply 16384:3147399666"`, `server process` ...
	Process string `json:"process"`
	// Signal is what ended it: "signal 11: Segmentation fault".
	Signal string `json:"signal"`
	// Subscription is, for a pglogical apply worker, its subscription (from
	// the worker's start line, when the text holds it).
	Subscription string `json:"subscription,omitempty"`
}

var crashRE = regexp.MustCompile(`^(.+) \(PID (\d+)\) was terminated by (signal \d+.*)$`)

// Crashes returns the processes of text that crashed, oldest first.
func Crashes(text string) []Crash {
	applying := map[string]string{} // apply worker pid -> its subscription
	var out []Crash
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.Contains(line, "starting apply for subscription ") && !strings.Contains(line, " was terminated by signal ") {
			continue
		}
		prefix, level, msg, ok := splitLine(line)
		if !ok || level != "LOG" {
			continue
		}
		if s := startRE.FindStringSubmatch(msg); s != nil {
			if p := pidRE.FindStringSubmatch(prefix); p != nil {
				applying[p[1]] = s[1]
			}
			continue
		}
		c := crashRE.FindStringSubmatch(msg)
		if c == nil {
			continue
		}
		crash := Crash{Prefix: strings.TrimSpace(prefix), Process: c[1], Signal: c[3]}
		if strings.HasPrefix(c[1], `background worker "pglogical apply `) {
			crash.Subscription = applying[c[2]]
		}
		out = append(out, crash)
	}
	return out
}
