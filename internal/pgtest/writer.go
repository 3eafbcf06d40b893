package pgtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Writer inserts rows into a table on one database until stopped.
type Writer struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	n      int
	err    error
}

// StartWriter inserts one row at a time into table (id, val, n), ids from
// firstID on, until Stop.
func StartWriter(d DB, table string, firstID int) (*Writer, error) {
	return StartMixedWriter(d, table, firstID, 0)
}

// StartMixedWriter is StartWriter that also updates a random existing row
// (ids 1..updateMaxID) after each insert when updateMaxID > 0.
func StartMixedWriter(d DB, table string, firstID, updateMaxID int) (*Writer, error) {
	sql := fmt.Sprintf("INSERT INTO %s (id, val, n) VALUES ($1::bigint, md5($1::text), $1::int %% 100)", pgx.Identifier{table}.Sanitize())
	update := fmt.Sprintf("UPDATE %s SET n = n + 1, val = md5(val) WHERE id = $1", pgx.Identifier{table}.Sanitize())
	return start(d, firstID, func(ctx context.Context, conn *pgx.Conn, id int) error {
		if _, err := conn.Exec(ctx, sql, id); err != nil {
			return err
		}
		if updateMaxID > 0 {
			_, err := conn.Exec(ctx, update, 1+rand.IntN(updateMaxID))
			return err
		}
		return nil
	})
}

// StartStatements runs the statements one after another, each given the
// step's number (first, first+1, ...) as $1, a few hundred steps a second as
// an application writes, until Stop (which returns the steps done).
func StartStatements(d DB, first int, sqls ...string) (*Writer, error) {
	return start(d, first, func(ctx context.Context, conn *pgx.Conn, id int) error {
		for _, sql := range sqls {
			if _, err := conn.Exec(ctx, sql, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// start runs step with id = first, first+1, ... on a connection of its own
// until Stop, pacing the steps; the first error ends it.
func start(d DB, first int, step func(ctx context.Context, conn *pgx.Conn, id int) error) (*Writer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := d.Cluster.Connect(ctx, d.Name)
	if err != nil {
		cancel()
		return nil, err
	}
	w := &Writer{cancel: cancel}
	w.wg.Go(func() {
		defer conn.Close(context.Background())
		for id := first; ctx.Err() == nil; id++ {
			if err := step(ctx, conn, id); err != nil {
				if ctx.Err() == nil {
					w.err = err
				}
				return
			}
			w.n++
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Millisecond): // pace, not synchronisation
			}
		}
	})
	return w, nil
}

// Stop stops the writer and returns how many rows it inserted.
func (w *Writer) Stop() (int, error) {
	w.cancel()
	w.wg.Wait()
	return w.n, w.err
}

// Checksum returns a table's row count and an md5 over its rows in key order.
func Checksum(ctx context.Context, d DB, table string) (int64, string, error) {
	var n int64
	var sum string
	err := d.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '')
		FROM %s t`, pgx.Identifier{table}.Sanitize()), []any{&n, &sum})
	return n, sum, err
}

// MustConverge waits until every table of the pair is the same on both
// sides (WaitConverged), failing the test otherwise.
func (p *Pair) MustConverge(t testing.TB, timeout time.Duration) {
	t.Helper()
	for _, table := range p.Tables {
		if _, err := p.WaitConverged(context.Background(), table, timeout); err != nil {
			t.Fatal(err)
		}
	}
}

// WaitConverged polls until the subscriber's copy of table equals the
// provider's (count and checksum), or fails at the deadline.
func (p *Pair) WaitConverged(ctx context.Context, table string, timeout time.Duration) (int64, error) {
	var pn, sn int64
	var ps, ss string
	var err error
	if perr := Poll(ctx, timeout, func() bool {
		if pn, ps, err = Checksum(ctx, p.Provider, table); err != nil {
			return false
		}
		if sn, ss, err = Checksum(ctx, p.Subscriber, table); err != nil {
			return false
		}
		return pn == sn && ps == ss
	}); perr != nil {
		return 0, fmt.Errorf("table %s: provider %d rows (%s), subscriber %d rows (%s), last error %v", table, pn, ps, sn, ss, err)
	}
	return pn, nil
}
