package main

import (
	"context"
	"errors"

	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/setup"
)

func runSetup(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "plan" && args[0] != "apply") {
		return usageError("usage: pglmon setup plan --config FILE | pglmon setup apply --config FILE [--rds-parameters] [--reboot]")
	}
	fs := newFlags("setup "+args[0], e)
	path := fs.String("config", "", "configuration file (nodes with pglogical_name, replication_sets, subscriptions)")
	var params, reboot *bool
	if args[0] == "apply" {
		params = fs.Bool("rds-parameters", false, "add what pglogical needs to the custom DB parameter groups of nodes with rds: (shared_preload_libraries, rds.logical_replication)")
		reboot = fs.Bool("reboot", false, "reboot RDS instances whose parameter group is pending-reboot, and wait until they are available and in-sync")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if len(cfg.ReplicationSets) == 0 && len(cfg.Subscriptions) == 0 {
		return usageError("the configuration describes no replication_sets or subscriptions")
	}
	r := &setup.Runner{Config: cfg, Out: e.stdout}
	if args[0] == "apply" {
		r.RDS.Parameters, r.RDS.Reboot = *params, *reboot
		r.Actor = "cli:" + osUser()
		if cfg.Repair.AuditLog != "" {
			// What apply changes is recorded beside the repairs (pglmon audit).
			if r.Audit, err = repair.NewAudit(cfg.Repair.AuditLog); err != nil {
				return &exitErr{exitConfig, err}
			}
		}
		if err := r.Apply(ctx); errors.Is(err, setup.ErrPrerequisitesMissing) || errors.Is(err, setup.ErrCopiesDiffer) {
			return &exitErr{2, err}
		} else if err != nil {
			return err
		}
		return nil
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
