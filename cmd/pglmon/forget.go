package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/seen"
	"github.com/pglmon/pglmon/internal/shellword"
)

// runForget takes a subscription the daemon has seen off its list, once it
// was dropped on purpose: the daemon (and status) stop reporting it as
// subscription_missing. One that still exists is seen, and listed, again.
// With --table, it takes tables off those seen in the subscription's sets,
// once each was taken out of them on purpose (table_left_set).
func runForget(ctx context.Context, e env, args []string) error {
	fs := newFlags("forget", e)
	path := fs.String("config", "", "configuration file (the list is kept beside its repair.audit_log)")
	sub := fs.String("subscription", "", "the subscription dropped on purpose")
	subscriber := fs.String("subscriber", "", "its subscriber node (default: every node it was seen on)")
	var tables nameList
	fs.Var(&tables, "table", "only this table, taken out of the subscription's replication sets on purpose (schema.table, or table in any schema, as SQL writes it); repeat it, or separate names with commas, for several")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sub == "" {
		return usageError("--subscription NAME is required")
	}
	var rels []drift.Relation
	for _, t := range tables {
		parts, err := pgident.Split(t)
		switch {
		case err != nil:
			return usageError("--table %q %v", t, err)
		case len(parts) > 2:
			return usageError("--table %q: a table is schema.table or table", t)
		case len(parts) == 1:
			rels = append(rels, drift.Relation{Name: parts[0]})
		default:
			rels = append(rels, drift.Relation{Schema: parts[0], Name: parts[1]})
		}
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
	if len(rels) > 0 {
		return forgetTables(e, cfg, *subscriber, *sub, tables, rels)
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

// forgetTables takes tables (as given: names) off those the daemon saw in
// the sets of subscription sub.
func forgetTables(e env, cfg *config.Config, subscriber, sub string, names []string, rels []drift.Relation) error {
	gone, err := seen.ForgetTables(cfg.SeenFile(), subscriber, sub, rels)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		return &exitErr{1, fmt.Errorf("the daemon has not seen %s in the replication sets of subscription %s (%s): nothing to forget", strings.Join(names, ", "), sub, cfg.SeenFile())}
	}
	for _, k := range slices.Sorted(maps.Keys(gone)) {
		subscriberName, _, _ := strings.Cut(k, "/")
		for _, r := range gone[k] {
			fmt.Fprintf(e.stdout, "Forgot table %s in the sets of subscription %s on %s: pglmon stops reporting it as table_left_set at its next cycle, unless pglogical keeps its sync status there (then also run the DELETE pglmon repair --subscription %s prints); back in a set, it is seen again.\n",
				pgident.Regclass(r.Schema, r.Name), sub, subscriberName, shellword.Quote(sub))
		}
	}
	return nil
}
