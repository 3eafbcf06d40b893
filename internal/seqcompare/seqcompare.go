// Package seqcompare compares the sequences of replication sets between a
// provider and a subscriber: whether the subscriber would hand out values
// the provider already used.
package seqcompare

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Sequence results. pglogical copies a sequence's state to the subscriber
// only now and then (pglogical.synchronize_sequence, and periodically, each
// time setting it ahead of the provider by a margin), so a subscriber's
// sequence may be behind between two copies; that matters the day the
// subscriber takes the writes (a switchover, the end of an upgrade), when
// it hands out values the provider already used: duplicate keys.
const (
	OK            = "ok"
	Behind        = "behind"         // the subscriber's value is below the provider's
	Missing       = "missing"        // in a replication set, absent on the subscriber
	NotReplicated = "not_replicated" // owned by a replicated table's column, in none of the subscription's sets
	// Unreadable: the role may not read its value on a side (UnreadableOn):
	// PostgreSQL shows it as NULL, as for a sequence never used, to a role
	// without SELECT or USAGE on it.
	Unreadable = "unreadable"
)

// Result compares one sequence on both sides.
type Result struct {
	Sequence string `json:"sequence"`
	// Provider and Subscriber are last_value; nil before the first nextval
	// (or, for Subscriber, when the sequence is absent).
	Provider   *int64 `json:"provider_value"`
	Subscriber *int64 `json:"subscriber_value"`
	Result     string `json:"result"`
	// Table is, for a sequence not replicated, the replicated table whose
	// column takes its values.
	Table string `json:"table,omitempty"`
	// UnreadableOn names the sides where the role may not read the
	// sequence's value ("provider", "subscriber", "provider, subscriber").
	UnreadableOn string `json:"unreadable_on,omitempty"`
	// Rising: the sequence counts up on the provider (increment_by > 0).
	Rising bool `json:"-"`
}

// Lacks says whether the subscriber's value would hand out values the
// provider had already used when its value was v.
func (r Result) Lacks(v int64) bool { return behind(&v, r.Subscriber, r.Rising) }

// Sets compares the sequences of the replication sets between the
// provider pc and the subscriber sc, as verify does after a whole
// subscription's tables: each sequence of the sets, and each sequence a
// column of the sets' tables takes its values from that no set holds.
func Sets(ctx context.Context, pc, sc *pgx.Conn, sets []string) ([]Result, error) {
	b := &pgx.Batch{}
	list := Queue(b, sets)
	if err := pc.SendBatch(ctx, b).Close(); err != nil && list.err == nil {
		return nil, fmt.Errorf("list the sequences of the replication sets: %w", err)
	}
	return Compare(ctx, pc, sc, list)
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

// sequenceValuesSQL reads last_value, the direction, and whether the role
// may read the value (pg_sequences shows NULL otherwise), of the sequences
// named ($1, schema.name as format('%I.%I') writes them) that exist.
const sequenceValuesSQL = `SELECT format('%I.%I', schemaname, sequencename), last_value, increment_by > 0,
	has_sequence_privilege(format('%I.%I', schemaname, sequencename), 'SELECT, USAGE')
FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename) = ANY($1)`

// List is the sequences to compare, as Queue listed them, or why they
// could not be listed.
type List struct {
	seqs []Result
	err  error
}

// Queue queues, in a batch to the provider, the listing of the sequences
// of the replication sets and of those the sets' tables' columns take
// values from (setSequencesSQL), for Compare (verify compares them once
// the tables were compared).
func Queue(b *pgx.Batch, sets []string) *List {
	out := &List{}
	b.Queue(setSequencesSQL, sets).Query(func(rows pgx.Rows) error {
		var seq, table string
		_, err := pgx.ForEachRow(rows, []any{&seq, &table}, func() error {
			out.seqs = append(out.seqs, Result{Sequence: seq, Table: table})
			return nil
		})
		if err != nil {
			out.err = fmt.Errorf("list the sequences of the replication sets: %w", err)
		}
		return out.err
	})
	return out
}

// Err is why the sequences could not be listed, nil when they were.
func (l *List) Err() error { return l.err }

// Compare reads the listed sequences' values on both sides at
// once and says of each whether the subscriber's is behind; a sequence of
// a set absent on the subscriber is missing, and one no set replicates is
// named with the table whose column takes its values.
func Compare(ctx context.Context, pc, sc *pgx.Conn, list *List) ([]Result, error) {
	if list.err != nil || len(list.seqs) == 0 {
		return nil, list.err
	}
	out := slices.Clone(list.seqs)
	seqs := make([]string, len(out))
	for i, r := range out {
		seqs[i] = r.Sequence
	}
	type value struct {
		v              *int64
		rising, readOK bool
	}
	read := func(conn *pgx.Conn) (map[string]value, error) {
		rows, err := conn.Query(ctx, sequenceValuesSQL, seqs)
		if err != nil {
			return nil, err
		}
		got := map[string]value{}
		var name string // each side its own: both read at once
		var v value
		_, err = pgx.ForEachRow(rows, []any{&name, &v.v, &v.rising, &v.readOK}, func() error {
			got[name] = v
			v = value{}
			return nil
		})
		return got, err
	}
	var pv, sv map[string]value
	var perr, serr error
	var wg sync.WaitGroup
	wg.Go(func() { pv, perr = read(pc) })
	sv, serr = read(sc)
	wg.Wait()
	if err := errors.Join(perr, serr); err != nil {
		return nil, fmt.Errorf("read the sequences: %w", err)
	}
	for i := range out {
		r := &out[i]
		p := pv[r.Sequence]
		s, onSub := sv[r.Sequence]
		r.Provider, r.Subscriber, r.Rising = p.v, s.v, p.rising
		var unread []string
		if _, onProv := pv[r.Sequence]; onProv && !p.readOK {
			unread = append(unread, "provider")
		}
		if onSub && !s.readOK {
			unread = append(unread, "subscriber")
		}
		r.UnreadableOn = strings.Join(unread, ", ")
		switch {
		case r.Table != "":
			r.Result = NotReplicated
		case !onSub:
			r.Result = Missing
		case len(unread) > 0:
			r.Result = Unreadable
		case behind(p.v, s.v, p.rising):
			r.Result = Behind
		default:
			r.Result = OK
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

// sentSQL reads what pglogical last sent of the sequences named ($1, as
// format('%I.%I') writes them) on a provider (pglogical.sequence_state).
const sentSQL = `SELECT format('%I.%I', n.nspname, c.relname), s.last_value
FROM pglogical.sequence_state s JOIN pg_class c ON c.oid = s.seqoid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE format('%I.%I', n.nspname, c.relname) = ANY($1)`

// Sent reads, on the provider pc, the value pglogical last sent of each
// sequence named (schema.name as format('%I.%I') writes it) to the
// subscriptions of its sets: pglogical sends again, by itself, only once
// the provider's value comes near it.
func Sent(ctx context.Context, pc *pgx.Conn, seqs []string) (map[string]int64, error) {
	rows, err := pc.Query(ctx, sentSQL, seqs)
	if err != nil {
		return nil, fmt.Errorf("read pglogical.sequence_state: %w", err)
	}
	out := map[string]int64{}
	var name string
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &v}, func() error { out[name] = v; return nil }); err != nil {
		return nil, fmt.Errorf("read pglogical.sequence_state: %w", err)
	}
	return out, nil
}
