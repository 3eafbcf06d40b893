package setup

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pglmon/pglmon/internal/diagnose"
)

// loops refuses subscriptions that would bring back to their subscriber
// the changes made there (diagnose.Echoes: forward_origins [all] on a way
// back, as in replication both ways), which pglogical applies there again
// over newer values, endlessly when every subscription on the way forwards.
func (r *Runner) loops() []Problem {
	var edges []diagnose.Edge
	for _, sb := range r.Config.Subscriptions {
		edges = append(edges, diagnose.Edge{From: sb.Provider, To: sb.Subscriber, Sub: sb.Name, Forwards: slices.Contains(sb.ForwardOrigins, "all")})
	}
	var out []Problem
	for i, ec := range diagnose.Echoes(edges) {
		out = append(out, Problem{edges[i].To,
			fmt.Sprintf("subscription %s would bring back to %s the changes made there (%s, through subscriptions %s): with forward_origins [all], its provider sends what it received from %s, and pglogical applies it there again, over what was written since (forward_loop)",
				edges[i].Sub, ec.Origin, strings.Join(ec.Path, " -> "), strings.Join(ec.Subs, ", "), ec.Origin),
			fmt.Sprintf("set forward_origins: [] for %s (replication both ways needs [] on both subscriptions)", edges[i].Sub)})
	}
	slices.SortFunc(out, func(a, b Problem) int { return strings.Compare(a.What, b.What) })
	return out
}
