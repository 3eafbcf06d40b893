package serverlog

import (
	"slices"
	"testing"
)

// The lines pglogical 2.4.2's crashing apply worker left in a server log
// here (a generated column the provider does not send), the OOM killer's
// SIGKILL of a backend, and lines that are no crash.
func TestCrashesNamesTheProcessAndItsSubscription(t *testing.T) {
	const log = `2026-12-06 08:34:37.027 UTC [13982] LOG:  database system is ready to accept connections
2026-12-06 08:34:37.028 UTC [18717] LOG:  starting pglogical supervisor
2026-12-06 08:34:37.041 UTC [18721] LOG:  starting apply for subscription sub_0
2026-12-06 08:34:37.047 UTC [13982] LOG:  background worker "pglogical apply 16384:3147399666" (PID 18721) was terminated by signal 11: Segmentation fault
2026-12-06 08:34:37.047 UTC [13982] LOG:  terminating any other active server processes
2026-12-06 08:34:37.049 UTC [13982] LOG:  all server processes terminated; reinitializing
2026-12-06 08:34:38.011 UTC [13982] LOG:  background worker "pglogical apply 16384:3147399666" (PID 18801) was terminated by signal 11: Segmentation fault
2026-12-06 08:35:01.000 UTC [13982] LOG:  background worker "pglogical apply 16384:3147399666" (PID 18900) exited with exit code 1
2026-12-06 08:40:00.000 UTC [13982] LOG:  server process (PID 4242) was terminated by signal 9: Killed
2026-12-06 08:40:00.000 UTC [13982] DETAIL:  Failed process was running: SELECT 1
2026-12-06 08:41:00.000 UTC [5000] ERROR:  a message quoting: background worker "x" (PID 1) was terminated by signal 11: Segmentation fault`
	got := Crashes(log)
	want := []Crash{
		{Prefix: "2026-12-06 08:34:37.047 UTC [13982]", Process: `background worker "pglogical apply 16384:3147399666"`, Signal: "signal 11: Segmentation fault", Subscription: "sub_0"},
		// Its start line is not in the text: the subscription is not known.
		{Prefix: "2026-12-06 08:34:38.011 UTC [13982]", Process: `background worker "pglogical apply 16384:3147399666"`, Signal: "signal 11: Segmentation fault"},
		{Prefix: "2026-12-06 08:40:00.000 UTC [13982]", Process: "server process", Signal: "signal 9: Killed"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
