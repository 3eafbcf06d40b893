package main

import (
	"bufio"
	"context"
	"fmt"
	"os/user"
	"strings"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/daemon"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/seen"
	"github.com/pglmon/pglmon/internal/serverlog"
	"github.com/pglmon/pglmon/internal/shellword"
	"github.com/pglmon/pglmon/internal/verified"
)

// Exit codes of `pglmon repair`.
const (
	repairOK      = 0 // replicating afterwards (or: --dry-run found the plan runnable)
	repairRefused = 1 // nothing was executed
	repairFailed  = 2 // executed, but a step failed or it is not replicating
)

func runRepair(ctx context.Context, e env, args []string) error {
	fs := newFlags("repair", e)
	path := fs.String("config", "", "configuration file")
	subName := fs.String("subscription", "", "the subscription to repair")
	subscriber := fs.String("subscriber", "", "the subscriber node, when the subscription name is on several")
	remedy := fs.String("remedy", "", "restart, recreate-origin, enable, drop-orphan-slot, skip-transaction or rewind-origin (default: the diagnosed one)")
	lsn := fs.String("lsn", "", "skip-transaction: the commit LSN of the transaction to skip (the \"commit before\" of the apply worker's error)")
	node := fs.String("node", "", "drop-orphan-slot: the provider node")
	slot := fs.String("slot", "", "drop-orphan-slot: the slot")
	dryRun := fs.Bool("dry-run", false, "print the plan and check it, execute nothing")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *remedy == diagnose.RemedyDropOrphanSlot {
		if *node == "" || *slot == "" {
			return usageError("--remedy drop-orphan-slot needs --node and --slot")
		}
	} else if *subName == "" {
		return usageError("--subscription NAME is required")
	}
	if (*remedy == diagnose.RemedySkipTransaction) != (*lsn != "") {
		return usageError("--remedy skip-transaction and --lsn go together")
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	for _, f := range []struct{ flag, name string }{{"--subscriber", *subscriber}, {"--node", *node}} {
		if f.name != "" {
			if err := unknownNode(cfg, f.flag, f.name); err != nil {
				return err
			}
		}
	}
	audit, err := repair.NewAudit(cfg.Repair.AuditLog)
	if err != nil {
		return &exitErr{exitConfig, err}
	}
	m := monitor.New(cfg)
	defer m.Close(context.WithoutCancel(ctx))
	m.KeepSetTables(seen.NewTables(cfg.SeenFile(), false)) // the daemon's, to read
	ex := &repair.Executor{Config: cfg, Observer: m, Audit: audit, VerifyTimeout: cfg.Repair.VerifyTimeout.D()}
	actor := "cli:" + osUser()

	// An attempt a crash interrupted is finished first, whatever was asked.
	pending, err := audit.Unfinished()
	if err != nil {
		return err
	}
	for _, p := range pending {
		if p.Subscription == *subName || (p.Slot == *slot && *slot != "") {
			fmt.Fprintf(e.stdout, "The audit log holds %s of %s (attempt %s), started at %s by %s and not finished: finishing it, unless it still runs.\n", p.Remedy, p.Subscription, p.ID, p.Time.Format(time.RFC3339), p.Actor)
			out := ex.Execute(ctx, repair.Request{Remedy: p.Remedy, Subscription: p.Subscription, Subscriber: p.Subscriber,
				Node: p.Provider, Slot: p.Slot, LSN: p.LSN, Actor: actor, Resume: p.ID})
			return reportOutcome(e, out)
		}
	}

	req := repair.Request{Remedy: *remedy, Subscription: *subName, Subscriber: *subscriber, Node: *node, Slot: *slot, LSN: *lsn, Actor: actor}
	if req.Remedy == "" {
		// Use the diagnosed remedy; watch a `down` subscription for down_grace first.
		r, err := observe(ctx, m, cfg, true)
		if err != nil {
			return err
		}
		// The apply worker's error may show that restarting cannot help.
		explainDown(ctx, e, cfg, &r)
		// One the daemon saw and its subscriber no longer has.
		if subs, err := seen.Read(cfg.SeenFile()); err == nil {
			seen.AddMissing(&r, subs, nil)
		}
		// A provider rewind the daemon holds, which a probe no longer shows.
		if err := daemon.StandingRewinds(cfg, &r); err != nil {
			fmt.Fprintf(e.stderr, "pglmon repair: the provider rewinds the daemon holds: %v\n", err)
		}
		s, ok := r.Subscription(*subName, *subscriber)
		if !ok {
			return &exitErr{repairRefused, fmt.Errorf("subscription %s not found on any reachable subscriber", *subName)}
		}
		sequencesBehind(ctx, e, cfg, s)
		f, human, ok := diagnosedRemedy(s)
		if !ok && failedCopies(ctx, e, cfg, s) {
			f, human, ok = diagnosedRemedy(s)
		}
		if !ok && standingDivergence(e, cfg, &r, s) {
			f, human, ok = diagnosedRemedy(s)
		}
		if !ok {
			fmt.Fprintf(e.stdout, "%s is %s (%s): nothing to repair.\n", s.Name, s.Health, orDash(s.Status))
			return &exitErr{code: map[bool]int{true: repairOK, false: repairRefused}[s.Health == diagnose.OK]}
		}
		if human {
			// The commands it names, with this configuration's path; and
			// the plan of each other finding that needs a person.
			for i, hf := range humanFindings(s, f) {
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				fmt.Fprint(e.stdout, strings.ReplaceAll(repair.HumanPlan(hf, *s).Render(), "--config FILE", "--config "+shellword.Quote(*path)))
			}
			return &exitErr{code: repairRefused}
		}
		req.Remedy, req.Finding = f.Remedy, f.Code
	}
	if req.Remedy == diagnose.RemedySkipTransaction {
		// Skipping the wrong transaction loses it for nothing: when the
		// subscriber's log names the failing one, it must be that one.
		r, err := observe(ctx, m, cfg, true)
		if err != nil {
			return err
		}
		explainDown(ctx, e, cfg, &r)
		if s, ok := r.Subscription(*subName, *subscriber); ok {
			if f, ok := s.Finding(diagnose.CodeApplyError); ok {
				req.FailingLSN = repair.CommitLSN(f)
			}
		}
	}
	dry := req
	dry.DryRun = true
	plan := ex.Execute(ctx, dry)
	if plan.Result != repair.ResultDryRun {
		if len(plan.Plan.Steps) > 0 {
			fmt.Fprint(e.stdout, plan.Plan.Render())
		}
		return &exitErr{repairRefused, fmt.Errorf("refused: %s", plan.Reason)}
	}
	fmt.Fprint(e.stdout, plan.Plan.Render())
	if *dryRun {
		fmt.Fprintln(e.stdout, "Dry run: nothing executed; the preconditions hold.")
		return nil
	}
	if !*yes && !confirm(e, "Run this plan?") {
		return &exitErr{repairRefused, fmt.Errorf("not confirmed: nothing executed")}
	}
	return reportOutcome(e, ex.Execute(ctx, req))
}

// failedCopies adds to s, which nothing else ails, the failed copies of
// it that the end of its subscriber's log holds (serverlog.Standing): the
// daemon holds them as findings (table_copy_failed, initial_copy_failed);
// a probe cannot see them. Whether its rows were put right since, the log
// does not tell: a pglmon verify run by hand after the failure that found
// them equal does (verified.json); otherwise said, with how to find out.
func failedCopies(ctx context.Context, e env, cfg *config.Config, s *diagnose.Subscription) bool {
	lg, ok := readServerLog(ctx, e, cfg, s.Subscriber, "whether a copy of "+s.Name+" failed")
	if !ok {
		return false
	}
	file := lg.File
	// What pglmon verify, run by hand since, found equal (package verified).
	w := verified.Watcher{Path: cfg.VerifiedFile()}
	equal, err := w.Since()
	if err != nil {
		fmt.Fprintf(e.stderr, "pglmon repair: %v\n", err)
	}
	found := false
	for _, c := range serverlog.Standing(serverlog.Copies(lg.Tail)) {
		if c.Subscription != s.Name {
			continue
		}
		if at, ok := putRight(c, lg.Zone, equal[s.Subscriber+"/"+s.Name+"/"], equal[s.Subscriber+"/"+s.Name+"/"+c.Table]); ok {
			fmt.Fprintf(e.stdout, "The subscriber's log (%s) shows a copy of %s that failed (%s at %s); a pglmon verify started after it, at %s, found it equal.\n",
				file, c.Table, c.Error, c.Prefix, at.UTC().Format(time.RFC3339))
			continue
		}
		s.Findings = append(s.Findings, c.Finding(file))
		found = true
	}
	if found {
		fmt.Fprintf(e.stdout, "%s replicates, but the subscriber's log (%s) shows a copy of it that failed; if its rows were put right since, "+
			"pglmon verify --subscription %s says so (and this command then prints no plan for it).\n", s.Name, file, shellword.Quote(s.Name))
	}
	return found
}

// sequencesBehind adds to s, while it replicates, the sequences of its
// sets whose value the subscriber lacks now (sequence_behind, with its
// plan). The daemon reports one that stays behind for 5 minutes; a person
// asking gets the plan for one behind now, since sending the provider's
// value does no harm then. What cannot be read is said on stderr.
func sequencesBehind(ctx context.Context, e env, cfg *config.Config, s *diagnose.Subscription) {
	if _, ok := s.Finding(diagnose.CodeSequenceBehind); ok || s.Status != probe.StatusReplicating {
		return
	}
	pn, okp := cfg.Node(s.Provider)
	sn, oks := cfg.Node(s.Subscriber)
	if !okp || !oks {
		return
	}
	err := func() error {
		pc, err := probe.Connect(ctx, pn, cfg.Probe.Timeout.D())
		if err != nil {
			return err
		}
		defer pc.Close(context.WithoutCancel(ctx))
		sc, err := probe.Connect(ctx, sn, cfg.Probe.Timeout.D())
		if err != nil {
			return err
		}
		defer sc.Close(context.WithoutCancel(ctx))
		ss, err := monitor.SequencesBehind(ctx, pc, sc, s.ReplicationSets)
		if err == nil && len(ss) > 0 {
			s.SequencesBehind = ss
			s.Findings = append(s.Findings, diagnose.SequenceFinding(s.Name, ss, time.Now()))
		}
		return err
	}()
	if err != nil {
		fmt.Fprintf(e.stderr, "pglmon repair: whether the sequences of %s are behind on the subscriber is not known: %v\n", s.Name, err)
	}
}

// standingDivergence adds to s the data_divergence the daemon holds for it
// (its last scheduled verifications, less what verifications run by hand
// found equal since), and reports whether it holds one. A state file that
// cannot be read (not the daemon's host, or not its user) is said on stderr.
func standingDivergence(e env, cfg *config.Config, r *diagnose.Report, s *diagnose.Subscription) bool {
	if err := daemon.StandingDivergence(cfg, r); err != nil {
		fmt.Fprintf(e.stderr, "pglmon repair: whether the daemon's verifications found %s's data different is not known: %v\n", s.Name, err)
	}
	_, ok := s.Finding(diagnose.CodeDataDivergence)
	return ok
}

// putRight reports whether a verification run by hand that started after
// the failed copy c (as its log line's time says, in the server's
// log_timezone zone, when it says so unambiguously) found what it left
// wrong equal: the whole subscription (whole), or for a table's copy that
// table (table); and when it started.
func putRight(c serverlog.Copy, zone *time.Location, whole, table time.Time) (time.Time, bool) {
	failed, ok := serverlog.PrefixTime(c.Prefix, zone)
	if !ok {
		return time.Time{}, false
	}
	if !c.Initial && table.After(whole) {
		whole = table
	}
	return whole, whole.After(failed)
}

// diagnosedRemedy picks the finding to act on: the first with a runnable
// remedy, else the first that needs a person.
func diagnosedRemedy(s *diagnose.Subscription) (diagnose.Finding, bool, bool) {
	for _, f := range s.Findings {
		if f.Remedy != "" && f.Remedy != diagnose.RemedyDropOrphanSlot {
			return f, false, true
		}
	}
	for _, f := range s.Findings {
		if f.Human {
			return f, true, true
		}
	}
	return diagnose.Finding{}, false, false
}

// humanFindings is first, then the other findings of s that need a
// person, one per code and table.
func humanFindings(s *diagnose.Subscription, first diagnose.Finding) []diagnose.Finding {
	out := []diagnose.Finding{first}
	seen := map[string]bool{first.Code + " " + first.Table: true}
	for _, f := range s.Findings {
		if k := f.Code + " " + f.Table; f.Human && !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	return out
}

func reportOutcome(e env, out repair.Outcome) error {
	for i, s := range out.Steps {
		line := fmt.Sprintf("  %d. %s on %s: %s (%d ms)", i+1, s.Action, s.Node, s.Result, s.DurationMS)
		if s.Error != "" {
			line += ": " + s.Error
		}
		fmt.Fprintln(e.stdout, line)
	}
	switch out.Result {
	case repair.ResultSuccess:
		if out.Plan.Subscription == "" {
			fmt.Fprintf(e.stdout, "Done: %s (%s).\n", out.Plan.Remedy, out.Duration.Round(time.Millisecond))
			return nil
		}
		fmt.Fprintf(e.stdout, "Repaired: %s is replicating (%s after the first step; %s in all).\n",
			orDash(out.Plan.Subscription), out.ReplicatingAfter.Round(time.Millisecond), out.Duration.Round(time.Millisecond))
		return nil
	case repair.ResultRefused:
		return &exitErr{repairRefused, fmt.Errorf("refused: %s", out.Reason)}
	case repair.ResultDeferred:
		return &exitErr{repairRefused, fmt.Errorf("cannot finish it now: %s", out.Reason)}
	}
	return &exitErr{repairFailed, fmt.Errorf("%s: %s", out.Result, out.Reason)}
}

func confirm(e env, question string) bool {
	fmt.Fprintf(e.stdout, "%s [y/N] ", question)
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
