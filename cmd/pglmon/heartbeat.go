package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pglmon/pglmon/internal/heartbeat"
)

const heartbeatUsage = "usage: pglmon heartbeat install --config FILE [--dry-run] [--wait DURATION] | pglmon heartbeat remove --config FILE [--dry-run] [--wait DURATION]"

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
	wait := fs.Duration("wait", 4*time.Minute, "how long to wait for every subscription to apply a heartbeat (install) or stream again (remove): "+
		"its apply worker restarts once (pglmon wakes pglogical's manager when it misses that), and under load pglogical has taken over 90 s")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(path)
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
		if err := heartbeat.Apply(ctx, cfg, p, *wait, e.stdout); err != nil {
			return &exitErr{2, err}
		}
	}
	targets := enabled(e, p.Targets)
	if sub == "remove" {
		if len(targets) > 0 {
			fmt.Fprintf(e.stdout, "\nWaiting up to %s for each subscription to stream again (its apply worker restarted):\n", *wait)
			arrivals, err := heartbeat.Streaming(ctx, cfg, targets, *wait)
			if err != nil {
				return &exitErr{2, err}
			}
			if err := report(e, arrivals, *wait, "streams again after"); err != nil {
				return err
			}
		}
		fmt.Fprintln(e.stdout, "The daemon stops writing heartbeats at its next cycle; replication_delay_seconds is no longer measured.")
		return nil
	}
	fmt.Fprintf(e.stdout, "\nWriting a heartbeat on each provider and waiting up to %s for each subscriber to apply it:\n", *wait)
	arrivals, err := heartbeat.Check(ctx, cfg, targets, *wait, 200*time.Millisecond)
	if err != nil {
		return &exitErr{2, err}
	}
	if err := report(e, arrivals, *wait, "arrived in"); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "The daemon (pglmon run) writes a heartbeat on each provider every cycle: replication_delay_seconds in pglmon status, pglmon_replication_delay_seconds in its metrics.")
	return nil
}

// report prints, per subscription, how long it took (what: "arrived in"),
// and fails when one did not within wait.
func report(e env, arrivals []heartbeat.Arrival, wait time.Duration, what string) error {
	missing := 0
	for _, a := range arrivals {
		if a.OK {
			fmt.Fprintf(e.stdout, "  %s on %s (from %s): %s %s\n", a.Subscription, a.Subscriber, a.Provider, what, a.After.Round(time.Millisecond))
			continue
		}
		missing++
		fmt.Fprintf(e.stdout, "  %s on %s (from %s): not within %s: see pglmon status\n", a.Subscription, a.Subscriber, a.Provider, wait)
	}
	if missing > 0 {
		return &exitErr{2, fmt.Errorf("%d of %d subscriptions not within %s", missing, len(arrivals), wait)}
	}
	return nil
}

// enabled keeps the enabled subscriptions, saying which are left out.
func enabled(e env, ts []heartbeat.Target) []heartbeat.Target {
	var out []heartbeat.Target
	for _, t := range ts {
		if t.Enabled {
			out = append(out, t)
			continue
		}
		fmt.Fprintf(e.stdout, "note: %s on %s is disabled: not waited for (it applies heartbeats once enabled)\n", t.Subscription, t.Subscriber)
	}
	return out
}
