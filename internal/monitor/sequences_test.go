package monitor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/seqcompare"
)

// A sequence the subscriber lacks the provider's value of, which
// pglogical will not send by itself (it sends again only once the
// provider's value nears the last value it sent), is reported after
// sequenceGrace of the monitor's clock, with both values and what
// pglogical last sent; a subscriber that catches up with the provider's
// value of then starts the count again, and pglogical.synchronize_sequence,
// as the plan says, ends the finding. A subscriber ahead of its provider
// (pglogical's margin) raises nothing.
func TestASequenceLeftBehindIsReported(t *testing.T) {
	p, m := pairMonitor(t)
	ctx := context.Background()
	base := time.Now()
	var skew time.Duration
	m.now = func() time.Time { return base.Add(skew) }
	both := "CREATE TABLE seqt (id serial PRIMARY KEY, v int)"
	run(t, stmt{p.Provider, both}, stmt{p.Subscriber, both},
		stmt{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'seqt', false)"},
		stmt{p.Provider, "SELECT pglogical.replication_set_add_sequence('set_0', 'seqt_id_seq', false)"},
		stmt{p.Provider, "INSERT INTO seqt (v) SELECT g FROM generate_series(1, 10) g"},
		stmt{p.Provider, "SELECT pglogical.synchronize_sequence('seqt_id_seq')"})
	subValue := func() *int64 {
		var v *int64
		if err := p.Subscriber.QueryRow(ctx, "SELECT last_value FROM pg_sequences WHERE sequencename = 'seqt_id_seq'", []any{&v}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool { v := subValue(); return v != nil && *v >= 10 }); err != nil {
		t.Fatalf("synchronize_sequence's value did not reach the subscriber: %v", subValue())
	}
	// at runs a cycle at d on the monitor's clock and returns the
	// finding, if any.
	at := func(d time.Duration) (*diagnose.Finding, *diagnose.Subscription) {
		t.Helper()
		skew = d
		r, _ := m.Cycle(ctx)
		s, ok := r.Subscription(p.Sub(), "subscriber")
		if !ok {
			t.Fatalf("no subscription %s in %+v", p.Sub(), r)
		}
		for _, f := range s.Findings {
			if f.Code == diagnose.CodeSequenceBehind {
				return &f, s
			}
		}
		return nil, s
	}
	for _, d := range []time.Duration{0, 3 * time.Minute, 7 * time.Minute} {
		if f, _ := at(d); f != nil {
			t.Fatalf("sequence_behind with the subscriber ahead (%v), at %s: %s", *subValue(), d, f.Message)
		}
	}

	// Lost on the subscriber: pglogical will not send it again before
	// the provider's value passes (its last value sent) - 500.
	run(t, stmt{p.Subscriber, "SELECT setval('seqt_id_seq', 1, false)"})
	start := 8 * time.Minute
	for _, d := range []time.Duration{0, time.Minute + time.Second, 4 * time.Minute} {
		if f, _ := at(start + d); f != nil {
			t.Fatalf("sequence_behind %s after it was first seen, before sequenceGrace: %s", d, f.Message)
		}
	}
	// A daemon restarted meanwhile (a new monitor) that took up what this
	// one kept, through its state file, reports it as this one would; one
	// that did not would start the count again.
	kept, err := json.Marshal(m.SequencesShort())
	if err != nil {
		t.Fatal(err)
	}
	for _, restored := range []bool{false, true} {
		m2 := New(m.cfg)
		m2.now = func() time.Time { return base.Add(start + sequenceGrace + time.Second) }
		if restored {
			var short map[string]map[string]SequenceShort
			if err := json.Unmarshal(kept, &short); err != nil {
				t.Fatal(err)
			}
			m2.RestoreSequencesShort(short)
		}
		r, _ := m2.Cycle(ctx)
		m2.Close(ctx)
		s, _ := r.Subscription(p.Sub(), "subscriber")
		if got := len(s.SequencesBehind) == 1 && s.SequencesBehind[0].Since.Equal(base.Add(start)); got != restored {
			t.Errorf("restarted, what was kept taken up %v: sequences_behind %+v (%s)", restored, s.SequencesBehind, kept)
		}
	}
	f, s := at(start + sequenceGrace + time.Second)
	if f == nil {
		t.Fatalf("no sequence_behind %s after the sequence was first seen behind: %+v", sequenceGrace+time.Second, s.Findings)
	}
	if len(s.SequencesBehind) != 1 {
		t.Fatalf("sequences_behind: %+v", s.SequencesBehind)
	}
	sb := s.SequencesBehind[0]
	if sb.Sequence != "public.seqt_id_seq" || sb.Provider == nil || *sb.Provider != 10 || sb.Subscriber != nil || sb.Sent == nil || *sb.Sent < 1010 || !sb.Since.Equal(base.Add(start)) {
		t.Errorf("sequences_behind: %+v (sent %v)", sb, sb.Sent)
	}
	for _, want := range []string{"public.seqt_id_seq (10 on the provider, none on the subscriber, for 5m1s; pglogical last sent ", " and sends again only once the provider's value passes ", "duplicate keys"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}

	// The subscriber reaches the provider's value of then while the
	// provider moves on: counted again from now.
	start += sequenceGrace + 2*sequenceEvery
	run(t, stmt{p.Provider, "INSERT INTO seqt (v) SELECT g FROM generate_series(1, 5) g"},
		stmt{p.Subscriber, "SELECT setval('seqt_id_seq', 10)"})
	for _, d := range []time.Duration{0, 4 * time.Minute} {
		if f, _ := at(start + d); f != nil {
			t.Fatalf("sequence_behind %s after the subscriber reached the provider's value of then: %s", d, f.Message)
		}
	}
	if f, s := at(start + sequenceGrace); f == nil || len(s.SequencesBehind) != 1 || *s.SequencesBehind[0].Subscriber != 10 || *s.SequencesBehind[0].Provider != 15 {
		t.Fatalf("no sequence_behind (15 against 10) %s after the count started again: %+v", sequenceGrace, s.SequencesBehind)
	}

	// The plan's remedy.
	run(t, stmt{p.Provider, "SELECT pglogical.synchronize_sequence('public.seqt_id_seq')"})
	start += sequenceGrace
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		start += sequenceEvery
		f, _ := at(start)
		return f == nil
	}); err != nil {
		t.Fatalf("sequence_behind stayed after synchronize_sequence; the subscriber has %v", subValue())
	}
}

// A subscription with an apply_delay gets pglogical's copy of a sequence
// that much later: its grace is longer by as much (a delayed replica of a
// busy sequence is not reported for being delayed). A sequence never used
// on the provider, one the subscriber has, and one that counts down (whose
// plan, pglogical.synchronize_sequence, would stop the subscription) are
// never reported.
func TestSequenceGraceAddsTheApplyDelay(t *testing.T) {
	v := func(n int64) *int64 { return &n }
	behind := seqRead{results: []seqcompare.Result{
		{Sequence: "public.s", Provider: v(2000), Subscriber: v(1500), Result: seqcompare.Behind, Rising: true},
		{Sequence: "public.unused", Result: seqcompare.OK, Rising: true},
		{Sequence: "public.ahead", Provider: v(10), Subscriber: v(1010), Result: seqcompare.OK, Rising: true},
		// Counting down: pglogical's copy would stop the subscription.
		{Sequence: "public.down", Provider: v(-50), Subscriber: v(-5), Result: seqcompare.Behind},
	}}
	t0 := time.Unix(1_800_000_000, 0)
	grace := sequenceGrace + 10*time.Minute
	var c seqCheck
	for _, d := range []time.Duration{0, sequenceGrace + time.Second, grace - time.Second} {
		if c = next(c, behind, t0.Add(d), grace); len(c.found) != 0 {
			t.Fatalf("reported %s after it was first seen, grace %s: %+v", d, grace, c.found)
		}
	}
	if c = next(c, behind, t0.Add(grace), grace); len(c.found) != 1 || c.found[0].Sequence != "public.s" || !c.found[0].Since.Equal(t0) {
		t.Fatalf("after the grace: %+v", c.found)
	}
}
