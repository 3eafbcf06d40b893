package setup

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/shellword"
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

// forwardDiffers says when the existing subscription sb forwards other
// origins than the configuration gives it: pglogical cannot change a
// subscription's forward_origins, so apply leaves it (a subscription made
// by hand gets create_subscription's default, {all}).
func forwardDiffers(ctx context.Context, c *pgx.Conn, sb config.Subscription) ([]string, error) {
	var have []string
	if err := c.QueryRow(ctx, "SELECT coalesce(sub_forward_origins, '{}') FROM pglogical.subscription WHERE sub_name = $1", sb.Name).Scan(&have); err != nil {
		return nil, fmt.Errorf("read the forward_origins of subscription %s on %s: %w", sb.Name, sb.Subscriber, err)
	}
	want := slices.Clone(sb.ForwardOrigins)
	slices.Sort(have)
	slices.Sort(want)
	if slices.Equal(have, want) {
		return nil, nil
	}
	return []string{fmt.Sprintf("subscription %s on %s forwards origins [%s]; the configuration says [%s]: pglogical cannot change it in place, so apply leaves it (to change it, create the subscription again: pglmon repair --subscription %s prints how when it makes a loop, forward_loop)",
		sb.Name, sb.Subscriber, strings.Join(have, ", "), strings.Join(want, ", "), shellword.Quote(sb.Name))}, nil
}
