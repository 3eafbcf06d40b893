package daemon

import (
	"context"
	"sync"
	"time"

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
				_, err := h.w.Write(ctx, n, s.LocalNode, timeout)
				d.metrics.Heartbeat(s.Node, err == nil)
				h.logged(d, s.Node, err)
			}
			if _, err := h.w.Prune(ctx, n, timeout); err != nil {
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
		d.log.Warn("heartbeat write failed: replication_delay of this provider's subscriptions is not measured (if permission is denied: GRANT SELECT, INSERT, DELETE ON pglmon.heartbeat and USAGE ON SCHEMA pglmon)",
			keyNode, node, keyError, err.Error(), keyFailures, nl.failures, "suppressed", nl.suppressed)
		nl.lastLogged, nl.suppressed = now, 0
	} else {
		nl.suppressed++
	}
}

// close closes the connections of nodes not in keep (all with nil); the
// next write opens them again.
func (h *heartbeats) close(ctx context.Context, keep map[string]bool) { h.w.Close(ctx, keep) }
