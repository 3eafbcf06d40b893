package heartbeat

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
)

// The heartbeats are a canary of every change pglogical applies: each
// one a provider wrote that its subscriber lacks while holding later
// ones is a transaction pglogical skipped or the subscriber lost (a
// restore, a failover short of its WAL, a slot advanced), and each one a
// subscriber holds that its provider no longer has is a transaction the
// provider lost after the subscriber applied it. Neither shows in any
// status; the subscription says replicating.

const (
	// settle leaves out the last seconds before the newest heartbeat the
	// subscriber holds: heartbeats written at once by two writers (the
	// daemon and heartbeat install) may commit out of the order of their
	// time stamps.
	settle = 10 * time.Second
	// pruneMargin leaves out what a prune may delete on either node while
	// the two sides are read (rows older than Keep, by that node's clock).
	pruneMargin = 5 * time.Minute
)

// Gap is how the heartbeats a subscriber holds from a provider differ
// from those the provider keeps, over a window both hold whole.
type Gap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Compared is how many heartbeats the provider keeps in the window.
	Compared int `json:"compared"`
	// Missing are those the provider wrote that the subscriber lacks;
	// Extra those the subscriber holds that the provider no longer has.
	Missing []time.Time `json:"missing,omitempty"`
	Extra   []time.Time `json:"extra,omitempty"`
}

// Window is the span over which the heartbeats of pglogical node node,
// as the provider's table (prov) and the subscriber's (sub) hold them,
// can be compared: from the later of the two oldest (and past what a
// prune may delete meanwhile) to shortly before the newest the subscriber
// holds. ok is false when there is none.
func Window(prov, sub *probe.Heartbeat, node string) (from, to time.Time, ok bool) {
	if prov == nil || sub == nil {
		return from, to, false
	}
	p, okp := prov.Nodes[node]
	s, oks := sub.Nodes[node]
	if !okp || !oks {
		return from, to, false
	}
	from = p.Oldest
	if s.Oldest.After(from) {
		from = s.Oldest
	}
	if safe := prov.Clock.Add(-Keep + pruneMargin); safe.After(from) {
		from = safe
	}
	to = s.Newest.Add(-settle)
	return from, to, to.After(from)
}

// gapSQL sums the heartbeats of node $1 between $2 and $3: equal sums on
// both sides are the same heartbeats.
const gapSQL = `SELECT count(*), coalesce(sum((extract(epoch FROM ts) * 1000000)::bigint), 0)::text
	FROM pglmon.heartbeat WHERE node = $1 AND ts BETWEEN $2 AND $3`

const listSQL = `SELECT ts FROM pglmon.heartbeat WHERE node = $1 AND ts BETWEEN $2 AND $3 ORDER BY ts`

// Compare reads the heartbeats of pglogical node node between from and to
// on prov and on sub (one sum on each; the lists only when the sums
// differ) and returns how they differ.
func (w *Writer) Compare(ctx context.Context, prov, sub config.Node, node string, from, to time.Time, timeout time.Duration) (Gap, error) {
	g := Gap{From: from, To: to}
	type sum struct {
		n   int
		sum string
	}
	var sums [2]sum
	for i, n := range []config.Node{prov, sub} {
		if err := w.with(ctx, n, timeout, func(c *pgx.Conn) error {
			return c.QueryRow(ctx, gapSQL, node, from, to).Scan(&sums[i].n, &sums[i].sum)
		}); err != nil {
			return g, fmt.Errorf("read the heartbeats on %s: %w", n.Name, err)
		}
	}
	g.Compared = sums[0].n
	if sums[0] == sums[1] {
		return g, nil
	}
	var lists [2][]time.Time
	for i, n := range []config.Node{prov, sub} {
		if err := w.with(ctx, n, timeout, func(c *pgx.Conn) error {
			rows, err := c.Query(ctx, listSQL, node, from, to)
			if err != nil {
				return err
			}
			lists[i], err = pgx.CollectRows(rows, pgx.RowTo[time.Time])
			return err
		}); err != nil {
			return g, fmt.Errorf("list the heartbeats on %s: %w", n.Name, err)
		}
	}
	g.Missing, g.Extra = difference(lists[0], lists[1]), difference(lists[1], lists[0])
	return g, nil
}

// difference is what sorted a holds that sorted b does not (to the
// microsecond, PostgreSQL's precision).
func difference(a, b []time.Time) []time.Time {
	var out []time.Time
	for _, t := range a {
		if _, found := slices.BinarySearchFunc(b, t.UnixMicro(), func(x time.Time, m int64) int {
			return int(min(max(x.UnixMicro()-m, -1), 1))
		}); !found {
			out = append(out, t)
		}
	}
	return out
}
