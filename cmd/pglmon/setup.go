package main

import (
	"context"

	"github.com/pglmon/pglmon/internal/setup"
)

func runSetup(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "plan" && args[0] != "apply") {
		return usageError("usage: pglmon setup plan|apply --config FILE")
	}
	fs := newFlags("setup "+args[0], e)
	path := fs.String("config", "", "configuration file (nodes with pglogical_name, replication_sets, subscriptions)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if len(cfg.ReplicationSets) == 0 && len(cfg.Subscriptions) == 0 {
		return usageError("the configuration describes no replication_sets or subscriptions")
	}
	r := &setup.Runner{Config: cfg, Out: e.stdout}
	if args[0] == "apply" {
		return r.Apply(ctx)
	}
	p, err := r.Plan(ctx)
	if err != nil {
		return err
	}
	p.Print(e.stdout)
	if len(p.Problems) > 0 {
		return &exitErr{code: 2}
	}
	return nil
}
