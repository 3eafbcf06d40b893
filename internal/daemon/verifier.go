package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/shellword"
	"github.com/pglmon/pglmon/internal/verified"
	"github.com/pglmon/pglmon/internal/verify"
)

// verifier compares the data of every subscription on a schedule and turns
// differences into data_divergence findings. A verification of every
// subscription is a cycle; one that its window's end (or a stop of the
// daemon) interrupts goes on from where it stopped in the next window.
type verifier struct {
	mu      sync.Mutex
	results map[string]subResult // by subscriber/subscription
	// last is when the last cycle finished; complete when the last one
	// that verified every subscription did (pglmon_last_verify_timestamp_seconds).
	last, complete time.Time
	// cycle is the interrupted cycle to go on with (nil: none).
	cycle   *cycle
	running bool
	// windowEnd is config.WindowEnd (replaced in tests).
	windowEnd func(window string, t time.Time) (time.Time, bool)
	// state persists the above across restarts (nil: not kept).
	state *stateFile
	// equal holds, by subscriber/subscription/table, when the last
	// verification that found the table equal started; by
	// subscriber/subscription/ (no table), when the last that found every
	// table of the subscription equal did.
	equal map[string]time.Time
	// byHand is the same for verifications run by hand (`pglmon verify`),
	// read from hand.
	byHand map[string]time.Time
	hand   verified.Watcher
}

// equalSince reports when the last verification that found the table
// equal started, scheduled or run by hand (zero: none did); table "": every
// table of the subscription.
func (v *verifier) equalSince(subscriber, subscription, table string) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := subscriber + "/" + subscription + "/" + table
	if h := v.byHand[key]; h.After(v.equal[key]) {
		return h
	}
	return v.equal[key]
}

// absorb reads what verifications run by hand found equal (package
// verified), which the next equalSince answers with; a table found equal
// by one that started after the last scheduled verification found it
// different no longer differs.
func (v *verifier) absorb(d *Daemon) {
	path := d.cfg.Load().VerifiedFile()
	v.mu.Lock()
	if v.hand.Path != path {
		v.hand = verified.Watcher{Path: path}
	}
	since, err := v.hand.Since()
	if err != nil {
		d.log.Warn("cannot read what verifications run by hand found: keeping what was read before", "file", path, keyError, err.Error())
	}
	v.byHand = since
	changed := v.supersede(d.log, v.results)
	var saved verifyState
	if changed {
		saved = v.snapshot()
	}
	divergent := divergentRows(v.results)
	v.mu.Unlock()
	if !changed {
		return
	}
	d.metrics.Verified(0, divergent, time.Time{})
	if v.state != nil {
		if err := v.state.save(saved); err != nil {
			d.log.Warn("cannot keep the verification state: a restart will bring back the data_divergence findings cleared by hand", keyError, err.Error())
		}
	}
}

// supersede removes from results the tables that a verification run by
// hand found equal after the one that found them different started;
// v.mu is held.
func (v *verifier) supersede(log *slog.Logger, results map[string]subResult) (changed bool) {
	for key, sr := range results {
		kept := slices.DeleteFunc(slices.Clone(sr.Tables), func(t verify.TableResult) bool {
			at := v.byHand[key+"/"+t.Table]
			if !at.After(sr.At) {
				return false
			}
			if log != nil {
				log.Info("a verification run by hand found the table equal: its data_divergence is cleared", keySubscription, sr.Subscription,
					"table", t.Table, "verified_at", at.UTC().Format(time.RFC3339))
			}
			return true
		})
		if len(kept) == len(sr.Tables) {
			continue
		}
		changed = true
		if sr.Tables = kept; len(kept) == 0 {
			delete(results, key)
		} else {
			results[key] = sr
		}
	}
	return changed
}

// subResult is what the last verification of a subscription found.
type subResult struct {
	Subscriber   string               `json:"subscriber"`
	Subscription string               `json:"subscription"`
	Tables       []verify.TableResult `json:"tables"` // the tables that differ
	// At is when that verification started (zero in a state kept by an
	// older pglmon).
	At time.Time `json:"at,omitzero"`
}

// cycle is a verification of every subscription, stopped partway.
type cycle struct {
	Mode    string    `json:"mode"`
	Started time.Time `json:"started"`
	// Finished holds the subscriptions verified to the end in this cycle.
	Finished map[string]bool `json:"finished,omitempty"`
	// Passes holds where each subscription stopped partway.
	Passes map[string]*pass `json:"passes,omitempty"`
}

// pass is how far the verification of one subscription got.
type pass struct {
	// Done holds the tables compared to the end.
	Done []string `json:"done,omitempty"`
	// Table was being compared; every key below From was.
	Table string   `json:"table,omitempty"`
	From  []string `json:"from,omitempty"`
	// KeyOrder: Table stopped in page order with no key to go on from, and
	// is compared again from the start in key order (which can be resumed).
	KeyOrder bool `json:"key_order,omitempty"`
	// Partial is what comparing Table below From found.
	Partial *verify.TableResult `json:"partial,omitempty"`
}

// maybeRun starts a verification when one is due, in its window, and none
// runs: every verify.every, or at once when a cycle was interrupted.
func (v *verifier) maybeRun(ctx context.Context, d *Daemon, snaps []probe.Snapshot, wg *sync.WaitGroup) {
	cfg := d.cfg.Load()
	every := cfg.Verify.Every.D()
	now := time.Now()
	v.mu.Lock()
	due := every > 0 && !v.running && (v.cycle != nil || now.Sub(v.last) >= every) && config.InWindow(cfg.Verify.Window, now)
	if due {
		v.running = true
	}
	v.mu.Unlock()
	if !due {
		return
	}
	wg.Go(func() { v.run(ctx, d, cfg, snaps, now) })
}

// run verifies; due is when it was found due, in its window (the window is
// the one open then: a moment later it may have ended).
func (v *verifier) run(ctx context.Context, d *Daemon, cfg *config.Config, snaps []probe.Snapshot, due time.Time) {
	// A window is a promise: the verification stops when it ends.
	windowEnd := v.windowEnd
	if windowEnd == nil {
		windowEnd = config.WindowEnd
	}
	parent := ctx
	if end, ok := windowEnd(cfg.Verify.Window, due); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	opt := verify.ConfigOptions(cfg.Verify, cfg.Verify.Mode)
	v.mu.Lock()
	previous := v.results
	cy := v.cycle
	v.mu.Unlock()
	if cy == nil || cy.Mode != opt.Mode {
		cy = &cycle{Mode: opt.Mode, Started: time.Now()}
	} else {
		d.log.Info("scheduled verification goes on from where it stopped", "started", cy.Started.UTC().Format(time.RFC3339),
			"verified", len(cy.Finished), "partway", len(cy.Passes))
	}
	next := &cycle{Mode: cy.Mode, Started: cy.Started, Finished: maps.Clone(cy.Finished), Passes: map[string]*pass{}}
	if next.Finished == nil {
		next.Finished = map[string]bool{}
	}
	results := map[string]subResult{}
	var rows int64
	var unfinished []string
	targets, err := verify.Targets(snaps, "")
	failed := err != nil // some subscription could not be verified
	if err != nil {
		d.log.Warn("scheduled verification: some subscriptions cannot be verified", keyError, err.Error())
	}
	sources := verify.Sources(ctx, cfg, targets)
	for _, tg := range targets {
		key := tg.Subscriber + "/" + tg.Subscription
		if next.Finished[key] || ctx.Err() != nil {
			// Verified earlier in this cycle, or not reached: what the last
			// verification found still stands.
			if prev, ok := previous[key]; ok {
				results[key] = prev
			}
			if ps, ok := cy.Passes[key]; ok {
				next.Passes[key] = ps
			}
			if !next.Finished[key] {
				unfinished = append(unfinished, tg.Subscription)
			}
			continue
		}
		ps := cy.Passes[key]
		o := opt
		o.OtherSources = sources[key]
		if ps != nil {
			o.Skip = map[string]bool{}
			for _, t := range ps.Done {
				o.Skip[t] = true
			}
			if ps.Table != "" {
				o.Resume = map[string][]string{ps.Table: ps.From}
			}
			if ps.KeyOrder {
				o.KeyOrder = map[string]bool{ps.Table: true}
			}
		}
		started := time.Now()
		r := verify.Run(ctx, cfg, tg, o)
		rows += r.RowsChecked
		v.mu.Lock()
		for _, t := range r.Tables {
			if t.Error == "" && t.Equal {
				if v.equal == nil {
					v.equal = map[string]time.Time{}
				}
				v.equal[key+"/"+t.Table] = started
			}
		}
		v.mu.Unlock()
		interrupted := ctx.Err() != nil
		if r.Error != "" && !interrupted {
			failed = true
			d.log.Warn("scheduled verification failed", keySubscription, tg.Subscription, keyError, r.Error)
		}
		sr, np := v.collect(d, tg, ps, previous[key], r, o)
		sr.At = started
		switch {
		case interrupted:
			unfinished = append(unfinished, tg.Subscription)
			if np.Table != "" || len(np.Done) > 0 {
				next.Passes[key] = np
			}
		case r.Error == "":
			next.Finished[key] = true
			if len(sr.Tables) == 0 && !slices.ContainsFunc(r.Tables, func(t verify.TableResult) bool { return t.Error != "" }) {
				// Every table equal: the subscription as a whole, since
				// the cycle began (an earlier run of it compared the rest).
				v.mu.Lock()
				if v.equal == nil {
					v.equal = map[string]time.Time{}
				}
				v.equal[key+"/"] = cy.Started
				v.mu.Unlock()
			}
			attrs := []any{keySubscription, tg.Subscription, "equal", len(sr.Tables) == 0, "rows", r.RowsChecked, keyDuration, r.Duration.Round(time.Millisecond).String()}
			if ps != nil {
				attrs = append(attrs, "cycle_started", cy.Started.UTC().Format(time.RFC3339))
			}
			d.log.Info("verified", attrs...)
		}
		if len(sr.Tables) > 0 {
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
		if !targeted[key] && (err != nil || down[prev.Subscriber]) {
			results[key] = prev
		}
	}
	stopped := len(unfinished) > 0
	if stopped && parent.Err() == nil {
		d.log.Warn("scheduled verification stopped at the end of its window; the next window goes on from there", "window", cfg.Verify.Window,
			"unfinished", strings.Join(unfinished, ", "), "rows", rows)
	}
	now := time.Now()
	v.mu.Lock()
	v.supersede(d.log, results)
	divergent := divergentRows(results)
	v.results, v.running = results, false
	var finished time.Time // zero unless every subscription was verified
	if stopped {
		v.cycle = next
	} else {
		v.cycle, v.last = nil, now
		if !failed {
			v.complete, finished = now, now
		}
	}
	saved := v.snapshot()
	v.mu.Unlock()
	d.metrics.Verified(rows, divergent, finished)
	if v.state != nil {
		if err := v.state.save(saved); err != nil {
			d.log.Warn("cannot keep the verification state: a restart will start the cycle over and forget its findings", keyError, err.Error())
		}
	}
}

// collect turns one run of a subscription's verification into what it
// found and how far it got. ps is how far earlier runs of the cycle got,
// prev what the last verification found; o.Skip holds the tables not
// compared now because an earlier run of the cycle compared them.
func (v *verifier) collect(d *Daemon, tg verify.Target, ps *pass, prev subResult, r verify.Result, o verify.Options) (subResult, *pass) {
	sr := subResult{Subscriber: tg.Subscriber, Subscription: tg.Subscription}
	np := &pass{}
	if ps != nil {
		np.Done = slices.Clone(ps.Done)
	}
	found, listed := map[string]bool{}, maps.Clone(o.Skip)
	if listed == nil {
		listed = map[string]bool{}
	}
	for _, t := range r.Tables {
		listed[t.Table] = true
		if ps != nil && t.Table == ps.Table && ps.Partial != nil {
			t = mergeTables(*ps.Partial, t, o.MaxKeys)
		}
		switch {
		case t.Error == "":
			found[t.Table] = true
			np.Done = append(np.Done, t.Table)
			if !t.Equal {
				sr.Tables = append(sr.Tables, t)
			}
		case t.Error == "interrupted":
			from, keyOrder := t.ResumeFrom, false
			if from == nil && ps != nil && t.Table == ps.Table {
				from, keyOrder = ps.From, ps.KeyOrder // stopped again before getting further
			}
			if from == nil && t.Scan == verify.ScanPages {
				// Read by a hash of its key: no key below which every row was compared.
				keyOrder = true
			}
			if from != nil || keyOrder {
				np.Table, np.From, np.KeyOrder = t.Table, from, keyOrder
			}
			if from != nil {
				partial := t
				np.Partial = &partial
			}
			// Rows found differing so far are differences already.
			if t.DifferingRows > 0 {
				found[t.Table] = true
				sr.Tables = append(sr.Tables, t)
			}
		default:
			d.log.Warn("table not verified", keySubscription, tg.Subscription, "table", t.Table, keyError, t.Error)
		}
	}
	// Tables not compared this time (compared earlier in the cycle, the
	// window ended, a node was down, a table is being synchronized) keep
	// what the last verification found: a finding is cleared by a
	// comparison, not by its absence.
	for _, t := range prev.Tables {
		if !found[t.Table] && (r.Error != "" || listed[t.Table]) {
			sr.Tables = append(sr.Tables, t)
		}
	}
	return sr, np
}

// mergeTables adds what comparing a table from where an earlier run
// stopped found to what that run found.
func mergeTables(before, after verify.TableResult, maxKeys int) verify.TableResult {
	m := after
	m.RowsCompared += before.RowsCompared
	m.DifferingRows += before.DifferingRows
	m.Unsettled += before.Unsettled
	m.ExpectedRows += before.ExpectedRows
	m.Duration += before.Duration
	m.Keys = append(slices.Clone(before.Keys), after.Keys...)
	if maxKeys > 0 && len(m.Keys) > maxKeys {
		m.Keys = m.Keys[:maxKeys]
	}
	if m.Note == "" {
		m.Note = before.Note
	}
	m.ResumedFrom = before.ResumedFrom
	m.Equal = after.Error == "" && m.DifferingRows == 0
	return m
}

// snapshot is the verifier's state to keep; v.mu is held.
func (v *verifier) snapshot() verifyState {
	st := verifyState{Version: 1, Last: v.last, Complete: v.complete, Cycle: v.cycle, Equal: maps.Clone(v.equal)}
	for _, k := range slices.Sorted(maps.Keys(v.results)) {
		st.Results = append(st.Results, v.results[k])
	}
	return st
}

// restore takes over a kept state.
func (v *verifier) restore(st verifyState) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.last, v.complete, v.cycle, v.equal = st.Last, st.Complete, st.Cycle, st.Equal
	v.results = map[string]subResult{}
	for _, r := range st.Results {
		v.results[r.Subscriber+"/"+r.Subscription] = r
	}
}

// divergent is the divergent rows per subscription and table.
func (v *verifier) divergent() map[[2]string]int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return divergentRows(v.results)
}

// divergentRows is the rows that differ per subscription and table.
func divergentRows(results map[string]subResult) map[[2]string]int64 {
	out := map[[2]string]int64{}
	for _, sr := range results {
		for _, t := range sr.Tables {
			out[[2]string{sr.Subscription, t.Table}] = t.DifferingRows
		}
	}
	return out
}

// StandingDivergence adds to r the data_divergence findings a daemon with
// configuration cfg holds: what its last scheduled verifications found
// (its state file), less the tables a verification run by hand found equal
// since. For pglmon repair, which observes the nodes afresh and would
// otherwise find nothing wrong with a subscription whose data differs.
func StandingDivergence(cfg *config.Config, r *diagnose.Report) error {
	st, err := (&stateFile{cfg.VerifyStateFile()}).load()
	if err != nil {
		return err
	}
	v := &verifier{}
	v.restore(st)
	v.hand = verified.Watcher{Path: cfg.VerifiedFile()}
	v.byHand, err = v.hand.Since()
	v.supersede(nil, v.results)
	v.annotate(r)
	return err
}

// annotate adds a data_divergence finding to each subscription with tables
// that differed at the last verification.
func (v *verifier) annotate(r *diagnose.Report) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		tables := v.results[s.Subscriber+"/"+s.Name].Tables
		if len(tables) == 0 {
			continue
		}
		var parts []string
		for _, t := range tables {
			rows := fmt.Sprintf("%d rows differ", t.DifferingRows)
			if t.DifferingRows == 1 {
				rows = "1 row differs"
			}
			p := t.Table + ": " + rows
			if t.Error == "interrupted" {
				p = fmt.Sprintf("%s: at least %s (compared up to key %s so far)", t.Table, rows, strings.Join(t.ResumeFrom, ", "))
			}
			switch {
			case t.Scan == verify.ScanRows:
				// A table without key names rows by their contents: not
				// spread to Slack and logs (pglmon verify --table shows them).
				p += fmt.Sprintf(" (rows named by their contents: pglmon verify --table %s)", shellword.Quote(pgident.RegclassOf(t.Table)))
			case len(t.Keys) > 0:
				var keys []string
				for _, k := range t.Keys[:min(len(t.Keys), 5)] {
					keys = append(keys, k.Key+" "+k.Kind)
				}
				p += " (" + strings.Join(keys, ", ") + ")"
			}
			parts = append(parts, p)
		}
		sort.Strings(parts)
		at := ""
		if !v.last.IsZero() {
			at = " at " + v.last.UTC().Format(time.RFC3339)
		}
		r.AddFinding(s, diagnose.Finding{Code: diagnose.CodeDataDivergence, Severity: diagnose.Critical, Human: true,
			Message: fmt.Sprintf("the last verification of %s%s found data that differs from the provider: %s", s.Name, at, strings.Join(parts, "; "))})
	}
}
