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
	results map[string][]verify.TableResult // by subscriber/subscription: tables that differ
	last    time.Time
	running bool
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
	results := map[string][]verify.TableResult{}
	divergent := map[[2]string]int64{}
	var rows int64
	targets, err := verify.Targets(snaps, "")
	if err != nil {
		d.log.Warn("scheduled verification: some subscriptions cannot be verified", keyError, err.Error())
	}
	opt := verify.Options{Mode: cfg.Verify.Mode, ChunkRows: cfg.Verify.ChunkRows, MaxRowsPerSecond: cfg.Verify.MaxRowsPerSecond, MaxKeys: cfg.Verify.MaxKeys}
	for _, tg := range targets {
		r := verify.Run(ctx, cfg, tg, opt, "")
		rows += r.RowsChecked
		if r.Error != "" {
			d.log.Warn("scheduled verification failed", keySubscription, tg.Subscription, keyError, r.Error)
		}
		for _, t := range r.Tables {
			if t.Error != "" {
				d.log.Warn("table not verified", keySubscription, tg.Subscription, "table", t.Table, keyError, t.Error)
			}
			if t.Error == "" && !t.Equal {
				key := tg.Subscriber + "/" + tg.Subscription
				results[key] = append(results[key], t)
				divergent[[2]string{tg.Subscription, t.Table}] = t.DifferingRows
			}
		}
		d.log.Info("verified", keySubscription, tg.Subscription, "equal", r.Equal, "rows", r.RowsChecked, keyDuration, r.Duration.Round(time.Millisecond).String())
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
		tables := v.results[s.Subscriber+"/"+s.Name]
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
