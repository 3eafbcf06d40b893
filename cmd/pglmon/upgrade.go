package main

import (
	"context"
	"fmt"

	"github.com/pglmon/pglmon/internal/upgrade"
)

func runUpgrade(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "prepare" && args[0] != "restore") {
		return usageError("usage: pglmon upgrade prepare --config FILE --node NAME --manifest FILE | pglmon upgrade restore --config FILE --manifest FILE")
	}
	sub := args[0]
	fs := newFlags("upgrade "+sub, e)
	path := fs.String("config", "", "configuration file")
	manifest := fs.String("manifest", "", "the manifest file (written by prepare, read by restore)")
	var node *string
	var snapshot *bool
	if sub == "prepare" {
		node = fs.String("node", "", "the node to be upgraded")
		snapshot = fs.Bool("snapshot", false, "take an RDS snapshot of the node (rds.identifier) after writing the manifest and wait until it is available, before dropping anything")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *manifest == "" {
		return usageError("--manifest FILE is required")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	r := &upgrade.Runner{Config: cfg, Out: e.stdout}
	if sub == "restore" {
		return r.Restore(ctx, *manifest)
	}
	if *node == "" {
		return usageError("--node NAME is required")
	}
	if _, ok := cfg.Node(*node); !ok {
		return usageError("node %q is not configured", *node)
	}
	if n, _ := cfg.Node(*node); *snapshot && n.RDS == nil {
		return usageError("--snapshot: node %s names no RDS instance (set rds.identifier in the configuration)", *node)
	}
	r.Snapshot.Take = *snapshot
	if err := r.Prepare(ctx, *node, *manifest); err != nil {
		return fmt.Errorf("%w (re-run the same command to continue)", err)
	}
	return nil
}
