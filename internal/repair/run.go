package repair

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// The attempts of commands other than repairs, audited beside them. They
// are continued by running the same command again, never resumed.
const (
	RemedyUpgradePrepare = "upgrade-prepare"
	RemedyUpgradeRestore = "upgrade-restore"
	RemedySetupApply     = "setup-apply"
)

// Resumable reports whether an interrupted attempt of remedy is finished by
// the next pglmon run or repair.
func Resumable(remedy string) bool {
	return remedy != RemedyUpgradePrepare && remedy != RemedyUpgradeRestore && remedy != RemedySetupApply
}

// Run records one attempt of such a command: a "started" line, its steps,
// a "finished" line. A nil audit records nothing.
type Run struct {
	audit                   *Audit
	id, actor, remedy, node string
	start                   time.Time
	steps                   []StepResult
}

// NewID returns a new attempt ID.
func NewID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Begin writes the "started" line of attempt id (a new one when empty; the
// same again when a re-run continues it). Nothing should run when it fails.
func (a *Audit) Begin(id, actor, remedy, node string) (*Run, error) {
	if id == "" {
		id = NewID()
	}
	r := &Run{audit: a, id: id, actor: actor, remedy: remedy, node: node, start: time.Now()}
	if a == nil {
		return r, nil
	}
	return r, a.Append(Entry{Time: time.Now().UTC(), ID: id, Phase: "started", Actor: actor, Remedy: remedy, Node: node})
}

// Refused writes the single "finished" line of an attempt that ran nothing.
func (a *Audit) Refused(actor, remedy, node, reason string) {
	if a == nil {
		return
	}
	_ = a.Append(Entry{Time: time.Now().UTC(), ID: NewID(), Phase: "finished", Actor: actor, Remedy: remedy, Node: node,
		Outcome: ResultRefused, Reason: reason})
}

// Step records what a step did; args and errText must hold no secret.
func (r *Run) Step(node, action, sql string, args []any, took time.Duration, errText string) {
	st := StepResult{Node: node, Action: action, SQL: sql, Args: args, Result: "ok", DurationMS: took.Milliseconds()}
	if errText != "" {
		st.Result, st.Error = "failed", errText
	}
	r.steps = append(r.steps, st)
}

// End writes the "finished" line with the steps; reason (no secret) is why
// it failed, "" when it succeeded. A failure to write is returned.
func (r *Run) End(reason string) error {
	if r.audit == nil {
		return nil
	}
	e := Entry{Time: time.Now().UTC(), ID: r.id, Phase: "finished", Actor: r.actor, Remedy: r.remedy, Node: r.node,
		Steps: r.steps, Outcome: ResultSuccess, DurationMS: time.Since(r.start).Milliseconds()}
	if reason != "" {
		e.Outcome, e.Reason = ResultFailed, reason
	}
	return r.audit.Append(e)
}
