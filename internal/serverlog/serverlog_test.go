package serverlog

import "testing"

// Lines as PostgreSQL 15 with pglogical 2.4.2 wrote them when a column was
// added on the provider alone (test harness prefix '%m [%p] '), and the same
// in RDS's default prefix, with other processes' lines in between.
func TestWorkerErrors(t *testing.T) {
	for name, text := range map[string]string{
		"harness prefix": `2026-11-24 19:00:17.846 UTC [12848] LOG:  starting apply for subscription sub_0
2026-11-24 19:00:17.900 UTC [12850] ERROR:  relation "nope" does not exist at character 15
2026-11-24 19:00:18.057 UTC [12848] ERROR:  unknown column name extra
2026-11-24 19:00:18.057 UTC [12848] CONTEXT:  apply INSERT in commit before 0/1A42C68, xid 732 committed at 2026-11-24 19:00:17.960676+00 (action #2) from node replorigin 1
2026-11-24 19:00:18.057 UTC [12848] LOG:  apply worker [12848] at slot 1 generation 2 exiting with error
2026-11-24 19:00:23.849 UTC [12881] LOG:  starting apply for subscription sub_1
2026-11-24 19:00:24.000 UTC [12881] LOG:  some other line
`,
		"rds prefix": `2026-11-24 19:00:17 UTC::@:[12848]:LOG:  starting apply for subscription sub_0
2026-11-24 19:00:17 UTC:10.0.0.9(5432):app@db:[12850]:ERROR:  relation "nope" does not exist at character 15
2026-11-24 19:00:18 UTC::@:[12848]:ERROR:  unknown column name extra
2026-11-24 19:00:18 UTC::@:[12848]:CONTEXT:  apply INSERT in commit before 0/1A42C68, xid 732 committed at 2026-11-24 19:00:17.960676+00 (action #2) from node replorigin 1
2026-11-24 19:00:18 UTC::@:[12848]:LOG:  apply worker [12848] at slot 1 generation 2 exiting with error
2026-11-24 19:00:23 UTC::@:[12881]:LOG:  starting apply for subscription sub_1
`,
	} {
		got := WorkerErrors(text)
		we, ok := got["sub_0"]
		if len(got) != 1 || !ok || we.Error != "ERROR: unknown column name extra" || we.PID != "12848" ||
			we.Context == "" || we.Prefix == "" {
			t.Errorf("%s: %+v", name, got)
		}
	}
	// A worker that restarted and runs: its earlier error is still the last one it exited with.
	if got := WorkerErrors("[1] LOG:  starting apply for subscription s\n[1] LOG:  apply worker [1] at slot 1 generation 2 exiting with error\n"); len(got) != 0 {
		t.Errorf("exit without an error line: %+v", got)
	}
}
