package serverlog

import (
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

// The last "still waiting for backend" line names the process; the finding
// says which of pglogical's it is, or that it is none of them.
func TestBarrierHolderAnnotated(t *testing.T) {
	text := `2026-12-04 10:00:00.100 UTC [900] LOG:  still waiting for backend with PID 811 to accept ProcSignalBarrier
2026-12-04 10:00:00.100 UTC [900] STATEMENT:  DROP DATABASE scratch
2026-12-04 10:00:05.101 UTC [900] LOG:  still waiting for backend with PID 812 to accept ProcSignalBarrier
2026-12-04 10:00:05.101 UTC [900] STATEMENT:  DROP DATABASE scratch
`
	h, ok := LastBarrierHolder(text)
	if !ok || h.PID != 812 || h.Prefix != "2026-12-04 10:00:05.101 UTC [900]" {
		t.Fatalf("holder: %+v %v", h, ok)
	}
	if _, ok := LastBarrierHolder("LOG:  checkpoint complete\n"); ok {
		t.Error("a holder in a log without the line")
	}
	report := func() *diagnose.Report {
		return &diagnose.Report{Nodes: []diagnose.Node{{Name: "s",
			BarrierWaits: []probe.BarrierWait{{Pglogical: []probe.Process{{PID: 811, Type: "pglogical apply 16384:1"}, {PID: 812, Type: "pglogical supervisor"}}}},
			Findings:     []diagnose.Finding{{Code: diagnose.CodeSignalBarrierStuck, Message: "DROP DATABASE scratch ... waits."}}}}}
	}
	r := report()
	AnnotateBarrier(r, "s", "log/postgresql.log", h)
	if m := r.Nodes[0].Findings[0].Message; !strings.HasSuffix(m, "waits. The server log (log/postgresql.log) names the process it waits for now: the pglogical supervisor (pid 812) (2026-12-04 10:00:05.101 UTC [900])") {
		t.Errorf("annotated: %s", m)
	}
	r = report()
	AnnotateBarrier(r, "s", "f", BarrierHolder{PID: 999})
	if m := r.Nodes[0].Findings[0].Message; !strings.Contains(m, "names the process it waits for now: a process that is not one of pglogical's it started before the statement: look it up in pg_stat_activity (pid 999)") {
		t.Errorf("other process: %s", m)
	}
	r = report()
	AnnotateBarrier(r, "other", "f", h)
	if m := r.Nodes[0].Findings[0].Message; strings.Contains(m, "server log") {
		t.Errorf("another node's log annotated s: %s", m)
	}
}
