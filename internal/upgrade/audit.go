package upgrade

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/repair"
)

// attempt is one prepare or restore as the audit log records it: who ran
// it, each statement that changed a database, and how it ended.
type attempt struct {
	id, remedy, node string
	start            time.Time
	steps            []repair.StepResult
}

// exec runs a statement that changes a database, recording it as a step of
// the current attempt (with any connection string's password removed).
func (r *Runner) exec(ctx context.Context, conn *pgx.Conn, node, action, sql string, args ...any) error {
	start := time.Now()
	_, err := conn.Exec(ctx, sql, args...)
	if r.current == nil {
		return err
	}
	st := repair.StepResult{Node: node, Action: action, SQL: sql, Args: redactArgs(args), Result: "ok", DurationMS: time.Since(start).Milliseconds()}
	if err != nil {
		st.Result = "failed"
		st.Error, _ = StripPassword(err.Error())
	}
	r.current.steps = append(r.current.steps, st)
	return err
}

func redactArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if s, ok := a.(string); ok {
			a, _ = StripPassword(s)
		}
		out[i] = a
	}
	return out
}

func newAttemptID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// begin writes the attempt's "started" line (again, with the same ID, when
// a re-run continues it); nothing is run when it cannot be written.
func (r *Runner) begin(remedy, node, id string) error {
	if id == "" {
		id = newAttemptID()
	}
	r.current = &attempt{id: id, remedy: remedy, node: node, start: time.Now()}
	if r.Audit == nil {
		return nil
	}
	return r.Audit.Append(repair.Entry{Time: time.Now().UTC(), ID: id, Phase: "started", Actor: r.Actor, Remedy: remedy, Node: node})
}

// refuse writes the single "finished" line of an attempt that ran nothing.
func (r *Runner) refuse(remedy, node, reason string) {
	if r.Audit == nil {
		return
	}
	_ = r.Audit.Append(repair.Entry{Time: time.Now().UTC(), ID: newAttemptID(), Phase: "finished", Actor: r.Actor, Remedy: remedy, Node: node,
		Outcome: repair.ResultRefused, Reason: reason})
}

// end writes the attempt's "finished" line with its steps; err is how it
// ended. The attempt's own error wins over a failure to write the line.
func (r *Runner) end(err error) error {
	a := r.current
	r.current = nil
	if a == nil || r.Audit == nil {
		return err
	}
	e := repair.Entry{Time: time.Now().UTC(), ID: a.id, Phase: "finished", Actor: r.Actor, Remedy: a.remedy, Node: a.node,
		Steps: a.steps, Outcome: repair.ResultSuccess, DurationMS: time.Since(a.start).Milliseconds()}
	if err != nil {
		e.Outcome = repair.ResultFailed
		e.Reason, _ = StripPassword(err.Error())
	}
	if werr := r.Audit.Append(e); werr != nil && err == nil {
		return werr
	}
	return err
}
