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
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/verify"
)

// verifier compares the data of every subscription on a schedule and turns
// differences into data_divergence findings.
type verifier struct {
	mu      sync.Mutex
	results map[string]subResult // by subscriber/subscription
	last    time.Time
	running bool
	// windowEnd is config.WindowEnd (replaced in tests).
	windowEnd func(window string, t time.Time) (time.Time, bool)
}

// subResult is what the last verification of a subscription found.
type subResult struct {
	subscriber, subscription string
	tables                   []verify.TableResult // the tables that differ
}

// maybeRun starts a verification when one is due, in its window, and none runs.
func (v *verifier) maybeRun(ctx context.Context, d *Daemon, snaps []probe.Snapshot, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	every := cfg.Verify.Every.D()
	now := time.Now()
	v.mu.Lock()
	due := every > 0 && !v.running && now.Sub(v.last) >= every && config.InWindow(cfg.Verify.Window, now)
	if due {
		v.running = true
	}
	v.mu.Unlock()
	if !due {
		return
	}
	wg.Go(func() { v.run(ctx, d, cfg, snaps) })
}

func (v *verifier) run(ctx context.Context, d *Daemon, cfg *config.Config, snaps []probe.Snapshot) {
	// A window is a promise: the verification stops when it ends.
	windowEnd := v.windowEnd
	if windowEnd == nil {
		windowEnd = config.WindowEnd
	}
	parent := ctx
	if end, ok := windowEnd(cfg.Verify.Window, time.Now()); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	v.mu.Lock()
	previous := v.results
	v.mu.Unlock()
	results := map[string]subResult{}
	var rows int64
	var unfinished []string
	targets, err := verify.Targets(snaps, "")
	if err != nil {
		d.log.Warn("scheduled verification: some subscriptions cannot be verified", keyError, err.Error())
	}
	opt := verify.Options{Mode: cfg.Verify.Mode, ChunkRows: cfg.Verify.ChunkRows, MaxRowsPerSecond: cfg.Verify.MaxRowsPerSecond, MaxKeys: cfg.Verify.MaxKeys}
	for _, tg := range targets {
		key := tg.Subscriber + "/" + tg.Subscription
		if ctx.Err() != nil {
			// Not reached: what the last verification found still stands.
			if prev, ok := previous[key]; ok {
				results[key] = prev
			}
			unfinished = append(unfinished, tg.Subscription)
			continue
		}
		r := verify.Run(ctx, cfg, tg, opt, "")
		rows += r.RowsChecked
		interrupted := ctx.Err() != nil
		if r.Error != "" && !interrupted {
			d.log.Warn("scheduled verification failed", keySubscription, tg.Subscription, keyError, r.Error)
		}
		sr := subResult{subscriber: tg.Subscriber, subscription: tg.Subscription}
		compared, listed := map[string]bool{}, map[string]bool{}
		for _, t := range r.Tables {
			listed[t.Table] = true
			if t.Error != "" && !interrupted {
				d.log.Warn("table not verified", keySubscription, tg.Subscription, "table", t.Table, keyError, t.Error)
			}
			if t.Error == "" {
				compared[t.Table] = true
				if !t.Equal {
					sr.tables = append(sr.tables, t)
				}
			}
		}
		// Tables not compared this time (the window ended, a node was down, a
		// table is being synchronized) keep what the last verification found:
		// a finding is cleared by a comparison, not by its absence.
		for _, t := range previous[key].tables {
			if !compared[t.Table] && (r.Error != "" || listed[t.Table]) {
				sr.tables = append(sr.tables, t)
			}
		}
		if interrupted {
			unfinished = append(unfinished, tg.Subscription)
		} else {
			d.log.Info("verified", keySubscription, tg.Subscription, "equal", r.Equal, "rows", r.RowsChecked, keyDuration, r.Duration.Round(time.Millisecond).String())
		}
		if len(sr.tables) > 0 {
			results[key] = sr
		}
	}
	// Subscriptions not verified at all (a provider unreachable, a subscriber
	// down) keep their findings too; those of dropped subscriptions go.
	targeted, down := map[string]bool{}, map[string]bool{}
	for _, tg := range targets {
		targeted[tg.Subscriber+"/"+tg.Subscription] = true
	}
	for _, sn := range snaps {
		down[sn.Node] = !sn.Up()
	}
	for key, prev := range previous {
		if !targeted[key] && (err != nil || down[prev.subscriber]) {
			results[key] = prev
		}
	}
	if len(unfinished) > 0 && parent.Err() == nil {
		d.log.Warn("scheduled verification stopped at the end of its window", "window", cfg.Verify.Window,
			"unfinished", strings.Join(unfinished, ", "), "rows", rows)
	}
	divergent := map[[2]string]int64{}
	for _, sr := range results {
		for _, t := range sr.tables {
			divergent[[2]string{sr.subscription, t.Table}] = t.DifferingRows
		}
	}
	now := time.Now()
	d.metrics.Verified(rows, divergent, now)
	v.mu.Lock()
	v.results, v.last, v.running = results, now, false
	v.mu.Unlock()
}

// annotate adds a data_divergence finding to each subscription with tables
// that differed at the last verification.
func (v *verifier) annotate(r *diagnose.Report) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		tables := v.results[s.Subscriber+"/"+s.Name].tables
		if len(tables) == 0 {
			continue
		}
		var parts []string
		for _, t := range tables {
			p := fmt.Sprintf("%s: %d rows differ", t.Table, t.DifferingRows)
			if len(t.Keys) > 0 {
				var keys []string
				for _, k := range t.Keys[:min(len(t.Keys), 5)] {
					keys = append(keys, k.Key+" "+k.Kind)
				}
				p += " (" + strings.Join(keys, ", ") + ")"
			}
			parts = append(parts, p)
		}
		sort.Strings(parts)
		s.Findings = append(s.Findings, diagnose.Finding{Code: diagnose.CodeDataDivergence, Severity: diagnose.Critical, Human: true,
			Message: fmt.Sprintf("the last verification of %s at %s found data that differs from the provider: %s",
				s.Name, v.last.UTC().Format(time.RFC3339), strings.Join(parts, "; "))})
		s.Health = diagnose.Worst(s.Health, diagnose.Critical)
		r.Health = diagnose.Worst(r.Health, diagnose.Critical)
	}
}
