package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/repair"
)

// MaxBody bounds an interaction request.
const MaxBody = 64 << 10

// Executor runs a repair request (the daemon's, with its lock and audit).
type Executor interface {
	Execute(ctx context.Context, req repair.Request) repair.Outcome
}

// Interactions handles button presses posted by Slack to /slack/interactions.
type Interactions struct {
	Secret    config.Secret
	Approvers map[string]bool
	// Groups, when set, approves members of the configured user groups.
	Groups *Groups
	Exec   Executor
	// Latest returns the last report, to refuse buttons whose finding is gone.
	Latest func() *diagnose.Report
	// Policy returns repair.policy now: a button whose remedy's policy was
	// turned off since its message was posted is refused.
	Policy   func() map[string]string
	Notifier *Notifier
	Audit    *repair.Audit
	Log      *slog.Logger
	// Ctx is the daemon's context; repairs run under it, not the request's.
	Ctx context.Context
	// HTTP posts ephemeral replies to response_url.
	HTTP *http.Client

	mu      sync.Mutex
	seen    map[string]time.Time // accepted presses, against replays and double clicks
	running map[string]bool      // subscriptions with a Slack repair in flight
	wg      sync.WaitGroup
}

// approved reports whether user may press repair buttons: listed, or a
// member of a listed user group.
func (h *Interactions) approved(user string) bool {
	if h.Approvers[user] {
		return true
	}
	return h.Groups != nil && h.Groups.Member(h.Ctx, user)
}

// Wait waits for repairs started from Slack.
func (h *Interactions) Wait() { h.wg.Wait() }

func (h *Interactions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		http.Error(w, "request too large", http.StatusUnauthorized)
		return
	}
	sv, err := slack.NewSecretsVerifier(r.Header, h.Secret.Reveal())
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		h.Log.Warn("slack interaction rejected", "reason", "signature or timestamp", "remote", r.RemoteAddr)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "malformed", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "malformed", http.StatusBadRequest)
		return
	}
	if _, _, ok := parseButton(cb); !ok {
		http.Error(w, "malformed", http.StatusBadRequest)
		return
	}
	// Slack waits 3 s for the acknowledgement; everything slow happens after it.
	w.WriteHeader(http.StatusOK)
	h.Handle(cb)
}

// parseButton returns the one button press an interaction carries.
func parseButton(cb slack.InteractionCallback) (*slack.BlockAction, ButtonValue, bool) {
	var v ButtonValue
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 {
		return nil, v, false
	}
	act := cb.ActionCallback.BlockActions[0]
	if err := json.Unmarshal([]byte(act.Value), &v); err != nil || (v.Subscription == "" && (v.Node == "" || v.Slot == "")) {
		return nil, v, false
	}
	return act, v, true
}

// Handle acts on an authenticated interaction (from HTTP or Socket Mode),
// after it was acknowledged; slow work runs in the background.
func (h *Interactions) Handle(cb slack.InteractionCallback) {
	act, v, ok := parseButton(cb)
	if !ok {
		return
	}
	user := cb.User.ID

	if !h.approved(user) {
		h.audit(user, v, "refused", "not an approver")
		h.ephemeral(cb.ResponseURL, "You are not an approver of pglmon repairs; nothing was run.")
		return
	}
	if act.ActionID == ActionSnooze && v.Node == "" {
		if !h.Notifier.Snooze(v.Subscriber, v.Subscription, user, SnoozeFor) {
			h.ephemeral(cb.ResponseURL, "The incident of "+v.target()+" is over: nothing to snooze.")
		}
		return
	}
	if act.ActionID != ActionRepair {
		return
	}
	if h.Policy != nil {
		if p := h.Policy()[v.Remedy]; p != config.PolicyApprove && p != config.PolicyAuto {
			h.audit(user, v, "refused", "repair.policy."+v.Remedy+" is not approve")
			h.ephemeral(cb.ResponseURL, fmt.Sprintf("repair.policy.%s is %q now, not approve: nothing was run.", v.Remedy, p))
			return
		}
	}
	press := cb.Container.MessageTs + "/" + act.ActionTs + "/" + user + "/" + act.Value
	h.mu.Lock()
	if h.seen == nil {
		h.seen, h.running = map[string]time.Time{}, map[string]bool{}
	}
	for k, t := range h.seen {
		if time.Since(t) > 10*time.Minute {
			delete(h.seen, k)
		}
	}
	_, replay := h.seen[press]
	busy := h.running[v.target()]
	if !replay && !busy {
		h.seen[press] = time.Now()
		h.running[v.target()] = true
	}
	h.mu.Unlock()
	if replay {
		return
	}
	if busy {
		h.ephemeral(cb.ResponseURL, "A repair of "+v.target()+" is already running.")
		return
	}
	done := func() {
		h.mu.Lock()
		delete(h.running, v.target())
		h.mu.Unlock()
	}
	if !h.stillHolds(v) {
		done()
		h.ephemeral(cb.ResponseURL, fmt.Sprintf("Already healthy: %s no longer shows %s; nothing was run.", v.target(), v.Finding))
		return
	}
	event := func(text, outcome string) {
		if v.Node != "" {
			h.Notifier.NodeEvent(v.Node, text, outcome)
		} else {
			h.Notifier.Event(v.Subscriber, v.Subscription, text, outcome)
		}
	}
	h.wg.Go(func() {
		defer done()
		event(fmt.Sprintf(":wrench: %s started by <@%s>", v.Remedy, user), "")
		out := h.Exec.Execute(h.Ctx, repair.Request{Remedy: v.Remedy, Subscription: v.Subscription, Subscriber: v.Subscriber,
			Node: v.Node, Slot: v.Slot, Actor: "slack:" + user, Finding: v.Finding})
		text := fmt.Sprintf("%s by <@%s>: %s in %s", v.Remedy, user, out.Result, out.Duration.Round(time.Millisecond))
		if out.Reason != "" {
			text += " (" + out.Reason + ")"
		}
		event(text, text)
	})
}

func (h *Interactions) stillHolds(v ButtonValue) bool {
	r := h.Latest()
	if r == nil {
		return false
	}
	if v.Node != "" {
		for _, n := range r.Nodes {
			for _, f := range n.Findings {
				if n.Name == v.Node && f.Code == v.Finding && f.Slot == v.Slot && f.Remedy == v.Remedy {
					return true
				}
			}
		}
		return false
	}
	s, ok := r.Subscription(v.Subscription, v.Subscriber)
	if !ok {
		return false
	}
	f, ok := s.Finding(v.Finding)
	return ok && f.Accepts(v.Remedy)
}

func (h *Interactions) audit(user string, v ButtonValue, outcome, reason string) {
	if h.Audit == nil {
		return
	}
	_ = h.Audit.Append(repair.Entry{Time: time.Now().UTC(), ID: "slack-" + user + "-" + fmt.Sprint(time.Now().UnixNano()), Phase: "finished",
		Actor: "slack:" + user, Remedy: v.Remedy, Subscription: v.Subscription, Subscriber: v.Subscriber, Provider: v.Node, Slot: v.Slot,
		Outcome: outcome, Reason: reason})
}

// ephemeral answers only the presser, through the interaction's response_url.
func (h *Interactions) ephemeral(responseURL, text string) {
	if responseURL == "" {
		return
	}
	b, _ := json.Marshal(map[string]any{"response_type": "ephemeral", "replace_original": false, "text": text})
	ctx, cancel := context.WithTimeout(h.Ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, responseURL, bytes.NewReader(b))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if resp, err := h.HTTP.Do(req); err == nil {
		resp.Body.Close()
	}
}
