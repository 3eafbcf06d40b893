package setup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgident"
)

// setFlags are a replication set's replicate_insert, _update, _delete and
// _truncate, in that order.
type setFlags [4]bool

var flagNames = [4]string{"insert", "update", "delete", "truncate"}

// builtinSets are the replication sets pglogical's create_node makes on
// every node, with their flags (read from pglogical 2.4.2): declared in the
// configuration, they are not created again, which pglogical refuses
// ("replication set default already exists").
var builtinSets = map[string]setFlags{
	"default":             {true, true, true, true},
	"default_insert_only": {true, false, false, true},
	"ddl_sql":             {true, false, false, false},
}

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
// replicate_delete was set true). A subscription's apply worker reconnects
// about 5 s later, to a sender that reads the new flags.
const restartSendersSQL = `SELECT count(pg_terminate_backend(s.active_pid)) FROM pg_replication_slots s
WHERE s.plugin = 'pglogical_output' AND s.database = current_database() AND s.active_pid IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_replication_slots m WHERE m.database = s.database AND s.slot_name ~ ('^' || m.slot_name || '_[0-9a-f]{8}$'))`

// flagChanges compares the flags the configuration gives set rs with have,
// its flags on its node: the change that sets those it declares (nil when
// they already are), and a warning for each flag it leaves unset (true)
// that is false there, which apply leaves as it is. The change ends, in
// the same transaction, the node's pglogical senders, so that a crash
// cannot leave the flags set and a sender still using the old ones.
func flagChanges(rs config.ReplicationSet, have setFlags) (*Change, []string) {
	declared := [4]*bool{rs.Insert, rs.Update, rs.Delete, rs.Truncate}
	var set, said, warnings []string
	for i, d := range declared {
		switch {
		case d != nil && *d != have[i]:
			set = append(set, fmt.Sprintf("replicate_%s := %t", flagNames[i], *d))
			said = append(said, fmt.Sprintf("replicate_%s %t (now %t)", flagNames[i], *d, have[i]))
		case d == nil && !have[i]:
			warnings = append(warnings, fmt.Sprintf("replication set %s on %s has replicate_%s false, and the configuration leaves replicate_%s unset (true): apply leaves it false; write replicate_%s: false to say so, or true to change it",
				rs.Name, rs.Node, flagNames[i], flagNames[i], flagNames[i]))
		}
	}
	if len(said) == 0 {
		return nil, warnings
	}
	return &Change{Node: rs.Node,
		What: fmt.Sprintf("set replication set %s's %s, and restart the pglogical senders there (pglogical keeps the old flags until then; each subscription of %s reconnects within seconds)", rs.Name, strings.Join(said, ", "), rs.Node),
		// No parameters: one simple-protocol query, one transaction.
		SQL: "SELECT pglogical.alter_replication_set(set_name := " + pgident.Literal(rs.Name) + ", " + strings.Join(set, ", ") + ");\n" + restartSendersSQL,
	}, warnings
}
