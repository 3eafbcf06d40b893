package serverlog

import (
	"strings"
	"testing"
)

// csvlog records as PostgreSQL 15 writes them: 26 columns, a message over
// several lines with quotes and commas, a DETAIL, a CONTEXT.
const csvSample = `2026-12-05 10:00:00.100 UTC,,,4242,,6753a1b0.1092,1,,2026-12-05 10:00:00 UTC,3/0,0,LOG,00000,"starting apply for subscription sub_0",,,,,,,,,"","pglogical apply 16384:3147399666",,0
2026-12-05 10:00:01.200 UTC,,,4242,,6753a1b0.1092,2,,2026-12-05 10:00:00 UTC,3/7,741,ERROR,23514,"new row for relation ""items_0"" violates check constraint ""small_n""","Failing row contains (11, big, 500).",,,,"apply INSERT from remote relation public.items_0 in commit before 0/1A42C68, xid 741 committed at 2026-12-05 10:00:01.1+00 (action #2) from node replorigin 1",,,,"","pglogical apply 16384:3147399666",,0
2026-12-05 10:00:01.300 UTC,,,4242,,6753a1b0.1092,3,,2026-12-05 10:00:00 UTC,3/0,0,LOG,00000,"apply worker [4242] at slot 1 generation 2 exiting with error",,,,,,,,,"","pglogical apply 16384:3147399666",,0
2026-12-05 10:00:02.000 UTC,"app","labdb",4300,"127.0.0.1:5000",6753a1b2.10cc,1,"SELECT",2026-12-05 10:00:02 UTC,4/2,0,ERROR,42601,"syntax error at or near ""x""
2026-12-05 is not a record start, nor is this line, ""quoted""",,,,,,"SELECT x
FROM y",8,,"psql","client backend",,0
2026-12-05 10:00:03.000 UTC,,,4242,,6753a1b0.1092,4,,2026-12-05 10:00:00 UTC,3/0,0,LOG,00000,"CONFLICT: remote UPDATE on relation public.items_0 replica identity index items_0_pkey (tuple not found). Resolution: skip.","remote tuple {id[integer]:5 val[text]:changed}",,,,"apply UPDATE from remote relation public.items_0",,,,"","pglogical apply 16384:3147399666",,0
2026-12-05 10:00:04.000 UTC,,,4242,,6753a1b0.1092,5,,2026-12-05 10:00:00 UTC,3/0,0,LOG,00000,"still being writ`

func TestCSVLogReadsAsLines(t *testing.T) {
	got := AsLines(CSVLog, csvSample)
	want := `2026-12-05 10:00:00.100 UTC [4242] LOG:  starting apply for subscription sub_0
2026-12-05 10:00:01.200 UTC [4242] ERROR:  new row for relation "items_0" violates check constraint "small_n"
2026-12-05 10:00:01.200 UTC [4242] DETAIL:  Failing row contains (11, big, 500).
2026-12-05 10:00:01.200 UTC [4242] CONTEXT:  apply INSERT from remote relation public.items_0 in commit before 0/1A42C68, xid 741 committed at 2026-12-05 10:00:01.1+00 (action #2) from node replorigin 1
2026-12-05 10:00:01.300 UTC [4242] LOG:  apply worker [4242] at slot 1 generation 2 exiting with error
2026-12-05 10:00:02.000 UTC [4300] ERROR:  syntax error at or near "x"
	2026-12-05 is not a record start, nor is this line, "quoted"
2026-12-05 10:00:02.000 UTC [4300] STATEMENT:  SELECT x
	FROM y
2026-12-05 10:00:03.000 UTC [4242] LOG:  CONFLICT: remote UPDATE on relation public.items_0 replica identity index items_0_pkey (tuple not found). Resolution: skip.
2026-12-05 10:00:03.000 UTC [4242] DETAIL:  remote tuple {id[integer]:5 val[text]:changed}
2026-12-05 10:00:03.000 UTC [4242] CONTEXT:  apply UPDATE from remote relation public.items_0
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// What this package reads of stderr lines, it reads of these.
	errs := WorkerErrors(got)
	if we, ok := errs.For("sub_0", ""); !ok || !strings.Contains(we.Error, `violates check constraint "small_n"`) || !strings.HasPrefix(we.Context, "CONTEXT: apply INSERT") || we.Prefix != "2026-12-05 10:00:01.200 UTC [4242]" {
		t.Errorf("worker error: %+v %v", we, ok)
	}
	if cs := Conflicts(got); len(cs) != 1 || cs[0].Table != "public.items_0" || cs[0].Resolution != "skip" {
		t.Errorf("conflicts: %+v", cs)
	}
	// A tail read from inside a record (the second line of the syntax
	// error's message) starts at the next record.
	cut := csvSample[strings.Index(csvSample, "2026-12-05 is not"):]
	if got := AsLines(CSVLog, cut); !strings.HasPrefix(got, "2026-12-05 10:00:03.000 UTC [4242] LOG:  CONFLICT") {
		t.Errorf("from inside a record:\n%s", got)
	}
	cut = csvSample[strings.Index(csvSample, `row contains`):]
	if got := AsLines(CSVLog, cut); !strings.HasPrefix(got, "2026-12-05 10:00:01.300 UTC [4242] LOG:  apply worker [4242]") {
		t.Errorf("from inside a quoted field:\n%s", got)
	}
}

func TestJSONLogReadsAsLines(t *testing.T) {
	text := `{"timestamp":"2026-12-05 10:00:00.100 UTC","pid":4242,"session_id":"6753a1b0.1092","line_num":1,"error_severity":"LOG","state_code":"00000","message":"starting apply for subscription sub_0","application_name":"","backend_type":"pglogical apply 16384:3147399666","query_id":0}
{"timestamp":"2026-12-05 10:00:01.200 UTC","pid":4242,"error_severity":"ERROR","state_code":"23514","message":"new row for relation \"items_0\" violates check constraint \"small_n\"","detail":"Failing row contains (11, big, 500).","context":"apply INSERT from remote relation public.items_0\nin commit","backend_type":"pglogical apply 16384:3147399666"}
{"timestamp":"2026-12-05 10:00:01.300 UTC","pid":4242,"error_severity":"LOG","message":"apply worker [4242] at slot 1 generation 2 exiting with error"}
not json
{"timestamp":"2026-12-05 10:00:04.000 UTC","pid":4242,"error_severity":"LOG","message":"still being wr`
	got := AsLines(JSONLog, text)
	want := `2026-12-05 10:00:00.100 UTC [4242] LOG:  starting apply for subscription sub_0
2026-12-05 10:00:01.200 UTC [4242] ERROR:  new row for relation "items_0" violates check constraint "small_n"
2026-12-05 10:00:01.200 UTC [4242] DETAIL:  Failing row contains (11, big, 500).
2026-12-05 10:00:01.200 UTC [4242] CONTEXT:  apply INSERT from remote relation public.items_0
	in commit
2026-12-05 10:00:01.300 UTC [4242] LOG:  apply worker [4242] at slot 1 generation 2 exiting with error
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, ok := WorkerErrors(got).For("sub_0", ""); !ok {
		t.Error("no worker error")
	}
}

func TestFormatOf(t *testing.T) {
	for file, want := range map[string]string{
		"log/postgresql-2026-12-05_000000.log":         Stderr,
		"log/postgresql-2026-12-05_000000.csv":         CSVLog,
		"log/postgresql-2026-12-05_000000.json":        JSONLog,
		"/var/log/postgresql/postgresql-15-main.log":   Stderr,
		"/var/log/postgresql/postgresql-15-main.log.1": Stderr,
	} {
		if got := FormatOf(file); got != want {
			t.Errorf("%s: %s, want %s", file, got, want)
		}
	}
}
