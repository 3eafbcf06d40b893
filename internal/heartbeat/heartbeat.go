// Package heartbeat measures how far behind its provider each subscriber's
// data is, in seconds, whether or not the application writes: pglmon writes
// a row stamped with the provider's clock into pglmon.heartbeat on each
// provider every cycle, in a replication set of its own (pglmon_heartbeat,
// inserts only) that one subscription from the provider on each subscriber
// subscribes to (its carrier); the newest row a subscriber has applied says
// how far it has come (package diagnose grades it). Install and Remove set
// that up and take it away, one idempotent step at a time; Writer writes
// and prunes for the daemon.
package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/applyworker"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/shellword"
)

// The SQL of the steps. Each step has a query saying whether its effect is
// already in place, so a run after a crash at any point completes the rest.
const (
	// pglmon.heartbeat_position keeps the WAL position of each heartbeat
	// written on the node (probe.HeartbeatMark), never in a set: how far a
	// subscription that does not carry the heartbeats has come is read from
	// its slot against it. Only providers write it; it is on every node so
	// that one GRANT fits all.
	createTableSQL = `CREATE SCHEMA IF NOT EXISTS pglmon;
CREATE TABLE IF NOT EXISTS pglmon.heartbeat (node text NOT NULL, ts timestamptz NOT NULL, PRIMARY KEY (node, ts));
CREATE TABLE IF NOT EXISTS pglmon.heartbeat_position (lsn pg_lsn PRIMARY KEY, ts timestamptz NOT NULL)`
	tablesExistSQL = `SELECT to_regclass('pglmon.heartbeat') IS NOT NULL AND to_regclass('pglmon.heartbeat_position') IS NOT NULL`
	anyTableSQL    = `SELECT to_regclass('pglmon.heartbeat') IS NOT NULL OR to_regclass('pglmon.heartbeat_position') IS NOT NULL`
	setExistsSQL   = `SELECT EXISTS (SELECT 1 FROM pglogical.replication_set WHERE set_name = 'pglmon_heartbeat')`
	// Inserts only: pglmon prunes each node's table itself, and no update
	// or delete can meet a row the other side lacks (a conflict).
	createSetSQL = `SELECT pglogical.create_replication_set('pglmon_heartbeat',
	replicate_insert := true, replicate_update := false, replicate_delete := false, replicate_truncate := false)`
	tableInSetSQL = `SELECT EXISTS (SELECT 1 FROM pglogical.replication_set_table t
	JOIN pglogical.replication_set s ON s.set_id = t.set_id
	WHERE s.set_name = 'pglmon_heartbeat' AND t.set_reloid = to_regclass('pglmon.heartbeat'))`
	addTableSQL    = `SELECT pglogical.replication_set_add_table('pglmon_heartbeat', 'pglmon.heartbeat', synchronize_data := false)`
	subHasSetSQL   = `SELECT coalesce((SELECT 'pglmon_heartbeat' = ANY(sub_replication_sets) FROM pglogical.subscription WHERE sub_name = $1), false)`
	subAddSetSQL   = `SELECT pglogical.alter_subscription_add_replication_set($1, 'pglmon_heartbeat')`
	subDropSetSQL  = `SELECT pglogical.alter_subscription_remove_replication_set($1, 'pglmon_heartbeat')`
	removeTableSQL = `SELECT pglogical.replication_set_remove_table('pglmon_heartbeat', 'pglmon.heartbeat')`
	// The schema goes only when nothing else is in it.
	dropTableSQL = `DROP TABLE IF EXISTS pglmon.heartbeat_position;
DROP TABLE IF EXISTS pglmon.heartbeat;
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pglmon')
		AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pglmon') THEN
		DROP SCHEMA pglmon;
	END IF;
END $$`

	forgetSQL    = `DELETE FROM pglmon.heartbeat WHERE node = $1`
	forgottenSQL = `SELECT NOT EXISTS (SELECT 1 FROM pglmon.heartbeat WHERE node = $1)`

	// writeSQL reads the WAL insert position after the stamp (RETURNING
	// follows VALUES): see probe.HeartbeatMark.
	writeSQL = `INSERT INTO pglmon.heartbeat (node, ts) VALUES ($1, clock_timestamp()) RETURNING ts, pg_current_wal_insert_lsn()::text`
	// writePositionSQL writes a heartbeat and keeps its position, in one
	// statement: positions at or past the new one go first (WAL the
	// provider no longer has: it was restored or failed over), so the
	// stamps stay in the order of the positions. It needs INSERT and
	// DELETE, not UPDATE (which ON CONFLICT DO UPDATE would).
	writePositionSQL = `WITH hb AS (INSERT INTO pglmon.heartbeat (node, ts) VALUES ($1, clock_timestamp()) RETURNING ts),
	pos AS MATERIALIZED (SELECT ts, pg_current_wal_insert_lsn() AS lsn FROM hb),
	gone AS (DELETE FROM pglmon.heartbeat_position p USING pos WHERE p.lsn >= pos.lsn),
	kept AS (INSERT INTO pglmon.heartbeat_position (lsn, ts) SELECT lsn, ts FROM pos ON CONFLICT (lsn) DO NOTHING)
SELECT ts, lsn::text FROM pos`
	// pruneSQL drops rows older than $1 seconds, keeping each node's newest:
	// it is what the delay is measured from while nothing arrives.
	pruneSQL = `DELETE FROM pglmon.heartbeat h WHERE h.ts < now() - make_interval(secs => $1)
	AND h.ts < (SELECT max(m.ts) FROM pglmon.heartbeat m WHERE m.node = h.node)`
	// prunePositionsSQL does the same for the positions.
	prunePositionsSQL = `DELETE FROM pglmon.heartbeat_position WHERE ts < now() - make_interval(secs => $1)
	AND lsn < (SELECT max(lsn) FROM pglmon.heartbeat_position)`
)

// Keep is how long heartbeats are kept (each node's newest always is).
const Keep = time.Hour

// Step is one change on one node; it is skipped when its effect is there.
type Step struct {
	Node string `json:"node"`
	What string `json:"what"`
	SQL  string `json:"sql"`
	Args []any  `json:"args,omitempty"`
	done string
	// undone inverts done: the step removes something.
	undone bool
	// restarts names the subscription whose apply worker pglogical ends
	// when the step commits: Apply waits for the next one.
	restarts string
}

// Target is a subscription whose provider and subscriber are both
// configured nodes.
type Target struct {
	Subscription string `json:"subscription"`
	Subscriber   string `json:"subscriber"`
	Provider     string `json:"provider"`
	// ProviderNode is the provider's pglogical node name, which its
	// heartbeats carry.
	ProviderNode string `json:"provider_node"`
	// Slot is the subscription's slot on the provider.
	Slot string `json:"slot"`
	// Enabled: the subscription is enabled (a disabled one gets nothing).
	Enabled bool `json:"enabled"`
}

// Plan is what Install or Remove would change.
type Plan struct {
	Steps   []Step   `json:"steps"`
	Targets []Target `json:"subscriptions"`
	// Notes say what is left out, and why.
	Notes []string `json:"notes,omitempty"`
}

// Print writes the plan for a person.
func (p Plan) Print(w io.Writer) {
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(p.Steps) == 0 {
		fmt.Fprintln(w, "Nothing to change.")
		return
	}
	for i, s := range p.Steps {
		fmt.Fprintf(w, "%d. on %s: %s\n     %s\n", i+1, s.Node, s.What, strings.ReplaceAll(s.SQL, "\n", "\n     "))
		if len(s.Args) > 0 {
			fmt.Fprintf(w, "     args: %v\n", s.Args)
		}
	}
}

// world is every configured node's snapshot, for planning.
type world struct {
	cfg   *config.Config
	snaps map[string]probe.Snapshot
	// byLocal maps a pglogical node name to the configured node.
	byLocal map[string]string
}

// look probes every configured node once. A node that cannot be reached
// stops the plan: nothing is changed on a topology half seen.
func look(ctx context.Context, cfg *config.Config) (world, error) {
	w := world{cfg: cfg, snaps: map[string]probe.Snapshot{}, byLocal: map[string]string{}}
	probers := make([]*probe.Prober, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		probers[i] = probe.NewProber(n, cfg.Probe.Timeout.D())
	}
	snaps := probe.ProbeAll(ctx, probers)
	for _, p := range probers {
		p.Close(context.WithoutCancel(ctx))
	}
	for _, s := range snaps {
		if !s.Up() {
			return w, fmt.Errorf("node %s cannot be reached: %v; nothing was changed", s.Node, s.Err)
		}
		w.snaps[s.Node] = s
		if s.LocalNode != "" {
			w.byLocal[s.LocalNode] = s.Node
		}
	}
	return w, nil
}

// subscriptions lists the subscriptions between configured nodes (in the
// order of the configuration) and notes the others.
func (w world) subscriptions(notes *[]string) []Target {
	var out []Target
	for _, n := range w.cfg.Nodes {
		for _, sub := range w.snaps[n.Name].Subscriptions {
			prov, ok := w.byLocal[sub.ProviderNode]
			if !ok {
				*notes = append(*notes, fmt.Sprintf("subscription %s on %s is left out: its provider node %q is not a configured node, and its set must exist there first", sub.Name, n.Name, sub.ProviderNode))
				continue
			}
			out = append(out, Target{Subscription: sub.Name, Subscriber: n.Name, Provider: prov, ProviderNode: sub.ProviderNode, Slot: sub.SlotName, Enabled: sub.Enabled})
		}
	}
	return out
}

func (w world) sub(t Target) probe.Subscription {
	for _, s := range w.snaps[t.Subscriber].Subscriptions {
		if s.Name == t.Subscription {
			return s
		}
	}
	return probe.Subscription{}
}

// PlanInstall plans the heartbeat for every subscription between configured
// nodes: the table on each node involved, the set (with the table) on each
// provider, then the set in the carrier of each subscriber and provider
// (carriers), and last the set taken from any other subscription there
// that has it. In that order any prefix of the steps is harmless: a
// subscription given a set its provider lacks stops ("replication set
// pglmon_heartbeat not found") and pglogical's back-off keeps it down for
// up to 3 minutes after the set appears.
func PlanInstall(ctx context.Context, cfg *config.Config) (Plan, error) {
	w, err := look(ctx, cfg)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	all := w.subscriptions(&p.Notes)
	if len(all) == 0 {
		return p, errors.New("no subscription has both its provider and its subscriber among the configured nodes: nothing to measure")
	}
	var extra []Target
	p.Targets, extra = w.carriers(all, &p.Notes)
	var nodes, providers []string
	for _, n := range cfg.Nodes {
		for _, t := range p.Targets {
			if t.Provider == n.Name && !slices.Contains(providers, n.Name) {
				providers = append(providers, n.Name)
			}
			if (t.Provider == n.Name || t.Subscriber == n.Name) && !slices.Contains(nodes, n.Name) {
				nodes = append(nodes, n.Name)
			}
		}
	}
	for _, n := range nodes {
		switch hb := w.snaps[n].Heartbeat; {
		case hb == nil:
			p.Steps = append(p.Steps, Step{Node: n, What: "create the tables pglmon.heartbeat and pglmon.heartbeat_position", SQL: createTableSQL, done: tablesExistSQL})
		case !hb.Positions:
			p.Steps = append(p.Steps, Step{Node: n, What: "create the table pglmon.heartbeat_position (installed by an earlier pglmon: the delay of a subscription that does not carry the heartbeats is read from its slot against it)", SQL: createTableSQL, done: tablesExistSQL})
		}
	}
	for _, n := range providers {
		if hb := w.snaps[n].Heartbeat; hb == nil || !hb.Provides {
			p.Steps = append(p.Steps,
				Step{Node: n, What: "create the replication set pglmon_heartbeat (inserts only)", SQL: createSetSQL, done: setExistsSQL},
				Step{Node: n, What: "add pglmon.heartbeat to the set pglmon_heartbeat (no data copied)", SQL: addTableSQL, done: tableInSetSQL})
		}
	}
	for _, t := range p.Targets {
		if !slices.Contains(w.sub(t).ReplicationSets, probe.HeartbeatSet) {
			if hb := w.snaps[t.Subscriber].Heartbeat; hb != nil {
				if _, ok := hb.Nodes[t.ProviderNode]; ok {
					// Come through a former carrier: against the provider's,
					// those written since it went would read as lost
					// (heartbeats_lost) once the new carrier brings the next.
					p.Steps = append(p.Steps, Step{Node: t.Subscriber,
						What: fmt.Sprintf("forget the heartbeats of %s that %s holds from before (they came through a subscription that no longer carries them; compared with the provider's, those written since would read as lost)", t.Provider, t.Subscriber),
						SQL:  forgetSQL, Args: []any{t.ProviderNode}, done: forgottenSQL})
				}
			}
			p.Steps = append(p.Steps, Step{Node: t.Subscriber,
				What: fmt.Sprintf("subscribe %s to the set pglmon_heartbeat of %s (its apply worker restarts: pglmon waits for the new one)", t.Subscription, t.Provider),
				SQL:  subAddSetSQL, Args: []any{t.Subscription}, done: subHasSetSQL, restarts: t.Subscription})
		}
	}
	// Only once the carrier has the set.
	for _, t := range extra {
		p.Steps = append(p.Steps, Step{Node: t.Subscriber,
			What: fmt.Sprintf("unsubscribe %s from the set pglmon_heartbeat: another subscription carries the heartbeats of %s to %s (its apply worker restarts: pglmon waits for the new one)", t.Subscription, t.Provider, t.Subscriber),
			SQL:  subDropSetSQL, Args: []any{t.Subscription}, done: subHasSetSQL, undone: true, restarts: t.Subscription})
	}
	return p, nil
}

// carriers picks, for each subscriber and provider, the one subscription
// that carries the provider's heartbeats: one that already has the set
// pglmon_heartbeat (an enabled one first), else the first enabled one,
// else the first. Through two, each heartbeat would be applied twice (a
// conflict each time) and the heartbeats of either would hide the delay
// and the lost changes of the other. extra are the others that have the
// set, to take it from; the rest are noted.
func (w world) carriers(all []Target, notes *[]string) (carry, extra []Target) {
	type pair struct{ subscriber, provider string }
	groups := map[pair][]Target{}
	var order []pair
	for _, t := range all {
		k := pair{t.Subscriber, t.ProviderNode}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	for _, k := range order {
		g := groups[k]
		has := func(t Target) bool { return slices.Contains(w.sub(t).ReplicationSets, probe.HeartbeatSet) }
		best := -1
		for _, want := range []func(Target) bool{
			func(t Target) bool { return has(t) && t.Enabled },
			has,
			func(t Target) bool { return t.Enabled },
			func(Target) bool { return true },
		} {
			if best = slices.IndexFunc(g, want); best >= 0 {
				break
			}
		}
		c := g[best]
		carry = append(carry, c)
		for i, t := range g {
			switch {
			case i == best:
			case has(t):
				extra = append(extra, t)
			default:
				*notes = append(*notes, fmt.Sprintf("subscription %s on %s does not get the set pglmon_heartbeat: %s carries the heartbeats of %s there, and one is enough (through two, each would hide the delay and the lost changes of the other)", t.Subscription, t.Subscriber, c.Subscription, t.Provider))
			}
		}
	}
	return carry, extra
}

// PlanRemove plans taking the heartbeat away: the set out of each
// subscription between configured nodes that has it (its Targets), the
// table out of each provider's set, then the tables. The set itself stays,
// empty: pglogical 2.4.2 stops for good a subscription that streams with a
// set of that name from before a drop of it (its walsender fails with
// "replication set ... used by this connection was deleted" at every
// start), as a later install would make it. A subscriber keeps its table
// while a subscription there from a node that is not configured still has
// the set (its provider may still send heartbeats).
func PlanRemove(ctx context.Context, cfg *config.Config) (Plan, error) {
	w, err := look(ctx, cfg)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	stillSubscribed := map[string]bool{} // subscriber nodes keeping the table
	for _, n := range cfg.Nodes {
		for _, sub := range w.snaps[n.Name].Subscriptions {
			if _, ok := w.byLocal[sub.ProviderNode]; !ok && slices.Contains(sub.ReplicationSets, probe.HeartbeatSet) {
				stillSubscribed[n.Name] = true
			}
		}
	}
	for _, t := range w.subscriptions(&p.Notes) {
		if slices.Contains(w.sub(t).ReplicationSets, probe.HeartbeatSet) {
			p.Targets = append(p.Targets, t)
			p.Steps = append(p.Steps, Step{Node: t.Subscriber,
				What: fmt.Sprintf("unsubscribe %s from the set pglmon_heartbeat (its apply worker restarts: pglmon waits for the new one)", t.Subscription),
				SQL:  subDropSetSQL, Args: []any{t.Subscription}, done: subHasSetSQL, undone: true, restarts: t.Subscription})
		}
	}
	for _, n := range cfg.Nodes {
		if hb := w.snaps[n.Name].Heartbeat; hb != nil && hb.Provides {
			p.Steps = append(p.Steps, Step{Node: n.Name, What: "take pglmon.heartbeat out of the set pglmon_heartbeat (the set stays, empty)",
				SQL: removeTableSQL, done: tableInSetSQL, undone: true})
		}
	}
	for _, n := range cfg.Nodes {
		if w.snaps[n.Name].Heartbeat == nil {
			continue
		}
		if stillSubscribed[n.Name] {
			p.Notes = append(p.Notes, fmt.Sprintf("the tables pglmon.heartbeat and pglmon.heartbeat_position stay on %s: a subscription there from a node that is not configured still has the set pglmon_heartbeat", n.Name))
			continue
		}
		p.Steps = append(p.Steps, Step{Node: n.Name, What: "drop the tables pglmon.heartbeat and pglmon.heartbeat_position (and the schema pglmon when empty)", SQL: dropTableSQL, done: anyTableSQL, undone: true})
	}
	return p, nil
}

// Apply runs the steps in order, each only when its effect is not already
// in place, saying what it does. After a step that ends a subscription's
// apply worker it waits, up to wait, for the next one, waking pglogical's
// manager when it missed the end (see applyworker): else the subscription
// could receive nothing for minutes. It stops at the first failure: what
// was done stays done, and running the same plan again completes it.
func Apply(ctx context.Context, cfg *config.Config, p Plan, wait time.Duration, out io.Writer) error {
	cs := conns{cfg: cfg}
	defer cs.close(ctx)
	for i, s := range p.Steps {
		c, err := cs.get(ctx, s.Node)
		if err != nil {
			return fmt.Errorf("step %d, %s: %w", i+1, s.What, err)
		}
		var args []any
		if strings.Contains(s.done, "$1") {
			args = s.Args
		}
		var there bool
		if err := c.QueryRow(ctx, s.done, args...).Scan(&there); err != nil {
			return fmt.Errorf("step %d, %s on %s: check whether it is done: %w", i+1, s.What, s.Node, err)
		}
		if there != s.undone {
			fmt.Fprintf(out, "%d. on %s: %s: already done\n", i+1, s.Node, s.What)
			continue
		}
		start := time.Now()
		var since time.Time
		if s.restarts != "" {
			if since, err = applyworker.Now(ctx, c); err != nil {
				return fmt.Errorf("step %d, %s on %s: %w", i+1, s.What, s.Node, err)
			}
		}
		if _, err := c.Exec(ctx, s.SQL, s.Args...); err != nil {
			return fmt.Errorf("step %d, %s on %s: %w (what was done before stays; run the same command again to complete it)", i+1, s.What, s.Node, err)
		}
		fmt.Fprintf(out, "%d. on %s: %s: done (%s)\n", i+1, s.Node, s.What, time.Since(start).Round(time.Millisecond))
		if s.restarts == "" {
			continue
		}
		woken, err := applyworker.Wait(ctx, c, s.restarts, since, wait)
		if errors.Is(err, applyworker.ErrCannotSee) {
			fmt.Fprintf(out, "   its new apply worker is not waited for: %v\n", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("step %d, %s on %s: done, but %w (pglmon status --subscription %s)", i+1, s.What, s.Node, err, shellword.Quote(s.restarts))
		}
		if woken > 0 {
			fmt.Fprintf(out, "   its apply worker started once pglmon woke pglogical's manager, which had missed the end of the old one (alter_subscription_enable on the enabled subscription)\n")
		}
	}
	return nil
}

// conns keeps one connection per node for the steps of a command.
type conns struct {
	cfg *config.Config
	m   map[string]*pgx.Conn
}

func (cs *conns) get(ctx context.Context, node string) (*pgx.Conn, error) {
	if c, ok := cs.m[node]; ok {
		return c, nil
	}
	n, _ := cs.cfg.Node(node)
	c, err := connect(ctx, n, cs.cfg.Probe.Timeout.D())
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", node, err)
	}
	if cs.m == nil {
		cs.m = map[string]*pgx.Conn{}
	}
	cs.m[node] = c
	return c, nil
}

func (cs *conns) close(ctx context.Context) {
	for _, c := range cs.m {
		c.Close(context.WithoutCancel(ctx))
	}
}

// connect opens a connection for heartbeat work.
func connect(ctx context.Context, n config.Node, timeout time.Duration) (*pgx.Conn, error) {
	cc, err := probe.ConnConfig(n, timeout)
	if err != nil {
		return nil, err
	}
	cc.RuntimeParams["application_name"] = "pglmon heartbeat"
	return probe.Open(ctx, n, cc)
}

// Arrival is how a first heartbeat reached one subscription.
type Arrival struct {
	Target
	// After is how long it took; 0 when it did not arrive in time.
	After time.Duration `json:"after_ns"`
	OK    bool          `json:"ok"`
}

// Check writes a heartbeat on each provider of the targets and waits,
// polling every poll, until each subscriber has applied one written since,
// or timeout. It writes again every second while some have not: a
// heartbeat written while a subscription's apply worker restarts (adding a
// set makes it), before the new worker asks for the new set, can be decoded
// for the old worker, whose sets lack it, and never arrive.
func Check(ctx context.Context, cfg *config.Config, targets []Target, timeout, poll time.Duration) ([]Arrival, error) {
	cs := conns{cfg: cfg}
	defer cs.close(ctx)
	out := make([]Arrival, len(targets))
	for i, t := range targets {
		out[i].Target = t
	}
	first := map[string]time.Time{} // provider -> its first heartbeat's stamp
	write := func() error {
		done := map[string]bool{}
		for _, a := range out {
			if a.OK || done[a.Provider] {
				continue
			}
			done[a.Provider] = true
			c, err := cs.get(ctx, a.Provider)
			if err != nil {
				return err
			}
			var ts time.Time
			var lsn string
			if err := c.QueryRow(ctx, writePositionSQL, a.ProviderNode).Scan(&ts, &lsn); err != nil {
				return fmt.Errorf("write a heartbeat on %s: %w", a.Provider, err)
			}
			if _, ok := first[a.Provider]; !ok {
				first[a.Provider] = ts
			}
		}
		return nil
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var wrote time.Time
	for {
		if time.Since(wrote) >= time.Second {
			if err := write(); err != nil {
				return nil, err
			}
			wrote = time.Now()
		}
		waiting := 0
		for i := range out {
			if out[i].OK {
				continue
			}
			c, err := cs.get(ctx, out[i].Subscriber)
			if err != nil {
				return nil, err
			}
			var arrived bool
			if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pglmon.heartbeat WHERE node = $1 AND ts >= $2)`,
				out[i].ProviderNode, first[out[i].Provider]).Scan(&arrived); err != nil {
				return nil, fmt.Errorf("read the heartbeats on %s: %w", out[i].Subscriber, err)
			}
			if arrived {
				out[i].OK, out[i].After = true, time.Since(start)
			} else {
				waiting++
			}
		}
		if waiting == 0 || !time.Now().Before(deadline) {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Streaming waits, up to timeout, until each target's slot has confirmed a
// message written into its provider's WAL after it was asked: the
// subscription's new apply worker streams (after remove, whose set change
// restarts it; the old one may have confirmed everything before).
func Streaming(ctx context.Context, cfg *config.Config, targets []Target, timeout time.Duration) ([]Arrival, error) {
	cs := conns{cfg: cfg}
	defer cs.close(ctx)
	start := time.Now()
	out := make([]Arrival, len(targets))
	for i, t := range targets {
		out[i].Target = t
		c, err := cs.get(ctx, t.Provider)
		if err != nil {
			return out, err
		}
		left := time.Until(start.Add(timeout))
		if left <= 0 {
			continue
		}
		// One statement may wait that long; the connection's own timeout
		// is the probe's.
		b := &pgx.Batch{}
		b.Queue(fmt.Sprintf("SET statement_timeout = %d", left.Milliseconds()))
		b.Queue("SELECT pglogical.wait_slot_confirm_lsn($1, pg_logical_emit_message(false, 'pglmon', 'stream check'))", t.Slot)
		b.Queue(fmt.Sprintf("SET statement_timeout = %d", cfg.Probe.Timeout.D().Milliseconds()))
		err = c.SendBatch(ctx, b).Close()
		if err == nil {
			out[i].OK, out[i].After = true, time.Since(start)
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" { // not a statement timeout
			return out, fmt.Errorf("wait for slot %s on %s: %w", t.Slot, t.Provider, err)
		}
		c.Exec(ctx, fmt.Sprintf("SET statement_timeout = %d", cfg.Probe.Timeout.D().Milliseconds()))
	}
	return out, nil
}

// Writer writes the daemon's heartbeats: one connection per node, kept
// between cycles, and a prune of each node's table every PruneEvery. It is
// safe for concurrent use across nodes.
type Writer struct {
	// PruneEvery is how often each node's table is pruned (default 10m).
	PruneEvery time.Duration

	mu    sync.Mutex
	nodes map[string]*nodeWriter
}

type nodeWriter struct {
	mu     sync.Mutex
	conn   *pgx.Conn
	pruned time.Time
}

func (w *Writer) node(name string) *nodeWriter {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nodes == nil {
		w.nodes = map[string]*nodeWriter{}
	}
	nw, ok := w.nodes[name]
	if !ok {
		nw = &nodeWriter{}
		w.nodes[name] = nw
	}
	return nw
}

// Mark inserts a heartbeat of the pglogical node local into n's table,
// stamped with n's clock, and returns the stamp with the WAL position
// after it (probe.HeartbeatMark), which it keeps in
// pglmon.heartbeat_position when positions says n has that table.
func (w *Writer) Mark(ctx context.Context, n config.Node, local string, positions bool, timeout time.Duration) (probe.HeartbeatMark, error) {
	var m probe.HeartbeatMark
	var lsn string
	q := writeSQL
	if positions {
		q = writePositionSQL
	}
	err := w.with(ctx, n, timeout, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, q, local).Scan(&m.TS, &lsn)
	})
	if err == nil {
		m.LSN, err = probe.ParseLSN(lsn)
	}
	if err != nil {
		return m, fmt.Errorf("write a heartbeat on %s: %w", n.Name, err)
	}
	return m, nil
}

// Prune deletes n's heartbeats older than Keep (each node's newest stays),
// and their positions when positions says n keeps them, at most once every
// PruneEvery, whether the last try worked or not; it reports the
// heartbeats deleted.
func (w *Writer) Prune(ctx context.Context, n config.Node, positions bool, timeout time.Duration) (int64, error) {
	every := w.PruneEvery
	if every <= 0 {
		every = 10 * time.Minute
	}
	nw := w.node(n.Name)
	nw.mu.Lock()
	due := time.Since(nw.pruned) >= every
	nw.mu.Unlock()
	if !due {
		return 0, nil
	}
	var deleted int64
	err := w.with(ctx, n, timeout, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, pruneSQL, Keep.Seconds())
		deleted = tag.RowsAffected()
		if err == nil && positions {
			_, err = c.Exec(ctx, prunePositionsSQL, Keep.Seconds())
		}
		return err
	})
	// Tried: again in PruneEvery, also after a failure (a database made
	// read-only while the writes move would fail it, and be logged, at
	// every cycle).
	nw.mu.Lock()
	nw.pruned = time.Now()
	nw.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("prune the heartbeats on %s: %w", n.Name, err)
	}
	return deleted, nil
}

// with runs f on n's connection, opening it when needed and closing it
// after an error (the next call opens a new one).
func (w *Writer) with(ctx context.Context, n config.Node, timeout time.Duration, f func(*pgx.Conn) error) error {
	nw := w.node(n.Name)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reused := nw.conn != nil
	if !reused {
		c, err := connect(ctx, n, timeout)
		if err != nil {
			return err
		}
		nw.conn = c
	}
	err := f(nw.conn)
	if err != nil && reused && nw.conn.IsClosed() && ctx.Err() == nil {
		// The connection kept since the last write was closed meanwhile
		// (the server restarted, idle_session_timeout): try once on a new
		// one. A heartbeat written twice is harmless.
		nw.conn = nil
		c, cerr := connect(ctx, n, timeout)
		if cerr != nil {
			return cerr
		}
		nw.conn = c
		err = f(nw.conn)
	}
	if err != nil {
		nw.conn.Close(context.WithoutCancel(ctx))
		nw.conn = nil
		return err
	}
	return nil
}

// Close closes every connection, or only those of nodes not in keep.
func (w *Writer) Close(ctx context.Context, keep map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, nw := range w.nodes {
		if keep[name] {
			continue
		}
		nw.mu.Lock()
		if nw.conn != nil {
			nw.conn.Close(ctx)
		}
		nw.mu.Unlock()
		delete(w.nodes, name)
	}
}
