package daemon

import (
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// transition is one change of a subscription's health worth logging.
type transition struct {
	Subscriber, Subscription string
	From                     string // "new" for a subscription first seen unhealthy
	To                       diagnose.Health
	Findings                 []string
	// Blips counts the returns to ok shorter than the settle time since
	// the last logged change (a crash loop's replicating second).
	Blips int
	// For is, on a recovery, how long the subscription was unhealthy:
	// from the change that took it out of ok to the first ok sample.
	For time.Duration
}

// transitions decides which health changes the daemon logs. A change for
// the worse is logged at once; a recovery only once the subscription has
// stayed ok for settle: in a crash loop pglogical says `replicating` for a
// second at every start, and a sample in that second must not log a
// recovery and a new failure each time (Slack and the alert rules smooth
// the same second).
type transitions struct {
	settle time.Duration
	subs   map[string]*subHealth // by subscriber/subscription
}

type subHealth struct {
	logged   diagnose.Health
	badSince time.Time // when it left ok (zero while ok)
	okSince  time.Time // first ok sample of a recovery not yet logged
	blips    int
}

func newTransitions(settle time.Duration) *transitions {
	return &transitions{settle: settle, subs: map[string]*subHealth{}}
}

// observe takes one cycle's report and returns the changes to log, and the
// subscriptions gone from the report (subscriber/subscription).
func (t *transitions) observe(now time.Time, r diagnose.Report) ([]transition, []string) {
	var out []transition
	seen := map[string]bool{}
	for _, s := range r.Subscriptions {
		key := s.Subscriber + "/" + s.Name
		seen[key] = true
		log := func(from string, h subHealth, unhealthy time.Duration) {
			codes := make([]string, 0, len(s.Findings))
			for _, f := range s.Findings {
				codes = append(codes, f.Code)
			}
			out = append(out, transition{Subscriber: s.Subscriber, Subscription: s.Name, From: from, To: s.Health,
				Findings: codes, Blips: h.blips, For: unhealthy})
		}
		h, known := t.subs[key]
		switch {
		case !known:
			h = &subHealth{logged: s.Health}
			t.subs[key] = h
			if s.Health != diagnose.OK {
				h.badSince = now
				log("new", *h, 0)
			}
		case s.Health == h.logged:
			if !h.okSince.IsZero() {
				// Back to the logged health before the recovery settled.
				h.blips++
				h.okSince = time.Time{}
			}
		case s.Health == diagnose.OK:
			if h.okSince.IsZero() {
				h.okSince = now
			}
			if now.Sub(h.okSince) >= t.settle {
				log(string(h.logged), *h, h.okSince.Sub(h.badSince))
				*h = subHealth{logged: s.Health}
			}
		default:
			log(string(h.logged), *h, 0)
			bad := h.badSince
			if h.logged == diagnose.OK {
				bad = now
			}
			*h = subHealth{logged: s.Health, badSince: bad}
		}
	}
	var gone []string
	for key := range t.subs {
		if !seen[key] {
			gone = append(gone, key)
			delete(t.subs, key)
		}
	}
	return out, gone
}
