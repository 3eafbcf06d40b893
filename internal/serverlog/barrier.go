package serverlog

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// barrierRE is the line PostgreSQL 15+ writes every 5 s while a statement
// waits for a process to accept its ProcSignalBarrier.
var barrierRE = regexp.MustCompile(`^(.*?)LOG:\s+still waiting for backend with PID (\d+) to accept ProcSignalBarrier\s*$`)

// BarrierHolder is the process the last such line of a log names.
type BarrierHolder struct {
	PID int
	// Prefix is the line's prefix (its time, as the server wrote it).
	Prefix string
}

// LastBarrierHolder returns the process the last "still waiting for backend
// with PID n to accept ProcSignalBarrier" line of text names.
func LastBarrierHolder(text string) (BarrierHolder, bool) {
	// The lines that name the barrier, from the last (most logs have none).
	const named = " to accept ProcSignalBarrier"
	for end := len(text); ; {
		i := strings.LastIndex(text[:end], named)
		if i < 0 {
			return BarrierHolder{}, false
		}
		start := strings.LastIndexByte(text[:i], '\n') + 1
		line := text[start:]
		if j := strings.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		if m := barrierRE.FindStringSubmatch(line); m != nil {
			if pid, err := strconv.Atoi(m[2]); err == nil {
				return BarrierHolder{PID: pid, Prefix: strings.TrimSpace(m[1])}, true
			}
		}
		end = start
	}
}

// AnnotateBarrier adds to node's signal_barrier_stuck finding the process
// the server log (file) names as the one the statement waits for, with its
// type when it is one of pglogical's processes the finding lists.
func AnnotateBarrier(r *diagnose.Report, node, file string, h BarrierHolder) {
	for i := range r.Nodes {
		n := &r.Nodes[i]
		if n.Name != node {
			continue
		}
		for j := range n.Findings {
			f := &n.Findings[j]
			if f.Code != diagnose.CodeSignalBarrierStuck {
				continue
			}
			what := "a process that is not one of pglogical's it started before the statement: look it up in pg_stat_activity (pid " + strconv.Itoa(h.PID) + ")"
			for _, w := range n.BarrierWaits {
				for _, p := range w.Pglogical {
					if p.PID == h.PID {
						what = "the " + p.Type + fmt.Sprintf(" (pid %d)", p.PID)
					}
				}
			}
			when := ""
			if h.Prefix != "" {
				when = " (" + h.Prefix + ")"
			}
			f.Message = strings.TrimSuffix(f.Message, ".") + fmt.Sprintf(". The server log (%s) names the process it waits for now: %s%s", file, what, when)
		}
	}
}
