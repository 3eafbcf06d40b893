package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/maintenance"
)

// nameList is a repeatable flag (--node, --table) whose values may each
// hold several names, comma-separated.
type nameList []string

func (n *nameList) String() string { return strings.Join(*n, ",") }
func (n *nameList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*n = append(*n, s)
		}
	}
	return nil
}

const maintenanceUsage = "usage: pglmon maintenance start --config FILE (--node NAME ... | --all) --for DURATION --reason TEXT | " +
	"pglmon maintenance end --config FILE (--node NAME ... | --all) | pglmon maintenance list --config FILE [--output table|json]"

func runMaintenance(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || !slices.Contains([]string{"start", "end", "list"}, args[0]) {
		return usageError(maintenanceUsage)
	}
	sub := args[0]
	fs := newFlags("maintenance "+sub, e)
	path := fs.String("config", "", "configuration file")
	var nodes nameList
	var all *bool
	var dur *time.Duration
	var reason, output *string
	switch sub {
	case "start", "end":
		fs.Var(&nodes, "node", "a configured node (repeat, or a,b)")
		all = fs.Bool("all", false, "every configured node")
		if sub == "start" {
			dur = fs.Duration("for", 0, "how long, e.g. 2h (at most maintenance.max_duration)")
			reason = fs.String("reason", "", "why: shown in the daemon's log, pglmon status and the file")
		}
	case "list":
		output = fs.String("output", "table", "table or json")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	file := cfg.MaintenanceFile()
	now := time.Now()
	if sub == "list" {
		if *output != "table" && *output != "json" {
			return usageError("--output must be table or json")
		}
		ws, err := maintenance.Load(file)
		if err != nil {
			return err
		}
		return printWindows(e, file, maintenance.ActiveAt(ws, now), *output)
	}
	targets, err := maintenanceNodes(cfg, nodes, *all)
	if err != nil {
		return err
	}
	if sub == "end" {
		var ended []string
		_, err := maintenance.Update(file, now, func(ws []maintenance.Window) ([]maintenance.Window, error) {
			return slices.DeleteFunc(ws, func(w maintenance.Window) bool {
				if slices.Contains(targets, w.Node) {
					ended = append(ended, w.Node)
					return true
				}
				return false
			}), nil
		})
		if err != nil {
			return err
		}
		if len(ended) == 0 {
			fmt.Fprintf(e.stdout, "no maintenance window holds for %s: nothing to end\n", strings.Join(targets, ", "))
			return nil
		}
		fmt.Fprintf(e.stdout, "maintenance ended for %s: automatic repair and Slack messages resume at the daemon's next cycle (%s)\n", strings.Join(ended, ", "), file)
		return nil
	}
	limit := cfg.Maintenance.MaxDuration.D()
	switch {
	case *dur <= 0:
		return usageError("--for DURATION is required, e.g. --for 2h")
	case *dur > limit:
		return usageError("--for %s is longer than maintenance.max_duration (%s): a forgotten window would keep automatic repair off; extend it later with another start", *dur, limit)
	case strings.TrimSpace(*reason) == "":
		return usageError("--reason TEXT is required: it tells the others why repairs and Slack messages stopped")
	}
	by := maintenance.Declarer()
	_, err = maintenance.Update(file, now, func(ws []maintenance.Window) ([]maintenance.Window, error) {
		ws = slices.DeleteFunc(ws, func(w maintenance.Window) bool { return slices.Contains(targets, w.Node) })
		for _, n := range targets {
			ws = append(ws, maintenance.Window{Node: n, Since: now, Until: now.Add(*dur), Reason: strings.TrimSpace(*reason), By: by})
		}
		return ws, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "maintenance for %s until %s (%s): the daemon neither repairs their subscriptions nor posts them to Slack; it still probes, logs and exports metrics (%s)\n",
		strings.Join(targets, ", "), now.Add(*dur).Format(time.RFC3339), short(*dur), file)
	fmt.Fprintln(e.stdout, "Prometheus alerts still fire: silence them in Alertmanager for the window if you do not want them.")
	return nil
}

// maintenanceNodes checks the nodes named against the configuration.
func maintenanceNodes(cfg *config.Config, nodes []string, all bool) ([]string, error) {
	var names []string
	for _, n := range cfg.Nodes {
		names = append(names, n.Name)
	}
	switch {
	case all && len(nodes) > 0:
		return nil, usageError("--all and --node exclude each other")
	case all:
		return names, nil
	case len(nodes) == 0:
		return nil, usageError("--node NAME (or --all) is required")
	}
	for _, n := range nodes {
		if err := unknownNode(cfg, "--node", n); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

func printWindows(e env, file string, active map[string]maintenance.Window, output string) error {
	var ws []maintenance.Window
	for _, w := range active {
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b maintenance.Window) int { return strings.Compare(a.Node, b.Node) })
	if output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if ws == nil {
			ws = []maintenance.Window{}
		}
		return enc.Encode(map[string]any{"file": file, "windows": ws})
	}
	if len(ws) == 0 {
		fmt.Fprintf(e.stdout, "no node is under maintenance (%s)\n", file)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tUNTIL\tLEFT\tBY\tREASON")
	for _, w := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.Node, w.Until.Format(time.RFC3339), left(w.Until), w.By, w.Reason)
	}
	return tw.Flush()
}

// left is how long until t, to the minute: "1h59m".
func left(t time.Time) string { return short(time.Until(t).Round(time.Minute)) }

// short writes a duration of whole minutes without its "0s": "2h0m", "10m".
func short(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		return strings.TrimSuffix(d.String(), "0s")
	}
	return d.String()
}
