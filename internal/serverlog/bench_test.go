package serverlog

import (
	"fmt"
	"strings"
	"testing"
)

// tailText is a 512 KiB log tail (what one read of a self-managed server's
// log parses) of checkpoints, long statements and a few pglogical lines.
func tailText() string {
	var b strings.Builder
	for i := 0; b.Len() < 512<<10; i++ {
		fmt.Fprintf(&b, "2026-12-04 23:56:10.%03d UTC [%d] LOG:  checkpoint starting: time\n", i%1000, 1000+i)
		fmt.Fprintf(&b, "2026-12-04 23:56:10.%03d UTC [%d] LOG:  duration: 1.2 ms  statement: SELECT '%s'\n", i%1000, 1000+i, strings.Repeat("x", 2000))
		if i%50 == 0 {
			fmt.Fprintf(&b, "2026-12-04 23:56:10.%03d UTC [12848] LOG:  starting apply for subscription sub_0\n", i%1000)
			fmt.Fprintf(&b, "2026-12-04 23:56:10.%03d UTC [12848] LOG:  CONFLICT: remote UPDATE on relation public.items_0 replica identity index items_0_pkey (tuple not found). Resolution: skip.\n", i%1000)
		}
	}
	return b.String()
}

// Parsing what one read of the log returns: the tail for worker errors,
// copies, failing table syncs and a waiting barrier, the lines gained for
// conflicts and copies.
// go test -run '^$' -bench ParseTail -benchmem ./internal/serverlog/
func BenchmarkParseTail(b *testing.B) {
	text := tailText()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		WorkerErrors(text)
		LastBarrierHolder(text)
		Copies(text)
		ParseSyncFailures(text)
		Conflicts(text)
	}
}

// SyncFailures of a 512 KiB tail of nothing but a table's failing sync
// worker (pglogical's lines as it tries again several times a second).
// go test -run '^$' -bench SyncFailuresTail -benchmem ./internal/serverlog/
func BenchmarkSyncFailuresTail(b *testing.B) {
	var t strings.Builder
	for t.Len() < 512<<10 {
		t.WriteString(syncLog)
	}
	text := t.String()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		ParseSyncFailures(text)
	}
}

// Turning a 512 KiB csvlog tail (the same messages as tailText's) into the
// lines the parsers read.
// go test -run '^$' -bench AsLines -benchmem ./internal/serverlog/
func BenchmarkCSVLogAsLines(b *testing.B) {
	var buf strings.Builder
	for i := 0; buf.Len() < 512<<10; i++ {
		fmt.Fprintf(&buf, "2026-12-04 23:56:10.%03d UTC,,,%d,,6753a1b0.1092,1,,2026-12-04 23:00:00 UTC,3/0,0,LOG,00000,\"checkpoint starting: time\",,,,,,,,,\"\",\"checkpointer\",,0\n", i%1000, 1000+i)
		fmt.Fprintf(&buf, "2026-12-04 23:56:10.%03d UTC,\"app\",\"db\",%d,\"10.0.0.1:5000\",6753a1b0.1092,1,\"SELECT\",2026-12-04 23:00:00 UTC,3/0,0,LOG,00000,\"duration: 1.2 ms  statement: SELECT '%s'\",,,,,,,,,\"psql\",\"client backend\",,0\n", i%1000, 1000+i, strings.Repeat("x", 2000))
	}
	text := buf.String()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		AsLines(CSVLog, text)
	}
}

// The same for jsonlog.
func BenchmarkJSONLogAsLines(b *testing.B) {
	var buf strings.Builder
	for i := 0; buf.Len() < 512<<10; i++ {
		fmt.Fprintf(&buf, `{"timestamp":"2026-12-04 23:56:10.%03d UTC","pid":%d,"error_severity":"LOG","message":"checkpoint starting: time","backend_type":"checkpointer"}`+"\n", i%1000, 1000+i)
		fmt.Fprintf(&buf, `{"timestamp":"2026-12-04 23:56:10.%03d UTC","user":"app","dbname":"db","pid":%d,"error_severity":"LOG","message":"duration: 1.2 ms  statement: SELECT '%s'","backend_type":"client backend"}`+"\n", i%1000, 1000+i, strings.Repeat("x", 2000))
	}
	text := buf.String()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		AsLines(JSONLog, text)
	}
}
