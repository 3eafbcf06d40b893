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
// copies and a waiting barrier, the lines gained for conflicts and copies.
// go test -run '^$' -bench ParseTail -benchmem ./internal/serverlog/
func BenchmarkParseTail(b *testing.B) {
	text := tailText()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		WorkerErrors(text)
		LastBarrierHolder(text)
		Copies(text)
		Conflicts(text)
	}
}
