package upgrade

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// exec runs a statement that changes a database, recording it as a step of
// the current attempt (with any connection string's password removed).
func (r *Runner) exec(ctx context.Context, conn *pgx.Conn, node, action, sql string, args ...any) error {
	start := time.Now()
	_, err := conn.Exec(ctx, sql, args...)
	if r.current != nil {
		var msg string
		if err != nil {
			msg, _ = StripPassword(err.Error())
		}
		r.current.Step(node, action, sql, redactArgs(args), time.Since(start), msg)
	}
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

// begin writes the attempt's "started" line (again, with the same ID, when
// a re-run continues it); nothing is run when it cannot be written.
func (r *Runner) begin(remedy, node, id string) error {
	run, err := r.Audit.Begin(id, r.Actor, remedy, node)
	r.current = run
	return err
}

// end writes the attempt's "finished" line with its steps; err is how it
// ended, and wins over a failure to write the line.
func (r *Runner) end(err error) error {
	run := r.current
	r.current = nil
	var reason string
	if err != nil {
		reason, _ = StripPassword(err.Error())
	}
	if werr := run.End(reason); werr != nil && err == nil {
		return werr
	}
	return err
}
