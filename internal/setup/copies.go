package setup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/applyworker"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/logtail"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/serverlog"
	"github.com/pglmon/pglmon/internal/shellword"
)

// caughtUp waits until subscription sb has applied every transaction its
// provider had committed (its slot confirms the provider's WAL position),
// before a change has pglogical copy tables to it. The change
// restarts its apply worker, and pglogical 2.4.2's new worker applies what
// it receives first before it reads which tables are being copied (its
// SyncingTables are read after each batch of messages): a row of such a
// table changed while the subscription lacked its set, not yet received,
// lands in the empty table, the COPY then fails on it (duplicate key), and
// pglogical marks the table ready with that row alone (seen here: a table
// left with 1 of 21 rows). Waiting leaves only what is written during the
// change itself to that race; the counts after the copy tell the rest.
// sub is a connection to the subscriber.
func (r *Runner) caughtUp(ctx context.Context, sub *pgx.Conn, sb config.Subscription) error {
	var slot string
	var enabled bool
	if err := sub.QueryRow(ctx, "SELECT sub_slot_name, sub_enabled FROM pglogical.subscription WHERE sub_name = $1", sb.Name).Scan(&slot, &enabled); err != nil {
		return fmt.Errorf("read the slot of subscription %s: %w", sb.Name, err)
	}
	if !enabled {
		return nil // nothing applies, nor copies, until it is enabled
	}
	prov, err := r.connect(ctx, sb.Provider)
	if err != nil {
		return err
	}
	defer prov.Close(ctx)
	// The insert position covers every commit made so far, flushed or
	// not (asynchronous commits reach the flush position up to three
	// wal_writer_delay later: a target read from it let a commit made
	// just before slip through, seen here). An empty transaction holding a
	// transaction id then wakes the WAL writer, whose flush of its commit
	// takes the WAL before with it: the walsender sends only flushed WAL,
	// and a quiet provider's WAL writer may otherwise hibernate with the
	// last of it unflushed for seconds.
	target, err := one[string](ctx, prov, "SELECT pg_current_wal_insert_lsn()::text")
	if err != nil {
		return err
	}
	if _, err := prov.Exec(ctx, "SELECT txid_current()"); err != nil {
		return err
	}
	wait := min(r.wait(), 2*time.Minute)
	deadline := time.Now().Add(wait)
	var quiet, nextLook time.Time // since when nothing streams; when to look for its apply worker next
	var woke, blind bool          // the manager was woken; the role cannot see pglogical's workers
	for {
		var active, confirmed bool
		err := prov.QueryRow(ctx, "SELECT active, coalesce(confirmed_flush_lsn >= $2::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $1", slot, target).Scan(&active, &confirmed)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("subscription %s has no slot %s on %s (pglmon status --subscription %s)", sb.Name, slot, sb.Provider, shellword.Quote(sb.Name))
		case err != nil:
			return err
		case confirmed:
			return nil
		case active:
			quiet = time.Time{}
		case quiet.IsZero():
			quiet = time.Now()
		}
		// A change made just before (pglmon heartbeat install adds a
		// set too) may have ended the apply worker with pglogical's
		// manager missing it: nothing streams until the manager's next
		// round, up to 3 minutes on. With no apply worker 2 s on, it is
		// woken (see applyworker).
		if !blind && !quiet.IsZero() && time.Since(quiet) >= 2*time.Second && time.Now().After(nextLook) {
			up, _, err := applyworker.Started(ctx, sub, sb.Name, time.Time{})
			switch {
			case errors.Is(err, applyworker.ErrCannotSee):
				blind = true
			case err != nil:
				return err
			case up:
				nextLook = time.Now().Add(time.Second)
			default:
				if err := applyworker.Wake(ctx, sub, sb.Name); err != nil {
					return err
				}
				if !woke {
					fmt.Fprintf(r.Out, "subscription %s has no apply worker: woke pglogical's manager to start one (alter_subscription_enable on the enabled subscription)\n", sb.Name)
				}
				woke, nextLook = true, time.Now().Add(5*time.Second)
			}
		}
		if time.Now().After(deadline) {
			why := "it streams but lags"
			if !active {
				why = "nothing streams from its slot"
			}
			return fmt.Errorf("subscription %s has not applied %s's changes up to %s within %s (%s): pglogical would copy tables to it that changes still on their way can spoil; re-run apply once it has caught up (pglmon status --subscription %s)",
				sb.Name, sb.Provider, target, wait, why, shellword.Quote(sb.Name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// notReadySQL counts the tables of subscription $1 that pglogical has not
// finished copying, and of them those catching up (sync status u).
const notReadySQL = `SELECT count(*), count(*) FILTER (WHERE l.sync_status = 'u')
FROM pglogical.local_sync_status l JOIN pglogical.subscription s ON s.sub_id = l.sync_subid
WHERE s.sub_name = $1 AND l.sync_relname IS NOT NULL AND l.sync_status <> 'r'`

// catchUpSQL commits, on a provider, a transaction holding only a logical
// message, which pglogical's walsenders send on as an empty transaction.
// pglogical 2.4.2's sync worker, catching up after its COPY, stops only at
// a commit of its database at or past the position the apply worker had
// reached when the COPY ended, and the apply worker reaches positions from
// the walsender's keepalives too (WAL of other databases, or without a
// commit): on a provider with no commit since, the table stays in catchup
// (measured: over a minute, until the next write there). pglogical
// ignores messages; another logical decoding consumer of that database
// (a CDC connector) sees one with the prefix pglmon.
const catchUpSQL = `SELECT pg_logical_emit_message(true, 'pglmon', 'table copy catch-up')`

// originStatesSQL: every replication origin state of the server is held,
// none by a table copy (its origin <slot>_<8 hex digits>), whose end would
// free one; how many are held, of how many.
const originStatesSQL = `SELECT count(*) >= current_setting('max_replication_slots')::int
		AND count(*) FILTER (WHERE external_id ~ '_[0-9a-f]{8}$') = 0,
	count(*)::int, current_setting('max_replication_slots')::int
FROM pg_replication_origin_status`

// starvedFor is how long waitCopied sees no origin state to copy in
// before it gives up (a state freed meanwhile is taken at the sync
// worker's next start, at once).
const starvedFor = 10 * time.Second

// waitCopied waits until pglogical has copied every table of subscription
// sb (each table's sync status ready); false when it is disabled, and
// copies nothing until enabled. While a table catches up it commits, every
// 2 s, a logical message on the provider (see catchUpSQL). It gives up
// early when no replication origin state is free for the copies
// (originStatesSQL, for starvedFor), or when a table's copy fails at each
// try (copyFailing, from 5 s on, every 5 s).
func (r *Runner) waitCopied(ctx context.Context, sb config.Subscription) (bool, error) {
	conn, err := r.connect(ctx, sb.Subscriber)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	enabled, err := one[bool](ctx, conn, "SELECT sub_enabled FROM pglogical.subscription WHERE sub_name = $1", sb.Name)
	if err != nil || !enabled {
		if err == nil {
			fmt.Fprintf(r.Out, "subscription %s on %s is disabled: pglogical copies its tables once it is enabled (pglogical.alter_subscription_enable)\n", sb.Name, sb.Subscriber)
		}
		return false, err
	}
	var prov *pgx.Conn
	defer func() {
		if prov != nil {
			prov.Close(context.WithoutCancel(ctx))
		}
	}()
	var catchingUp, lastNudge, starved, logRead time.Time
	start, readLog := time.Now(), true
	deadline := start.Add(r.wait())
	for {
		var n, inCatchUp int64
		if err := conn.QueryRow(ctx, notReadySQL, sb.Name).Scan(&n, &inCatchUp); err != nil {
			return false, err
		}
		if n == 0 {
			fmt.Fprintf(r.Out, "subscription %s on %s has copied its tables\n", sb.Name, sb.Subscriber)
			return true, nil
		}
		var full bool
		var held, most int
		if err := conn.QueryRow(ctx, originStatesSQL).Scan(&full, &held, &most); err != nil {
			return false, err
		}
		switch {
		case !full:
			starved = time.Time{}
		case starved.IsZero():
			starved = time.Now()
		case time.Since(starved) >= starvedFor:
			return false, fmt.Errorf("subscription %s on %s: pglogical cannot copy its %d tables: every replication origin state of %s is held (%d of max_replication_slots %d, every database's) and no copy under way will free one, so its sync worker fails at each start, for ever (origin_slots_exhausted); raise max_replication_slots on %s (a restart), and pglogical copies them by itself (pglmon status --subscription %s)",
				sb.Name, sb.Subscriber, n, sb.Subscriber, held, most, sb.Subscriber, shellword.Quote(sb.Name))
		}
		// A copy whose sync worker fails at each try (the subscriber's
		// log): give up, naming the error, not at the timeout.
		if readLog && time.Since(start) >= 5*time.Second && time.Since(logRead) >= 5*time.Second {
			logRead = time.Now()
			if err := r.copyFailing(ctx, conn, sb, &readLog); err != nil {
				return false, err
			}
		}
		switch {
		case inCatchUp == 0:
			catchingUp = time.Time{}
		case catchingUp.IsZero():
			catchingUp = time.Now()
		case time.Since(catchingUp) >= time.Second && time.Since(lastNudge) >= 2*time.Second:
			if prov == nil {
				if prov, err = r.connect(ctx, sb.Provider); err != nil {
					return false, err
				}
			}
			if _, err := prov.Exec(ctx, catchUpSQL); err != nil {
				return false, fmt.Errorf("on %s: commit a logical message for the copies of subscription %s to catch up to: %w", sb.Provider, sb.Name, err)
			}
			lastNudge = time.Now()
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("subscription %s on %s: pglogical still copies %d tables after %s (pglmon status --subscription %s shows each; apply has nothing left to do)", sb.Name, sb.Subscriber, n, r.wait(), shellword.Quote(sb.Name))
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// copyFailed is how many tries in a row of a table's copy, failed, make
// waitCopied give up (pglogical tries again within a second).
const copyFailed = 3

// copyFailing returns an error naming a table of subscription sb whose copy
// failed copyFailed times or more in a row, as the end of the subscriber's
// log says (serverlog.ParseSyncFailures), with what to do where the error says.
// A log that cannot be read is said once, and *readLog set false: the wait
// then ends at its timeout.
func (r *Runner) copyFailing(ctx context.Context, sub *pgx.Conn, sb config.Subscription, readLog *bool) error {
	node, _ := r.Config.Node(sb.Subscriber)
	if node.LogSource() == config.ServerLogOff {
		*readLog = false
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	chunk, err := logtail.Read(lctx, r.Config, node)
	cancel()
	if err != nil {
		*readLog = false
		fmt.Fprintf(r.Out, "cannot read the server log of %s (%v): a table copy of subscription %s that fails at each try is seen only at the wait's end\n", sb.Subscriber, err, sb.Name)
		return nil
	}
	fails := serverlog.ParseSyncFailures(chunk.Tail)
	if len(fails) == 0 {
		return nil
	}
	// Its workers' "<database oid>:<subscription id>": a same-named
	// subscription of another database logs the same lines.
	var worker string
	if err := sub.QueryRow(ctx, "SELECT d.oid::text || ':' || s.sub_id::text FROM pglogical.subscription s, pg_database d WHERE d.datname = current_database() AND s.sub_name = $1", sb.Name).Scan(&worker); err != nil {
		return err
	}
	rows, err := sub.Query(ctx, `SELECT l.sync_nspname::text, l.sync_relname::text, l.sync_status::text
FROM pglogical.local_sync_status l JOIN pglogical.subscription s ON s.sub_id = l.sync_subid
WHERE s.sub_name = $1 AND l.sync_relname IS NOT NULL AND l.sync_status <> 'r'`, sb.Name)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (probe.TableSync, error) {
		var t probe.TableSync
		err := row.Scan(&t.Schema, &t.Table, &t.Status)
		return t, err
	})
	if err != nil {
		return err
	}
	for _, t := range tables {
		f, ok := fails.For(sb.Name, worker, t.Schema+"."+t.Table)
		if !ok || f.Failures < copyFailed || serverlog.Copying(t) {
			continue
		}
		var dsn, slot string
		if err := sub.QueryRow(ctx, "SELECT i.if_dsn, s.sub_slot_name::text FROM pglogical.subscription s JOIN pglogical.node_interface i ON i.if_id = s.sub_origin_if WHERE s.sub_name = $1", sb.Name).Scan(&dsn, &slot); err != nil {
			return err
		}
		role := probe.ConninfoUser(dsn)
		if role == "" {
			// libpq's default (PGUSER or the OS user of the subscriber's
			// server): the walsender of the subscription says which.
			role = r.streamingRole(ctx, sb.Provider, slot)
		}
		return fmt.Errorf("subscription %s on %s: pglogical cannot copy table %s: its sync worker failed %d times in a row, and pglogical tries again within a second while the cause lasts; the last error in %s's log (%s at %s): %s%s (pglmon status --subscription %s: table_sync_error)",
			sb.Name, sb.Subscriber, pgident.Regclass(t.Schema, t.Table), f.Failures, sb.Subscriber, chunk.File, f.Prefix, f.Error,
			f.Hint(sb.Provider, role, t.Schema, t.Table), shellword.Quote(sb.Name))
	}
	return nil
}

// streamingRole is the role of the walsender streaming from slot on
// provider (probe.StreamingRole); "" when none does or it cannot be read:
// the hint then leaves the role for the reader to fill in.
func (r *Runner) streamingRole(ctx context.Context, provider, slot string) string {
	conn, err := r.connect(ctx, provider)
	if err != nil {
		return ""
	}
	defer conn.Close(context.WithoutCancel(ctx))
	role, _ := probe.StreamingRole(ctx, conn, slot)
	return role
}

// wait bounds apply's waits for pglogical (Wait, 10 minutes when unset).
func (r *Runner) wait() time.Duration {
	if r.Wait <= 0 {
		return 10 * time.Minute
	}
	return r.Wait
}
