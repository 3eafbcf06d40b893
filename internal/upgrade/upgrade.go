package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/applyworker"
	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsadmin"
	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/setup"
	"github.com/pglmon/pglmon/internal/shellword"
	"github.com/pglmon/pglmon/internal/verified"
	"github.com/pglmon/pglmon/internal/verify"
)

// Runner runs prepare and restore over the configured nodes.
type Runner struct {
	Config *config.Config
	Out    io.Writer
	// Timeout bounds each statement.
	Timeout time.Duration
	// Snapshot makes prepare take an RDS snapshot of the node (after writing
	// the manifest, before dropping anything) and wait until it is available.
	Snapshot SnapshotOptions
	// Target, when set, has check (and prepare's check) ask RDS about the
	// upgrade to it: the version's upgrade path, the instance class, the
	// new parameter group; and its version tells how pglogical will send
	// the values of the node's subscriptions (typeProblems).
	Target TargetOptions
	// Audit, when set, records each prepare and restore, with every
	// statement that changed a database, beside the repairs; Actor is who ran it.
	Audit *repair.Audit
	Actor string
	// current is the attempt being recorded.
	current *repair.Run
	// Compare is how restore compares the tables once replication runs
	// again: verify.ModeChecksum (the default) or verify.ModeCount.
	Compare string
	// ConfigPath is the configuration file, for the commands restore prints.
	ConfigPath string
	// SkipCheck lets prepare go on when the upgrade would be refused for
	// something it cannot remove (it says what instead).
	SkipCheck bool
	// stopAfterSubscriptions, in tests, stops prepare after dropping the
	// subscriptions, as if it had been killed.
	stopAfterSubscriptions bool
	// majors, in tests, gives configured nodes another major version than
	// the one their server runs (only PostgreSQL 15 is installed here).
	majors map[string]string
}

func (r *Runner) connect(ctx context.Context, name string) (*pgx.Conn, error) {
	node, ok := r.Config.Node(name)
	if !ok {
		return nil, fmt.Errorf("node %s is not configured", name)
	}
	return probe.Connect(ctx, node, r.timeout())
}

func (r *Runner) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 60 * time.Second
}

// exists runs a query returning one boolean.
func exists(ctx context.Context, conn *pgx.Conn, query string, args ...any) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, query, args...).Scan(&ok)
	return ok, err
}

func (r *Runner) say(format string, args ...any) { fmt.Fprintf(r.Out, format+"\n", args...) }

const (
	localNodeQuery = `SELECT n.node_name::text, i.if_dsn FROM pglogical.local_node l
		JOIN pglogical.node n ON n.node_id = l.node_id
		JOIN pglogical.node_interface i ON i.if_id = l.node_local_interface`
	setsQuery = `SELECT s.set_name::text, s.replicate_insert, s.replicate_update, s.replicate_delete, s.replicate_truncate,
		coalesce((SELECT array_agg(t.set_reloid::regclass::text ORDER BY 1) FROM pglogical.replication_set_table t WHERE t.set_id = s.set_id), '{}'),
		coalesce((SELECT json_object_agg(t.set_reloid::regclass::text, t.set_att_list) FROM pglogical.replication_set_table t
			WHERE t.set_id = s.set_id AND t.set_att_list IS NOT NULL), '{}')::text,
		coalesce((SELECT json_object_agg(t.set_reloid::regclass::text, pg_get_expr(t.set_row_filter, t.set_reloid)) FROM pglogical.replication_set_table t
			WHERE t.set_id = s.set_id AND t.set_row_filter IS NOT NULL), '{}')::text,
		coalesce((SELECT array_agg(q.set_seqoid::regclass::text ORDER BY 1) FROM pglogical.replication_set_seq q WHERE q.set_id = s.set_id), '{}')
		FROM pglogical.replication_set s JOIN pglogical.local_node l ON l.node_id = s.set_nodeid ORDER BY 1`
	subsQuery = `SELECT s.sub_name::text, n.node_name::text, i.if_dsn, s.sub_enabled, s.sub_slot_name::text,
		coalesce(s.sub_replication_sets, '{}'), coalesce(s.sub_forward_origins, '{}'), s.sub_apply_delay::text,
		coalesce((SELECT os.remote_lsn::text FROM pg_replication_origin o JOIN pg_replication_origin_status os ON os.local_id = o.roident
			WHERE o.roname = s.sub_slot_name), '')
		FROM pglogical.subscription s
		JOIN pglogical.node n ON n.node_id = s.sub_origin
		JOIN pglogical.node_interface i ON i.if_id = s.sub_origin_if ORDER BY 1`
	slotsQuery   = `SELECT slot_name::text, coalesce(plugin::text, ''), coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots ORDER BY 1`
	hasPglogical = `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical')`
)

// localNodes maps each configured node to its pglogical node name.
func (r *Runner) localNodes(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, n := range r.Config.Nodes {
		conn, err := r.connect(ctx, n.Name)
		if err != nil {
			continue
		}
		var name, dsn string
		if conn.QueryRow(ctx, localNodeQuery).Scan(&name, &dsn) == nil {
			out[n.Name] = name
		}
		conn.Close(ctx)
	}
	return out
}

// Prepare records and drops pglogical on node so it has no replication slot.
func (r *Runner) Prepare(ctx context.Context, node, manifestPath string) error {
	m, found, err := ReadManifest(manifestPath)
	if err != nil {
		return err
	}
	if found && m.Node != node {
		return fmt.Errorf("manifest %s belongs to node %s, not %s", manifestPath, m.Node, node)
	}
	n, _ := r.Config.Node(node)
	if r.Snapshot.Take && n.RDS == nil {
		return fmt.Errorf("--snapshot: node %s names no RDS instance (set rds.identifier); nothing was done", node)
	}
	if found {
		r.say("Continuing from manifest %s (written %s).", manifestPath, m.Created.Format(time.RFC3339))
	} else if m, err = r.record(ctx, node); err != nil {
		return err
	}
	if err := r.precheck(ctx, node, m, found); err != nil {
		var nr *NotReadyError
		if errors.As(err, &nr) {
			r.Audit.Refused(r.Actor, repair.RemedyUpgradePrepare, node, err.Error())
		}
		return err
	}
	if !found {
		m.AuditID = repair.NewID()
		if err := m.Write(manifestPath); err != nil {
			return err
		}
		r.say("Wrote manifest %s: %s, %s, %s.", manifestPath, count(len(m.Subscriptions), "subscription"), count(len(m.Sets), "replication set"), count(len(m.Slots), "slot"))
	}
	// A re-run continues the attempt the manifest names.
	if err := r.begin(repair.RemedyUpgradePrepare, node, m.AuditID); err != nil {
		return fmt.Errorf("cannot write the audit log, so nothing is dropped: %w", err)
	}
	return r.end(r.takeApart(ctx, n, m, manifestPath))
}

// takeApart is prepare's part that drops: the snapshot first when asked,
// then the subscriptions, the node and leftover slots.
func (r *Runner) takeApart(ctx context.Context, n config.Node, m *Manifest, manifestPath string) error {
	node := n.Name
	if r.Snapshot.Take {
		if err := r.snapshot(ctx, n, m, manifestPath); err != nil {
			return err
		}
	}
	r.warnWrites(ctx, m)
	for _, s := range m.Subscriptions {
		if err := r.dropSubscription(ctx, s); err != nil {
			return err
		}
	}
	if r.stopAfterSubscriptions {
		return errors.New("stopped (test)")
	}
	conn, err := r.connect(ctx, node)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	ext, err := exists(ctx, conn, hasPglogical)
	if err != nil {
		return err
	}
	if ext {
		for _, n := range m.Nodes {
			found, err := exists(ctx, conn, "SELECT EXISTS (SELECT 1 FROM pglogical.node WHERE node_name = $1)", n.Name)
			if err != nil {
				return err
			}
			if found {
				if err := r.exec(ctx, conn, node, "drop pglogical node", "SELECT pglogical.drop_node($1, true)", n.Name); err != nil {
					return fmt.Errorf("drop pglogical node %s on %s: %w", n.Name, node, err)
				}
				r.say("Dropped pglogical node %s on %s.", n.Name, node)
			}
		}
	}
	// Leftover pglogical slots (table-sync slots, slots whose subscriber was unreachable).
	rows, err := conn.Query(ctx, "SELECT slot_name::text FROM pg_replication_slots WHERE plugin = 'pglogical_output' AND NOT active AND database = current_database()")
	if err != nil {
		return err
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, s := range left {
		if err := r.exec(ctx, conn, node, "drop leftover slot", "SELECT pg_drop_replication_slot($1)", s); err != nil {
			return fmt.Errorf("drop leftover slot %s on %s: %w", s, node, err)
		}
		r.say("Dropped leftover slot %s on %s.", s, node)
	}
	// PostgreSQL 17's pg_upgrade carries logical slots across (once their
	// consumer has confirmed all WAL): there only pglogical's must go.
	remaining, err := strings1(ctx, conn, `SELECT slot_name::text || ' (' || database::text || ', ' || plugin::text || ')' FROM pg_replication_slots
		WHERE slot_type = 'logical' AND (current_setting('server_version_num')::int < 170000 OR plugin = 'pglogical_output') ORDER BY 1`)
	if err != nil {
		return err
	}
	if len(remaining) > 0 {
		return fmt.Errorf("logical replication slots remain on %s, and the upgrade pre-check refuses while any exists: %v (slots of other databases need their own prepare, or pg_drop_replication_slot; pglmon upgrade check says whose they are)", node, remaining)
	}
	physical, err := strings1(ctx, conn, "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY 1")
	if err != nil {
		return err
	}
	if len(physical) > 0 {
		r.say("Physical slots stay on %s: %v (the RDS pre-check, as AWS documents it, asks about logical slots only; pg_upgrade does not carry them across, so a standby that streams from one needs it re-created afterwards).", node, physical)
	}
	r.say("No logical replication slot remains on %s: ready for the major-version upgrade. Afterwards run: pglmon upgrade restore --config %s --manifest %s", node, shellword.Quote(r.configPath()), shellword.Quote(manifestPath))
	return nil
}

// precheck refuses, before prepare drops anything (more), while something
// prepare cannot remove would make the upgrade refuse: replication would
// be taken apart for an upgrade that cannot run.
func (r *Runner) precheck(ctx context.Context, node string, m *Manifest, resumed bool) error {
	problems, _, err := r.problems(ctx, node, m)
	if err != nil {
		return err
	}
	var blocking []string
	for _, p := range problems {
		if p.Blocking {
			blocking = append(blocking, p.Message+"; fix: "+p.Fix)
			continue
		}
		r.say("warning: %s; %s", p.Message, p.Fix)
	}
	if len(blocking) == 0 {
		return nil
	}
	if r.SkipCheck {
		for _, b := range blocking {
			r.say("warning (--skip-check): %s", b)
		}
		return nil
	}
	done := "nothing was dropped"
	if resumed {
		done = "nothing more was dropped"
	}
	return &NotReadyError{fmt.Sprintf("the major-version upgrade of %s would be refused, and prepare cannot remove why (%s; fix them and run prepare again, or pass --skip-check to take replication apart anyway):\n  - %s",
		node, done, strings.Join(blocking, "\n  - "))}
}

// NotReadyError is prepare's refusal: the upgrade would be refused for
// something prepare cannot remove.
type NotReadyError struct{ msg string }

// ErrTablesDiffer is restore's error when replication runs again but a
// table's data differs (changed while replication was down).
var ErrTablesDiffer = errors.New("restored, but the data differs")

func (e *NotReadyError) Error() string { return e.msg }

// record reads everything prepare will drop.
func (r *Runner) record(ctx context.Context, node string) (*Manifest, error) {
	m := &Manifest{Version: 1, Node: node, Created: time.Now().UTC()}
	locals := r.localNodes(ctx)
	byLocal := map[string]string{}
	for cfgName, local := range locals {
		byLocal[local] = cfgName
	}
	conn, err := r.connect(ctx, node)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var local, dsn string
	if err := conn.QueryRow(ctx, localNodeQuery).Scan(&local, &dsn); err != nil {
		return nil, fmt.Errorf("read the pglogical node of %s: %w", node, err)
	}
	clean, removed := StripPassword(dsn)
	m.Nodes = append(m.Nodes, NodeDef{ConfigNode: node, Name: local, DSN: clean, PasswordRemoved: removed})
	rows, err := conn.Query(ctx, setsQuery)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		s := SetDef{ConfigNode: node}
		var columns, filters string
		if err := rows.Scan(&s.Name, &s.Insert, &s.Update, &s.Delete, &s.Truncate, &s.Tables, &columns, &filters, &s.Sequences); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(columns), &s.Columns); err != nil {
			return nil, fmt.Errorf("read the column lists of set %s: %w", s.Name, err)
		}
		if err := json.Unmarshal([]byte(filters), &s.RowFilters); err != nil {
			return nil, fmt.Errorf("read the row filters of set %s: %w", s.Name, err)
		}
		m.Sets = append(m.Sets, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = conn.Query(ctx, slotsQuery)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var s SlotDef
		if err := rows.Scan(&s.Name, &s.Plugin, &s.ConfirmedFlushLSN); err != nil {
			return nil, err
		}
		m.Slots = append(m.Slots, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Subscriptions of the node, and subscriptions of other nodes it provides.
	for _, n := range r.Config.Nodes {
		subs, err := r.subscriptions(ctx, n.Name)
		if err != nil {
			if n.Name == node {
				return nil, err
			}
			r.say("warning: cannot read the subscriptions of %s (%v); if it subscribes to %s, drop them there by hand", n.Name, err, node)
			continue
		}
		for _, s := range subs {
			prov := byLocal[s.providerLocal]
			if n.Name != node && prov != node {
				continue
			}
			s.Subscriber, s.Provider = n.Name, prov
			m.Subscriptions = append(m.Subscriptions, s.SubDef)
		}
	}
	return m, nil
}

type subRow struct {
	SubDef
	providerLocal string
}

func (r *Runner) subscriptions(ctx context.Context, node string) ([]subRow, error) {
	conn, err := r.connect(ctx, node)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var ext bool
	if err := conn.QueryRow(ctx, hasPglogical).Scan(&ext); err != nil || !ext {
		return nil, err
	}
	rows, err := conn.Query(ctx, subsQuery)
	if err != nil {
		return nil, fmt.Errorf("read the subscriptions of %s: %w", node, err)
	}
	defer rows.Close()
	var out []subRow
	for rows.Next() {
		var s subRow
		var dsn string
		if err := rows.Scan(&s.Name, &s.providerLocal, &dsn, &s.Enabled, &s.SlotName, &s.Sets, &s.ForwardOrigins, &s.ApplyDelay, &s.OriginRemoteLSN); err != nil {
			return nil, err
		}
		s.ProviderDSN, s.PasswordRemoved = StripPassword(dsn)
		out = append(out, s)
	}
	return out, rows.Err()
}

// waitApplyStopped polls until the subscription's apply worker has exited.
func waitApplyStopped(ctx context.Context, conn *pgx.Conn, sub string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		running, _, err := applyworker.Started(ctx, conn, sub, time.Time{})
		if errors.Is(err, applyworker.ErrCannotSee) {
			return nil // as before: nothing seen runs
		}
		if err != nil || !running {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("its apply worker still runs %s after it was disabled", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *Runner) dropSubscription(ctx context.Context, s SubDef) error {
	conn, err := r.connect(ctx, s.Subscriber)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	found, err := exists(ctx, conn, "SELECT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = $1)", s.Name)
	if err != nil || !found {
		return err
	}
	// pglogical 2.4.2 can freeze every pglogical call on the subscriber when
	// drop_subscription runs while the subscription's apply worker moves a
	// table's copy to catch-up: the worker holds pglogical's shared lock
	// while it updates the table's sync status, which the drop has locked,
	// and the drop then waits for that lock (seen in pglmon's tests). With
	// the subscription disabled and its apply worker gone, it cannot.
	if err := r.exec(ctx, conn, s.Subscriber, "disable subscription", "SELECT pglogical.alter_subscription_disable($1, true)", s.Name); err != nil {
		return fmt.Errorf("disable subscription %s on %s before dropping it: %w", s.Name, s.Subscriber, err)
	}
	if err := waitApplyStopped(ctx, conn, s.Name, 30*time.Second); err != nil {
		return fmt.Errorf("subscription %s on %s: %w; nothing was dropped, run prepare again", s.Name, s.Subscriber, err)
	}
	if err := r.exec(ctx, conn, s.Subscriber, "drop subscription", "SELECT pglogical.drop_subscription($1, true)", s.Name); err != nil {
		return fmt.Errorf("drop subscription %s on %s: %w", s.Name, s.Subscriber, err)
	}
	r.say("Dropped subscription %s on %s (and its slot %s on %s, when reachable).", s.Name, s.Subscriber, s.SlotName, s.Provider)
	return nil
}

// warnWrites samples the replicated tables' write counters on their provider.
func (r *Runner) warnWrites(ctx context.Context, m *Manifest) {
	// pglmon's own heartbeats (package heartbeat) are not the application's writes.
	const q = `SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables
	WHERE relid::regclass::text = ANY($1) AND relid::regclass::text <> 'pglmon.heartbeat'`
	for _, s := range m.Sets {
		if len(s.Tables) == 0 {
			continue
		}
		conn, err := r.connect(ctx, s.ConfigNode)
		if err != nil {
			return
		}
		var a, b int64
		conn.QueryRow(ctx, q, s.Tables).Scan(&a)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second): // a sampling interval, not synchronisation
		}
		conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()")
		conn.QueryRow(ctx, q, s.Tables).Scan(&b)
		conn.Close(ctx)
		if b > a {
			r.say("warning: writes are still reaching the tables of replication set %s on %s (%d in the last second); changes made from now on reach the subscribers only through the resynchronisation restore will offer", s.Name, s.ConfigNode, b-a)
		}
	}
}

// Restore re-creates what the manifest recorded, without copying data,
// waits until the subscriptions replicate and compares the data.
func (r *Runner) Restore(ctx context.Context, manifestPath string) error {
	m, found, err := ReadManifest(manifestPath)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("manifest %s does not exist", manifestPath)
	}
	if err := r.restoreCheck(ctx, m); err != nil {
		var nr *NotReadyError
		if errors.As(err, &nr) {
			r.Audit.Refused(r.Actor, repair.RemedyUpgradeRestore, m.Node, err.Error())
		}
		return err
	}
	if err := r.begin(repair.RemedyUpgradeRestore, m.Node, ""); err != nil {
		return fmt.Errorf("cannot write the audit log, so nothing is created: %w", err)
	}
	return r.end(r.putBack(ctx, m))
}

// restoreCheck asks each node restore creates something on, or subscribes
// from, whether pglogical can run there now, before anything is created:
// after an upgrade the new parameter group or configuration may not load
// pglogical or allow logical decoding, which would otherwise be found
// halfway through, as a raw error of the first statement that needs it.
func (r *Runner) restoreCheck(ctx context.Context, m *Manifest) error {
	from, to := map[string]int{}, map[string]int{}
	var nodes []string
	seen := map[string]bool{}
	note := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			nodes = append(nodes, n)
		}
	}
	for _, n := range m.Nodes {
		note(n.ConfigNode)
	}
	for _, s := range m.Sets {
		note(s.ConfigNode)
	}
	for _, s := range m.Subscriptions {
		note(s.Subscriber)
		note(s.Provider)
		from[s.Provider]++
		to[s.Subscriber]++
	}
	var missing []string
	// A password the manifest does not keep and the configuration does
	// not give would otherwise stop restore after the node is back.
	for _, p := range r.restorePasswords(m) {
		missing = append(missing, fmt.Sprintf("%s; fix: %s", p.Message, p.Fix))
	}
	for _, n := range nodes {
		conn, err := r.connect(ctx, n)
		if err != nil {
			return fmt.Errorf("%w; restore created nothing", err)
		}
		problems, _, _, err := setup.Prerequisites(ctx, conn, n, from[n], to[n])
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("read the settings of %s: %w; restore created nothing", n, err)
		}
		for _, p := range problems {
			missing = append(missing, fmt.Sprintf("%s: %s; fix: %s", p.Node, p.What, p.Fix))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &NotReadyError{fmt.Sprintf("pglogical cannot run yet where restore would put it back (restore created nothing; fix these, then run restore again):\n  - %s",
		strings.Join(missing, "\n  - "))}
}

// putBack is restore's part that creates: nodes, sets, subscriptions, then
// the comparison.
func (r *Runner) putBack(ctx context.Context, m *Manifest) error {
	for _, n := range m.Nodes {
		if err := r.restoreNode(ctx, n); err != nil {
			return err
		}
	}
	for _, s := range m.Sets {
		if err := r.restoreSet(ctx, s); err != nil {
			return err
		}
	}
	for _, s := range m.Subscriptions {
		if err := r.restoreSubscription(ctx, s); err != nil {
			return err
		}
	}
	if err := r.syncSequences(ctx, m); err != nil {
		return err
	}
	return r.compare(ctx, m)
}

// syncSequences has pglogical send the value of each sequence of an
// enabled subscription's sets that is further on its provider than on its
// subscriber (pglogical.synchronize_sequence, once the subscription
// replicates): restore adds the sequences to their sets before any
// subscription exists to receive their values, and pglogical's own
// periodic copy may come much later (not within 15 s, measured), while a
// subscriber taking over the writes would hand out values the provider
// used. Once the values arrived, a re-run sends none.
func (r *Runner) syncSequences(ctx context.Context, m *Manifest) error {
	for _, sub := range m.Subscriptions {
		var seqs []string
		for _, s := range m.Sets {
			if s.ConfigNode == sub.Provider && slices.Contains(sub.Sets, s.Name) {
				seqs = append(seqs, s.Sequences...)
			}
		}
		if !sub.Enabled || len(seqs) == 0 {
			continue
		}
		if err := r.syncSubscriptionSequences(ctx, sub, seqs); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) syncSubscriptionSequences(ctx context.Context, sub SubDef, seqs []string) error {
	prov, err := r.connect(ctx, sub.Provider)
	if err != nil {
		return err
	}
	defer prov.Close(ctx)
	sc, err := r.connect(ctx, sub.Subscriber)
	if err != nil {
		return err
	}
	defer sc.Close(ctx)
	for _, q := range seqs {
		var there bool
		if err := sc.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", q).Scan(&there); err != nil {
			return fmt.Errorf("look for sequence %s on %s: %w", q, sub.Subscriber, err)
		}
		if !there {
			// pglogical's copy of its value would stop the subscription
			// ("could not open relation with OID 0", measured with 2.4.2).
			r.say("warning: sequence %s of subscription %s's sets is not on %s: create it there before pglogical copies its value, which stops the subscription until it is", q, sub.Name, sub.Subscriber)
			continue
		}
		down, err := setup.Descending(ctx, prov, q)
		if err != nil {
			return fmt.Errorf("on %s: %w", sub.Provider, err)
		}
		if down {
			r.say("warning: sequence %s of subscription %s's sets counts down: not sent (%s); take it out of the set, and set it by hand on %s before it takes the writes", q, sub.Name, setup.DescendingNote, sub.Subscriber)
			continue
		}
		pv, err := setup.SequenceValue(ctx, prov, q)
		if err != nil {
			return fmt.Errorf("on %s: %w", sub.Provider, err)
		}
		sv, err := setup.SequenceValue(ctx, sc, q)
		if err != nil {
			return fmt.Errorf("on %s: %w", sub.Subscriber, err)
		}
		if !setup.Behind(pv, sv) {
			continue
		}
		if err := r.exec(ctx, prov, sub.Provider, "send the sequence's value to the subscribers", "SELECT pglogical.synchronize_sequence($1::regclass)", q); err != nil {
			return fmt.Errorf("send sequence %s's value from %s: %w", q, sub.Provider, err)
		}
		if err := setup.WaitSequence(ctx, sc, q, *pv, r.timeout()); err != nil {
			return fmt.Errorf("subscription %s on %s: %w (run restore again to send it again)", sub.Name, sub.Subscriber, err)
		}
		r.say("Sent sequence %s's value (%d) to subscription %s on %s.", q, *pv, sub.Name, sub.Subscriber)
	}
	return nil
}

func (r *Runner) withPassword(dsn string, removed bool, node string) (string, error) {
	if !removed {
		return dsn, nil
	}
	n, _ := r.Config.Node(node)
	if n.Password != nil && n.Password.RDSIAM {
		return "", fmt.Errorf("the recorded connection string to %s held a password, and node %s uses rds_iam: pglogical would keep a token that expires in 15 minutes; configure a password pglogical can keep (env, file or secrets_manager) for restore", node, node)
	}
	pw, err := n.ResolvePassword()
	if err != nil || pw == "" {
		return "", fmt.Errorf("the recorded connection string to %s held a password, which the manifest does not keep; configure password: for node %s", node, node)
	}
	return dsn + " password=" + quoteValue(pw.Reveal()), nil
}

func quoteValue(v string) string {
	out := "'"
	for _, c := range v {
		if c == '\'' || c == '\\' {
			out += "\\"
		}
		out += string(c)
	}
	return out + "'"
}

func (r *Runner) restoreNode(ctx context.Context, n NodeDef) error {
	conn, err := r.connect(ctx, n.ConfigNode)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	ext, err := exists(ctx, conn, hasPglogical)
	if err != nil {
		return err
	}
	if !ext {
		if err := r.exec(ctx, conn, n.ConfigNode, "create extension", "CREATE EXTENSION IF NOT EXISTS pglogical"); err != nil {
			return fmt.Errorf("create extension pglogical on %s: %w", n.ConfigNode, err)
		}
	}
	found, err := exists(ctx, conn, "SELECT EXISTS (SELECT 1 FROM pglogical.local_node)")
	if err != nil || found {
		return err
	}
	dsn, err := r.withPassword(n.DSN, n.PasswordRemoved, n.ConfigNode)
	if err != nil {
		return err
	}
	if err := r.exec(ctx, conn, n.ConfigNode, "create pglogical node", "SELECT pglogical.create_node(node_name := $1, dsn := $2)", n.Name, dsn); err != nil {
		return fmt.Errorf("create pglogical node %s on %s: %w", n.Name, n.ConfigNode, err)
	}
	r.say("Created pglogical node %s on %s.", n.Name, n.ConfigNode)
	return nil
}

func (r *Runner) restoreSet(ctx context.Context, s SetDef) error {
	conn, err := r.connect(ctx, s.ConfigNode)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// pglogical's own sets (default, default_insert_only, ddl_sql) are
	// there already, made by create_node with their usual flags: the
	// manifest's are put back, which the set may have had changed.
	var differ *bool
	err = conn.QueryRow(ctx, `SELECT (replicate_insert, replicate_update, replicate_delete, replicate_truncate) IS DISTINCT FROM ($2, $3, $4, $5)
		FROM pglogical.replication_set WHERE set_name = $1 AND set_nodeid = (SELECT node_id FROM pglogical.local_node)`, s.Name, s.Insert, s.Update, s.Delete, s.Truncate).Scan(&differ)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("read replication set %s on %s: %w", s.Name, s.ConfigNode, err)
	}
	switch {
	case differ == nil:
		if err := r.exec(ctx, conn, s.ConfigNode, "create replication set", "SELECT pglogical.create_replication_set($1, $2, $3, $4, $5)", s.Name, s.Insert, s.Update, s.Delete, s.Truncate); err != nil {
			return fmt.Errorf("create replication set %s on %s: %w", s.Name, s.ConfigNode, err)
		}
	case *differ:
		// Before any subscription is restored: no sender keeps the old flags.
		if err := r.exec(ctx, conn, s.ConfigNode, "set the replication set's flags", "SELECT pglogical.alter_replication_set($1, $2, $3, $4, $5)", s.Name, s.Insert, s.Update, s.Delete, s.Truncate); err != nil {
			return fmt.Errorf("set the flags of replication set %s on %s: %w", s.Name, s.ConfigNode, err)
		}
	}
	for _, t := range s.Tables {
		in, err := exists(ctx, conn, `SELECT EXISTS (SELECT 1 FROM pglogical.replication_set_table rt JOIN pglogical.replication_set rs ON rs.set_id = rt.set_id
			WHERE rs.set_name = $1 AND rt.set_reloid = $2::regclass)`, s.Name, t)
		if err != nil {
			return fmt.Errorf("table %s of set %s on %s: %w", t, s.Name, s.ConfigNode, err)
		}
		if !in {
			// As it was added: its column list and row filter, or NULL.
			var columns, filter any
			if c, ok := s.Columns[t]; ok {
				columns = c
			}
			if f, ok := s.RowFilters[t]; ok {
				filter = f
			}
			if err := r.exec(ctx, conn, s.ConfigNode, "add table to replication set", "SELECT pglogical.replication_set_add_table($1, $2::regclass, synchronize_data := false, columns := $3::text[], row_filter := $4::text)",
				s.Name, t, columns, filter); err != nil {
				return fmt.Errorf("add %s to set %s on %s: %w", t, s.Name, s.ConfigNode, err)
			}
		}
	}
	for _, q := range s.Sequences {
		in, err := exists(ctx, conn, `SELECT EXISTS (SELECT 1 FROM pglogical.replication_set_seq q JOIN pglogical.replication_set rs ON rs.set_id = q.set_id
			WHERE rs.set_name = $1 AND q.set_seqoid = $2::regclass)`, s.Name, q)
		if err != nil {
			return fmt.Errorf("sequence %s of set %s on %s: %w", q, s.Name, s.ConfigNode, err)
		}
		if !in {
			// pglogical copies its value to the subscribers now and then.
			if err := r.exec(ctx, conn, s.ConfigNode, "add sequence to replication set", "SELECT pglogical.replication_set_add_sequence($1, $2::regclass, false)", s.Name, q); err != nil {
				return fmt.Errorf("add sequence %s to set %s on %s: %w", q, s.Name, s.ConfigNode, err)
			}
		}
	}
	return nil
}

func (r *Runner) restoreSubscription(ctx context.Context, s SubDef) error {
	conn, err := r.connect(ctx, s.Subscriber)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	found, err := exists(ctx, conn, "SELECT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = $1)", s.Name)
	if err != nil {
		return err
	}
	if !found {
		dsn, err := r.withPassword(s.ProviderDSN, s.PasswordRemoved, s.Provider)
		if err != nil {
			return err
		}
		if err := r.exec(ctx, conn, s.Subscriber, "create subscription", `SELECT pglogical.create_subscription(subscription_name := $1, provider_dsn := $2,
			replication_sets := $3, synchronize_structure := false, synchronize_data := false,
			forward_origins := $4, apply_delay := $5::interval)`, s.Name, dsn, s.Sets, s.ForwardOrigins, s.ApplyDelay); err != nil {
			return fmt.Errorf("create subscription %s on %s: %w", s.Name, s.Subscriber, err)
		}
		r.say("Created subscription %s on %s (no data copied).", s.Name, s.Subscriber)
	}
	if !s.Enabled {
		return r.exec(ctx, conn, s.Subscriber, "disable subscription (as it was)", "SELECT pglogical.alter_subscription_disable($1, true)", s.Name)
	}
	deadline := time.Now().Add(r.timeout())
	for {
		var status string
		if err := conn.QueryRow(ctx, "SELECT status FROM pglogical.show_subscription_status($1)", s.Name).Scan(&status); err != nil {
			return err
		}
		if status == "replicating" {
			r.say("Subscription %s on %s is replicating.", s.Name, s.Subscriber)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("subscription %s on %s is %s, not replicating, after %s", s.Name, s.Subscriber, status, r.timeout())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// compare compares every replicated table on both sides (Compare: by
// checksum, which sees an update made while replication was down, or by
// row count) and offers (never runs) the copy of the differing rows or the
// resynchronisation of each table that differs.
func (r *Runner) compare(ctx context.Context, m *Manifest) error {
	mode, by := r.Compare, "row counts"
	if mode == "" {
		mode = verify.ModeChecksum
	}
	if mode == verify.ModeChecksum {
		by = "by checksum"
	}
	opt := verify.ConfigOptions(r.Config.Verify, mode)
	differ := 0
	var equal []verified.Entry
	defer func() {
		// The daemon puts behind what stands until a verification finds
		// the tables equal (the heartbeats the work left missing, too).
		if err := verified.Tell(r.Config.VerifiedFile(), equal); err != nil {
			r.say("warning: the daemon will not learn what this comparison found equal: %v", err)
		}
	}()
	for _, s := range m.Subscriptions {
		if !s.Enabled {
			continue
		}
		tg := verify.Target{Subscription: s.Name, Subscriber: s.Subscriber, Provider: s.Provider, Sets: s.Sets, Slot: s.SlotName,
			ApplyDelay: r.applyDelay(ctx, s)}
		r.say("Comparing the tables subscription %s on %s replicates from %s (%s):", s.Name, s.Subscriber, s.Provider, by)
		started := time.Now()
		res := verify.Run(ctx, r.Config, tg, opt)
		equal = append(equal, verified.Entries(res, started, true)...)
		if res.Error != "" {
			r.say("warning: cannot compare %s: %s", s.Name, res.Error)
			continue
		}
		for _, t := range res.Tables {
			name := t.Spec.Regclass() // as SQL and --table write it
			switch {
			case t.Error != "":
				r.say("  warning: %s: cannot compare: %s", name, t.Error)
				continue
			case t.Equal && mode == verify.ModeCount:
				r.say("  %s: %d rows on both sides", name, t.ProviderRows)
				continue
			case t.Equal:
				r.say("  %s: equal (%d rows compared)", name, t.RowsCompared)
				continue
			}
			differ++
			copyRows := fmt.Sprintf("pglmon verify --config %s --subscription %s --table %s --copy-script rows.psql", shellword.Quote(r.configPath()), shellword.Quote(s.Name), shellword.Quote(name))
			resync := fmt.Sprintf("or to resynchronise the table (TRUNCATES it on %s, then copies it):\n    SELECT pglogical.alter_subscription_resynchronize_table(%s, %s);",
				s.Subscriber, pgident.Literal(s.Name), pgident.Literal(name))
			if t.ResyncWarning != "" {
				resync = t.ResyncWarning
			}
			if mode == verify.ModeCount {
				r.say("  %s: %d rows on %s, %d on %s: it changed while replication was down. To copy the rows that differ from %s (a psql script, for you to read and run):\n    %s\n  %s",
					name, t.ProviderRows, s.Provider, t.SubscriberRows, s.Subscriber, s.Provider, copyRows, resync)
				continue
			}
			verb := "differ"
			if t.DifferingRows == 1 {
				verb = "differs"
			}
			r.say("  %s: %d of %d rows %s (%s): changed on %s while replication was down. To copy just those rows from %s (a psql script, for you to read and run):\n    %s\n  %s",
				name, t.DifferingRows, t.RowsCompared, verb, firstKeys(t), s.Provider, s.Provider, copyRows, resync)
		}
	}
	if differ > 0 {
		what := "tables differ"
		if differ == 1 {
			what = "table differs"
		}
		return fmt.Errorf("%w (%s): %d %s; pglmon ran no resynchronisation", ErrTablesDiffer, by, differ, what)
	}
	return nil
}

// count says n things, in the singular for one.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// firstKeys names the first few differing rows of a table, by key and kind.
func firstKeys(t verify.TableResult) string {
	var keys []string
	for _, k := range t.Keys[:min(len(t.Keys), 5)] {
		keys = append(keys, k.Key+" "+k.Kind)
	}
	if more := t.DifferingRows - int64(len(keys)); more > 0 {
		keys = append(keys, fmt.Sprintf("%d more", more))
	}
	return strings.Join(keys, ", ")
}

// applyDelay reads the restored subscription's apply_delay, which the
// comparison waits out before it believes a difference (0 if unreadable).
func (r *Runner) applyDelay(ctx context.Context, s SubDef) time.Duration {
	conn, err := r.connect(ctx, s.Subscriber)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var secs float64
	if err := conn.QueryRow(ctx, "SELECT extract(epoch FROM sub_apply_delay)::float8 FROM pglogical.subscription WHERE sub_name = $1", s.Name).Scan(&secs); err != nil {
		return 0
	}
	return time.Duration(secs * float64(time.Second))
}

func (r *Runner) configPath() string {
	if r.ConfigPath != "" {
		return r.ConfigPath
	}
	return "FILE"
}

// SnapshotOptions configure prepare's RDS snapshot.
type SnapshotOptions struct {
	Take bool
	// Timeout bounds the wait for the snapshot (default 4 hours).
	Timeout time.Duration
	// Poll is the interval between status reads (default 15 s).
	Poll time.Duration
	// AWS overrides SDK settings (tests shorten retry backoff).
	AWS awsclient.Options
}

// snapshot takes (or, on a re-run, finds) the snapshot named in the
// manifest, recording its name before creating it and its completion after.
func (r *Runner) snapshot(ctx context.Context, n config.Node, m *Manifest, manifestPath string) error {
	if m.Snapshot != nil && m.Snapshot.Available {
		r.say("Snapshot %s of %s was taken by an earlier run.", m.Snapshot.Identifier, m.Snapshot.Instance)
		return nil
	}
	if m.Snapshot == nil {
		m.Snapshot = &SnapshotDef{Instance: n.RDS.Identifier, Region: r.Config.NodeRegion(n), Identifier: rdsadmin.SnapshotID(n.RDS.Identifier, m.Created)}
		if err := m.Write(manifestPath); err != nil {
			return err
		}
	}
	api, err := awsclient.New(r.Config.AWS, r.Snapshot.AWS).RDS(ctx, m.Snapshot.Region)
	if err != nil {
		return err
	}
	timeout := r.Snapshot.Timeout
	if timeout <= 0 {
		timeout = 4 * time.Hour
	}
	c := &rdsadmin.Client{API: api, Poll: r.Snapshot.Poll, Out: r.Out}
	if err := c.SnapshotAndWait(ctx, m.Snapshot.Instance, m.Snapshot.Identifier, timeout); err != nil {
		return fmt.Errorf("%w; nothing was dropped", err)
	}
	m.Snapshot.Available = true
	return m.Write(manifestPath)
}
