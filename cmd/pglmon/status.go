package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/daemon"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/logtail"
	"github.com/pglmon/pglmon/internal/maintenance"
	"github.com/pglmon/pglmon/internal/monitor"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsadmin"
	"github.com/pglmon/pglmon/internal/rdsstorage"
	"github.com/pglmon/pglmon/internal/seen"
	"github.com/pglmon/pglmon/internal/serverlog"
)

func runStatus(ctx context.Context, e env, args []string) error {
	fs := newFlags("status", e)
	path := fs.String("config", "", "configuration file")
	output := fs.String("output", "table", "table or json")
	sub := fs.String("subscription", "", "only this subscription")
	noWait := fs.Bool("no-wait", false, "report a `down` subscription at once instead of watching it for down_grace")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usageError("--output must be table or json, not %q", *output)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	m := monitor.New(cfg)
	defer m.Close(context.WithoutCancel(ctx))
	m.KeepSetTables(seen.NewTables(cfg.SeenFile(), false)) // the daemon's, to read
	r, err := observe(ctx, m, cfg, !*noWait)
	if err != nil {
		return err
	}
	explainDown(ctx, e, cfg, &r)
	explainBarrier(ctx, e, cfg, &r)
	explainUnreachable(ctx, e, cfg, &r)
	readStorage(ctx, e, cfg, &r)
	// What the daemon has seen and its subscriber no longer has.
	if subs, err := seen.Read(cfg.SeenFile()); err != nil {
		fmt.Fprintf(e.stderr, "pglmon status: the subscriptions the daemon has seen: %v\n", err)
	} else {
		seen.AddMissing(&r, subs, nil)
	}
	// A provider rewind the daemon saw, which a probe no longer shows.
	if err := daemon.StandingRewinds(cfg, &r); err != nil {
		fmt.Fprintf(e.stderr, "pglmon status: the provider rewinds the daemon holds: %v\n", err)
	}
	if ws, err := maintenance.Load(cfg.MaintenanceFile()); err != nil {
		fmt.Fprintf(e.stderr, "pglmon status: %v\n", err)
	} else {
		r.MarkMaintenance(maintenance.ActiveAt(ws, time.Now()))
	}
	if *sub != "" {
		r = filterSubscription(r, *sub)
		if len(r.Subscriptions) == 0 {
			return &exitErr{3, fmt.Errorf("subscription %q not found on any reachable subscriber", *sub)}
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printTable(e.stdout, r)
	}
	return &exitErr{code: r.Health.ExitCode()}
}

// observe runs cycles until no subscription is in the `down` grace period: one
// `down` sample may be pglogical's normal 5 s restart gap, not a failure. A
// `replicating` subscription whose slot does not stream is watched the same
// way: its worker may be connecting, or hanging (not_streaming).
func observe(ctx context.Context, m *monitor.Monitor, cfg *config.Config, wait bool) (diagnose.Report, error) {
	start := time.Now()
	deadline := start.Add(cfg.Thresholds.DownGrace.D() + cfg.Probe.Interval.D())
	for {
		r, _ := m.Cycle(ctx)
		if pendingNotStreaming(r) {
			// A hanging connection shows once a worker has waited
			// FlapWindow; the one now running may have just started
			// (pglogical starts one ~5 s after the last timed out).
			deadline = maxTime(deadline, start.Add(diagnose.FlapWindow+5*time.Second+cfg.Probe.Interval.D()))
		}
		if !wait || !pendingDown(r) || time.Now().After(deadline) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(min(cfg.Probe.Interval.D(), time.Second)):
		}
	}
}

// explainDown adds to the finding of each down subscription the last error
// of its apply worker, and a table_sync_error for each table not ready whose
// sync worker fails at each try, read from the end of its subscriber's
// server log, and, when that error is "data stream ended", its walsender's
// error decoding its slot, from the end of its provider's (package
// logtail; nodes with server_log: off are not read). A log that cannot be
// read is said on stderr.
func explainDown(ctx context.Context, e env, cfg *config.Config, r *diagnose.Report) {
	read := map[string]bool{}
	errs := map[string]serverlog.Errors{} // by subscriber
	for _, s := range r.Subscriptions {
		_, hangs := s.Finding(diagnose.CodeNotStreaming)
		down := s.Status == probe.StatusDown || hangs
		if read[s.Subscriber] || (!down && len(s.TablesNotReady) == 0) {
			continue
		}
		read[s.Subscriber] = true
		what := "why " + s.Name + " is down"
		if !down {
			what = "why the tables of " + s.Name + " are not copied"
		}
		if c, ok := readServerLog(ctx, e, cfg, s.Subscriber, what); ok {
			errs[s.Subscriber] = serverlog.WorkerErrors(c.Tail)
			serverlog.Annotate(r, s.Subscriber, c.File, errs[s.Subscriber])
			serverlog.AnnotateSync(r, s.Subscriber, c.File, serverlog.ParseSyncFailures(c.Tail))
		}
	}
	// The provider's side of a down subscription whose apply worker's
	// last error is "data stream ended": its walsender's error decoding
	// the slot.
	readProv := map[string]bool{}
	for _, s := range r.Subscriptions {
		if readProv[s.Provider] || s.Status != probe.StatusDown || !s.ProviderUp {
			continue
		}
		if we, ok := errs[s.Subscriber].For(s.Name, s.ApplyWorker); !ok || !we.StreamEnded() {
			continue
		}
		readProv[s.Provider] = true
		if c, ok := readServerLog(ctx, e, cfg, s.Provider, "why provider "+s.Provider+" stops streaming to "+s.Name); ok {
			serverlog.AnnotateDecoding(r, s.Provider, c.File, serverlog.DecodingErrors(c.Tail))
		}
	}
}

// explainBarrier adds to each signal_barrier_stuck finding the process the
// node's server log names as the one the statement waits for.
func explainBarrier(ctx context.Context, e env, cfg *config.Config, r *diagnose.Report) {
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if f.Code != diagnose.CodeSignalBarrierStuck {
				continue
			}
			if c, ok := readServerLog(ctx, e, cfg, n.Name, "which process "+n.Name+"'s waiting statement waits for"); ok {
				if h, found := serverlog.LastBarrierHolder(c.Tail); found {
					serverlog.AnnotateBarrier(r, n.Name, c.File, h)
				}
			}
			break
		}
	}
}

// explainUnreachable adds, for each node with rds: that pglmon cannot
// reach, what RDS says of the instance (storage-full, rebooting, ...). A
// status that cannot be read is said on stderr.
func explainUnreachable(ctx context.Context, e env, cfg *config.Config, r *diagnose.Report) {
	for _, rn := range r.Nodes {
		n, ok := cfg.Node(rn.Name)
		if rn.Up || !ok || n.RDS == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		rc, err := rdsadmin.ForNode(cctx, awsclient.New(cfg.AWS, awsclient.Options{}), cfg, n)
		var in rdsadmin.Instance
		if err == nil {
			in, err = rc.Describe(cctx, n.RDS.Identifier)
		}
		cancel()
		if err != nil {
			fmt.Fprintf(e.stderr, "pglmon: why %s cannot be reached is not known: cannot read its RDS status: %v\n", n.Name, err)
			continue
		}
		r.ExplainUnreachable(n.Name, in.Status, in.Unreachable())
	}
}

// readStorage adds, for each node with rds:, its free storage as CloudWatch
// reports it, and storage_low when it is low (aws.storage_check_every 0
// turns it off). The nodes are read at once, each within 15 s, so a slow
// AWS never holds status up for long; a reading that fails is said on stderr.
func readStorage(ctx context.Context, e env, cfg *config.Config, r *diagnose.Report) {
	if cfg.AWS.StorageCheckEvery.D() <= 0 {
		return
	}
	f := awsclient.New(cfg.AWS, awsclient.Options{})
	type reading struct {
		st  rdsstorage.Reading
		err error
	}
	got := map[string]*reading{}
	var wg sync.WaitGroup
	for _, rn := range r.Nodes {
		n, ok := cfg.Node(rn.Name)
		if !ok || n.RDS == nil {
			continue
		}
		rd := &reading{}
		got[n.Name] = rd
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			rd.st, rd.err = rdsstorage.ReadNode(cctx, f, cfg, n, time.Now())
		})
	}
	wg.Wait()
	for _, rn := range r.Nodes {
		rd, ok := got[rn.Name]
		switch {
		case !ok || errors.Is(rd.err, rdsstorage.ErrAurora):
		case rd.err != nil:
			fmt.Fprintf(e.stderr, "pglmon: the free storage of %s is not known: %v\n", rn.Name, rd.err)
		default:
			r.AddStorage(rn.Name, rd.st, cfg.Thresholds)
		}
	}
}

// readServerLog reads the end of a node's server log (package logtail).
// Not ok when the node's server_log is off, or the log cannot be read,
// which is said on stderr: what is not known, and why.
func readServerLog(ctx context.Context, e env, cfg *config.Config, node, what string) (logtail.Chunk, bool) {
	n, found := cfg.Node(node)
	if !found || n.LogSource() == config.ServerLogOff {
		return logtail.Chunk{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := logtail.Read(ctx, cfg, n)
	if err != nil {
		fmt.Fprintf(e.stderr, "pglmon: %s is not known: cannot read the server log of %s: %v\n", what, n.Name, err)
		return logtail.Chunk{}, false
	}
	return c, true
}

func pendingDown(r diagnose.Report) bool {
	for _, s := range r.Subscriptions {
		if _, ok := s.Finding(diagnose.CodeSubscriptionDown); ok {
			return true
		}
	}
	return pendingNotStreaming(r)
}

// pendingNotStreaming: a replicating subscription whose slot does not
// stream (yet), without not_streaming: a worker that is connecting, or one
// whose connection hangs.
func pendingNotStreaming(r diagnose.Report) bool {
	for _, s := range r.Subscriptions {
		if _, ok := s.Finding(diagnose.CodeNotStreaming); !ok && s.Status == probe.StatusReplicating && s.NotStreamingSince != nil {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// filterSubscription keeps one subscription and the nodes it involves.
func filterSubscription(r diagnose.Report, name string) diagnose.Report {
	out := diagnose.Report{Time: r.Time, Health: diagnose.OK}
	involved := map[string]bool{}
	for _, s := range r.Subscriptions {
		if s.Name == name {
			out.Subscriptions = append(out.Subscriptions, s)
			out.Health = diagnose.Worst(out.Health, s.Health)
			involved[s.Subscriber], involved[s.Provider] = true, true
		}
	}
	for _, n := range r.Nodes {
		if involved[n.Name] {
			out.Nodes = append(out.Nodes, n)
			if !n.Up {
				out.Health = diagnose.Worst(out.Health, diagnose.Critical)
			}
		}
	}
	return out
}

func printTable(w io.Writer, r diagnose.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// DELAY, by pglmon's heartbeats, once any subscription has them.
	delays := slices.ContainsFunc(r.Subscriptions, func(s diagnose.Subscription) bool { return s.ReplicationDelaySeconds != nil })
	if delays {
		fmt.Fprintln(tw, "SUBSCRIPTION\tSUBSCRIBER -> PROVIDER\tSTATUS\tHEALTH\tLAG\tDELAY\tFINDINGS")
	} else {
		fmt.Fprintln(tw, "SUBSCRIPTION\tSUBSCRIBER -> PROVIDER\tSTATUS\tHEALTH\tLAG\tFINDINGS")
	}
	for _, s := range r.Subscriptions {
		lag := "-"
		if s.LagBytes != nil {
			lag = config.FormatBytes(*s.LagBytes)
		}
		if delays {
			delay := "-"
			if d := s.ReplicationDelaySeconds; d != nil {
				delay = time.Duration(*d * float64(time.Second)).Round(time.Second).String()
			}
			lag += "\t" + delay
		}
		prov := s.Provider
		if prov == "" {
			prov = "?"
		}
		codes := make([]string, 0, len(s.Findings))
		for _, f := range s.Findings {
			c := f.Code
			if f.Remedy != "" {
				c += " (remedy: " + f.Remedy + ")"
			} else if f.Human {
				c += " (needs a person)"
			}
			codes = append(codes, c)
		}
		status := s.Status
		if status == "" {
			status = "?"
		}
		if _, ok := s.Finding(diagnose.CodeNotStreaming); ok {
			// pglogical's word for it is misleading: say what is true.
			status += " (not streaming)"
		}
		fmt.Fprintf(tw, "%s\t%s -> %s\t%s\t%s\t%s\t%s\n", s.Name, s.Subscriber, prov, status, s.Health, lag, strings.Join(codes, ", "))
	}
	tw.Flush()
	var notes []string
	for _, s := range r.Subscriptions {
		for _, f := range s.Findings {
			notes = append(notes, fmt.Sprintf("  [%s] %s: %s", f.Severity, f.Code, f.Message))
		}
	}
	fmt.Fprintln(tw)
	// A STORAGE column when a node's RDS storage was read.
	storage := slices.ContainsFunc(r.Nodes, func(n diagnose.Node) bool { return n.Storage != nil })
	if storage {
		fmt.Fprintln(tw, "NODE\tUP\tPGLOGICAL NODE\tSTORAGE\tERROR")
	} else {
		fmt.Fprintln(tw, "NODE\tUP\tPGLOGICAL NODE\tERROR")
	}
	for _, n := range r.Nodes {
		errText := n.Error
		if errText == "" {
			errText = "-"
		}
		if storage {
			free := "-"
			if st := n.Storage; st != nil {
				free = fmt.Sprintf("%s free of %s (%.0f%%)", config.FormatBytes(int64(st.FreeBytes)), config.FormatBytes(st.AllocatedBytes), st.FreePercent())
			}
			fmt.Fprintf(tw, "%s\t%t\t%s\t%s\t%s\n", n.Name, n.Up, orDash(n.PglogicalNode), free, errText)
		} else {
			fmt.Fprintf(tw, "%s\t%t\t%s\t%s\n", n.Name, n.Up, orDash(n.PglogicalNode), errText)
		}
		for _, f := range n.Findings {
			if f.Code != diagnose.CodeNodeUnreachable {
				notes = append(notes, fmt.Sprintf("  [%s] %s: %s", f.Severity, f.Code, f.Message))
			}
		}
	}
	tw.Flush()
	var syncing []string
	for _, s := range r.Subscriptions {
		for _, t := range s.TablesNotReady {
			line := fmt.Sprintf("  %s: %s.%s, sync status %q", s.Name, t.Schema, t.Table, t.Status)
			if t.CopiedRows != nil {
				line += fmt.Sprintf(", copying: %d rows", *t.CopiedRows)
				if t.CopiedBytes != nil {
					line += ", " + config.FormatBytes(*t.CopiedBytes)
				}
				line += " so far"
			}
			syncing = append(syncing, line)
		}
	}
	var maint []string
	for _, n := range r.Nodes {
		if m := n.Maintenance; m != nil {
			maint = append(maint, fmt.Sprintf("  %s until %s (%s left), by %s: %s", n.Name, m.Until.Format(time.RFC3339),
				left(m.Until), m.By, m.Reason))
		}
	}
	if len(maint) > 0 {
		fmt.Fprintln(w, "\nUnder maintenance (the daemon does not repair their subscriptions nor post them to Slack; `pglmon maintenance end` ends it):")
		fmt.Fprintln(w, strings.Join(maint, "\n"))
	}
	if len(syncing) > 0 {
		fmt.Fprintln(w, "\nTables not ready:")
		fmt.Fprintln(w, strings.Join(syncing, "\n"))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nFindings:")
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	fmt.Fprintf(w, "\nOverall: %s\n", r.Health)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
