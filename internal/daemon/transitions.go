package daemon

import (
	"slices"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// transition is one change of a subscription's health worth logging.
type transition struct {
	Subscriber, Subscription string
	Node                     string // for a node's findings instead
	From                     string // "new" for a subscription first seen unhealthy
	To                       diagnose.Health
	Findings                 []string
	// Blips counts the returns to ok shorter than the settle time since
	// the last logged change (a crash loop's replicating second).
	Blips int
	// For is, on a recovery, how long the subscription was unhealthy:
	// from the change that took it out of ok to the first ok sample.
	For time.Duration
	// Added and Removed are, when the health stayed the same (From is
	// To), the finding codes that came and went since the last line.
	Added, Removed []string
}

// transitions decides which health changes the daemon logs. A change for
// the worse is logged at once; a recovery only once the subscription has
// stayed ok for settle: in a crash loop pglogical says `replicating` for a
// second at every start, and a sample in that second must not log a
// recovery and a new failure each time (Slack and the alert rules smooth
// the same second). While an unhealthy subscription keeps its health, a
// finding that comes is logged at once, and one that goes once it has
// stayed gone for settle: a second cause behind the same warning is news.
type transitions struct {
	settle time.Duration
	subs   map[string]*subHealth // by subscriber/subscription, and node:name
}

type subHealth struct {
	logged   diagnose.Health
	badSince time.Time // when it left ok (zero while ok)
	okSince  time.Time // first ok sample of a recovery not yet logged
	blips    int
	// codes are the finding codes last logged, sorted; goneSince is the
	// first sample that lacked one of them, not yet logged.
	codes     []string
	goneSince time.Time
}

func newTransitions(settle time.Duration) *transitions {
	return &transitions{settle: settle, subs: map[string]*subHealth{}}
}

// observe takes one cycle's report and returns the changes to log, and the
// subscriptions gone from the report (subscriber/subscription). Nodes are
// followed the same way, by their findings but node_unreachable (which
// the daemon logs by itself), each with its slot if it names one, with
// Node set in their transitions.
func (t *transitions) observe(now time.Time, r diagnose.Report) ([]transition, []string) {
	var out []transition
	seen := map[string]bool{}
	for _, s := range r.Subscriptions {
		key := s.Subscriber + "/" + s.Name
		seen[key] = true
		codes := make([]string, 0, len(s.Findings))
		for _, f := range s.Findings {
			codes = append(codes, f.Code)
		}
		if c, ok := t.step(now, key, s.Health, codes); ok {
			c.Subscriber, c.Subscription = s.Subscriber, s.Name
			out = append(out, c)
		}
	}
	for _, n := range r.Nodes {
		key := "node:" + n.Name
		seen[key] = true
		codes := []string{}
		health := diagnose.OK
		for _, f := range n.Findings {
			if f.Code == diagnose.CodeNodeUnreachable {
				continue
			}
			health = diagnose.Worst(health, f.Severity)
			// Another slot is another finding (an orphan slot more).
			if f.Slot != "" {
				codes = append(codes, f.Code+" "+f.Slot)
			} else {
				codes = append(codes, f.Code)
			}
		}
		if c, ok := t.step(now, key, health, codes); ok {
			c.Node = n.Name
			out = append(out, c)
		}
	}
	var gone []string
	for key := range t.subs {
		if !seen[key] {
			if !strings.HasPrefix(key, "node:") {
				gone = append(gone, key)
			}
			delete(t.subs, key)
		}
	}
	return out, gone
}

// step follows one subscription or node (key) and returns its change to
// log, if any.
func (t *transitions) step(now time.Time, key string, health diagnose.Health, codes []string) (transition, bool) {
	set := slices.Compact(slices.Sorted(slices.Values(codes)))
	log := func(from string, h subHealth, unhealthy time.Duration) (transition, bool) {
		return transition{From: from, To: health, Findings: codes, Blips: h.blips, For: unhealthy}, true
	}
	h, known := t.subs[key]
	switch {
	case !known:
		h = &subHealth{logged: health, codes: set}
		t.subs[key] = h
		if health != diagnose.OK {
			h.badSince = now
			return log("new", *h, 0)
		}
	case health == h.logged:
		if !h.okSince.IsZero() {
			// Back to the logged health before the recovery settled.
			h.blips++
			h.okSince = time.Time{}
		}
		if health == diagnose.OK {
			break
		}
		if added, removed, ok := h.findingsChanged(now, set, t.settle); ok {
			return transition{From: string(health), To: health, Findings: codes, Added: added, Removed: removed}, true
		}
	case health == diagnose.OK:
		if h.okSince.IsZero() {
			h.okSince = now
		}
		if now.Sub(h.okSince) >= t.settle {
			c, ok := log(string(h.logged), *h, h.okSince.Sub(h.badSince))
			*h = subHealth{logged: health, codes: set}
			return c, ok
		}
	default:
		c, ok := log(string(h.logged), *h, 0)
		bad := h.badSince
		if h.logged == diagnose.OK {
			bad = now
		}
		*h = subHealth{logged: health, badSince: bad, codes: set}
		return c, ok
	}
	return transition{}, false
}

// findingsChanged says whether the finding codes set (sorted), at an
// unchanged health, are worth a line: one added, at once; one gone, once
// it has stayed gone for settle. It returns the codes added and removed
// since the last line, and takes set as logged when they are.
func (h *subHealth) findingsChanged(now time.Time, set []string, settle time.Duration) (added, removed []string, ok bool) {
	added, removed = minus(set, h.codes), minus(h.codes, set)
	switch {
	case len(added) > 0:
	case len(removed) == 0:
		h.goneSince = time.Time{}
		return nil, nil, false
	default:
		if h.goneSince.IsZero() {
			h.goneSince = now
		}
		if now.Sub(h.goneSince) < settle {
			return nil, nil, false
		}
	}
	h.codes, h.goneSince = set, time.Time{}
	return added, removed, true
}

// minus is a without b, both sorted (empty, not nil: logged as []).
func minus(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}
