package setup

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
)

// checkOriginStates refuses a plan whose subscriptions or copies would
// find no replication origin state on their subscriber. PostgreSQL has
// max_replication_slots of them per server, every database's together; a
// subscription holds one, and each table copy one more while it runs (one
// copy at a time per subscription). Without a free one pglogical's apply or
// sync worker fails at each start, for ever (measured with 2.4.2:
// origin_slots_exhausted), after apply has made its change.
func (r *Runner) checkOriginStates(ctx context.Context, conns map[string]*pgx.Conn, p *Plan) error {
	need := map[string][]string{} // subscriber -> what takes a state
	var created []config.Subscription
	for _, c := range p.Changes {
		if strings.HasPrefix(c.What, "create subscription ") {
			sb := r.subscription(c.Args[0].(string))
			created = append(created, sb)
			need[c.Node] = append(need[c.Node], "subscription "+sb.Name)
		}
	}
	// The subscriptions apply waits for copies of (Apply): sets added
	// with their copy, tables added to their sets.
	var copying []string
	for _, c := range p.Changes {
		if c.copies != "" {
			copying = append(copying, c.copies)
		}
	}
	for _, tc := range r.tableCopies(p.Changes, created) {
		copying = append(copying, tc.sb.Name)
	}
	slices.Sort(copying)
	for _, name := range slices.Compact(copying) {
		sb := r.subscription(name)
		need[sb.Subscriber] = append(need[sb.Subscriber], "a table copy of subscription "+name)
	}
	nodes := make([]string, 0, len(need))
	for n := range need {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		var held, max int
		if err := conns[n].QueryRow(ctx, "SELECT count(*), current_setting('max_replication_slots')::int FROM pg_replication_origin_status").Scan(&held, &max); err != nil {
			return fmt.Errorf("on %s: read the replication origin states: %w", n, err)
		}
		if held+len(need[n]) <= max {
			continue
		}
		p.Problems = append(p.Problems, Problem{n,
			fmt.Sprintf("%d of max_replication_slots %d replication origin states are held (every database's), and apply needs %d more: %s; pglogical's worker would find none and fail at each start, for ever (origin_slots_exhausted)",
				held, max, len(need[n]), strings.Join(need[n], ", ")),
			fmt.Sprintf("set max_replication_slots to at least %d and restart (RDS: the parameter group, then a reboot), or drop an origin nothing uses (pg_replication_origin_drop)", held+len(need[n]))})
	}
	return nil
}
