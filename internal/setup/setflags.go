package setup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/applyworker"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgident"
)

// setFlags are a replication set's replicate_insert, _update, _delete and
// _truncate, in that order.
type setFlags [4]bool

var flagNames = [4]string{"insert", "update", "delete", "truncate"}

// setFlagsSQL reads the flags of replication set $1 of the node's own
// pglogical node.
const setFlagsSQL = `SELECT replicate_insert, replicate_update, replicate_delete, replicate_truncate
FROM pglogical.replication_set WHERE set_name = $1 AND set_nodeid = (SELECT node_id FROM pglogical.local_node)`

// readSetFlags returns the flags of set name on a node with a pglogical
// node; ok is false when it has no such set.
func readSetFlags(ctx context.Context, c *pgx.Conn, name string) (f setFlags, ok bool, err error) {
	err = c.QueryRow(ctx, setFlagsSQL, name).Scan(&f[0], &f[1], &f[2], &f[3])
	if errors.Is(err, pgx.ErrNoRows) {
		return f, false, nil
	}
	if err != nil {
		return f, false, fmt.Errorf("read replication set %s: %w", name, err)
	}
	return f, true, nil
}

// restartSendersSQL ends the walsenders of the pglogical subscriptions
// of this database (not those of table copies, whose slots are named after
// their subscription's with _ and 8 hex digits): pglogical's output plugin
// keeps a set's flags per table until the table's relcache entry is
// invalidated, which alter_replication_set does not do (pglogical 2.4.2,
// measured: a running subscription still got no DELETE after
// replicate_delete was set true). A subscription's apply worker ends with
// its sender; the next one, which pglogical's manager can take minutes to
// start (apply waits for it and wakes the manager: waitApply), connects to
// a sender that reads the new flags.
const restartSendersSQL = `SELECT count(pg_terminate_backend(s.active_pid)) FROM pg_replication_slots s
WHERE s.plugin = 'pglogical_output' AND s.database = current_database() AND s.active_pid IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_replication_slots m WHERE m.database = s.database AND s.slot_name ~ ('^' || m.slot_name || '_[0-9a-f]{8}$'))`

// flagChanges compares the flags the configuration gives set rs with have,
// its flags on its node: the change that sets those it writes (nil when
// they already are), and a warning for each flag it leaves unset that
// differs there from what unset means (rs.Flags), which apply leaves as it
// is. The change ends, in the same transaction, the node's pglogical
// senders, so that a crash cannot leave the flags set and a sender still
// using the old ones.
func flagChanges(rs config.ReplicationSet, have setFlags, subs []config.Subscription) (*Change, []string) {
	declared := [4]*bool{rs.Insert, rs.Update, rs.Delete, rs.Truncate}
	meant := rs.Flags()
	var set, said, warnings []string
	for i, d := range declared {
		switch {
		case d != nil && *d != have[i]:
			set = append(set, fmt.Sprintf("replicate_%s := %t", flagNames[i], *d))
			said = append(said, fmt.Sprintf("replicate_%s %t (now %t)", flagNames[i], *d, have[i]))
		case d == nil && meant[i] != have[i]:
			warnings = append(warnings, fmt.Sprintf("replication set %s on %s has replicate_%s %t, and the configuration leaves replicate_%s unset (%t): apply leaves it %t; write replicate_%s: %t to say so, or %t to change it",
				rs.Name, rs.Node, flagNames[i], have[i], flagNames[i], meant[i], have[i], flagNames[i], have[i], meant[i]))
		}
	}
	if len(said) == 0 {
		return nil, warnings
	}
	var senders []config.Subscription
	for _, sb := range subs {
		if sb.Provider == rs.Node {
			senders = append(senders, sb)
		}
	}
	return &Change{Node: rs.Node, senders: senders,
		What: fmt.Sprintf("set replication set %s's %s, and restart the pglogical senders there (pglogical keeps the old flags until then; each subscription of %s reconnects within seconds)", rs.Name, strings.Join(said, ", "), rs.Node),
		// No parameters: one simple-protocol query, one transaction.
		SQL: "SELECT pglogical.alter_replication_set(set_name := " + pgident.Literal(rs.Name) + ", " + strings.Join(set, ", ") + ");\n" + restartSendersSQL,
	}, warnings
}

// waiting is a subscription whose next apply worker apply waits for, on a
// connection to its subscriber, with the subscriber's time before the
// change that ends the current one.
type waiting struct {
	conn  *pgx.Conn
	sub   string
	since time.Time
}

// sinceOnSubscribers connects to the subscriber of each of subs and reads
// its clock, before a change ends their apply workers.
func (r *Runner) sinceOnSubscribers(ctx context.Context, subs []config.Subscription) ([]waiting, error) {
	var out []waiting
	for _, sb := range subs {
		c, err := r.connect(ctx, sb.Subscriber)
		if err == nil {
			var since time.Time
			if since, err = applyworker.Now(ctx, c); err == nil {
				out = append(out, waiting{c, sb.Name, since})
				continue
			}
			c.Close(ctx)
		}
		for _, w := range out {
			w.conn.Close(ctx)
		}
		return nil, fmt.Errorf("on %s: %w", sb.Subscriber, err)
	}
	return out, nil
}
