package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pglmon/pglmon/internal/heartbeat"
)

const heartbeatUsage = "usage: pglmon heartbeat install --config FILE [--dry-run] [--wait DURATION] | pglmon heartbeat remove --config FILE [--dry-run]"

// runHeartbeat sets up or takes away the heartbeats that measure how far
// behind each subscriber's data is (replication_delay_seconds).
func runHeartbeat(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || (args[0] != "install" && args[0] != "remove") {
		return usageError(heartbeatUsage)
	}
	sub := args[0]
	fs := newFlags("heartbeat "+sub, e)
	path := fs.String("config", "", "configuration file")
	dry := fs.Bool("dry-run", false, "print the plan, change nothing")
	var wait *time.Duration
	if sub == "install" {
		wait = fs.Duration("wait", 4*time.Minute, "how long to wait for a heartbeat to reach every subscriber (a subscription's apply worker restarts once; under load pglogical has taken over 90 s)")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	plan := heartbeat.PlanRemove
	if sub == "install" {
		plan = heartbeat.PlanInstall
	}
	p, err := plan(ctx, cfg)
	if err != nil {
		return &exitErr{2, err}
	}
	p.Print(e.stdout)
	if *dry {
		return nil
	}
	if len(p.Steps) > 0 {
		fmt.Fprintln(e.stdout)
		if err := heartbeat.Apply(ctx, cfg, p, e.stdout); err != nil {
			return &exitErr{2, err}
		}
	}
	if sub == "remove" {
		fmt.Fprintln(e.stdout, "The daemon stops writing heartbeats at its next cycle; replication_delay_seconds is no longer measured.")
		return nil
	}
	fmt.Fprintf(e.stdout, "\nWriting a heartbeat on each provider and waiting up to %s for each subscriber to apply it:\n", *wait)
	arrivals, err := heartbeat.Check(ctx, cfg, p.Targets, *wait, 200*time.Millisecond)
	if err != nil {
		return &exitErr{2, err}
	}
	missing := 0
	for _, a := range arrivals {
		if a.OK {
			fmt.Fprintf(e.stdout, "  %s on %s (from %s): arrived in %s\n", a.Subscription, a.Subscriber, a.Provider, a.After.Round(time.Millisecond))
			continue
		}
		missing++
		fmt.Fprintf(e.stdout, "  %s on %s (from %s): not within %s: see pglmon status\n", a.Subscription, a.Subscriber, a.Provider, *wait)
	}
	if missing > 0 {
		return &exitErr{2, fmt.Errorf("%d of %d subscriptions did not apply the heartbeat within %s", missing, len(arrivals), *wait)}
	}
	fmt.Fprintln(e.stdout, "The daemon (pglmon run) writes a heartbeat on each provider every cycle: replication_delay_seconds in pglmon status, pglmon_replication_delay_seconds in its metrics.")
	return nil
}
