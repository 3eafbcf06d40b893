package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// Breaks that only the daemon sees, by comparing a probe with the ones
// before it: a probe taken after them finds nothing wrong. They wait for
// the demo's daemon to have seen the state before the break.

// daemonReport is the demo's daemon's last report (GET /api/v1/status).
func daemonReport(ctx context.Context) (diagnose.Report, error) {
	var rep diagnose.Report
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/api/v1/status", nil)
	if err != nil {
		return rep, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rep, fmt.Errorf("this break is seen by pglmon's daemon only, which does not answer on %s (start the demo with make demo): %w", listen, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("the demo's daemon on %s answered %s (its first cycle may not be over: try again)", listen, resp.Status)
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}

// readyToBreak checks that the daemon watches the pair's subscription,
// and that it holds no earlier rewind for it (a held one hides a new one
// until verified); it returns the subscription's slot.
func readyToBreak(ctx context.Context, p *pgtest.Pair) (string, error) {
	sub := p.Sub()
	rep, err := daemonReport(ctx)
	if err != nil {
		return "", err
	}
	s, ok := rep.Subscription(sub, "")
	if !ok {
		return "", fmt.Errorf("the demo's daemon does not report %s yet", sub)
	}
	for _, f := range s.Findings {
		switch f.Code {
		case diagnose.CodeProviderRewound, diagnose.CodeProviderTimelineChanged, diagnose.CodeSubscriberRewound, diagnose.CodeSlotAdvanced, diagnose.CodeHeartbeatsLost:
			return "", fmt.Errorf("the daemon holds %s for %s from an earlier break, which hides a new one until a verification finds its tables equal: "+
				"bin/pglmon verify --config %s --copy-script /tmp/rows.psql, run the script as printed, then verify again", f.Code, sub, filepath.Join(dir, "pglmon.yaml"))
		}
	}
	return p.SlotName(ctx, sub)
}

// restoreSubscriber puts the subscriber back to a copy of its files taken
// before it applied 50 rows, once the provider's slot confirmed them and
// the daemon saw its origin past them: a restore from a snapshot, or a
// failover to a standby short of its WAL. The provider never sends them
// again.
func restoreSubscriber(ctx context.Context, p *pgtest.Pair) error {
	sub := p.Sub()
	slot, err := readyToBreak(ctx, p)
	if err != nil {
		return err
	}
	fmt.Println("copying the subscriber's files (it stops for a moment), then writing 50 rows it applies")
	saved, err := p.Subscriber.Cluster.SaveFiles(ctx)
	if err != nil {
		return err
	}
	defer os.RemoveAll(saved)
	if err := p.WaitStatus(ctx, sub, "replicating", time.Minute); err != nil {
		return err
	}
	var first int
	if err := p.Provider.QueryRow(ctx, "SELECT coalesce(max(id), 0) + 1 FROM items_0", []any{&first}); err != nil {
		return err
	}
	last := first + 49
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'lost by the restore', g FROM generate_series($1::int, $2::int) g", first, last); err != nil {
		return err
	}
	var origin string
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var n int
		var confirmed bool
		if p.Subscriber.QueryRow(ctx, "SELECT count(*), (SELECT remote_lsn::text FROM pg_replication_origin_status LIMIT 1) FROM items_0 WHERE id BETWEEN $1 AND $2", []any{&n, &origin}, first, last) != nil || n != 50 ||
			p.Provider.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2", []any{&confirmed}, origin, slot) != nil || !confirmed {
			return false
		}
		rep, err := daemonReport(ctx)
		s, ok := rep.Subscription(sub, "")
		return err == nil && ok && s.OriginRemoteLSN == origin
	}); err != nil {
		return fmt.Errorf("rows %d-%d applied, confirmed by the provider's slot and seen by the daemon: not within a minute", first, last)
	}
	fmt.Printf("rows %d-%d applied (origin %s), confirmed by slot %s; putting the copy back\n", first, last, origin, slot)
	if err := p.Subscriber.Cluster.PutBack(ctx, saved); err != nil {
		return err
	}
	fmt.Printf("the subscriber is back as it was before rows %d-%d, and the provider's slot is past them: pglogical goes on from the slot, so they never arrive "+
		"(bin/pglmon-demo insert 3, then bin/pglmon-demo count), while sub_0 says replicating and a probe alone finds nothing wrong. "+
		"pglmon's daemon reports subscriber_rewound (critical) at its next cycle; bin/pglmon verify --config %s --copy-script /tmp/rows.psql names the 50 rows and writes the script that copies them\n",
		first, last, filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// advanceSlot disables sub_0 and, once the daemon has seen it disabled
// and its slot idle at two cycles, writes 50 rows and advances the slot
// past them with pg_replication_slot_advance, as a runbook does to free
// the WAL an idle slot holds.
func advanceSlot(ctx context.Context, p *pgtest.Pair) error {
	sub := p.Sub()
	slot, err := readyToBreak(ctx, p)
	if err != nil {
		return err
	}
	if err := p.Disable(ctx, sub); err != nil {
		return err
	}
	idleAt := func() (time.Time, bool) {
		rep, err := daemonReport(ctx)
		if err != nil {
			return time.Time{}, false
		}
		s, ok := rep.Subscription(sub, "")
		if !ok || s.Status != "disabled" {
			return time.Time{}, false
		}
		for _, n := range rep.Nodes {
			for _, sl := range n.Slots {
				if sl.Name == slot {
					return rep.Time, !sl.Active
				}
			}
		}
		return time.Time{}, false
	}
	var first time.Time
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		at, ok := idleAt()
		if ok && first.IsZero() {
			first = at
		}
		return ok && at.After(first)
	}); err != nil {
		return errors.New("the daemon did not see " + sub + " disabled and its slot idle at two cycles within a minute")
	}
	var from, to int
	if err := p.Provider.QueryRow(ctx, "SELECT coalesce(max(id), 0) + 1, coalesce(max(id), 0) + 50 FROM items_0", []any{&from, &to}); err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'advanced over', g FROM generate_series($1::int, $2::int) g", from, to); err != nil {
		return err
	}
	var past string
	if err := p.Provider.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text", []any{&past}); err != nil {
		return err
	}
	// A slot advances only as far as the WAL is flushed.
	var end string
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		var done bool
		return p.Provider.QueryRow(ctx, "SELECT end_lsn::text, end_lsn >= $2::pg_lsn FROM pg_replication_slot_advance($1, $2::pg_lsn)", []any{&end, &done}, slot, past) == nil && done
	}); err != nil {
		return fmt.Errorf("slot %s did not advance to %s", slot, past)
	}
	cfg := filepath.Join(dir, "pglmon.yaml")
	fmt.Printf("%s disabled; rows %d-%d written on the provider, then slot %s advanced past them to %s (SELECT pg_replication_slot_advance('%s', pg_current_wal_lsn()), as runbooks free an idle slot's WAL). "+
		"pglmon's daemon reports slot_advanced (critical) at its next cycle. Enable %s (bin/pglmon repair --config %s --subscription %s --remedy enable): "+
		"pglogical starts from the slot, so those rows never arrive, while later ones do (bin/pglmon-demo insert 3, then bin/pglmon-demo count); "+
		"bin/pglmon verify --config %s --copy-script /tmp/rows.psql names them and writes the script that copies them\n",
		sub, from, to, slot, end, slot, sub, cfg, sub, cfg)
	return nil
}
