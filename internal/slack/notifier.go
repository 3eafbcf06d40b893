package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
)

// Poster is the part of the Slack Web API the notifier uses.
type Poster interface {
	PostMessageContext(ctx context.Context, channel string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channel, ts string, options ...slack.MsgOption) (string, string, string, error)
}

// incident is one message: a subscription's trouble from leaving ok to recovering.
type incident struct {
	ts        string // message timestamp, once posted
	since     time.Time
	health    diagnose.Health
	codes     string
	flaps     int
	recovered time.Time // zero while open
	okSince   time.Time // ok again, not yet for settle: the recovery is not told yet
	pending   time.Time // a quiet warning not yet posted
	snoozed   time.Time // replies held until then (the message is still kept current)
	snoozedBy string    // the Slack user who snoozed it
	last      diagnose.Subscription
	node      *diagnose.Node // set for a node's incident instead of last
	outcome   string
}

// downFor is how long the incident lasted (so far, while it is open).
func (in *incident) downFor() time.Duration {
	end := time.Now()
	if !in.recovered.IsZero() {
		end = in.recovered
	}
	return end.Sub(in.since).Round(time.Second)
}

type job struct {
	key     string
	reply   string // thread reply text; empty for a post/update of the message
	attempt int
}

// Notifier turns reports into Slack messages. Sends go through a bounded
// queue and one worker, so Slack being slow or down never delays probing.
type Notifier struct {
	api        Poster
	channel    string
	quiet      time.Duration
	policy     func() map[string]string
	log        *slog.Logger
	counter    *prometheus.CounterVec
	queue      chan job
	flapWindow time.Duration
	// settle is how long a subscription must stay ok before its recovery
	// is told: in a crash loop pglogical says replicating for about a
	// second each time it starts the apply worker again.
	settle  time.Duration
	backoff time.Duration

	mu        sync.Mutex
	incidents map[string]*incident
}

// QueueSize bounds the messages waiting for Slack.
const QueueSize = 256

// NewNotifier returns a notifier posting to channel through api.
func NewNotifier(api Poster, cfg config.Slack, policy func() map[string]string, log *slog.Logger, counter *prometheus.CounterVec) *Notifier {
	return &Notifier{api: api, channel: cfg.Channel, quiet: cfg.WarningQuiet.D(), policy: policy, log: log, counter: counter,
		queue: make(chan job, QueueSize), flapWindow: time.Hour, settle: diagnose.FlapWindow, backoff: time.Second, incidents: map[string]*incident{}}
}

// NewClient builds the Slack Web API client.
func NewClient(cfg config.Slack, token config.Secret) *slack.Client {
	return slack.New(token.Reveal(), slack.OptionAPIURL(cfg.APIURL))
}

func key(subscriber, sub string) string { return subscriber + "/" + sub }

// Observe is called with every cycle's report; it never blocks.
func (n *Notifier) Observe(r diagnose.Report) { n.observeAt(time.Now(), r) }

func (n *Notifier) observeAt(now time.Time, r diagnose.Report) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Under maintenance, nothing moves: no new message, no update, no
	// recovery; what still holds when it ends is told then.
	for _, s := range r.Subscriptions {
		if s.Maintenance != nil {
			continue
		}
		n.observe(now, key(s.Subscriber, s.Name), s.Health, findingCodes(s.Findings), func(in *incident) { in.last = s })
	}
	// Node findings (an orphan slot, an RDS parameter group that lost
	// pglogical) get their own incident. An unreachable node is told through
	// the subscriptions it serves.
	for _, nd := range r.Nodes {
		if nd.Maintenance != nil {
			continue
		}
		var fs []diagnose.Finding
		health := diagnose.OK
		for _, f := range nd.Findings {
			if f.Code != diagnose.CodeNodeUnreachable {
				fs = append(fs, f)
				health = diagnose.Worst(health, f.Severity)
			}
		}
		nd.Findings = fs
		// The slot is part of what a node finding is: another orphan slot
		// is a change (its message gets that slot's button).
		codes := make([]string, len(fs))
		for i, f := range fs {
			codes[i] = f.Code
			if f.Slot != "" {
				codes[i] += " " + f.Slot
			}
		}
		n.observe(now, nodeKey(nd.Name), health, strings.Join(codes, ", "), func(in *incident) { in.node = &nd })
	}
}

func nodeKey(node string) string { return "node:" + node }

// observe moves one incident along: opened, escalated or changed, flapping,
// recovered. set stores what the message shows.
func (n *Notifier) observe(now time.Time, k string, health diagnose.Health, codes string, set func(*incident)) {
	in := n.incidents[k]
	if health == diagnose.OK {
		if in == nil || !in.recovered.IsZero() {
			return
		}
		if !in.pending.IsZero() { // a quiet warning that was never queued: nothing to tell
			delete(n.incidents, k)
			return
		}
		if in.okSince.IsZero() {
			in.okSince = now
		}
		if now.Sub(in.okSince) < n.settle {
			return
		}
		in.recovered, in.health, in.okSince = in.okSince, health, time.Time{}
		set(in)
		n.enqueue(job{key: k})
		n.enqueue(job{key: k, reply: fmt.Sprintf(":large_green_circle: recovered after %s", in.downFor())})
		return
	}
	if in != nil {
		in.okSince = time.Time{} // not ok for long: the same incident goes on
	}
	switch {
	case in == nil || (!in.recovered.IsZero() && now.Sub(in.recovered) > n.flapWindow):
		in = &incident{since: now, health: health, codes: codes}
		set(in)
		n.incidents[k] = in
		if health == diagnose.Warning && n.quiet > 0 {
			in.pending = now
			return
		}
		n.enqueue(job{key: k})
	case !in.recovered.IsZero(): // broke again soon after recovering: same message, a counter
		in.recovered, in.flaps, in.health, in.codes = time.Time{}, in.flaps+1, health, codes
		set(in)
		n.enqueue(job{key: k})
		n.enqueue(job{key: k, reply: fmt.Sprintf("%s broke again (%d times): %s", healthEmoji[health], in.flaps, codes)})
	default:
		changed := in.health != health || in.codes != codes
		escalated := health == diagnose.Critical && in.health != diagnose.Critical
		in.health, in.codes = health, codes
		set(in)
		if !in.pending.IsZero() {
			if escalated || now.Sub(in.pending) >= n.quiet {
				in.pending = time.Time{}
				n.enqueue(job{key: k})
			}
			return
		}
		if !changed {
			return
		}
		// Snoozed, the message is still updated in place (which notifies
		// nobody); the replies, which notify the thread, wait. Escalating
		// to critical ends the snooze: it is what a person must hear.
		if escalated {
			in.snoozed, in.snoozedBy = time.Time{}, ""
		}
		n.enqueue(job{key: k})
		if now.Before(in.snoozed) {
			return
		}
		text := fmt.Sprintf("%s now %s: %s", healthEmoji[health], health, codes)
		if escalated {
			text = ":red_circle: escalated to critical: " + codes
		}
		n.enqueue(job{key: k, reply: text})
	}
}

func findingCodes(fs []diagnose.Finding) string {
	c := make([]string, len(fs))
	for i, f := range fs {
		c[i] = f.Code
	}
	return strings.Join(c, ", ")
}

// Event adds a thread reply (and refreshes the message) for a
// subscription's incident.
func (n *Notifier) Event(subscriber, sub, text, outcome string) {
	n.event(key(subscriber, sub), text, outcome)
}

// NodeEvent adds a thread reply (and refreshes the message) for a node's incident.
func (n *Notifier) NodeEvent(node, text, outcome string) { n.event(nodeKey(node), text, outcome) }

func (n *Notifier) event(k, text, outcome string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	in := n.incidents[k]
	if in == nil {
		return
	}
	if outcome != "" {
		in.outcome = outcome
		n.enqueue(job{key: k})
	}
	n.enqueue(job{key: k, reply: text})
}

// Snooze holds the thread replies of a subscription's open incident for d
// (its message is still kept current; escalating to critical ends the
// snooze), on behalf of Slack user user. It returns false when the
// subscription has no open incident.
func (n *Notifier) Snooze(subscriber, sub, user string, d time.Duration) bool {
	return n.snoozeAt(time.Now(), key(subscriber, sub), user, d)
}

func (n *Notifier) snoozeAt(now time.Time, k, user string, d time.Duration) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	in := n.incidents[k]
	if in == nil || !in.recovered.IsZero() || !in.okSince.IsZero() {
		return false
	}
	in.snoozed, in.snoozedBy = now.Add(d), user
	n.enqueue(job{key: k})
	n.enqueue(job{key: k, reply: fmt.Sprintf(":zzz: snoozed by <@%s> until %s: changes update the message without a reply here, unless it escalates to critical",
		user, in.snoozed.UTC().Format("15:04 UTC"))})
	return true
}

// enqueue never blocks: a full queue drops the job and counts it.
func (n *Notifier) enqueue(j job) {
	select {
	case n.queue <- j:
	default:
		n.count("dropped")
		n.log.Warn("slack queue full: message dropped", "subscription", j.key)
	}
}

func (n *Notifier) count(result string) {
	if n.counter != nil {
		n.counter.WithLabelValues(result).Inc()
	}
}

// Run sends queued messages until ctx ends, retrying with backoff and
// honouring Slack's Retry-After.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-n.queue:
			for {
				err := n.send(ctx, j)
				if err == nil {
					n.count("sent")
					break
				}
				j.attempt++
				wait := min(n.backoff<<min(j.attempt-1, 5), 30*time.Second)
				var rl *slack.RateLimitedError
				if errors.As(err, &rl) {
					wait = rl.RetryAfter
				}
				if j.attempt >= 10 {
					n.count("dropped")
					n.log.Error("slack message dropped after retries", "subscription", j.key, "error", err.Error())
					break
				}
				n.count("retried")
				n.log.Warn("slack send failed, retrying", "subscription", j.key, "error", err.Error(), "in", wait.String())
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

func (n *Notifier) send(ctx context.Context, j job) error {
	n.mu.Lock()
	in := n.incidents[j.key]
	if in == nil {
		n.mu.Unlock()
		return nil
	}
	s, ts, outcome := in.last, in.ts, in.outcome
	var blocks []slack.Block
	var text string
	if in.node != nil {
		blocks = nodeBlocks(*in.node, in, n.policy(), outcome)
		text = fmt.Sprintf("pglmon node %s is %s", in.node.Name, in.health)
	} else {
		blocks = incidentBlocks(s, in, n.policy(), outcome)
		text = fmt.Sprintf("pglogical subscription %s on %s is %s", s.Name, s.Subscriber, s.Health)
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if j.reply != "" {
		if ts == "" {
			return errors.New("incident message not posted yet")
		}
		_, _, err := n.api.PostMessageContext(ctx, n.channel, slack.MsgOptionText(j.reply, false), slack.MsgOptionTS(ts))
		return err
	}
	if ts == "" {
		_, newTS, err := n.api.PostMessageContext(ctx, n.channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		if err != nil {
			return err
		}
		n.mu.Lock()
		in.ts = newTS
		n.mu.Unlock()
		return nil
	}
	_, _, _, err := n.api.UpdateMessageContext(ctx, n.channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	return err
}
