package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/repair"
)

// autoRepairer runs the remedies whose policy is auto, one at a time per
// subscription, backing off after failures and giving up past the hourly
// limit until the subscription recovers or a person acts.
type autoRepairer struct {
	d     *Daemon
	audit *repair.Audit
	mu    sync.Mutex
	state map[string]*repairState
	wg    sync.WaitGroup
	// resuming: finishing interrupted attempts now; resumeAt: when to try
	// again those that could not be finished (a node unreachable), if any.
	resuming bool
	resumeAt time.Time
}

// resumeRetry is how long the daemon waits before trying again to finish
// an interrupted attempt whose nodes could not be reached.
func (a *autoRepairer) resumeRetry() time.Duration {
	if a.d.opts.ResumeRetry > 0 {
		return a.d.opts.ResumeRetry
	}
	return 30 * time.Second
}

type repairState struct {
	running  bool
	attempts []time.Time // attempts that executed SQL, last hour
	failures int         // consecutive failed attempts
	next     time.Time   // no attempt before
	lastErr  string
}

const (
	repairBackoffBase = 5 * time.Second
	repairBackoffMax  = 10 * time.Minute
)

// Executor returns an executor over the daemon's monitor and current config.
func (d *Daemon) Executor() *repair.Executor {
	cfg := d.cfg.Load()
	return &repair.Executor{Config: cfg, Observer: d.mon, Audit: d.repairer.audit, VerifyTimeout: cfg.Repair.VerifyTimeout.D()}
}

// Execute runs a request through the daemon's executor and records it in
// metrics and the log (Slack approvals use it too).
func (d *Daemon) Execute(ctx context.Context, req repair.Request) repair.Outcome {
	out := d.Executor().Execute(ctx, req)
	d.recordOutcome(req, out)
	if out.Result == repair.ResultSuccess && req.Actor != "auto" {
		d.repairer.reset(req.Subscriber + "/" + req.Subscription)
	}
	return out
}

func (d *Daemon) recordOutcome(req repair.Request, out repair.Outcome) {
	remedy := out.Plan.Remedy
	if remedy == "" {
		remedy = req.Remedy
	}
	level := d.log.Info
	switch out.Result {
	case repair.ResultFailed:
		level = d.log.Error
	case repair.ResultDeferred:
		// Not an attempt: tried again every ResumeRetry while it lasts.
		d.log.Warn("interrupted repair not finished yet", keySubscription, req.Subscription, keySubscriber, req.Subscriber, keyRemedy, remedy, keyReason, out.Reason)
		return
	}
	d.metrics.Repair(remedy, out.Result, out.Duration)
	if d.slack != nil && req.Actor == "auto" && len(out.Steps) > 0 {
		text := fmt.Sprintf(":robot_face: automatic %s: %s in %s", remedy, out.Result, out.Duration.Round(time.Millisecond))
		if out.Reason != "" {
			text += " (" + out.Reason + ")"
		}
		d.slack.Event(req.Subscriber, req.Subscription, text, text)
	}
	level("repair attempt", keySubscription, req.Subscription, keySubscriber, req.Subscriber, keyRemedy, remedy,
		"actor", req.Actor, keyResult, out.Result, keyReason, out.Reason, keyDuration, out.Duration.Round(time.Millisecond).String())
}

func (a *autoRepairer) reset(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, ok := a.state[key]; ok && !st.running {
		delete(a.state, key)
	}
}

// consider starts the repairs the report calls for and adds repair_failed
// findings to subscriptions pglmon has given up on.
func (a *autoRepairer) consider(ctx context.Context, r *diagnose.Report) {
	cfg := a.d.cfg.Load()
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		key := s.Subscriber + "/" + s.Name
		seen[key] = true
		st := a.state[key]
		if s.Health == diagnose.OK {
			// Recovery ends an incident but not the hour's count: a
			// subscription that keeps breaking must not be repaired forever.
			if st != nil && !st.running {
				st.attempts, st.failures, st.next = pruneHour(st.attempts, now), 0, time.Time{}
				if len(st.attempts) == 0 {
					delete(a.state, key)
				}
			}
			continue
		}
		f, ok := autoFinding(s, cfg)
		if st == nil {
			if !ok {
				continue
			}
			st = &repairState{}
			a.state[key] = st
		}
		st.attempts = pruneHour(st.attempts, now)
		if limit := cfg.Repair.MaxAttemptsPerHour; limit > 0 && len(st.attempts) >= limit && !st.running {
			r.AddFinding(s, diagnose.Finding{Code: diagnose.CodeRepairFailed, Severity: diagnose.Critical,
				Message: fmt.Sprintf("pglmon ran %d automatic repairs of %s in the last hour and stopped trying (repair.max_attempts_per_hour %d); last result: %s. A person must look; `pglmon repair` or a Slack approval resets this",
					len(st.attempts), s.Name, limit, orNone(st.lastErr))})
			continue
		}
		if !ok || st.running || now.Before(st.next) || ctx.Err() != nil || s.Maintenance != nil {
			continue
		}
		st.running = true
		req := repair.Request{Remedy: f.Remedy, Subscription: s.Name, Subscriber: s.Subscriber, Actor: "auto", Finding: f.Code}
		a.wg.Go(func() { a.run(ctx, key, req) })
	}
	for key, st := range a.state {
		if !seen[key] && !st.running {
			delete(a.state, key)
		}
	}
	if !a.resumeAt.IsZero() && !a.resuming && !now.Before(a.resumeAt) && ctx.Err() == nil {
		a.resuming = true
		a.wg.Go(func() { a.resume(ctx) })
	}
}

func (a *autoRepairer) run(ctx context.Context, key string, req repair.Request) {
	out := a.d.Executor().Execute(ctx, req)
	a.d.recordOutcome(req, out)
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state[key]
	if st == nil {
		return
	}
	st.running = false
	now := time.Now()
	executed := len(out.Steps) > 0
	if executed {
		st.attempts = append(st.attempts, now)
	}
	switch out.Result {
	case repair.ResultSuccess:
		st.failures, st.lastErr = 0, "success"
		st.next = now
	case repair.ResultFailed:
		st.failures++
		st.lastErr = out.Reason
		st.next = now.Add(min(repairBackoffBase<<min(st.failures-1, 16), repairBackoffMax))
	default: // refused: nothing ran; look again next cycle
		st.lastErr = out.Reason
		st.next = now
	}
}

// autoFinding returns the finding whose remedy the policy lets pglmon run alone.
func autoFinding(s *diagnose.Subscription, cfg *config.Config) (diagnose.Finding, bool) {
	for _, f := range s.Findings {
		if f.Remedy != "" && cfg.Repair.Policy[f.Remedy] == config.PolicyAuto {
			return f, true
		}
	}
	return diagnose.Finding{}, false
}

// resume finishes repairs a crash interrupted (a subscription must not stay
// disabled because pglmon died between disable and enable).
// Those whose nodes cannot be reached yet are tried again every
// Options.ResumeRetry (consider starts it), so that what the crash left is put
// right once the node is back.
func (a *autoRepairer) resume(ctx context.Context) {
	a.mu.Lock()
	a.resuming, a.resumeAt = true, time.Time{}
	a.mu.Unlock()
	deferred := false
	defer func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.resuming = false
		if deferred {
			a.resumeAt = time.Now().Add(a.resumeRetry())
		}
	}()
	outs, err := a.d.Executor().Resume(ctx, "auto")
	if err != nil {
		a.d.log.Error("read the audit log to finish interrupted repairs", keyError, err.Error())
		return
	}
	for _, o := range outs {
		deferred = deferred || o.Result == repair.ResultDeferred
		a.d.recordOutcome(repair.Request{Remedy: o.Plan.Remedy, Subscription: o.Plan.Subscription, Subscriber: o.Plan.Subscriber, Actor: "auto"}, o)
	}
}

func (a *autoRepairer) wait() { a.wg.Wait() }

func pruneHour(ts []time.Time, now time.Time) []time.Time {
	out := ts[:0]
	for _, t := range ts {
		if now.Sub(t) < time.Hour {
			out = append(out, t)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
