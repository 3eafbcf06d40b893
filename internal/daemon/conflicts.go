package daemon

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/logtail"
	"github.com/pglmon/pglmon/internal/serverlog"
)

// conflictWindow is how long a conflict keeps the node's finding.
const conflictWindow = time.Hour

// conflictWatcher reads the end of each subscriber's server log once a
// minute (Options.LogEvery) and counts the conflicts pglogical resolved by itself (each can
// leave the tables different: an update of a row deleted on the
// subscriber is skipped). The first read of a node is the baseline: what
// it holds was there before pglmon looked. A line is counted once however
// many reads it is in: the same line (its prefix holds time and PID) is
// counted again only when it occurs more often than in the reads before.
type conflictWatcher struct {
	mu      sync.Mutex
	seen    map[string]map[serverlog.Conflict]int // node -> line -> occurrences
	recent  map[string][]countedConflict          // node -> counted within conflictWindow
	failed  map[string]string
	last    map[string]time.Time
	running bool
}

type countedConflict struct {
	serverlog.Conflict
	at time.Time
}

// maybeRun reads the logs of the subscribers that are due, in the background.
func (w *conflictWatcher) maybeRun(ctx context.Context, d *Daemon, r *diagnose.Report, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return
	}
	if w.last == nil {
		w.last = map[string]time.Time{}
	}
	var due []config.Node
	for _, s := range r.Subscriptions {
		n, ok := cfg.Node(s.Subscriber)
		if !ok || n.LogSource() == config.ServerLogOff || time.Since(w.last[n.Name]) < d.logEvery() {
			continue
		}
		w.last[n.Name] = time.Now()
		due = append(due, n)
	}
	if len(due) == 0 {
		return
	}
	w.running = true
	wg.Go(func() { w.run(ctx, d, cfg, due) })
}

func (w *conflictWatcher) run(ctx context.Context, d *Daemon, cfg *config.Config, nodes []config.Node) {
	type read struct {
		conflicts []serverlog.Conflict
		err       error
	}
	got := map[string]read{}
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, text, err := logtail.Read(cctx, cfg, n)
		cancel()
		got[n.Name] = read{serverlog.Conflicts(text), err}
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen, w.recent, w.failed = map[string]map[serverlog.Conflict]int{}, map[string][]countedConflict{}, map[string]string{}
	}
	for node, rd := range got {
		if rd.err != nil {
			if w.failed[node] != rd.err.Error() {
				d.log.Warn("cannot read the subscriber's server log for conflicts", keyNode, node, keyError, rd.err.Error())
			}
			w.failed[node] = rd.err.Error()
			continue
		}
		delete(w.failed, node)
		counts := map[serverlog.Conflict]int{}
		for _, c := range rd.conflicts {
			counts[c]++
		}
		before, baseline := w.seen[node], w.seen[node] == nil
		added := 0
		for c, n := range counts {
			if extra := n - before[c]; extra > 0 && !baseline {
				d.metrics.Conflicts(node, c.Table, c.Op, c.Resolution, extra)
				for range extra {
					w.recent[node] = append(w.recent[node], countedConflict{c, now})
				}
				added += extra
			}
			counts[c] = max(n, before[c])
		}
		d.log.Debug("server log read for conflicts", keyNode, node, "in_tail", len(rd.conflicts), "new", added, "baseline", baseline)
		// Lines no longer in the tail will not come back: forget them.
		w.seen[node] = counts
	}
	w.running = false
}

// annotate adds, to each subscriber that logged conflicts within
// conflictWindow, a finding that says which.
func (w *conflictWatcher) annotate(r *diagnose.Report) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.recent == nil {
		return // nothing read yet
	}
	for i := range r.Nodes {
		n := &r.Nodes[i]
		var keep []countedConflict
		for _, c := range w.recent[n.Name] {
			if time.Since(c.at) < conflictWindow {
				keep = append(keep, c)
			}
		}
		w.recent[n.Name] = keep
		if len(keep) == 0 {
			continue
		}
		kinds := map[string]int{}
		for _, c := range keep {
			kinds[fmt.Sprintf("%s: remote %s (%s), resolution %s", c.Table, c.Op, c.Found, c.Resolution)]++
		}
		var parts []string
		for k, count := range kinds {
			parts = append(parts, fmt.Sprintf("%dx %s", count, k))
		}
		sort.Strings(parts)
		n.Findings = append(n.Findings, diagnose.Finding{Code: diagnose.CodeApplyConflicts, Severity: diagnose.Warning, Human: true,
			Message: fmt.Sprintf("pglogical resolved %d conflicts by itself on %s in the last hour (its log): %s; each can leave the tables different (writes made on the subscriber, or another origin): run pglmon verify",
				len(keep), n.Name, strings.Join(parts, "; "))})
		r.Health = diagnose.Worst(r.Health, diagnose.Warning)
	}
}
