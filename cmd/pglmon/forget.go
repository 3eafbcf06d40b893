package main

import (
	"context"
	"fmt"

	"github.com/pglmon/pglmon/internal/seen"
)

// runForget takes a subscription the daemon has seen off its list, once it
// was dropped on purpose: the daemon (and status) stop reporting it as
// subscription_missing. One that still exists is seen, and listed, again.
func runForget(ctx context.Context, e env, args []string) error {
	fs := newFlags("forget", e)
	path := fs.String("config", "", "configuration file (the list is kept beside its repair.audit_log)")
	sub := fs.String("subscription", "", "the subscription dropped on purpose")
	subscriber := fs.String("subscriber", "", "its subscriber node (default: every node it was seen on)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sub == "" {
		return usageError("--subscription NAME is required")
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	if *subscriber != "" {
		if err := unknownNode(cfg, "--subscriber", *subscriber); err != nil {
			return err
		}
	}
	for _, sb := range cfg.Subscriptions {
		if sb.Name == *sub && (*subscriber == "" || sb.Subscriber == *subscriber) {
			return &exitErr{exitConfig, fmt.Errorf("subscription %s is described by the configuration (subscriptions:): take it out there; pglmon reports it missing for as long as it is", *sub)}
		}
	}
	gone, err := seen.Forget(cfg.SeenFile(), *subscriber, *sub)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		where := ""
		if *subscriber != "" {
			where = " on " + *subscriber
		}
		return &exitErr{1, fmt.Errorf("the daemon has not seen subscription %s%s (%s): nothing to forget", *sub, where, cfg.SeenFile())}
	}
	for _, s := range gone {
		fmt.Fprintf(e.stdout, "Forgot subscription %s on %s (seen since %s): the daemon stops reporting it missing at its next cycle; if it exists, it is seen again.\n",
			s.Subscription, s.Subscriber, s.FirstSeen.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return nil
}
