package monitor

import (
	"context"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/seqcompare"
)

// sequenceEvery is how often a subscription's sequences are compared
// between its provider and its subscriber.
const sequenceEvery = time.Minute

// sequenceGrace is how long a subscriber's sequence may stay short of a
// value its provider had before it is reported (sequence_behind), plus
// the subscription's apply_delay. pglogical's manager copies a sequence
// whose provider value nears the last value it sent at its next round,
// setting it ahead of the provider by a margin; its rounds are 10 s to
// 3 minutes apart (the wait doubles while no sequence runs out fast, and
// halves down to 5 s while one does: pglogical 2.4.2's manager). So a
// healthy subscriber has the provider's value of 3 minutes ago, once it
// has applied what came since. A subscription made or given the set after
// the last copy gets nothing until the provider's value nears it again
// (with pglogical 2.4.2, measured: none 6 minutes after a new
// subscription).
const sequenceGrace = 5 * time.Minute

// seqCheck is the last comparison of a subscription's sequences.
type seqCheck struct {
	at time.Time
	// short holds, by sequence, since when the subscriber has lacked the
	// provider's value then (value).
	short map[string]SequenceShort
	found []diagnose.SequenceBehind
}

// SequenceShort is since when a subscriber's sequence has lacked Value, the
// value its provider had then: sequence_behind counts from Since.
type SequenceShort struct {
	Since time.Time `json:"since"`
	Value int64     `json:"value"`
}

// SequencesShort returns, by subscriber/subscription and by sequence,
// since when each sequence compared has lacked a value of its provider's:
// what the daemon keeps across its restarts (RestoreSequencesShort).
func (m *Monitor) SequencesShort() map[string]map[string]SequenceShort {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]map[string]SequenceShort{}
	for key, c := range m.seqChecks {
		if len(c.short) > 0 {
			out[key] = maps.Clone(c.short)
		}
	}
	return out
}

// RestoreSequencesShort takes up what SequencesShort returned before a
// restart: those subscriptions' sequences are compared at the next cycle,
// and one still short of the value it lacked then is behind since then,
// not since the restart. A subscription not replicating at that cycle
// starts afresh.
func (m *Monitor) RestoreSequencesShort(short map[string]map[string]SequenceShort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, seqs := range short {
		m.seqChecks[key] = seqCheck{short: maps.Clone(seqs)}
	}
}

// sequences compares, every sequenceEvery, the sequences of each
// replicating subscription's sets between its provider and its subscriber
// (seqcompare.Sets), and reports those the subscriber has lacked a value
// the provider had for sequenceGrace: reaching that value starts the
// count again from the provider's value then, so a sequence pglogical
// keeps copying, however fast it runs, is not reported. Best effort: a
// comparison that fails keeps the last one until the next.
func (m *Monitor) sequences(ctx context.Context, cs *conns, snaps []probe.Snapshot, now time.Time) map[string][]diagnose.SequenceBehind {
	byLocal := map[string]config.Node{}
	for i, s := range snaps {
		if s.Up() && s.LocalNode != "" && i < len(m.cfg.Nodes) {
			byLocal[s.LocalNode] = m.cfg.Nodes[i]
		}
	}
	out := map[string][]diagnose.SequenceBehind{}
	seen := map[string]bool{}
	for i, s := range snaps {
		if !s.Up() || s.InRecovery || i >= len(m.cfg.Nodes) {
			continue
		}
		for _, sub := range s.Subscriptions {
			prov, ok := byLocal[sub.ProviderNode]
			if sub.Status != probe.StatusReplicating || !ok {
				continue
			}
			key := s.Node + "/" + sub.Name
			seen[key] = true
			c := m.seqChecks[key]
			if now.Sub(c.at) < sequenceEvery {
				out[key] = c.found
				continue
			}
			got, err := m.compareSequences(ctx, cs, prov, m.cfg.Nodes[i], sub.ReplicationSets)
			if err != nil {
				// Tried again in sequenceEvery, not at every cycle.
				c.at = now
				m.seqChecks[key] = c
				out[key] = c.found
				continue
			}
			// A subscription with an apply_delay gets pglogical's copy
			// that much later.
			c = next(c, got, now, sequenceGrace+time.Duration(sub.ApplyDelaySeconds*float64(time.Second)))
			m.seqChecks[key] = c
			out[key] = c.found
		}
	}
	for k := range m.seqChecks {
		if !seen[k] {
			delete(m.seqChecks, k)
		}
	}
	return out
}

// seqRead is one comparison of a subscription's sequences.
type seqRead struct {
	results []seqcompare.Result
	sent    map[string]int64
}

func (m *Monitor) compareSequences(ctx context.Context, cs *conns, prov, subscriber config.Node, sets []string) (seqRead, error) {
	pc, err := cs.get(ctx, prov)
	if err != nil {
		return seqRead{}, err
	}
	sc, err := cs.get(ctx, subscriber)
	if err != nil {
		return seqRead{}, err
	}
	return readSequences(ctx, pc, sc, sets)
}

// readSequences compares the sequences of sets between the provider pc
// and the subscriber sc, and reads what pglogical last sent of those
// behind.
func readSequences(ctx context.Context, pc, sc *pgx.Conn, sets []string) (seqRead, error) {
	res, err := seqcompare.Sets(ctx, pc, sc, sets)
	if err != nil {
		return seqRead{}, err
	}
	var names []string
	for _, r := range res {
		if reportable(r) {
			names = append(names, r.Sequence)
		}
	}
	read := seqRead{results: res}
	if len(names) == 0 {
		return read, nil
	}
	if read.sent, err = seqcompare.Sent(ctx, pc, names); err != nil {
		return seqRead{}, err
	}
	return read, nil
}

// behindOf is r, a sequence behind, as diagnose reports it.
func (read seqRead) behindOf(r seqcompare.Result, since time.Time) diagnose.SequenceBehind {
	b := diagnose.SequenceBehind{Sequence: r.Sequence, Provider: r.Provider, Subscriber: r.Subscriber, Since: since}
	if v, ok := read.sent[r.Sequence]; ok {
		b.Sent = &v
	}
	return b
}

// reportable: r is behind, and pglogical's copy can put it right. One
// that counts down is left out: pglogical 2.4.2 sends it the provider's
// value plus its margin, out of its bounds, which stops the subscription
// (setup.DescendingNote); that apply_error is the finding then.
func reportable(r seqcompare.Result) bool {
	return r.Result == seqcompare.Behind && r.Provider != nil && r.Rising
}

// SequencesBehind compares the sequences of sets between the provider pc
// and the subscriber sc once, for pglmon repair: each behind now (Since
// zero: one reading cannot tell pglogical's next copy from none).
func SequencesBehind(ctx context.Context, pc, sc *pgx.Conn, sets []string) ([]diagnose.SequenceBehind, error) {
	read, err := readSequences(ctx, pc, sc, sets)
	if err != nil {
		return nil, err
	}
	var out []diagnose.SequenceBehind
	for _, r := range read.results {
		if reportable(r) {
			out = append(out, read.behindOf(r, time.Time{}))
		}
	}
	return out, nil
}

// next is c after a comparison read at now: a sequence behind is counted
// from when it first lacked the provider's value then, and again from now
// once it has that value; reported after grace.
func next(c seqCheck, read seqRead, now time.Time, grace time.Duration) seqCheck {
	out := seqCheck{at: now, short: map[string]SequenceShort{}}
	for _, r := range read.results {
		if !reportable(r) {
			continue
		}
		st, ok := c.short[r.Sequence]
		if !ok || !r.Lacks(st.Value) {
			st = SequenceShort{Since: now, Value: *r.Provider}
		}
		out.short[r.Sequence] = st
		if now.Sub(st.Since) < grace {
			continue
		}
		out.found = append(out.found, read.behindOf(r, st.Since))
	}
	return out
}
