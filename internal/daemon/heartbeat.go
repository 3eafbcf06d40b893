package daemon

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/heartbeat"
	"github.com/pglmon/pglmon/internal/probe"
)

// heartbeats writes a heartbeat after each cycle on every node whose
// pglmon.heartbeat is in its pglmon_heartbeat set (pglmon heartbeat
// install), except a node under maintenance or a standby (read-only), and
// prunes every node's table now and then. The next cycle reads how far each subscriber has come.
type heartbeats struct {
	w heartbeat.Writer
	// failing counts a node's consecutive failed writes, for the log.
	mu      sync.Mutex
	failing map[string]*nodeLog
}

func (h *heartbeats) run(ctx context.Context, d *Daemon, snaps []probe.Snapshot, r *diagnose.Report) {
	cfg := d.cfg.Load()
	timeout := cfg.Probe.Timeout.D()
	under := map[string]bool{}
	for _, n := range r.Nodes {
		under[n.Name] = n.Maintenance != nil
	}
	var wg sync.WaitGroup
	for _, s := range snaps {
		n, ok := cfg.Node(s.Node)
		if !ok || !s.Up() || s.Heartbeat == nil || s.InRecovery || under[s.Node] {
			continue
		}
		wg.Go(func() {
			if s.Heartbeat.Provides && s.LocalNode != "" {
				_, err := h.w.Mark(ctx, n, s.LocalNode, s.Heartbeat.Positions, timeout)
				d.metrics.Heartbeat(s.Node, err == nil)
				h.logged(d, s.Node, err)
			}
			if _, err := h.w.Prune(ctx, n, s.Heartbeat.Positions, timeout); err != nil {
				d.log.Warn("heartbeat prune failed", keyNode, s.Node, keyError, err.Error())
			}
		})
	}
	wg.Wait()
}

// logged logs a node's failing writes once, then at most once a minute
// with a count, and the recovery with the number of failures.
func (h *heartbeats) logged(d *Daemon, node string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing == nil {
		h.failing = map[string]*nodeLog{}
	}
	nl, ok := h.failing[node]
	now := time.Now()
	if err == nil {
		if ok {
			d.log.Info("heartbeat writes recovered", keyNode, node, keyFailures, nl.failures)
			delete(h.failing, node)
		}
		return
	}
	if !ok {
		nl = &nodeLog{since: now}
		h.failing[node] = nl
	}
	nl.failures++
	if nl.failures == 1 || now.Sub(nl.lastLogged) >= time.Minute {
		d.log.Warn("heartbeat write failed: replication_delay of this provider's subscriptions is not measured "+writeHint(err),
			keyNode, node, keyError, err.Error(), keyFailures, nl.failures, "suppressed", nl.suppressed)
		nl.lastLogged, nl.suppressed = now, 0
	} else {
		nl.suppressed++
	}
}

// writeHint says what a failed heartbeat write needs, from its error.
func writeHint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "25006" /* read_only_sql_transaction */ {
		// A provider made read-only while the writes move to its
		// subscriber (ALTER DATABASE ... SET default_transaction_read_only).
		return "(the database is read-only, default_transaction_read_only: the heartbeats resume once it takes writes again)"
	}
	return "(if permission is denied: GRANT SELECT, INSERT, DELETE ON pglmon.heartbeat, pglmon.heartbeat_position and USAGE ON SCHEMA pglmon)"
}

// close closes the connections of nodes not in keep (all with nil); the
// next write opens them again.
func (h *heartbeats) close(ctx context.Context, keep map[string]bool) { h.w.Close(ctx, keep) }

// gaps compares, for every subscription that carries the heartbeats
// (gapJobs), the heartbeats the provider wrote with those the subscriber
// holds (heartbeat.Compare), by subscriber/subscription. It runs before
// this cycle's writes and prunes; a comparison that fails is left out
// (logged at debug).
func (h *heartbeats) gaps(ctx context.Context, d *Daemon, snaps []probe.Snapshot, r *diagnose.Report) map[string]heartbeat.Gap {
	cfg := d.cfg.Load()
	jobs := gapJobs(cfg, snaps, r)
	out := map[string]heartbeat.Gap{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() {
			g, err := h.w.Compare(ctx, j.prov, j.sub, j.node, j.from, j.till, cfg.Probe.Timeout.D())
			if err != nil {
				d.log.Debug("heartbeat comparison failed", keySubscription, j.key, keyError, err.Error())
				return
			}
			mu.Lock()
			out[j.key] = g
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// gapJob is one subscription's comparison of heartbeats.
type gapJob struct {
	key        string // subscriber/subscription
	prov, sub  config.Node
	node       string // the provider's pglogical node name
	from, till time.Time
}

// gapJobs are the comparisons to make: one per subscription of the set
// pglmon_heartbeat whose provider writes heartbeats and whose provider and
// subscriber both keep them over a common window. A subscription without
// the set is left out: the heartbeats its subscriber holds came through
// another, whose losses are not its own.
func gapJobs(cfg *config.Config, snaps []probe.Snapshot, r *diagnose.Report) []gapJob {
	byNode := map[string]*probe.Snapshot{}
	for i := range snaps {
		if s := &snaps[i]; s.Up() && s.Heartbeat != nil && !s.InRecovery {
			byNode[s.Node] = s
		}
	}
	var jobs []gapJob
	for _, s := range r.Subscriptions {
		ps, ss := byNode[s.Provider], byNode[s.Subscriber]
		if ps == nil || ss == nil || ps.LocalNode == "" || !ps.Heartbeat.Provides || !slices.Contains(s.ReplicationSets, probe.HeartbeatSet) {
			continue
		}
		from, till, ok := heartbeat.Window(ps.Heartbeat, ss.Heartbeat, ps.LocalNode)
		pn, ok1 := cfg.Node(s.Provider)
		sn, ok2 := cfg.Node(s.Subscriber)
		if ok && ok1 && ok2 {
			jobs = append(jobs, gapJob{s.Subscriber + "/" + s.Name, pn, sn, ps.LocalNode, from, till})
		}
	}
	return jobs
}
