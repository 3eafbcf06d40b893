package verify

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Sequence results. pglogical copies a sequence's state to the subscriber
// only now and then (pglogical.synchronize_sequence, and periodically, each
// time setting it ahead of the provider by a margin), so a subscriber's
// sequence may be behind between two copies; that matters the day the
// subscriber takes the writes (a switchover, the end of an upgrade), when
// it hands out values the provider already used: duplicate keys.
const (
	SeqOK            = "ok"
	SeqBehind        = "behind"         // the subscriber's value is below the provider's
	SeqMissing       = "missing"        // in a replication set, absent on the subscriber
	SeqNotReplicated = "not_replicated" // owned by a replicated table's column, in none of the subscription's sets
)

// SequenceResult compares one sequence on both sides.
type SequenceResult struct {
	Sequence string `json:"sequence"`
	// Provider and Subscriber are last_value; nil before the first nextval
	// (or, for Subscriber, when the sequence is absent).
	Provider   *int64 `json:"provider_value"`
	Subscriber *int64 `json:"subscriber_value"`
	Result     string `json:"result"`
	// Table is, for a sequence not replicated, the replicated table whose
	// column takes its values.
	Table string `json:"table,omitempty"`
}

// setSequencesSQL lists, on the provider, the sequences in the sets ($1)
// and the sequences owned by a column of the sets' tables that are in none
// of them, with the owning table.
const setSequencesSQL = `WITH inset AS (
	SELECT DISTINCT rss.set_seqoid AS oid FROM pglogical.replication_set_seq rss
	JOIN pglogical.replication_set rs ON rs.set_id = rss.set_id WHERE rs.set_name = ANY($1))
SELECT format('%I.%I', n.nspname, c.relname), '' FROM inset JOIN pg_class c ON c.oid = inset.oid
	JOIN pg_namespace n ON n.oid = c.relnamespace
UNION ALL
SELECT DISTINCT format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname)
FROM pg_depend d
JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_class t ON t.oid = d.refobjid
JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
	AND t.oid IN (SELECT rst.set_reloid FROM pglogical.replication_set_table rst
		JOIN pglogical.replication_set rs ON rs.set_id = rst.set_id WHERE rs.set_name = ANY($1))
	AND s.oid NOT IN (SELECT oid FROM inset)
ORDER BY 1`

// sequenceValuesSQL reads last_value and the direction of the sequences
// named ($1, schema.name as format('%I.%I') writes them) that exist.
const sequenceValuesSQL = `SELECT format('%I.%I', schemaname, sequencename), last_value, increment_by > 0
FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename) = ANY($1)`

// sequenceList is the sequences to compare, as queueSequences listed them,
// or why they could not be listed.
type sequenceList struct {
	seqs []SequenceResult
	err  error
}

// queueSequences queues, in a batch to the provider, the listing of the
// sequences of the replication sets and of those the sets' tables' columns
// take values from (setSequencesSQL), for compareSequences once the tables
// were compared.
func queueSequences(b *pgx.Batch, sets []string) *sequenceList {
	out := &sequenceList{}
	b.Queue(setSequencesSQL, sets).Query(func(rows pgx.Rows) error {
		var seq, table string
		_, err := pgx.ForEachRow(rows, []any{&seq, &table}, func() error {
			out.seqs = append(out.seqs, SequenceResult{Sequence: seq, Table: table})
			return nil
		})
		if err != nil {
			out.err = fmt.Errorf("list the sequences of the replication sets: %w", err)
		}
		return out.err
	})
	return out
}

// compareSequences reads the listed sequences' values on both sides at
// once and says of each whether the subscriber's is behind; a sequence of
// a set absent on the subscriber is missing, and one no set replicates is
// named with the table whose column takes its values.
func compareSequences(ctx context.Context, pc, sc *pgx.Conn, list *sequenceList) ([]SequenceResult, error) {
	if list.err != nil || len(list.seqs) == 0 {
		return nil, list.err
	}
	out := slices.Clone(list.seqs)
	seqs := make([]string, len(out))
	for i, r := range out {
		seqs[i] = r.Sequence
	}
	type value struct {
		v      *int64
		rising bool
	}
	read := func(conn *pgx.Conn) (map[string]value, error) {
		rows, err := conn.Query(ctx, sequenceValuesSQL, seqs)
		if err != nil {
			return nil, err
		}
		got := map[string]value{}
		var name string // each side its own: both read at once
		var v value
		_, err = pgx.ForEachRow(rows, []any{&name, &v.v, &v.rising}, func() error {
			got[name] = v
			v = value{}
			return nil
		})
		return got, err
	}
	var pv, sv map[string]value
	if err := bothSides(
		func() (err error) { pv, err = read(pc); return err },
		func() (err error) { sv, err = read(sc); return err }); err != nil {
		return nil, fmt.Errorf("read the sequences: %w", err)
	}
	for i := range out {
		r := &out[i]
		p := pv[r.Sequence]
		s, onSub := sv[r.Sequence]
		r.Provider, r.Subscriber = p.v, s.v
		switch {
		case r.Table != "":
			r.Result = SeqNotReplicated
		case !onSub:
			r.Result = SeqMissing
		case behind(p.v, s.v, p.rising):
			r.Result = SeqBehind
		default:
			r.Result = SeqOK
		}
	}
	return out, nil
}

// behind reports whether the subscriber's value would hand out values the
// provider already used.
func behind(p, s *int64, rising bool) bool {
	switch {
	case p == nil:
		return false // never used on the provider
	case s == nil:
		return true
	case rising:
		return *s < *p
	}
	return *s > *p
}
