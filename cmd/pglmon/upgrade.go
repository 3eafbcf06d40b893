package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/upgrade"
	"github.com/pglmon/pglmon/internal/verify"
)

const upgradeUsage = "usage: pglmon upgrade check --config FILE --node NAME [--target-version V] [--target-parameter-group G] [--output table|json] | pglmon upgrade prepare --config FILE --node NAME --manifest FILE [--target-version V] [--target-parameter-group G] [--snapshot] [--skip-check] | pglmon upgrade restore --config FILE --manifest FILE [--compare checksum|count]"

func runUpgrade(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "prepare" && args[0] != "restore" && args[0] != "check") {
		return usageError(upgradeUsage)
	}
	sub := args[0]
	fs := newFlags("upgrade "+sub, e)
	path := fs.String("config", "", "configuration file")
	var manifest, node, output, targetVersion, targetGroup *string
	var compare *string
	var snapshot, skipCheck *bool
	if sub != "check" {
		manifest = fs.String("manifest", "", "the manifest file (written by prepare, read by restore)")
	}
	if sub != "restore" {
		node = fs.String("node", "", "the node to be upgraded")
		targetVersion = fs.String("target-version", "", "the version the node is upgraded to (16.4, or 16 for a self-managed server); the check compares the replicated columns' types as pglogical will send them then, and for an RDS instance asks RDS for the upgrade path and the instance class")
		targetGroup = fs.String("target-parameter-group", "", "RDS: the DB parameter group the upgraded instance will use; the check asks RDS for its family and pglogical's parameters")
	}
	switch sub {
	case "prepare":
		snapshot = fs.Bool("snapshot", false, "take an RDS snapshot of the node (rds.identifier) after writing the manifest and wait until it is available, before dropping anything")
		skipCheck = fs.Bool("skip-check", false, "go on even when the upgrade would be refused for something prepare cannot remove (invalid databases, prepared transactions, other logical slots, reg* columns)")
	case "check":
		output = fs.String("output", "table", "table or json")
	case "restore":
		compare = fs.String("compare", verify.ModeChecksum, "how restore compares the replicated tables once they replicate again: checksum (sees rows updated while replication was down; reads every row on both servers, as pglmon verify) or count (row counts only)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if manifest != nil && *manifest == "" {
		return usageError("--manifest FILE is required")
	}
	if compare != nil && *compare != verify.ModeChecksum && *compare != verify.ModeCount {
		return usageError("--compare must be checksum or count, not %q", *compare)
	}
	if output != nil && *output != "table" && *output != "json" {
		return usageError("--output must be table or json, not %q", *output)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	r := &upgrade.Runner{Config: cfg, Out: e.stdout, Actor: "cli:" + osUser()}
	if sub != "check" && cfg.Repair.AuditLog != "" {
		// prepare and restore are recorded beside the repairs (pglmon audit).
		if r.Audit, err = repair.NewAudit(cfg.Repair.AuditLog); err != nil {
			return &exitErr{exitConfig, err}
		}
	}
	r.ConfigPath = *path
	if sub == "restore" {
		r.Compare = *compare
		err := r.Restore(ctx, *manifest)
		var nr *upgrade.NotReadyError
		if errors.As(err, &nr) || errors.Is(err, upgrade.ErrTablesDiffer) {
			return &exitErr{2, err}
		}
		return err
	}
	if *node == "" {
		return usageError("--node NAME is required")
	}
	if err := unknownNode(cfg, "--node", *node); err != nil {
		return err
	}
	n, _ := cfg.Node(*node)
	if *targetGroup != "" && n.RDS == nil {
		return usageError("--target-parameter-group: node %s names no RDS instance (set rds.identifier in the configuration)", *node)
	}
	if v := *targetVersion; v != "" && !targetVersionRE.MatchString(v) {
		return usageError("--target-version must be a PostgreSQL version (16 or 16.4), not %q", v)
	}
	r.Target = upgrade.TargetOptions{Version: *targetVersion, ParameterGroup: *targetGroup}
	if sub == "check" {
		return upgradeCheck(ctx, e, r, *node, *output)
	}
	if *snapshot && n.RDS == nil {
		return usageError("--snapshot: node %s names no RDS instance (set rds.identifier in the configuration)", *node)
	}
	r.Snapshot.Take = *snapshot
	r.SkipCheck = *skipCheck
	if err := r.Prepare(ctx, *node, *manifest); err != nil {
		var nr *upgrade.NotReadyError
		if errors.As(err, &nr) {
			return &exitErr{2, err}
		}
		return fmt.Errorf("%w (re-run the same command to continue)", err)
	}
	return nil
}

// targetVersionRE is a PostgreSQL version: a major version, and maybe a
// minor one, and maybe RDS's suffix (9.6.24, 16.4, 11.22-rds.20240418).
var targetVersionRE = regexp.MustCompile(`^(9\.\d+|\d{2,})(\.\d+)?(-[0-9A-Za-z.]+)?$`)

// upgradeCheck prints what would stop the node's upgrade. Exit codes as
// status: 0 ready, 1 warnings only, 2 the upgrade would be refused, 3 the
// node could not be checked.
func upgradeCheck(ctx context.Context, e env, r *upgrade.Runner, node, output string) error {
	res, err := r.Check(ctx, node)
	if err != nil {
		return &exitErr{3, err}
	}
	if output == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printReadiness(e.stdout, res)
	}
	switch {
	case !res.Ready:
		return &exitErr{code: 2}
	case len(res.Problems) > 0:
		return &exitErr{code: 1}
	}
	return nil
}

func printReadiness(w io.Writer, res *upgrade.Readiness) {
	fmt.Fprintf(w, "Node %s: major-version upgrade pre-check\n", res.Node)
	if len(res.PrepareDrops) > 0 {
		fmt.Fprintln(w, "upgrade prepare would drop (and restore re-create):")
		for _, d := range res.PrepareDrops {
			fmt.Fprintf(w, "  %s\n", d)
		}
	}
	blocking := 0
	for _, p := range res.Problems {
		label := "WARNING"
		if p.Blocking {
			label, blocking = "REFUSED", blocking+1
		}
		fmt.Fprintf(w, "%-8s %s: %s\n         fix: %s\n", label, p.Kind, p.Message, p.Fix)
	}
	ready := "Ready"
	if len(res.PrepareDrops) > 0 {
		ready = "Ready once prepare has run"
	}
	switch {
	case blocking > 0:
		fmt.Fprintf(w, "Not ready: %d problem(s) would make the upgrade refuse, which prepare does not remove; prepare refuses until they are fixed.\n", blocking)
	case len(res.Problems) > 0:
		fmt.Fprintf(w, "%s, with the warnings above.\n", ready)
	default:
		fmt.Fprintf(w, "%s: nothing found that the upgrade would refuse.\n", ready)
	}
}
