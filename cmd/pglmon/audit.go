package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pglmon/pglmon/internal/repair"
)

// runAudit prints the repair attempts of the audit log: who ran what on
// which subscription, and how it ended.
func runAudit(ctx context.Context, e env, args []string) error {
	fs := newFlags("audit", e)
	path := fs.String("config", "", "configuration file (its repair.audit_log is read)")
	since := fs.String("since", "", "only attempts started since then: a duration back from now (90m, 24h, 7d) or a time (2026-12-01, 2026-12-01T08:00:00Z)")
	sub := fs.String("subscription", "", "only this subscription's attempts (or, for drop-orphan-slot, this slot's)")
	node := fs.String("node", "", "only attempts on this node: an upgrade prepare or restore of it, or a repair of one of its subscriptions")
	id := fs.String("id", "", "one attempt in detail, with its steps and their SQL (an ID or a unique prefix of one)")
	output := fs.String("output", "table", "table or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usageError("--output must be table or json")
	}
	now := time.Now()
	var from time.Time
	if *since != "" {
		t, err := parseSince(*since, now)
		if err != nil {
			return usageError("--since %q: %v", *since, err)
		}
		from = t
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	file := cfg.Repair.AuditLog
	if file == "" {
		return &exitErr{exitConfig, fmt.Errorf("%s: repair.audit_log is not set: there is no audit log to read", *path)}
	}
	entries, bad, err := repair.ReadLog(file)
	if err != nil {
		return err
	}
	for _, b := range bad {
		fmt.Fprintf(e.stderr, "pglmon: audit log %s: %v; skipped\n", file, b)
	}
	attempts := slices.DeleteFunc(repair.Attempts(entries), func(a repair.Attempt) bool {
		return a.Started.Before(from) || (*sub != "" && a.Subscription != *sub && a.Slot != *sub) ||
			(*node != "" && a.Node != *node && a.Subscriber != *node)
	})
	repair.MarkRunning(attempts)
	if *id != "" {
		a, err := findAttempt(attempts, *id)
		if err != nil {
			return &exitErr{1, err}
		}
		attempts = []repair.Attempt{a}
	}
	if *output == "json" {
		skipped := make([]int, 0, len(bad))
		for _, b := range bad {
			skipped = append(skipped, b.Line)
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"audit_log": file, "attempts": attempts, "skipped_lines": skipped})
	}
	if *id != "" {
		printAttempt(e.stdout, attempts[0])
		return nil
	}
	return printAttempts(e.stdout, file, attempts)
}

// parseSince reads --since: a duration back from now (Go's units, and d for
// days) or a time in RFC 3339 or as a date (UTC).
func parseSince(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("a negative duration")
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a duration (24h, 7d) or a time (2026-12-01, 2026-12-01T08:00:00Z)")
}

// findAttempt finds the attempt whose ID is id or starts with it.
func findAttempt(attempts []repair.Attempt, id string) (repair.Attempt, error) {
	var found []repair.Attempt
	for _, a := range attempts {
		if a.ID == id {
			return a, nil
		}
		if strings.HasPrefix(a.ID, id) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return repair.Attempt{}, fmt.Errorf("no attempt with ID %s in the audit log (with the filters given)", id)
	case 1:
		return found[0], nil
	}
	return repair.Attempt{}, fmt.Errorf("ID %s is the start of %d attempts' IDs: give more of it", id, len(found))
}

// target names what an attempt acted on: the subscription, or the slot.
func target(a repair.Attempt) string {
	switch {
	case a.Subscription == "" && a.Slot != "":
		return "slot " + a.Slot + " on " + a.Provider
	case a.Subscription == "" && a.Node != "":
		return "node " + a.Node
	case a.Remedy == repair.RemedySetupApply:
		return "topology"
	}
	return a.Subscription
}

func took(a repair.Attempt) string {
	if a.Finished == nil {
		return "-"
	}
	return (time.Duration(a.DurationMS) * time.Millisecond).String()
}

func reason(a repair.Attempt) string {
	r := a.Reason
	if a.Outcome == repair.OutcomeInterrupted {
		if r == "" {
			r = "still running, or pglmon stopped in the middle of it"
		}
		switch a.Remedy {
		case repair.RemedyUpgradePrepare:
			r += "; running the same pglmon upgrade prepare again (its --manifest) continues it"
		case repair.RemedyUpgradeRestore:
			r += "; running pglmon upgrade restore again completes it"
		case repair.RemedySetupApply:
			r += "; running pglmon setup apply again completes it"
		default:
			r += "; the next pglmon run or pglmon repair of " + target(a) + " finishes it"
		}
	}
	if len(a.ResumedBy) > 0 {
		r = strings.TrimSpace(r + " (resumed by " + strings.Join(a.ResumedBy, ", ") + ")")
	}
	return r
}

func printAttempts(w io.Writer, file string, attempts []repair.Attempt) error {
	if len(attempts) == 0 {
		fmt.Fprintf(w, "no repair attempts (%s)\n", file)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED\tID\tACTOR\tREMEDY\tTARGET\tSUBSCRIBER\tOUTCOME\tTOOK\tREASON")
	count := map[string]int{}
	for _, a := range attempts {
		count[a.Outcome]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Started.UTC().Format(time.RFC3339), a.ID, a.Actor, a.Remedy,
			target(a), a.Subscriber, a.Outcome, took(a), reason(a))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var parts []string
	for _, o := range []string{repair.ResultSuccess, repair.ResultFailed, repair.ResultRefused, repair.OutcomeInterrupted, repair.OutcomeRunning} {
		if count[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[o], o))
		}
	}
	noun := "attempts"
	if len(attempts) == 1 {
		noun = "attempt"
	}
	fmt.Fprintf(w, "\n%d %s: %s. Details: pglmon audit --config FILE --id ID\n", len(attempts), noun, strings.Join(parts, ", "))
	return nil
}

func printAttempt(w io.Writer, a repair.Attempt) {
	fmt.Fprintf(w, "Attempt %s: %s of %s", a.ID, a.Remedy, target(a))
	if a.Subscriber != "" {
		fmt.Fprintf(w, " on %s", a.Subscriber)
	}
	fmt.Fprintln(w)
	if a.Provider != "" && a.Subscription != "" {
		fmt.Fprintf(w, "  provider:  %s, slot %s\n", a.Provider, a.Slot)
	}
	if a.LSN != "" {
		fmt.Fprintf(w, "  LSN:       %s\n", a.LSN)
	}
	fmt.Fprintf(w, "  actor:     %s", a.Actor)
	if a.Host != "" {
		fmt.Fprintf(w, " (pglmon on %s)", a.Host)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  started:   %s\n", a.Started.UTC().Format(time.RFC3339))
	if a.Finished != nil {
		fmt.Fprintf(w, "  finished:  %s, after %s", a.Finished.UTC().Format(time.RFC3339), took(a))
		if a.ReplicatingAfterMS > 0 {
			fmt.Fprintf(w, "; replicating %s after the first step", time.Duration(a.ReplicatingAfterMS)*time.Millisecond)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  outcome:   %s\n", a.Outcome)
	if r := reason(a); r != "" {
		fmt.Fprintf(w, "  reason:    %s\n", r)
	}
	if len(a.Steps) == 0 {
		fmt.Fprintln(w, "  steps:     none run")
		return
	}
	fmt.Fprintln(w, "  steps:")
	for i, s := range a.Steps {
		fmt.Fprintf(w, "    %d. %s on %s: %s", i+1, s.Action, s.Node, s.Result)
		if s.Result != "not-run" {
			fmt.Fprintf(w, " (%d ms)", s.DurationMS)
		}
		fmt.Fprintln(w)
		if s.SQL != "" {
			args, _ := json.Marshal(s.Args)
			fmt.Fprintf(w, "       %s  %s\n", s.SQL, args)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "       error: %s\n", s.Error)
		}
	}
}
