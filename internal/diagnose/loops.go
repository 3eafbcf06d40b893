package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pglmon/pglmon/internal/probe"
)

// edge is a subscription seen as the path its changes take: from the
// configured node that provides it to its subscriber.
type edge struct {
	from, to, sub string
	// forwards: forward_origins {all}, so the provider also sends what it
	// received from elsewhere.
	forwards bool
}

// echo is a way back to origin for the changes made on it.
type echo struct {
	origin string
	path   []string // nodes, from origin back to origin
	subs   []string // the subscriptions along it
	// endless: every subscription on the way forwards, so the change goes
	// round again from origin, and again.
	endless bool
}

// echoes finds, for each subscription, whether it brings back to its
// subscriber the changes made there: pglogical sends a change made on a
// node along every subscription that node provides, and a change received
// from elsewhere along those with forward_origins {all} (the default of
// create_subscription) only. A change that comes back is applied again
// where it was made, over what was written there since. Measured with
// pglogical 2.4.2, two nodes subscribed to each other with {all}: a row
// updated once went round endlessly, each node flipping between the old
// and the new value, a few transactions a second. Keyed by subKey of the
// subscription that closes the way (its subscriber is the origin).
func (d *diagnosis) echoes() map[string]echo {
	var edges []edge
	for _, s := range d.Snapshots {
		if !s.Up() {
			continue
		}
		for _, sub := range s.Subscriptions {
			prov, _ := d.provider(sub.ProviderNode)
			if prov == nil || !sub.Enabled {
				continue
			}
			edges = append(edges, edge{from: prov.Node, to: s.Node, sub: sub.Name, forwards: slices.Contains(sub.ForwardOrigins, "all")})
		}
	}
	out := map[string]echo{}
	for _, origin := range d.Snapshots {
		// Breadth first from the origin; via[n] is the edge that first
		// brought the change to n.
		via := map[string]edge{}
		queue := []string{origin.Node}
		for len(queue) > 0 {
			at := queue[0]
			queue = queue[1:]
			for _, e := range edges {
				if e.from != at || (at != origin.Node && !e.forwards) {
					continue
				}
				if e.to == origin.Node {
					key := subKey(e.to, e.sub)
					if _, seen := out[key]; !seen {
						out[key] = wayBack(origin.Node, e, via)
					}
					continue
				}
				if _, seen := via[e.to]; !seen {
					via[e.to] = e
					queue = append(queue, e.to)
				}
			}
		}
	}
	return out
}

// wayBack is the echo that last, the edge back to origin, closes.
func wayBack(origin string, last edge, via map[string]edge) echo {
	way := []edge{last}
	for n := last.from; n != origin; n = via[n].from {
		way = append([]edge{via[n]}, way...)
	}
	ec := echo{origin: origin, path: []string{origin}, endless: true}
	for _, e := range way {
		ec.path = append(ec.path, e.to)
		ec.subs = append(ec.subs, e.sub)
		ec.endless = ec.endless && e.forwards
	}
	return ec
}

// loopFinding says that subscription sub brings back to its subscriber the
// changes made there.
func loopFinding(sub probe.Subscription, ec echo) Finding {
	round := "pglogical applies them there again, over what was written since"
	if ec.endless {
		round = "and every subscription on the way forwards them, so they go round again, endlessly: each node keeps applying old and new values of the same rows in turn (measured with pglogical 2.4.2: a row updated once kept flipping between its old and new value, a few transactions a second)"
	}
	return Finding{Code: CodeForwardLoop, Severity: Critical, Human: true,
		Message: fmt.Sprintf("changes made on %s come back to it (%s, through subscriptions %s): subscription %s has forward_origins {all} (create_subscription's default), so its provider sends %s what it received from %s; %s. Replication both ways needs forward_origins {} on both subscriptions",
			ec.origin, strings.Join(ec.path, " -> "), strings.Join(ec.subs, ", "), sub.Name, ec.origin, ec.origin, round)}
}
