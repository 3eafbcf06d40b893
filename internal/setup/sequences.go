package setup

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
)

// ownedSequencesSQL lists the sequences that columns of the tables $1 use
// as serial or identity columns (pg_depend: auto or internal).
const ownedSequencesSQL = `SELECT DISTINCT format('%I.%I', n.nspname, s.relname) FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  AND d.refobjid IN (SELECT to_regclass(t) FROM unnest($1::text[]) t)
ORDER BY 1`

// seqInSetSQL: sequence $2 is in replication set $1.
const seqInSetSQL = `SELECT EXISTS (SELECT 1 FROM pglogical.replication_set_seq q JOIN pglogical.replication_set s ON s.set_id = q.set_id
	WHERE s.set_name = $1 AND q.set_seqoid = to_regclass($2))`

// sequences lists, per set (setKey), the sequences of its tables' serial
// and identity columns, which apply puts in the set unless the set says
// sequences: false. pglogical copies a sequence's value to the subscribers
// only when it is in one of their sets: one left out never moves on the
// subscriber, which hands out values the provider used the day it takes
// the writes (a switchover). A sequence a subscriber of the set lacks is a
// missing prerequisite: pglogical's copy of its value stops the
// subscription there ("could not open relation with OID 0").
func (r *Runner) sequences(ctx context.Context, conns map[string]*pgx.Conn, tables map[string][]string, p *Plan) (map[string][]string, error) {
	out := map[string][]string{}
	for _, rs := range r.Config.ReplicationSets {
		key := setKey(rs.Node, rs.Name)
		if !config.Flag(rs.Sequences) || len(tables[key]) == 0 {
			continue
		}
		rows, err := conns[rs.Node].Query(ctx, ownedSequencesSQL, tables[key])
		if err != nil {
			return nil, fmt.Errorf("read the sequences of set %s's tables on %s: %w", rs.Name, rs.Node, err)
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("read the sequences of set %s's tables on %s: %w", rs.Name, rs.Node, err)
		}
		out[key] = seqs
		for _, sb := range r.Config.Subscriptions {
			if sb.Provider != rs.Node || !slices.Contains(sb.ReplicationSets, rs.Name) {
				continue
			}
			for _, q := range seqs {
				there, err := one[bool](ctx, conns[sb.Subscriber], "SELECT to_regclass($1) IS NOT NULL", q)
				if err != nil {
					return nil, err
				}
				if !there {
					p.Problems = append(p.Problems, Problem{sb.Subscriber,
						fmt.Sprintf("sequence %s (of a serial or identity column of set %s's tables) does not exist here, and apply would put it in set %s, which subscription %s replicates: pglogical's copy of its value would stop the subscription (could not open relation with OID 0)", q, rs.Name, rs.Name, sb.Name),
						fmt.Sprintf("create it here (pg_dump --schema-only -t %s on %s shows it), or write sequences: false for set %s (its value then never reaches %s)", q, rs.Node, rs.Name, sb.Subscriber)})
				}
			}
		}
	}
	return out, nil
}

// sequenceChanges puts in set rs (exists: already there) the sequences
// seqs it lacks, copying their values to its subscribers at once.
func sequenceChanges(ctx context.Context, c *pgx.Conn, rs config.ReplicationSet, exists bool, seqs []string) ([]Change, error) {
	var out []Change
	for _, q := range seqs {
		in := false
		if exists {
			var err error
			if in, err = one[bool](ctx, c, seqInSetSQL, rs.Name, q); err != nil {
				return nil, err
			}
		}
		if !in {
			out = append(out, Change{Node: rs.Node, What: "add sequence " + q + " to " + rs.Name + " (pglogical copies its value to the subscribers, then now and then)",
				SQL: "SELECT pglogical.replication_set_add_sequence($1, $2::regclass, synchronize_data := true)", Args: []any{rs.Name, q}})
		}
	}
	return out, nil
}
