package repair

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/shellword"
)

// Results of an attempt.
const (
	ResultSuccess = "success" // executed and replicating afterwards
	ResultFailed  = "failed"  // a step failed, or not replicating in time
	ResultRefused = "refused" // nothing executed: no longer needed, unsafe or locked
	ResultDryRun  = "dry-run" // nothing executed on request
	// ResultDeferred: an interrupted attempt (Request.Resume) that cannot be
	// finished now, as a node it needs cannot be reached; nothing is
	// written, so it stays unfinished and is finished later.
	ResultDeferred = "deferred"
)

// Observer re-probes and re-diagnoses every node.
type Observer interface {
	Observe(ctx context.Context) diagnose.Report
}

// Executor runs plans safely. Its zero timeouts get defaults.
type Executor struct {
	Config   *config.Config
	Observer Observer
	Audit    *Audit
	// StepTimeout is the statement_timeout and lock_timeout of every step.
	StepTimeout time.Duration
	// VerifyTimeout bounds the wait for `replicating` afterwards.
	VerifyTimeout time.Duration
	// Poll is how often verification re-probes.
	Poll time.Duration

	// crashAfterStep, in tests, stops right after that step as if the
	// process died: no "finished" line, nothing undone.
	crashAfterStep int
	// failStep, in tests, makes that step's SQL fail on the server.
	failStep int
}

// Request asks for one remedy.
type Request struct {
	Remedy       string
	Subscription string
	// Subscriber narrows Subscription to one subscriber node ("" = any).
	Subscriber string
	// Node and Slot name the slot of drop-orphan-slot.
	Node, Slot string
	// LSN is, for skip-transaction, the commit LSN of the transaction to skip;
	// FailingLSN, when known (the subscriber's log, read by the caller), the
	// commit LSN of the transaction the apply worker fails on: LSN must be it.
	LSN, FailingLSN string
	// Actor is auto, cli:<os user> or slack:<user id>.
	Actor string
	// Finding, when set, is the finding the remedy was chosen for: the
	// attempt is refused when it no longer holds or calls for another remedy.
	Finding string
	DryRun  bool
	// Resume continues an interrupted attempt with this audit ID.
	Resume string
}

// Outcome is what an attempt did.
type Outcome struct {
	ID       string
	Result   string
	Reason   string
	Plan     Plan
	Steps    []StepResult
	Duration time.Duration
	// ReplicatingAfter is the time from the first step to `replicating`.
	ReplicatingAfter time.Duration
}

// ErrLocked is the reason of an attempt refused because another holds the lock.
var ErrLocked = errors.New("another pglmon is repairing it (advisory lock held)")

// LockKey is the advisory lock key of a subscription on its subscriber.
func LockKey(subscription string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pglmon/repair/" + subscription))
	return int64(h.Sum64())
}

// Execute runs one request: plan, check, lock, re-check, steps, verify, audit.
func (e *Executor) Execute(ctx context.Context, req Request) Outcome {
	start := time.Now()
	out := Outcome{ID: req.Resume}
	if out.ID == "" {
		out.ID = NewID()
	}
	finish := func(result, reason string) Outcome {
		out.Result, out.Reason, out.Duration = result, reason, time.Since(start)
		if result != ResultDryRun && e.Audit != nil {
			entry := e.entry(out, req, "finished")
			if err := e.Audit.Append(entry); err != nil && out.Reason == "" {
				out.Reason = err.Error()
			}
		}
		return out
	}

	// An interrupted attempt is finished once the nodes it needs answer:
	// a "finished" line written while they do not would leave for good
	// what the crash left (a subscription disabled between its steps).
	refuse := func(reason string, unreachableNode bool) Outcome {
		if !unreachableNode || req.Resume == "" {
			return finish(ResultRefused, reason)
		}
		out.Result, out.Reason, out.Duration = ResultDeferred, reason+"; attempt "+req.Resume+" stays unfinished, to be finished once it can be reached", time.Since(start)
		return out
	}
	plan, _, err := e.plan(ctx, req)
	out.Plan = plan
	if err != nil {
		return refuse(err.Error(), errors.As(err, new(unreachable)))
	}
	if req.DryRun {
		return finish(ResultDryRun, "nothing executed (--dry-run)")
	}
	nodeName := plan.Steps[0].Node
	node, ok := e.Config.Node(nodeName)
	if !ok {
		return finish(ResultRefused, fmt.Sprintf("node %s is not configured", nodeName))
	}
	conn, err := probe.Connect(ctx, node, e.stepTimeout())
	if err != nil {
		return refuse(err.Error(), true)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	// The lock is held by this connection until it closes: a crash frees it.
	lockName := plan.Subscription
	if lockName == "" {
		lockName = "slot/" + plan.Slot
	}
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", LockKey(lockName)).Scan(&locked); err != nil {
		return refuse(fmt.Sprintf("take the advisory lock on %s: %v", nodeName, err), true)
	}
	if !locked {
		what := "subscription " + plan.Subscription
		if plan.Subscription == "" {
			what = "slot " + plan.Slot
		}
		if req.Resume != "" {
			// Not interrupted: whoever holds the lock runs it still (the
			// daemon, or a person's pglmon repair), and records how it
			// ends; a "finished" here would end its attempt for it.
			out.Result, out.Duration = ResultRefused, time.Since(start)
			out.Reason = fmt.Sprintf("%s: attempt %s is still running, not interrupted (%s)", what, req.Resume, ErrLocked)
			return out
		}
		return finish(ResultRefused, what+": "+ErrLocked.Error())
	}
	// What was true before the lock may have changed while another held it.
	plan, sub, err := e.plan(ctx, req)
	if err != nil {
		return refuse("after taking the lock: "+err.Error(), errors.As(err, new(unreachable)))
	}
	out.Plan = plan
	if e.Audit != nil {
		if err := e.Audit.Append(e.entry(out, req, "started")); err != nil {
			return finish(ResultRefused, "cannot write the audit log, so nothing is run: "+err.Error())
		}
	}
	stepsStart := time.Now()
	// Steps are not cancelled by a shutdown: stopping between disable and
	// enable is worse than finishing a plan whose steps take milliseconds.
	// Each is bounded by statement_timeout.
	stepCtx := context.WithoutCancel(ctx)
	for i, step := range plan.Steps {
		if e.failStep == i+1 {
			step.SQL, step.Done, step.Args = "SELECT 1/0 WHERE $1::text IS NOT NULL", "", step.Args[:1]
		}
		res := e.runStep(stepCtx, conn, step)
		out.Steps = append(out.Steps, res)
		if res.Result == "failed" {
			for _, rest := range plan.Steps[i+1:] {
				out.Steps = append(out.Steps, StepResult{Node: rest.Node, Action: rest.Action, SQL: rest.SQL, Args: rest.Args, Result: "not-run"})
			}
			reason := fmt.Sprintf("step %d (%s): %s", i+1, step.Action, res.Error)
			if undo, ok := reenable(plan, i); ok {
				// pglmon disabled the subscription and cannot finish: leave it
				// enabled, as it found it, rather than disabled for good.
				r := e.runStep(stepCtx, conn, undo)
				r.Action = "compensate: " + r.Action
				out.Steps = append(out.Steps, r)
				reason += "; the subscription was enabled again (" + r.Result + ")"
			}
			return finish(ResultFailed, reason)
		}
		if e.crashAfterStep == i+1 {
			out.Result = "crashed"
			return out
		}
	}
	if plan.WaitReplicating {
		if err := e.verify(ctx, sub); err != nil {
			return finish(ResultFailed, err.Error())
		}
		out.ReplicatingAfter = time.Since(stepsStart)
	}
	return finish(ResultSuccess, "")
}

// unreachable is a refusal because a node cannot be reached now: an
// interrupted attempt is finished later instead (ResultDeferred).
type unreachable struct{ error }

func (u unreachable) Unwrap() error { return u.error }

// reenable returns the plan's enable step when a step before failed (index
// failed) came after its disable step.
func reenable(p Plan, failed int) (Step, bool) {
	disabled := false
	for i, s := range p.Steps {
		if s.SQL == sqlDisable && i < failed {
			disabled = true
		}
		if s.SQL == sqlEnable && i > failed && disabled {
			return s, true
		}
	}
	return Step{}, false
}

// plan re-observes the nodes, builds the plan and checks that it is still
// needed and safe.
func (e *Executor) plan(ctx context.Context, req Request) (Plan, diagnose.Subscription, error) {
	r := e.Observer.Observe(ctx)
	if req.Remedy == diagnose.RemedyDropOrphanSlot {
		return e.planDropSlot(r, req)
	}
	var sub *diagnose.Subscription
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		if s.Name == req.Subscription && (req.Subscriber == "" || s.Subscriber == req.Subscriber) {
			if sub != nil {
				return Plan{}, diagnose.Subscription{}, fmt.Errorf("subscription %s exists on %s and %s: name the subscriber", req.Subscription, sub.Subscriber, s.Subscriber)
			}
			sub = s
		}
	}
	if sub == nil {
		err := fmt.Errorf("subscription %s not found on any reachable subscriber", req.Subscription)
		if i := slices.IndexFunc(r.Nodes, func(n diagnose.Node) bool { return n.Name == req.Subscriber }); i >= 0 && !r.Nodes[i].Up {
			err = unreachable{fmt.Errorf("subscription %s: its subscriber %s cannot be reached", req.Subscription, req.Subscriber)}
		}
		return Plan{}, diagnose.Subscription{}, err
	}
	if sub.Status == diagnose.StatusMissing && req.Remedy != "" {
		// Described by the configuration only: nothing to run a remedy on.
		return Plan{}, *sub, fmt.Errorf("subscription %s does not exist on %s (subscription_missing): nothing to repair; pglmon setup plan shows how setup apply would create it (pglmon upgrade restore, after upgrade prepare)", sub.Name, sub.Subscriber)
	}
	if req.Remedy == "" {
		return Plan{}, *sub, errors.New("no remedy given")
	}
	if req.Remedy == diagnose.RemedySkipTransaction {
		plan := SkipTransactionPlan(*sub, req.LSN)
		return plan, *sub, safeSkip(req, *sub)
	}
	if req.Remedy == diagnose.RemedyRewindOrigin {
		return rewindPlan(req, *sub)
	}
	plan, err := PlanFor(req.Remedy, *sub)
	if err != nil {
		return Plan{}, *sub, err
	}
	// A remedy a person runs after fixing a finding's cause is not checked
	// against the finding: it may come from what only the daemon reads (the
	// subscriber's log), and the person asserts the cause is gone; the
	// safety checks below still hold.
	if req.Finding != "" && (diagnose.Finding{Code: req.Finding}).AfterFix() != req.Remedy {
		f, ok := sub.Finding(req.Finding)
		if !ok {
			return plan, *sub, fmt.Errorf("finding %s no longer holds for %s (health %s)", req.Finding, sub.Name, sub.Health)
		}
		if f.Remedy != req.Remedy {
			return plan, *sub, fmt.Errorf("finding %s now calls for %q, not %s", req.Finding, f.Remedy, req.Remedy)
		}
	}
	return plan, *sub, safe(req, *sub)
}

// safe checks the conditions under which a remedy cannot make things worse.
func safe(req Request, s diagnose.Subscription) error {
	if _, ok := s.Finding(diagnose.CodeNodeUnreachable); ok {
		return unreachable{fmt.Errorf("a node of %s cannot be reached; nothing is safe to run", s.Name)}
	}
	needSlot := func() error {
		switch {
		case !s.ProviderUp:
			return unreachable{fmt.Errorf("the provider of %s is not configured or not reachable, so its slot cannot be checked", s.Name)}
		case !s.SlotFound:
			return fmt.Errorf("slot %s does not exist on provider %s: changes were lost and a person must decide (see the slot_missing plan)", s.SlotName, s.Provider)
		case s.SlotWALStatus == "lost":
			return fmt.Errorf("slot %s has lost WAL (wal_status lost): a person must decide", s.SlotName)
		}
		return nil
	}
	switch req.Remedy {
	case diagnose.RemedyRestart:
		if err := needSlot(); err != nil {
			return err
		}
		if !s.OriginExists {
			return fmt.Errorf("replication origin %s is missing: use recreate-origin", s.SlotName)
		}
		if _, held := s.Finding(diagnose.CodeSlotInUse); held || (s.Status == probe.StatusDown && s.SlotActive && req.Resume == "") {
			return fmt.Errorf("slot %s on %s is in use by another process while %s is down: a restarted worker fails the same way (see the slot_in_use plan: pglmon repair --subscription %s)", s.SlotName, s.Provider, s.Name, shellword.Quote(s.Name))
		}
		if !s.Enabled && req.Resume == "" {
			return fmt.Errorf("%s is disabled, perhaps on purpose: use enable", s.Name)
		}
	case diagnose.RemedyRecreateOrigin:
		if err := needSlot(); err != nil {
			return err
		}
		if s.OriginExists && req.Resume == "" {
			return fmt.Errorf("replication origin %s exists: nothing to re-create", s.SlotName)
		}
	case diagnose.RemedyEnable:
		if s.Enabled && req.Resume == "" {
			return fmt.Errorf("%s is already enabled", s.Name)
		}
	}
	return nil
}

// rewindPlan builds and checks rewind-origin: the provider's slot is there
// and the subscriber's origin is past the provider's end of WAL
// (provider_rewound), unless an interrupted attempt is finished; that one
// moves the origin to the position its first run chose (the audit log's).
func rewindPlan(req Request, s diagnose.Subscription) (Plan, diagnose.Subscription, error) {
	if _, ok := s.Finding(diagnose.CodeNodeUnreachable); ok {
		return Plan{}, s, unreachable{fmt.Errorf("a node of %s cannot be reached; nothing is safe to run", s.Name)}
	}
	lsn := req.LSN
	if lsn == "" && s.Rewound != nil {
		lsn = s.Rewound.SlotConfirmedLSN
	}
	// Interrupted once enabled again and no longer rewound: its steps ran
	// (or the provider's WAL passed the origin before they could).
	plan := RewindOriginPlan(s, lsn, req.Resume != "" && s.Enabled && s.Rewound == nil)
	switch {
	case !s.ProviderUp:
		return plan, s, unreachable{fmt.Errorf("the provider of %s is not configured or not reachable, so its slot cannot be checked", s.Name)}
	case !s.SlotFound:
		return plan, s, fmt.Errorf("slot %s does not exist on provider %s: a person must decide (see the slot_missing plan)", s.SlotName, s.Provider)
	case !s.OriginExists:
		return plan, s, fmt.Errorf("replication origin %s is missing: use recreate-origin", s.SlotName)
	case s.ApplyWorker == "":
		return plan, s, fmt.Errorf("the apply worker of %s is unknown", s.Name)
	case req.Resume == "" && s.Rewound == nil:
		return plan, s, fmt.Errorf("the subscriber's replication origin of %s (%s) is not past its provider's end of WAL: nothing to rewind (provider_rewound)", s.Name, cmp.Or(s.OriginRemoteLSN, "none"))
	}
	if _, err := probe.ParseLSN(lsn); err != nil || lsn == "" {
		return plan, s, fmt.Errorf("where slot %s confirmed is not known (%q)", s.SlotName, lsn)
	}
	return plan, s, nil
}

// safeSkip checks skip-transaction: the subscription is stopped by that
// transaction, the LSN is ahead of what the subscriber applied, and, when
// the subscriber's log told pglmon which transaction fails, it is that one.
func safeSkip(req Request, s diagnose.Subscription) error {
	if _, ok := s.Finding(diagnose.CodeNodeUnreachable); ok {
		return unreachable{fmt.Errorf("a node of %s cannot be reached; nothing is safe to run", s.Name)}
	}
	want, err := probe.ParseLSN(req.LSN)
	if err != nil || req.LSN == "" {
		return fmt.Errorf("--lsn %q is not an LSN (like 0/1972DB0: the \"commit before\" of the apply worker's error)", req.LSN)
	}
	switch {
	case !s.ProviderUp || !s.SlotFound:
		return fmt.Errorf("the provider slot of %s cannot be checked or is missing: a person must decide", s.Name)
	case !s.OriginExists:
		return fmt.Errorf("replication origin %s is missing: use recreate-origin", s.SlotName)
	case s.ApplyWorker == "":
		return fmt.Errorf("the apply worker of %s is unknown", s.Name)
	}
	if req.Resume != "" {
		return nil // started already: finish it
	}
	if s.Status == probe.StatusReplicating {
		return fmt.Errorf("%s is replicating: no transaction stops it", s.Name)
	}
	if have, err := probe.ParseLSN(s.OriginRemoteLSN); err == nil && s.OriginRemoteLSN != "" && want < have {
		return fmt.Errorf("the subscriber has applied up to %s, past %s: moving its origin back would replay transactions", s.OriginRemoteLSN, req.LSN)
	}
	if req.FailingLSN != "" && req.FailingLSN != req.LSN {
		return fmt.Errorf("the transaction %s fails on is the one in commit %s (its subscriber's log), not %s", s.Name, req.FailingLSN, req.LSN)
	}
	return nil
}

func (e *Executor) planDropSlot(r diagnose.Report, req Request) (Plan, diagnose.Subscription, error) {
	plan := DropOrphanSlotPlan(req.Node, req.Slot)
	for _, n := range r.Nodes {
		if n.Name != req.Node {
			continue
		}
		if !n.Up {
			return plan, diagnose.Subscription{}, unreachable{fmt.Errorf("node %s cannot be reached", req.Node)}
		}
		for _, f := range n.Findings {
			if f.Code == diagnose.CodeOrphanSlot && f.Slot == req.Slot {
				return plan, diagnose.Subscription{}, nil
			}
		}
		return plan, diagnose.Subscription{}, fmt.Errorf("slot %s on %s is not an orphan: it is in use, active, missing, or a configured node cannot be reached to tell", req.Slot, req.Node)
	}
	return plan, diagnose.Subscription{}, fmt.Errorf("node %s is not configured", req.Node)
}

func (e *Executor) runStep(ctx context.Context, conn *pgx.Conn, s Step) StepResult {
	start := time.Now()
	res := StepResult{Node: s.Node, Action: s.Action, SQL: s.SQL, Args: s.Args}
	done := func(result string, err error) StepResult {
		res.Result, res.DurationMS = result, time.Since(start).Milliseconds()
		if err != nil {
			res.Error = err.Error()
		}
		return res
	}
	if s.WaitFor != "" {
		for {
			var ready bool
			if err := conn.QueryRow(ctx, s.WaitFor, s.Args...).Scan(&ready); err != nil {
				return done("failed", fmt.Errorf("wait: %w", err))
			}
			if ready {
				break
			}
			if time.Since(start) > e.stepTimeout() {
				return done("failed", fmt.Errorf("still not ready after %s", e.stepTimeout()))
			}
			select {
			case <-ctx.Done():
				return done("failed", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if s.Done != "" {
		var already bool
		if err := conn.QueryRow(ctx, s.Done, s.Args...).Scan(&already); err != nil {
			return done("failed", fmt.Errorf("check whether done: %w", err))
		}
		if already {
			return done("skipped", nil)
		}
	}
	if _, err := conn.Exec(ctx, s.SQL, s.Args...); err != nil {
		return done("failed", err)
	}
	if s.Verify != "" {
		var ok bool
		if err := conn.QueryRow(ctx, s.Verify, s.Args...).Scan(&ok); err != nil {
			return done("failed", fmt.Errorf("verify: %w", err))
		}
		if !ok {
			return done("failed", errors.New("verification after the step failed"))
		}
	}
	return done("ok", nil)
}

// verify waits, bounded, until the subscription replicates and its provider
// slot is active.
func (e *Executor) verify(ctx context.Context, s diagnose.Subscription) error {
	timeout := e.VerifyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	poll := e.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "unknown"
	for {
		r := e.Observer.Observe(ctx)
		if got, ok := r.Subscription(s.Name, s.Subscriber); ok {
			last = fmt.Sprintf("status %s, slot active %t", got.Status, got.SlotActive)
			if got.Status == probe.StatusReplicating && got.SlotActive {
				return nil
			}
			// A node gone meanwhile is a new incident: stop waiting so the
			// next cycle can choose its remedy, rather than hold the
			// subscription for the whole verify_timeout.
			if f, ok := got.Finding(diagnose.CodeNodeUnreachable); ok {
				return fmt.Errorf("stopped verifying: %s", f.Message)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not replicating within %s (last seen: %s)", timeout, last)
		case <-time.After(poll):
		}
	}
}

func (e *Executor) stepTimeout() time.Duration {
	if e.StepTimeout > 0 {
		return e.StepTimeout
	}
	return 30 * time.Second
}

func (e *Executor) entry(o Outcome, req Request, phase string) Entry {
	en := Entry{
		Time: time.Now().UTC(), ID: o.ID, Phase: phase, Actor: req.Actor, Remedy: o.Plan.Remedy,
		Subscription: o.Plan.Subscription, Subscriber: o.Plan.Subscriber, Provider: o.Plan.Provider, Slot: o.Plan.Slot,
		LSN: cmp.Or(req.LSN, o.Plan.LSN), Steps: o.Steps, Outcome: o.Result, Reason: o.Reason, DurationMS: o.Duration.Milliseconds(),
		ReplicatingAfterMS: o.ReplicatingAfter.Milliseconds(),
	}
	if en.Remedy == "" {
		en.Remedy = req.Remedy
	}
	if en.Subscription == "" {
		en.Subscription = req.Subscription
	}
	if phase == "started" {
		en.Outcome, en.Steps = "", nil
		for _, s := range o.Plan.Steps {
			en.Steps = append(en.Steps, StepResult{Node: s.Node, Action: s.Action, SQL: s.SQL, Args: s.Args, Result: "planned"})
		}
	}
	return en
}

// Resume finishes every interrupted attempt found in the audit log (a crash
// after `disable` must not leave a subscription disabled for good).
func (e *Executor) Resume(ctx context.Context, actor string) ([]Outcome, error) {
	if e.Audit == nil {
		return nil, nil
	}
	pending, err := e.Audit.Unfinished()
	if err != nil {
		return nil, err
	}
	var outs []Outcome
	for _, p := range pending {
		o := e.Execute(ctx, Request{
			Remedy: p.Remedy, Subscription: p.Subscription, Subscriber: p.Subscriber,
			Node: p.Provider, Slot: p.Slot, LSN: p.LSN, Actor: actor, Resume: p.ID,
		})
		if o.Plan.Remedy == "" { // refused or deferred before a plan: say what it was
			o.Plan.Remedy, o.Plan.Subscription, o.Plan.Subscriber = p.Remedy, p.Subscription, p.Subscriber
		}
		outs = append(outs, o)
	}
	return outs, nil
}
