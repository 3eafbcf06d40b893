// Package applyworker follows pglogical's apply worker of a subscription
// across a change that ends it, and wakes pglogical's manager when the
// manager misses that end.
//
// pglogical ends a subscription's apply worker when a set is added to it or
// taken from it, and wakes the database's manager at that commit. The
// manager can find the old worker still exiting, or not be the manager
// that started it (only that one is told of its end), start none, and
// sleep until its next round: up to 180 s (pglogical 2.4.2's MAX_SLEEP; measured
// here: no apply worker for over 60 s after alter_subscription_add_replication_set).
// A second signal once the old worker is gone starts the new one:
// alter_subscription_enable on the enabled subscription, which changes
// nothing else. Every function here takes a connection to the subscriber's
// database.
package applyworker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// workerType is the backend_type (pg_stat_activity) of the apply worker of
// subscription s, in the database connected to.
const workerType = `'pglogical apply ' || (SELECT oid FROM pg_database WHERE datname = current_database()) || ':' || s.sub_id`

// startedSQL: subscription $1 has an apply worker started at $2 or later
// (any, with $2 NULL); whether the subscription is enabled (false when
// there is no such subscription); and whether this role sees other roles'
// processes in pg_stat_activity (pglogical's workers run as the bootstrap
// superuser: without pg_read_all_stats their type and start are NULL).
const startedSQL = `SELECT EXISTS (SELECT 1 FROM pg_stat_activity a JOIN pglogical.subscription s
	ON a.backend_type = ` + workerType + `
	WHERE s.sub_name = $1 AND ($2::timestamptz IS NULL OR a.backend_start >= $2)),
	coalesce((SELECT sub_enabled FROM pglogical.subscription WHERE sub_name = $1), false),
	pg_has_role('pg_read_all_stats', 'USAGE')`

// wakeSQL signals the manager: pglogical ends the subscription's apply
// worker, if one runs, and wakes the manager at commit. An enabled
// subscription stays as it was; a disabled one is left alone.
const wakeSQL = `SELECT pglogical.alter_subscription_enable(sub_name) FROM pglogical.subscription WHERE sub_name = $1 AND sub_enabled`

// wakeStrandedSQL signals the manager for each enabled subscription of the
// database without an apply worker, when the role can see the workers
// (else a running one would be taken for none, and ended).
const wakeStrandedSQL = `SELECT count(pglogical.alter_subscription_enable(s.sub_name)) FROM pglogical.subscription s
WHERE s.sub_enabled AND pg_has_role('pg_read_all_stats', 'USAGE')
	AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = current_database() AND a.backend_type = ` + workerType + `)`

// ErrNotStarted is returned by Wait when no apply worker started in time.
var ErrNotStarted = errors.New("no apply worker started")

// ErrCannotSee is returned when the role cannot see pglogical's workers:
// nothing can be waited for, and waking the manager would end a worker
// that runs unseen.
var ErrCannotSee = errors.New("this role cannot see pglogical's workers in pg_stat_activity (they run as a superuser; it needs pg_read_all_stats, which pg_monitor has)")

// Now is the subscriber's clock, to pass to Wait as the time of a change
// made afterwards.
func Now(ctx context.Context, conn *pgx.Conn) (time.Time, error) {
	var t time.Time
	err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&t)
	return t, err
}

// Started reports whether subscription sub has an apply worker started at
// since or later (any running one, with since zero), and whether it is
// enabled. ErrCannotSee when the role cannot tell.
func Started(ctx context.Context, conn *pgx.Conn, sub string, since time.Time) (up, enabled bool, err error) {
	var at *time.Time
	if !since.IsZero() {
		at = &since
	}
	var sees bool
	if err = conn.QueryRow(ctx, startedSQL, sub, at).Scan(&up, &enabled, &sees); err != nil {
		return false, false, fmt.Errorf("look for the apply worker of subscription %s: %w", sub, err)
	}
	if !sees {
		return false, enabled, ErrCannotSee
	}
	return up, enabled, nil
}

// Wake has pglogical's manager start the apply worker of subscription sub
// when it is enabled. A running one is ended and started again.
func Wake(ctx context.Context, conn *pgx.Conn, sub string) error {
	if _, err := conn.Exec(ctx, wakeSQL, sub); err != nil {
		return fmt.Errorf("wake pglogical's manager for subscription %s: %w", sub, err)
	}
	return nil
}

// WakeStranded has pglogical's manager start the apply worker of every
// enabled subscription of the database that has none, and says how many
// it woke. A role that cannot see the workers wakes none.
func WakeStranded(ctx context.Context, conn *pgx.Conn) (int, error) {
	var n int
	if err := conn.QueryRow(ctx, wakeStrandedSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("wake pglogical's manager for subscriptions without an apply worker: %w", err)
	}
	return n, nil
}

// Wait waits, up to wait, until subscription sub has an apply worker
// started at since or later, or is disabled (nothing is started then).
// With none 2 s on, it wakes the manager, and again every 5 s: a worker
// started before since and still running then (the change did not end
// it, or it is slow to exit) is ended and started again. woken counts
// the wakes. Time out: ErrNotStarted; ErrCannotSee at once (nothing is
// woken then) when the role cannot see the workers.
func Wait(ctx context.Context, conn *pgx.Conn, sub string, since time.Time, wait time.Duration) (woken int, err error) {
	deadline := time.Now().Add(wait)
	next := time.Now().Add(2 * time.Second)
	for {
		up, enabled, err := Started(ctx, conn, sub, since)
		if err != nil {
			return woken, err
		}
		if up || !enabled {
			return woken, nil
		}
		if time.Now().After(deadline) {
			return woken, fmt.Errorf("subscription %s: %w within %s", sub, ErrNotStarted, wait)
		}
		if time.Now().After(next) {
			// An old worker still there 2 s on is ended with it.
			if err := Wake(ctx, conn, sub); err != nil {
				return woken, err
			}
			woken++
			next = time.Now().Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return woken, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
