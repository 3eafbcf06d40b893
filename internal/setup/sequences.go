package setup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
)

// ownedSequencesSQL lists the sequences that columns of the tables $1 use
// as serial or identity columns (pg_depend: auto or internal), and whether
// each counts down.
const ownedSequencesSQL = `SELECT DISTINCT format('%I.%I', n.nspname, s.relname), q.seqincrement < 0 FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_sequence q ON q.seqrelid = s.oid
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  AND d.refobjid IN (SELECT to_regclass(t) FROM unnest($1::text[]) t)
ORDER BY 1`

// DescendingNote says why a sequence that counts down is kept out of
// pglogical's sets: pglogical 2.4.2 sends a sequence's value plus its
// margin whatever the direction, so the subscriber's setval gets a value
// above a descending sequence's maximum and the apply stops (measured:
// -5 sent as 995, "setval: value 995 is out of bounds for sequence",
// the subscription down).
const DescendingNote = "pglogical 2.4.2 sends a sequence's value plus 1000 whatever its direction, which stops the subscription for a sequence that counts down (setval: value out of bounds)"

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
		var seqs []string
		var name string
		var down bool
		_, err = pgx.ForEachRow(rows, []any{&name, &down}, func() error {
			if down {
				p.Warnings = append(p.Warnings, fmt.Sprintf("sequence %s counts down: left out of set %s (%s); the subscriber's copy never moves: set it by hand before it takes the writes", name, rs.Name, DescendingNote))
				return nil
			}
			seqs = append(seqs, name)
			return nil
		})
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
			out = append(out, Change{Node: rs.Node, What: "add sequence " + q + " to " + rs.Name,
				SQL: "SELECT pglogical.replication_set_add_sequence($1, $2::regclass, synchronize_data := true)", Args: []any{rs.Name, q}})
		}
	}
	return out, nil
}

// seqValueSQL: the last value of sequence $1 here; NULL when it was never
// used, or does not exist.
const seqValueSQL = `SELECT CASE WHEN to_regclass($1) IS NOT NULL THEN pg_sequence_last_value($1::regclass) END`

// SequenceValue is the last value of sequence seq on c: nil when it was
// never used, or does not exist.
func SequenceValue(ctx context.Context, c *pgx.Conn, seq string) (*int64, error) {
	var v *int64
	if err := c.QueryRow(ctx, seqValueSQL, seq).Scan(&v); err != nil {
		return nil, fmt.Errorf("read the value of sequence %s: %w", seq, err)
	}
	return v, nil
}

// Descending says whether sequence seq on c counts down (false when it
// does not exist).
func Descending(ctx context.Context, c *pgx.Conn, seq string) (bool, error) {
	down, err := one[bool](ctx, c, "SELECT coalesce((SELECT seqincrement < 0 FROM pg_sequence WHERE seqrelid = to_regclass($1)), false)", seq)
	if err != nil {
		return false, fmt.Errorf("read the direction of sequence %s: %w", seq, err)
	}
	return down, nil
}

// Behind: a subscriber's value sv of a sequence lacks the provider's pv
// (one used there and never here, or further there).
func Behind(pv, sv *int64) bool {
	return pv != nil && (sv == nil || *sv < *pv)
}

// sequenceSends plans to send the value of each sequence of the
// subscriptions' sets (seqs, per set) that a subscriber lacks, once the
// subscription replicates (pglogical.synchronize_sequence on the
// provider). A subscription created, or given the set, after the
// sequence joined it missed the value replication_set_add_sequence sent,
// and pglogical's periodic copy comes late (measured with 2.4.2, a new
// subscription copying a table of 300 rows: its sequence still unused on
// the subscriber 6 minutes on; on another database it came after 50 s):
// a subscriber taking over the writes meanwhile hands out used values. A
// subscription there and disabled is left for pglogical.
func (r *Runner) sequenceSends(ctx context.Context, conns map[string]*pgx.Conn, hasExt map[string]bool, seqs map[string][]string, p *Plan) error {
	type key struct{ provider, seq string }
	var order []key
	sends := map[key][]config.Subscription{}
	what := map[key][]string{}
	values := map[key]int64{}
	for _, sb := range r.Config.Subscriptions {
		if hasExt[sb.Subscriber] {
			disabled, err := one[bool](ctx, conns[sb.Subscriber], "SELECT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = $1 AND NOT sub_enabled)", sb.Name)
			if err != nil {
				return err
			}
			if disabled {
				continue
			}
		}
		var done []string
		for _, set := range sb.ReplicationSets {
			for _, q := range seqs[setKey(sb.Provider, set)] {
				if slices.Contains(done, q) {
					continue
				}
				done = append(done, q)
				pv, err := SequenceValue(ctx, conns[sb.Provider], q)
				if err != nil {
					return fmt.Errorf("on %s: %w", sb.Provider, err)
				}
				sv, err := SequenceValue(ctx, conns[sb.Subscriber], q)
				if err != nil {
					return fmt.Errorf("on %s: %w", sb.Subscriber, err)
				}
				if !Behind(pv, sv) {
					continue
				}
				k := key{sb.Provider, q}
				if _, ok := sends[k]; !ok {
					order = append(order, k)
				}
				sends[k], values[k] = append(sends[k], sb), *pv
				here := "none"
				if sv != nil {
					here = fmt.Sprint(*sv)
				}
				what[k] = append(what[k], fmt.Sprintf("subscription %s (%s on %s)", sb.Name, here, sb.Subscriber))
			}
		}
	}
	for _, k := range order {
		p.Changes = append(p.Changes, Change{Node: k.provider,
			What: fmt.Sprintf("send the value of sequence %s (%d on %s) to %s, once it replicates its sets (pglogical's own copy can come minutes later)", k.seq, values[k], k.provider, strings.Join(what[k], ", ")),
			SQL:  "SELECT pglogical.synchronize_sequence($1::regclass)", Args: []any{k.seq}, sends: sends[k]})
	}
	return nil
}

// waitSequence waits until sequence seq has reached value on the
// subscriber of each subscription of subs (WaitSequence).
func (r *Runner) waitSequence(ctx context.Context, subs []config.Subscription, seq string, value int64) error {
	for _, sb := range subs {
		conn, err := r.connect(ctx, sb.Subscriber)
		if err != nil {
			return err
		}
		err = WaitSequence(ctx, conn, seq, value, r.wait())
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("subscription %s on %s: %w (is it replicating? pglmon status --subscription %s)", sb.Name, sb.Subscriber, err, sb.Name)
		}
	}
	return nil
}

// WaitSequence waits, up to wait, until sequence seq has reached value on
// the subscriber c: pglogical's apply sets it when it applies the value
// the provider queued (pglogical.synchronize_sequence).
func WaitSequence(ctx context.Context, c *pgx.Conn, seq string, value int64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		v, err := SequenceValue(ctx, c, seq)
		if err != nil {
			return err
		}
		if v != nil && *v >= value {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the value of sequence %s did not arrive within %s", seq, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
