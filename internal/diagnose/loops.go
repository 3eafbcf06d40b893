package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pglmon/pglmon/internal/probe"
)

// Edge is a subscription seen as the way its changes take: from the node
// that provides it to its subscriber.
type Edge struct {
	From, To, Sub string
	// Forwards: forward_origins {all}, so the provider also sends what it
	// received from elsewhere.
	Forwards bool
}

// Echo is a way back to Origin for the changes made on it.
type Echo struct {
	Origin string
	Path   []string // nodes, from Origin back to Origin
	Subs   []string // the subscriptions along it
	// Endless: every subscription on the way forwards, so the change goes
	// round again from Origin, and again.
	Endless bool
}

// Echoes finds the subscriptions that bring back to their subscriber the
// changes made there, keyed by their index in edges: pglogical sends a
// change made on a node along every subscription that node provides, and a
// change received from elsewhere along those with forward_origins {all}
// (the default of create_subscription) only. A change that comes back is
// applied again where it was made, over what was written there since.
// Measured with pglogical 2.4.2, two nodes subscribed to each other with
// {all}: a row updated once went round endlessly, each node flipping
// between the old and the new value, a few transactions a second.
func Echoes(edges []Edge) map[int]Echo {
	var origins []string
	for _, e := range edges {
		origins = append(origins, e.From)
	}
	slices.Sort(origins)
	out := map[int]Echo{}
	for _, origin := range slices.Compact(origins) {
		// Breadth first from the origin; via[n] is the edge that first
		// brought the change to n.
		via := map[string]Edge{}
		queue := []string{origin}
		for len(queue) > 0 {
			at := queue[0]
			queue = queue[1:]
			for i, e := range edges {
				if e.From != at || (at != origin && !e.Forwards) {
					continue
				}
				if e.To == origin {
					if _, seen := out[i]; !seen {
						out[i] = wayBack(origin, e, via)
					}
					continue
				}
				if _, seen := via[e.To]; !seen {
					via[e.To] = e
					queue = append(queue, e.To)
				}
			}
		}
	}
	return out
}

// echoes is Echoes over the enabled subscriptions of the reachable nodes,
// keyed by subKey of the subscription that closes the way.
func (d *diagnosis) echoes() map[string]Echo {
	var edges []Edge
	for _, s := range d.Snapshots {
		if !s.Up() {
			continue
		}
		for _, sub := range s.Subscriptions {
			prov, _ := d.provider(sub.ProviderNode)
			if prov == nil || !sub.Enabled {
				continue
			}
			edges = append(edges, Edge{From: prov.Node, To: s.Node, Sub: sub.Name, Forwards: slices.Contains(sub.ForwardOrigins, "all")})
		}
	}
	out := map[string]Echo{}
	for i, ec := range Echoes(edges) {
		out[subKey(edges[i].To, edges[i].Sub)] = ec
	}
	return out
}

// wayBack is the echo that last, the edge back to origin, closes.
func wayBack(origin string, last Edge, via map[string]Edge) Echo {
	way := []Edge{last}
	for n := last.From; n != origin; n = via[n].From {
		way = append([]Edge{via[n]}, way...)
	}
	ec := Echo{Origin: origin, Path: []string{origin}, Endless: true}
	for _, e := range way {
		ec.Path = append(ec.Path, e.To)
		ec.Subs = append(ec.Subs, e.Sub)
		ec.Endless = ec.Endless && e.Forwards
	}
	return ec
}

// loopFinding says that subscription sub brings back to its subscriber the
// changes made there.
func loopFinding(sub probe.Subscription, ec Echo) Finding {
	round := "pglogical applies them there again, over what was written since"
	if ec.Endless {
		round = "and every subscription on the way forwards them, so they go round again, endlessly: each node keeps applying old and new values of the same rows in turn (measured with pglogical 2.4.2: a row updated once kept flipping between its old and new value, a few transactions a second)"
	}
	return Finding{Code: CodeForwardLoop, Severity: Critical, Human: true,
		Message: fmt.Sprintf("changes made on %s come back to it (%s, through subscriptions %s): subscription %s has forward_origins {all} (create_subscription's default), so its provider sends %s what it received from %s; %s. Replication both ways needs forward_origins {} on both subscriptions",
			ec.Origin, strings.Join(ec.Path, " -> "), strings.Join(ec.Subs, ", "), sub.Name, ec.Origin, ec.Origin, round)}
}
