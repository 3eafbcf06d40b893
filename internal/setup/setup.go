// Package setup creates the pglogical topology described in the
// configuration: extension, nodes, replication sets and their tables,
// subscriptions. It checks every prerequisite first and creates nothing
// while one is missing; every change is skipped when already in place, so
// apply can be re-run after a failure at any point.
package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/applyworker"
	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/drift"
	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/shellword"
	"github.com/pglmon/pglmon/internal/topology"
	"github.com/pglmon/pglmon/internal/verify"
)

// Problem is a missing prerequisite and how to fix it.
type Problem struct {
	Node, What, Fix string
}

// Change is one action apply would take.
type Change struct {
	Node string
	What string
	SQL  string
	Args []any
	// dsnNode, when set, is the node whose password is appended to the DSN
	// argument at apply time only (never shown in the plan).
	dsnNode *config.Node
	// restarts names the subscription whose apply worker pglogical ends
	// when the change commits (alter_subscription_add_replication_set):
	// apply waits for the next one (see waitApply).
	restarts string
	// copies names the subscription whose tables not yet synchronized
	// pglogical copies once the change commits (alter_subscription_
	// synchronize): apply first waits until it has applied what its
	// provider committed (see caughtUp), and afterwards until the copies
	// are done, then compares the row counts of the tables of copySets,
	// the sets the change adds.
	copies   string
	copySets []string
	// copiedIn is, for a table added to a set with its copy (Args[1]),
	// the set: pglogical copies it to the set's subscriptions, and apply
	// waits for that as for copies (tableCopies).
	copiedIn string
	// senders are the configured subscriptions whose provider's senders
	// the change ends (their apply workers end with them): apply waits
	// for the next apply worker of each, on its subscriber.
	senders []config.Subscription
	// sends are the subscriptions a sequence's value is sent to
	// (pglogical.synchronize_sequence, Args[0] the sequence): apply makes
	// the change once they replicate their sets, after every other
	// change, and waits until the value has reached each.
	sends []config.Subscription
}

// Plan is what apply would do, or why it cannot.
type Plan struct {
	Problems []Problem
	Changes  []Change
	// Warnings are printed with the changes; they do not stop apply.
	Warnings []string
}

// replicaIdentitySQL: the table ($1) has the index pglogical finds rows by.
const replicaIdentitySQL = `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
	WHERE i.indrelid = to_regclass($1) AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)))`

// Runner plans and applies the topology.
type Runner struct {
	Config *config.Config
	Out    io.Writer
	// Wait bounds the wait for new subscriptions to replicate.
	Wait time.Duration
	// RDS says what apply may do to the RDS instances of nodes with `rds:`.
	RDS RDSOptions
	// Audit, when set, records each apply that changes something (or is
	// refused), with every change, beside the repairs; Actor is who ran it.
	Audit *repair.Audit
	Actor string

	run *repair.Run
	// beforeChange, in tests, runs just before each change.
	beforeChange func(Change)

	aws *awsclient.Factory
}

func (r *Runner) connect(ctx context.Context, name string) (*pgx.Conn, error) {
	node, _ := r.Config.Node(name)
	return probe.Connect(ctx, node, 30*time.Second)
}

func one[T any](ctx context.Context, conn *pgx.Conn, sql string, args ...any) (T, error) {
	var v T
	err := conn.QueryRow(ctx, sql, args...).Scan(&v)
	return v, err
}

// setKey names a replication set of a node: pglogical's set names are
// per node (every node has its own "default").
func setKey(node, set string) string { return node + "/" + set }

// involved lists the configured nodes the topology uses, in config order.
func (r *Runner) involved() []string {
	use := map[string]bool{}
	for _, s := range r.Config.ReplicationSets {
		use[s.Node] = true
	}
	for _, s := range r.Config.Subscriptions {
		use[s.Subscriber], use[s.Provider] = true, true
	}
	var out []string
	for _, n := range r.Config.Nodes {
		if use[n.Name] {
			out = append(out, n.Name)
		}
	}
	return out
}

// Plan checks the prerequisites and lists the changes apply would make.
func (r *Runner) Plan(ctx context.Context) (Plan, error) {
	var p Plan
	r.checkRDS(ctx, &p)
	conns := map[string]*pgx.Conn{}
	defer func() {
		for _, c := range conns {
			c.Close(ctx)
		}
	}()
	unreachable := false
	for _, n := range r.involved() {
		if node, _ := r.Config.Node(n); node.Password != nil && node.Password.RDSIAM {
			p.Problems = append(p.Problems, Problem{n, "password.rds_iam: pglogical stores this node's connection string (node interface, provider_dsn) and reconnects with it long after a 15-minute IAM token has expired",
				"for setup, give the node a password pglogical can keep (password: env, file or secrets_manager); pglmon's monitoring may use rds_iam with a second config"})
		}
		c, err := r.connect(ctx, n)
		if err != nil {
			p.Problems = append(p.Problems, Problem{n, "cannot connect: " + err.Error(), "check the node's dsn and password"})
			unreachable = true
			continue
		}
		conns[n] = c
	}
	if unreachable {
		return p, nil
	}
	versions := map[string]string{}
	for _, n := range r.involved() {
		r.checkServer(ctx, conns[n], n, &p, versions)
	}
	if vs := uniq(versions); len(vs) > 1 {
		p.Problems = append(p.Problems, Problem{"", fmt.Sprintf("pglogical versions differ between nodes: %v", versions), "install the same pglogical version on every node"})
	}
	tables := map[string][]string{}               // setKey(node, set) -> tables
	states := map[string]map[string]*tableState{} // setKey(node, set) -> table -> state
	for _, rs := range r.Config.ReplicationSets {
		ts, err := r.expand(ctx, conns[rs.Node], rs, &p)
		if err != nil {
			return p, err
		}
		tables[setKey(rs.Node, rs.Name)] = ts
		if states[setKey(rs.Node, rs.Name)], err = tableStates(ctx, conns[rs.Node], rs, ts, &p); err != nil {
			return p, err
		}
		// pglogical's own rule (replication_set_add_table): a set that
		// replicates UPDATE or DELETE needs each table's replica identity
		// index, its primary key or REPLICA IDENTITY USING INDEX; an
		// insert-only set takes any table.
		if f := rs.Flags(); !f[1] && !f[2] {
			continue
		}
		for _, t := range ts {
			ident, err := one[bool](ctx, conns[rs.Node], replicaIdentitySQL, t)
			if err != nil {
				return p, err
			}
			if !ident {
				p.Problems = append(p.Problems, Problem{rs.Node, "table " + t + " has no primary key (nor REPLICA IDENTITY USING INDEX), and set " + rs.Name + " replicates updates or deletes",
					"add a primary key (pglogical finds the subscriber's row by it), or make the set insert-only (replicate_update: false, replicate_delete: false)"})
			}
		}
	}
	for _, sb := range r.Config.Subscriptions {
		var ts []string
		for _, set := range sb.ReplicationSets {
			ts = append(ts, tables[setKey(sb.Provider, set)]...)
		}
		slices.Sort(ts)
		for _, t := range slices.Compact(ts) {
			r.compareTable(ctx, conns[sb.Provider], conns[sb.Subscriber], sb, t, replicatedColumns(sb, t, states), &p)
		}
	}
	p.Warnings = append(p.Warnings, r.unforwarded(tables)...)
	p.Problems = append(p.Problems, r.loops()...)
	if err := r.checkCopies(ctx, conns, tables, states, &p); err != nil {
		return p, err
	}
	seqs, err := r.sequences(ctx, conns, tables, &p)
	if err != nil {
		return p, err
	}
	if len(p.Problems) > 0 {
		return p, nil
	}
	if err := r.changes(ctx, conns, tables, states, seqs, &p); err != nil {
		return p, err
	}
	if err := r.checkOriginStates(ctx, conns, &p); err != nil {
		return p, err
	}
	warned := map[string]bool{}
	for _, c := range p.Changes {
		if n := c.dsnNode; n != nil && n.Password != nil && n.Password.SecretsManager != nil && !warned[n.Name] {
			warned[n.Name] = true
			p.Warnings = append(p.Warnings, fmt.Sprintf("node %s: pglogical keeps the password from Secrets Manager in its connection string; when the secret rotates, replication from %s stops with \"password authentication failed\" until the interface is updated (pglogical.alter_node_add_interface, then alter_subscription_interface). Prefer a replication user whose password does not rotate", n.Name, n.Name))
		}
	}
	return p, nil
}

const settingsQuery = `SELECT current_setting('wal_level'), current_setting('shared_preload_libraries'),
	current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int,
	current_setting('max_worker_processes')::int, current_setting('track_commit_timestamp'),
	coalesce(current_setting('pglogical.conflict_resolution', true), ''),
	coalesce((SELECT extversion FROM pg_extension WHERE extname = 'pglogical'),
		(SELECT default_version FROM pg_available_extensions WHERE name = 'pglogical'), ''),
	(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
		OR (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_superuser') AND pg_has_role('rds_superuser', 'member')),
	current_setting('max_slot_wal_keep_size')`

func (r *Runner) checkServer(ctx context.Context, c *pgx.Conn, n string, p *Plan, versions map[string]string) {
	subsFrom, subsTo := 0, 0
	for _, s := range r.Config.Subscriptions {
		if s.Provider == n {
			subsFrom++
		}
		if s.Subscriber == n {
			subsTo++
		}
	}
	problems, warnings, version, err := Prerequisites(ctx, c, n, subsFrom, subsTo)
	if err != nil {
		p.Problems = append(p.Problems, Problem{n, "read settings: " + err.Error(), ""})
		return
	}
	p.Problems = append(p.Problems, problems...)
	p.Warnings = append(p.Warnings, warnings...)
	versions[n] = version
}

// Prerequisites reads what pglogical needs of the server c is connected to
// (node n), which is to provide subsFrom subscriptions and receive subsTo:
// what is missing with its fix, warnings, and the pglogical version
// installed (else available; "" when neither). It changes nothing;
// upgrade restore asks it too, after the upgrade, before creating anything.
func Prerequisites(ctx context.Context, c *pgx.Conn, n string, subsFrom, subsTo int) (problems []Problem, warnings []string, version string, err error) {
	var wal, preload, track, conflict, keep string
	var slots, senders, workers int
	var privileged bool
	if err := c.QueryRow(ctx, settingsQuery).Scan(&wal, &preload, &slots, &senders, &workers, &track, &conflict, &version, &privileged, &keep); err != nil {
		return nil, nil, "", err
	}
	add := func(what, fix string) { problems = append(problems, Problem{n, what, fix}) }
	if wal != "logical" {
		add("wal_level is "+wal, "set wal_level = logical (RDS: rds.logical_replication = 1 in the DB parameter group) and restart")
	}
	if !slices.Contains(strings.Split(strings.ReplaceAll(preload, " ", ""), ","), "pglogical") {
		add("pglogical is not in shared_preload_libraries ("+preload+")", "add pglogical to shared_preload_libraries, keeping what is there (RDS: in the DB parameter group), and restart")
	}
	if version == "" {
		add("the pglogical extension is not installed on the server", "install it (Debian: postgresql-15-pglogical; RDS ships it)")
	}
	if need := subsFrom + 1; slots < need {
		add(fmt.Sprintf("max_replication_slots is %d", slots), fmt.Sprintf("set max_replication_slots to at least %d (one per subscription plus one for table sync) and restart", need))
	} else if need := subsTo + 1; subsTo > 0 && slots < need {
		// The same setting sizes a subscriber's replication origin states.
		add(fmt.Sprintf("max_replication_slots is %d, which also bounds the replication origin states a subscriber holds", slots),
			fmt.Sprintf("set max_replication_slots to at least %d (one origin state per subscription it receives, plus one per table pglogical copies at once; without a free one the apply or sync worker fails at each start, for ever: origin_slots_exhausted), plus those other subscriptions of the server hold, and restart", need))
	}
	if subsFrom > senders {
		add(fmt.Sprintf("max_wal_senders is %d", senders), fmt.Sprintf("set max_wal_senders to at least %d and restart", subsFrom+1))
	}
	if need := 10 + 2*subsTo; subsTo > 0 && workers < need {
		add(fmt.Sprintf("max_worker_processes is %d", workers), fmt.Sprintf("set max_worker_processes to at least %d (about 10 + 2 per subscription) and restart", need))
	}
	if (conflict == "last_update_wins" || conflict == "first_update_wins") && track != "on" {
		add("pglogical.conflict_resolution = "+conflict+" needs track_commit_timestamp", "set track_commit_timestamp = on and restart")
	}
	if !privileged {
		add("the role is neither superuser nor a member of rds_superuser", "connect as a superuser (RDS: a member of rds_superuser)")
	}
	if subsFrom > 0 && keep == "-1" {
		warnings = append(warnings, fmt.Sprintf("node %s: max_slot_wal_keep_size is -1 (unlimited): a subscription that stops consuming makes its slot keep WAL until the disk is full "+
			"(pglmon warns at thresholds.retained_wal_bytes). A limit trades a full disk for a lost slot (slot_wal_lost: the subscription must be re-created or its tables resynchronised); "+
			"choose one, e.g. max_slot_wal_keep_size = 50GB, below the free space (RDS: in the DB parameter group, no restart)", n))
	}
	return problems, warnings, version, nil
}

func uniq(m map[string]string) []string {
	var out []string
	for _, v := range m {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// expand lists a set's tables as schema.table, checking they exist; a
// partitioned table stands for its partitions (said in p's warnings). A
// table pglogical cannot replicate (UNLOGGED) is a problem when the set
// lists it, and left out, with a warning, when it comes with a schema or a
// partitioned table.
func (r *Runner) expand(ctx context.Context, c *pgx.Conn, rs config.ReplicationSet, p *Plan) ([]string, error) {
	var out []string
	keep := func(ts []topology.Table, why string) {
		for _, t := range ts {
			if t.Unlogged {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s is UNLOGGED and left out of replication set %s (%s): pglogical cannot replicate it (ALTER TABLE %s SET LOGGED, then run apply again, to replicate it)", t.Name, rs.Name, why, t.Name))
				continue
			}
			out = append(out, t.Name)
		}
	}
	for _, name := range rs.Tables {
		ts, parted, err := topology.OfTable(ctx, c, name)
		if err != nil {
			return nil, err
		}
		switch {
		case len(ts) == 0:
			fix := fmt.Sprintf("create it on %s, or remove it from the set's tables", rs.Node)
			if config.FoldsCapitals(name) {
				fix = "SQL reads capitals outside double quotes as lower case: write a mixed-case name in double quotes (public.\"MixedCase\"); or " + fix
			}
			p.Problems = append(p.Problems, Problem{rs.Node, "table " + name + " of replication set " + rs.Name + " does not exist (or is partitioned with no partition)", fix})
		case parted:
			names := make([]string, len(ts))
			for i, t := range ts {
				names[i] = t.Name
			}
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s is partitioned: replication set %s gets its partitions (%s), which pglogical replicates; a partition created later replicates once `pglmon setup apply` runs again",
				name, rs.Name, strings.Join(names, ", ")))
			keep(ts, "a partition of "+name)
		case ts[0].Unlogged:
			p.Problems = append(p.Problems, Problem{rs.Node, "table " + ts[0].Name + " of replication set " + rs.Name + " is UNLOGGED: pglogical cannot replicate it (replication_set_add_table refuses UNLOGGED and TEMP tables)",
				fmt.Sprintf("ALTER TABLE %s SET LOGGED on %s, or remove it from the set's tables", ts[0].Name, rs.Node)})
		default:
			out = append(out, ts[0].Name)
		}
	}
	if len(rs.Schemas) > 0 {
		ts, err := topology.OfSchemas(ctx, c, rs.Schemas)
		if err != nil {
			return nil, err
		}
		keep(ts, "schemas "+strings.Join(rs.Schemas, ", "))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// hasPglogicalSQL: the pglogical extension is installed in the database.
const hasPglogicalSQL = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical')"

// checkCopies refuses a copy pglogical would get wrong: apply makes
// pglogical copy a table to a subscriber when it creates a subscription
// with synchronize_data, or adds a table to a set such a subscription
// already uses. Checked on pglogical 2.4.2: when the subscriber's table
// already holds rows, the COPY fails (duplicate key) and pglogical still
// marks the table ready ("finished sync of table"), so the provider's rows
// never arrive, and nothing but the data says so (a table without key
// would get its rows twice instead: nothing stops that COPY). A new
// subscription's first copy is one transaction for all its tables: one
// such failure rolls back every table's copy.
//
// A table whose provider has a stored generated column the copy lists (no
// column list, or one that holds it) is refused too: pglogical 2.4.2 lists
// the column in its COPY, which PostgreSQL refuses, and its sync worker
// retries for ever (table_copy_refused, measured).
func (r *Runner) checkCopies(ctx context.Context, conns map[string]*pgx.Conn, tables map[string][]string, states map[string]map[string]*tableState, p *Plan) error {
	for _, sb := range r.Config.Subscriptions {
		if !config.Flag(sb.SynchronizeData) {
			continue
		}
		prov, sub := conns[sb.Provider], conns[sb.Subscriber]
		have, err := subscriptionSets(ctx, sub, sb.Name)
		if err != nil {
			return err
		}
		exists := have != nil
		provExt, err := one[bool](ctx, prov, hasPglogicalSQL)
		if err != nil {
			return err
		}
		// Tables it replicates already, through a set it has: pglogical
		// copies them to it no more, whatever set they are added to.
		var replicated []drift.Relation
		if exists && provExt {
			if replicated, err = drift.SetTables(ctx, prov, have); err != nil {
				return err
			}
		}
		for _, set := range sb.ReplicationSets {
			for _, t := range tables[setKey(sb.Provider, set)] {
				copied := !exists || !provExt || !slices.Contains(have, set)
				if copied && len(replicated) > 0 {
					rel, ok, err := relationOf(ctx, prov, t)
					if err != nil {
						return err
					}
					copied = !ok || !slices.Contains(replicated, rel)
				}
				if !copied {
					in, err := one[bool](ctx, prov, `SELECT NOT EXISTS (SELECT 1 FROM pglogical.replication_set_table rt JOIN pglogical.replication_set s ON s.set_id = rt.set_id
						WHERE s.set_name = $1 AND rt.set_reloid = to_regclass($2))`, set, t)
					if err != nil {
						return err
					}
					copied = in
				}
				if !copied {
					continue
				}
				var generated []string
				if err := prov.QueryRow(ctx, generatedColumnsSQL, t, replicatedColumns(sb, t, states)).Scan(&generated); err != nil {
					return fmt.Errorf("read the columns of %s on %s: %w", t, sb.Provider, err)
				}
				if len(generated) > 0 {
					p.Problems = append(p.Problems, Problem{sb.Provider,
						fmt.Sprintf("apply would have pglogical copy table %s for subscription %s (synchronize_data), and its generated column(s) %s with it: pglogical 2.4.2 lists them in its COPY, which PostgreSQL refuses (\"column is a generated column\"), so its sync worker retries for ever and the table receives nothing (measured)", t, sb.Name, strings.Join(generated, ", ")),
						fmt.Sprintf("set synchronize_data: false for %s and copy the table's rows once it replicates (pglmon verify --subscription %s --table %s --copy-script rows.psql); leaving the column out of the table's columns makes the copy work only where the subscriber's copy of it is not generated (pglogical's apply crashes on a generated column it is not sent)", sb.Name, sb.Name, t)})
					continue
				}
				var rows bool
				if err := sub.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t).Scan(&rows); err != nil || !rows {
					continue // compareTable says it is missing
				}
				if err := sub.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+t+")").Scan(&rows); err != nil {
					return fmt.Errorf("read table %s on %s: %w", t, sb.Subscriber, err)
				}
				if rows {
					whole := ""
					if !exists {
						whole = "; a new subscription's first copy takes every table in one transaction, which that failure rolls back: no table of it would get the provider's rows"
					}
					p.Problems = append(p.Problems, Problem{sb.Subscriber,
						fmt.Sprintf("table %s already holds rows here, and apply would have pglogical copy it for subscription %s (synchronize_data): pglogical's copy fails on rows already there (duplicate key) yet marks the table ready, so the provider's rows that differ never arrive (a table without key gets them twice)%s", t, sb.Name, whole),
						fmt.Sprintf("if the provider's rows are the ones to keep, empty it here first (TRUNCATE %s); to keep the subscriber's, set synchronize_data: false for %s and bring the table in line yourself (pglmon verify shows where it differs once it replicates)", t, sb.Name)})
				}
			}
		}
	}
	return nil
}

const shapeQuery = `SELECT coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attname)
		FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND ($2::text[] IS NULL OR a.attname = ANY ($2))), ''),
	coalesce((SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		JOIN pg_class c ON c.oid = i.indrelid
		WHERE i.indrelid = to_regclass($1) AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), ''),
	to_regclass($1) IS NOT NULL`

// generatedColumnsSQL lists the stored generated columns of table $1 among
// columns $2 (NULL: all).
const generatedColumnsSQL = `SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}') FROM pg_attribute a
	WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
		AND ($2::text[] IS NULL OR a.attname = ANY ($2))`

// compareTable checks that the subscriber of sb has table t as the
// provider does: the columns it replicates (cols; nil: every column), with
// the same types, and the same key; and that it has no generated column
// outside them, which the provider would not send: measured with
// pglogical 2.4.2, the apply worker crashes at the first change to the
// table, restarting the subscriber's whole server, again at every start.
func (r *Runner) compareTable(ctx context.Context, prov, sub *pgx.Conn, sb config.Subscription, t string, cols []string, p *Plan) {
	var pc, pk, sc, sk string
	var pe, se bool
	prov.QueryRow(ctx, shapeQuery, t, cols).Scan(&pc, &pk, &pe)
	sub.QueryRow(ctx, shapeQuery, t, cols).Scan(&sc, &sk, &se)
	switch {
	case !se:
		p.Problems = append(p.Problems, Problem{sb.Subscriber, "table " + t + " does not exist", fmt.Sprintf("create it on %s with the provider's definition (pg_dump --schema-only -t %s)", sb.Subscriber, t)})
	case pc != sc:
		p.Problems = append(p.Problems, Problem{sb.Subscriber, fmt.Sprintf("table %s differs: provider has (%s), subscriber has (%s)", t, pc, sc), "make the columns and types the same on both sides (between servers of the same major version pglogical sends values in binary, so a column of any other type, a wider one too, stops the apply at the first change or gets a wrong value, measured with pglogical 2.4.2)"})
	case pk != sk:
		p.Problems = append(p.Problems, Problem{sb.Subscriber, fmt.Sprintf("table %s: the key pglogical finds rows by (primary key, or REPLICA IDENTITY USING INDEX) is (%s) on the provider, (%s) here", t, pk, sk),
			"give it the same primary key (or replica identity index) on both sides: the subscriber finds the rows of updates and deletes by it"})
	}
	if !se || cols == nil {
		return // without a column list, a column only the subscriber has differs above
	}
	var generated []string
	if err := sub.QueryRow(ctx, generatedColumnsSQL, t, nil).Scan(&generated); err != nil {
		p.Problems = append(p.Problems, Problem{sb.Subscriber, fmt.Sprintf("read the columns of %s: %v", t, err), ""})
		return
	}
	var unsent []string
	for _, g := range generated {
		if !slices.Contains(cols, g) {
			unsent = append(unsent, g)
		}
	}
	if len(unsent) > 0 {
		p.Problems = append(p.Problems, Problem{sb.Subscriber,
			fmt.Sprintf("table %s has generated column(s) %s here that subscription %s would not be sent (the table's columns leave them out): pglogical 2.4.2's apply worker crashes at the first change to the table, restarting this server, again at every start (measured)", t, strings.Join(unsent, ", "), sb.Name),
			fmt.Sprintf("make them plain columns here (ALTER TABLE %s ALTER COLUMN %s DROP EXPRESSION), or add them to the table's columns (pglogical then writes the provider's values; a generated column of the provider's cannot be copied, see synchronize_data)", t, unsent[0])})
	}
}

func (r *Runner) changes(ctx context.Context, conns map[string]*pgx.Conn, tables map[string][]string, states map[string]map[string]*tableState, seqs map[string][]string, p *Plan) error {
	add := func(c Change) { p.Changes = append(p.Changes, c) }
	left := &leftSets{conns: conns}
	hasExt := map[string]bool{}  // pglogical installed, per node: asked once
	hasNode := map[string]bool{} // and its pglogical node created
	for _, n := range r.involved() {
		c := conns[n]
		node, _ := r.Config.Node(n)
		ext, err := one[bool](ctx, c, hasPglogicalSQL)
		if err != nil {
			return err
		}
		hasExt[n] = ext
		if !ext {
			add(Change{Node: n, What: "create extension pglogical", SQL: "CREATE EXTENSION IF NOT EXISTS pglogical"})
		}
		has := false
		if ext {
			if has, err = one[bool](ctx, c, "SELECT EXISTS (SELECT 1 FROM pglogical.local_node)"); err != nil {
				return err
			}
		}
		hasNode[n] = has
		if !has {
			add(Change{Node: n, What: "create pglogical node " + node.PglogicalName, SQL: "SELECT pglogical.create_node(node_name := $1, dsn := $2)",
				Args: []any{node.PglogicalName, node.DSN}, dsnNode: &node})
		}
	}
	for _, rs := range r.Config.ReplicationSets {
		c := conns[rs.Node]
		// exists: the set is there now; else apply creates it, or
		// create_node does (a set of pglogical's own, with its flags).
		var have setFlags
		exists := false
		if hasNode[rs.Node] {
			var err error
			if have, exists, err = readSetFlags(ctx, c, rs.Name); err != nil {
				return err
			}
		}
		builtin, isBuiltin := config.BuiltinSets[rs.Name]
		switch {
		case !exists && isBuiltin && !hasNode[rs.Node]:
			have = builtin
			fallthrough
		case exists:
			change, warnings := flagChanges(rs, have, r.Config.Subscriptions)
			if change != nil {
				add(*change)
			}
			p.Warnings = append(p.Warnings, warnings...)
		default:
			f := rs.Flags()
			add(Change{Node: rs.Node, What: "create replication set " + rs.Name, SQL: "SELECT pglogical.create_replication_set($1, $2, $3, $4, $5)",
				Args: []any{rs.Name, f[0], f[1], f[2], f[3]}})
		}
		// A table added to a set that subscriptions already use is copied
		// to them (pglogical queues a table sync), unless they were set up
		// without data (synchronize_data: false); a new set's tables are
		// copied by create_subscription.
		copyData := false
		for _, sb := range r.Config.Subscriptions {
			copyData = copyData || (exists && sb.Provider == rs.Node && slices.Contains(sb.ReplicationSets, rs.Name) && config.Flag(sb.SynchronizeData))
		}
		for _, t := range tables[setKey(rs.Node, rs.Name)] {
			st := states[setKey(rs.Node, rs.Name)][t]
			switch {
			case !st.in:
				if err := r.forgetBeforeAdd(ctx, left, rs, t, copyData, p); err != nil {
					return err
				}
				add(addTableChange(rs, t, st.want, copyData))
			case !st.want.same(st.have):
				change, warnings := respecChange(rs, t, st, r.Config.Subscriptions)
				add(change)
				p.Warnings = append(p.Warnings, warnings...)
			}
		}
		cs, err := sequenceChanges(ctx, c, rs, exists, seqs[setKey(rs.Node, rs.Name)])
		if err != nil {
			return err
		}
		p.Changes = append(p.Changes, cs...)
	}
	for _, sb := range r.Config.Subscriptions {
		c := conns[sb.Subscriber]
		exists := false
		if hasExt[sb.Subscriber] {
			var err error
			if exists, err = one[bool](ctx, c, "SELECT EXISTS (SELECT 1 FROM pglogical.subscription WHERE sub_name = $1)", sb.Name); err != nil {
				return err
			}
		}
		if exists {
			if err := r.addSets(ctx, conns, tables, left, sb, p); err != nil {
				return err
			}
			w, err := forwardDiffers(ctx, c, sb)
			if err != nil {
				return err
			}
			p.Warnings = append(p.Warnings, w...)
			if w, err = applyDelayDiffers(ctx, c, sb); err != nil {
				return err
			}
			p.Warnings = append(p.Warnings, w...)
			continue
		}
		prov, _ := r.Config.Node(sb.Provider)
		origins := sb.ForwardOrigins
		if origins == nil {
			origins = []string{}
		}
		add(Change{Node: sb.Subscriber, What: fmt.Sprintf("create subscription %s from %s (sets %s, synchronize_data %t)", sb.Name, sb.Provider, strings.Join(sb.ReplicationSets, ", "), config.Flag(sb.SynchronizeData)),
			SQL: `SELECT pglogical.create_subscription(subscription_name := $1, provider_dsn := $2, replication_sets := $3,
				synchronize_data := $4, forward_origins := $5, apply_delay := $6::interval)`,
			Args: []any{sb.Name, prov.DSN, sb.ReplicationSets, config.Flag(sb.SynchronizeData), origins, strconv.FormatInt(sb.ApplyDelay.D().Milliseconds(), 10) + " ms"}, dsnNode: &prov})
	}
	return r.sequenceSends(ctx, conns, hasExt, seqs, p)
}

// forgetBeforeAdd plans, before table t is added to set rs with its copy
// (copyData), the forgetting of the sync status each subscription of the
// set kept from copying t before it left its sets; or says that t comes
// back without the changes it missed, to a subscription that copies
// nothing.
func (r *Runner) forgetBeforeAdd(ctx context.Context, left *leftSets, rs config.ReplicationSet, t string, copyData bool, p *Plan) error {
	for _, sb := range r.Config.Subscriptions {
		if sb.Provider != rs.Node || !slices.Contains(sb.ReplicationSets, rs.Name) {
			continue
		}
		gone, err := left.of(ctx, sb)
		if err != nil {
			return err
		}
		if len(gone) == 0 {
			continue
		}
		rel, ok, err := relationOf(ctx, left.conns[sb.Subscriber], t)
		if err != nil {
			return err
		}
		if !ok || !gone[rel] {
			continue
		}
		if pr, err := busy(ctx, left.conns[sb.Subscriber], sb, rel); err != nil || pr != nil {
			if pr != nil {
				p.Problems = append(p.Problems, *pr)
			}
			if err != nil {
				return err
			}
			continue
		}
		if !copyData || !config.Flag(sb.SynchronizeData) {
			p.Warnings = append(p.Warnings, missedWarning(sb, []drift.Relation{rel}))
			continue
		}
		p.Changes = append(p.Changes, Change{Node: sb.Subscriber,
			What: fmt.Sprintf("forget pglogical's sync status of %s for subscription %s (it copied the table before the table left its sets; kept, pglogical would not copy it again)", t, sb.Name),
			SQL:  forgetSyncSQL, Args: []any{sb.Name, t}})
	}
	return nil
}

// waitApply waits until subscription sub, when enabled, has an apply
// worker started since (the change that ended the last one committed after
// it), waking pglogical's manager when it missed the end of the old one
// (applyworker.Wait; measured before that wake: no apply worker, the added
// set's tables not copied after 30 s). meanwhile says what waits for it.
func (r *Runner) waitApply(ctx context.Context, conn *pgx.Conn, sub string, since time.Time, meanwhile string) error {
	wait := r.Wait
	if wait <= 0 {
		wait = time.Minute
	}
	woken, err := applyworker.Wait(ctx, conn, sub, since, wait)
	if errors.Is(err, applyworker.ErrCannotSee) {
		fmt.Fprintf(r.Out, "warning: the new apply worker of subscription %s is not waited for: %v\n", sub, err)
		return nil
	}
	if woken > 0 && err == nil {
		fmt.Fprintf(r.Out, "the apply worker of subscription %s started once pglmon woke pglogical's manager (alter_subscription_enable on the enabled subscription, %d times): the manager had missed the end of the old one\n", sub, woken)
	}
	if errors.Is(err, applyworker.ErrNotStarted) {
		return fmt.Errorf("the apply worker of subscription %s did not start again within %s: %s (pglmon status --subscription %s)", sub, wait, meanwhile, shellword.Quote(sub))
	}
	return err
}

// subscriptionSets are the replication sets of subscription name on the
// subscriber c is connected to (nil: no such subscription, or no pglogical).
func subscriptionSets(ctx context.Context, c *pgx.Conn, name string) ([]string, error) {
	ext, err := one[bool](ctx, c, hasPglogicalSQL)
	if err != nil || !ext {
		return nil, err
	}
	var sets []string
	err = c.QueryRow(ctx, "SELECT coalesce(sub_replication_sets::text[], '{}') FROM pglogical.subscription WHERE sub_name = $1", name).Scan(&sets)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return sets, err
}

// addSets adds to an existing subscription the sets the configuration
// gives it that it lacks, and has pglogical copy their tables (unless
// synchronize_data is false): in one transaction, so that a crash cannot
// leave the sets added and their tables never copied (a re-run would find
// nothing to add). A table pglogical copied for the subscription before it
// left its sets has its sync status forgotten in that transaction too, or
// pglogical would not copy it again (see leftsets.go). A set it has beyond
// those is said, never taken away: that would stop replicating tables
// someone may rely on.
func (r *Runner) addSets(ctx context.Context, conns map[string]*pgx.Conn, tables map[string][]string, left *leftSets, sb config.Subscription, p *Plan) error {
	have, err := subscriptionSets(ctx, conns[sb.Subscriber], sb.Name)
	if err != nil {
		return err
	}
	var added, configured []string
	for _, set := range sb.ReplicationSets {
		if !slices.Contains(have, set) {
			added = append(added, set)
			configured = append(configured, tables[setKey(sb.Provider, set)]...)
		}
	}
	if len(added) > 0 {
		gone, err := left.of(ctx, sb)
		if err != nil {
			return err
		}
		back, err := returning(ctx, conns[sb.Provider], added, configured, gone)
		if err != nil {
			return err
		}
		for _, rel := range back {
			pr, err := busy(ctx, conns[sb.Subscriber], sb, rel)
			if err != nil {
				return err
			}
			if pr != nil {
				p.Problems = append(p.Problems, *pr)
			}
		}
		if !config.Flag(sb.SynchronizeData) {
			for _, set := range added {
				p.Changes = append(p.Changes, Change{Node: sb.Subscriber, What: fmt.Sprintf("add replication set %s to subscription %s", set, sb.Name),
					SQL: "SELECT pglogical.alter_subscription_add_replication_set($1, $2)", Args: []any{sb.Name, set}, restarts: sb.Name})
			}
			if len(back) > 0 {
				p.Warnings = append(p.Warnings, missedWarning(sb, back))
			}
		} else {
			var stmts []string
			what := fmt.Sprintf("add replication set %s to subscription %s and copy the tables not yet synchronized (without TRUNCATE), in one transaction", strings.Join(added, ", "), sb.Name)
			if len(back) > 0 {
				stmts = append(stmts, drift.ForgetSQL(sb.Name, back))
				what += fmt.Sprintf("; first forgets pglogical's sync status of %s, copied before it left the subscription's sets, so that it is copied again", names(back))
			}
			ready, err := unsynced(ctx, conns[sb.Provider], conns[sb.Subscriber], sb, have, back)
			if err != nil {
				return err
			}
			if len(ready) > 0 {
				stmts = append(stmts, readySQL(sb.Name, ready))
				what += fmt.Sprintf("; first marks ready %s, which it replicates already without a sync status (put in a set without its copy, or a column dropped from it: pglogical 2.4.2 then deletes its sync status), so that it is not copied again onto its rows", names(ready))
			}
			for _, set := range added {
				stmts = append(stmts, "SELECT pglogical.alter_subscription_add_replication_set("+pgident.Literal(sb.Name)+", "+pgident.Literal(set)+")")
			}
			// Copies every table of the subscription's sets not yet
			// synchronized (checkCopies refused tables holding rows).
			stmts = append(stmts, "SELECT pglogical.alter_subscription_synchronize("+pgident.Literal(sb.Name)+", false)")
			// No parameters: one simple-protocol query, one transaction.
			p.Changes = append(p.Changes, Change{Node: sb.Subscriber, What: what, SQL: strings.Join(stmts, ";\n"), restarts: sb.Name, copies: sb.Name, copySets: added})
		}
	}
	for _, set := range have {
		if !slices.Contains(sb.ReplicationSets, set) && set != probe.HeartbeatSet { // pglmon heartbeat install's
			p.Warnings = append(p.Warnings, fmt.Sprintf("subscription %s on %s also replicates set %s, which the configuration does not list for it; pglmon does not take a set away (pglogical.alter_subscription_remove_replication_set(%s, %s))",
				sb.Name, sb.Subscriber, set, pgident.Literal(sb.Name), pgident.Literal(set)))
		}
	}
	return nil
}

// Print writes the plan for people; DSNs are shown without passwords.
func (p Plan) Print(w io.Writer) {
	if len(p.Problems) > 0 {
		fmt.Fprintln(w, "Missing prerequisites (nothing will be created until they are fixed):")
		for _, pr := range p.Problems {
			node := pr.Node
			if node == "" {
				node = "all nodes"
			}
			fmt.Fprintf(w, "  - %s: %s\n      fix: %s\n", node, pr.What, pr.Fix)
		}
		return
	}
	if len(p.Changes) == 0 {
		fmt.Fprintln(w, "Nothing to change: the topology is in place.")
	} else {
		fmt.Fprintln(w, "Changes:")
	}
	for i, c := range p.Changes {
		fmt.Fprintf(w, "  %d. on %s: %s\n", i+1, c.Node, c.What)
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
}

// ErrPrerequisitesMissing is what Apply returns, wrapped, when the plan
// has problems: it changed nothing.
var ErrPrerequisitesMissing = errors.New("prerequisites missing")

// Apply makes the plan's changes, waits for new subscriptions to replicate
// and prints the row counts of their tables on both sides.
func (r *Runner) Apply(ctx context.Context) (err error) {
	defer func() {
		if r.run == nil {
			return
		}
		var reason string
		if err != nil {
			reason = err.Error()
		}
		if werr := r.run.End(reason); werr != nil && err == nil {
			err = werr
		}
		r.run = nil
	}()
	if r.RDS.Parameters || r.RDS.Reboot {
		if err := r.applyRDS(ctx); err != nil {
			return err
		}
	}
	p, err := r.Plan(ctx)
	if err != nil {
		return err
	}
	p.Print(r.Out)
	if len(p.Problems) > 0 {
		err := fmt.Errorf("%d %w; nothing was changed", len(p.Problems), ErrPrerequisitesMissing)
		if r.run == nil {
			r.Audit.Refused(r.Actor, repair.RemedySetupApply, "", err.Error())
		}
		return err
	}
	var newSubs, copied []config.Subscription
	var sends []Change
	for _, c := range p.Changes {
		if c.sends != nil {
			// Once the subscriptions replicate their sets (below).
			sends = append(sends, c)
			continue
		}
		if err := r.change(ctx, c); err != nil {
			return err
		}
		if strings.HasPrefix(c.What, "create subscription ") {
			for _, sb := range r.Config.Subscriptions {
				if sb.Name == c.Args[0] {
					newSubs = append(newSubs, sb)
				}
			}
		}
		if c.copies != "" {
			sb := r.subscription(c.copies)
			sb.ReplicationSets = c.copySets
			copied = append(copied, sb)
		}
	}
	var differ []string
	for _, sb := range newSubs {
		if err := r.waitReplicating(ctx, sb); err != nil {
			return err
		}
		differ = append(differ, r.counts(ctx, sb, config.Flag(sb.SynchronizeData))...)
	}
	for _, sb := range copied {
		done, err := r.waitCopied(ctx, sb)
		if err != nil {
			return err
		}
		if done {
			differ = append(differ, r.counts(ctx, sb, true)...)
		}
	}
	for _, tc := range r.tableCopies(p.Changes, newSubs) {
		// Its sync status appears once it applied the set's change.
		if err := r.caughtUpOn(ctx, tc.sb); err != nil {
			return err
		}
		done, err := r.waitCopied(ctx, tc.sb)
		if err != nil {
			return err
		}
		if done {
			differ = append(differ, r.counts(ctx, tc.sb, true, tc.tables...)...)
		}
	}
	for _, c := range sends {
		if err := r.change(ctx, c); err != nil {
			return err
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("%w: %s (pglmon verify --subscription names the rows; pglmon ran no resynchronisation)", ErrCopiesDiffer, strings.Join(differ, ", "))
	}
	return nil
}

// change makes change c, waits for what it ends to start again (and, for
// a sequence's value sent, for the value to arrive), and records it.
func (r *Runner) change(ctx context.Context, c Change) error {
	conn, err := r.connect(ctx, c.Node)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	args := append([]any(nil), c.Args...)
	if c.dsnNode != nil {
		// pglogical stores this DSN and connects with it: it needs the password.
		pw, err := c.dsnNode.ResolvePassword()
		if err != nil {
			return err
		}
		if pw != "" {
			args[1] = c.dsnNode.DSN + " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw.Reveal()) + "'"
		}
	}
	if err := r.beginOnce(); err != nil {
		return err
	}
	start := time.Now()
	if c.copies != "" {
		if err := r.caughtUp(ctx, conn, r.subscription(c.copies)); err != nil {
			return fmt.Errorf("on %s: %s: %w (re-run apply to continue)", c.Node, c.What, err)
		}
	}
	if r.beforeChange != nil {
		r.beforeChange(c)
	}
	// Read after caughtUp, which may have had a worker started: only
	// one started after the change counts.
	var since time.Time
	if c.restarts != "" {
		if since, err = applyworker.Now(ctx, conn); err != nil {
			return fmt.Errorf("on %s: %w", c.Node, err)
		}
	}
	var sent *int64
	if c.sends != nil {
		if sent, err = SequenceValue(ctx, conn, c.Args[0].(string)); err != nil {
			return fmt.Errorf("on %s: %w", c.Node, err)
		}
	}
	senders, err := r.sinceOnSubscribers(ctx, c.senders)
	if err == nil {
		_, err = conn.Exec(ctx, c.SQL, args...)
	}
	if err == nil && c.restarts != "" {
		err = r.waitApply(ctx, conn, c.restarts, since, "pglogical copies the added sets' tables once it runs")
	}
	for _, w := range senders {
		if err == nil {
			err = r.waitApply(ctx, w.conn, w.sub, w.since, "it receives nothing from its provider meanwhile")
		}
		w.conn.Close(ctx)
	}
	if err == nil && c.sends != nil && sent != nil {
		err = r.waitSequence(ctx, c.sends, c.Args[0].(string), *sent)
	}
	if err != nil {
		err = fmt.Errorf("on %s: %s: %w (re-run apply to continue)", c.Node, c.What, probe.RedactError(err, mustPassword(c.dsnNode)))
		r.run.Step(c.Node, c.What, c.SQL, c.Args, time.Since(start), err.Error())
		return err
	}
	// c.Args never hold the password (the configured DSNs cannot).
	r.run.Step(c.Node, c.What, c.SQL, c.Args, time.Since(start), "")
	fmt.Fprintf(r.Out, "done: on %s: %s\n", c.Node, c.What)
	if c.restarts != "" && strings.Contains(c.What, " and copy the tables ") {
		fmt.Fprintf(r.Out, "  pglogical copies them in the background: pglmon status --subscription %s shows each table until it is ready (tables_not_ready)\n", shellword.Quote(c.restarts))
	}
	return nil
}

// ErrCopiesDiffer is Apply's error, wrapped, when every change is made but
// a table pglogical copied holds other than the provider's row count.
var ErrCopiesDiffer = errors.New("applied, but row counts differ after pglogical's copy")

// subscription is the configured subscription name.
// tableCopy is a subscription that copies tables added to its sets.
type tableCopy struct {
	sb     config.Subscription
	tables []string
}

// tableCopies are the configured subscriptions, other than those apply
// creates (their first copy takes the tables), whose provider copies them
// tables the changes add to their sets with the copy.
func (r *Runner) tableCopies(changes []Change, created []config.Subscription) []tableCopy {
	var out []tableCopy
	for _, sb := range r.Config.Subscriptions {
		if slices.ContainsFunc(created, func(c config.Subscription) bool { return c.Name == sb.Name }) {
			continue
		}
		var ts []string
		for _, c := range changes {
			if c.copiedIn != "" && c.Node == sb.Provider && slices.Contains(sb.ReplicationSets, c.copiedIn) {
				ts = append(ts, c.Args[1].(string))
			}
		}
		if len(ts) > 0 {
			out = append(out, tableCopy{sb, ts})
		}
	}
	return out
}

// caughtUpOn is caughtUp on a connection of its own to sb's subscriber.
func (r *Runner) caughtUpOn(ctx context.Context, sb config.Subscription) error {
	conn, err := r.connect(ctx, sb.Subscriber)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return r.caughtUp(ctx, conn, sb)
}

func (r *Runner) subscription(name string) config.Subscription {
	for _, sb := range r.Config.Subscriptions {
		if sb.Name == name {
			return sb
		}
	}
	return config.Subscription{Name: name}
}

// counts prints the row count of each table of subscription sb's sets
// (sb.ReplicationSets; only those named in only, when given) on both sides, and returns, when pglogical copied
// them (copied), those that differ, each with the call that copies it
// again.
func (r *Runner) counts(ctx context.Context, sb config.Subscription, copied bool, only ...string) []string {
	tg := verify.Target{Subscription: sb.Name, Subscriber: sb.Subscriber, Provider: sb.Provider, Sets: sb.ReplicationSets}
	res := verify.Run(ctx, r.Config, tg, verify.Options{Mode: verify.ModeCount}, only...)
	if res.Error != "" {
		fmt.Fprintf(r.Out, "  warning: cannot count the rows of subscription %s: %s\n", sb.Name, res.Error)
	}
	var differ []string
	for _, t := range res.Tables {
		name := t.Spec.Regclass() // as SQL, and setup's configuration, write it
		fmt.Fprintf(r.Out, "  %s: %d rows on %s, %d on %s\n", name, t.ProviderRows, sb.Provider, t.SubscriberRows, sb.Subscriber)
		if copied && t.Error == "" && !t.Equal {
			differ = append(differ, name+" of subscription "+sb.Name)
			fmt.Fprintf(r.Out, "  warning: %s differs after pglogical's copy, which marks a table ready even when its COPY failed (the subscriber's log says why, e.g. duplicate key). To copy it again (TRUNCATES it on %s first):\n    SELECT pglogical.alter_subscription_resynchronize_table(%s, %s);\n",
				name, sb.Subscriber, pgident.Literal(sb.Name), pgident.Literal(name))
		}
	}
	return differ
}

// beginOnce starts the audited attempt at apply's first change: an apply
// that changes nothing is not recorded.
func (r *Runner) beginOnce() error {
	if r.run != nil {
		return nil
	}
	run, err := r.Audit.Begin("", r.Actor, repair.RemedySetupApply, "")
	if err != nil {
		return fmt.Errorf("cannot write the audit log, so nothing is changed: %w", err)
	}
	r.run = run
	return nil
}

func mustPassword(n *config.Node) config.Secret {
	if n == nil {
		return ""
	}
	pw, _ := n.ResolvePassword()
	return pw
}

func (r *Runner) waitReplicating(ctx context.Context, sb config.Subscription) error {
	conn, err := r.connect(ctx, sb.Subscriber)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	wait := r.wait()
	deadline := time.Now().Add(wait)
	for {
		status, err := one[string](ctx, conn, "SELECT status FROM pglogical.show_subscription_status($1)", sb.Name)
		if err != nil {
			return err
		}
		if status == "replicating" {
			fmt.Fprintf(r.Out, "subscription %s on %s is replicating\n", sb.Name, sb.Subscriber)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("subscription %s on %s is %s after %s", sb.Name, sb.Subscriber, status, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// unforwarded warns of a cascade that does not cascade: a subscription
// whose provider receives some of its tables from another subscription,
// while it forwards no changes of other origins (forward_origins: [], the
// configuration's default): what reaches the provider by replication never
// reaches its subscriber (seen with pglogical 2.4.2: the middle node held
// the rows, the last one none, and both subscriptions said replicating).
// Not for changes that would go back to their origin (replication both
// ways, where [] is what stops a loop), nor where the subscriber also
// subscribes to their origin directly (a mesh).
func (r *Runner) unforwarded(tables map[string][]string) []string {
	of := func(sb config.Subscription) []string {
		var ts []string
		for _, set := range sb.ReplicationSets {
			ts = append(ts, tables[setKey(sb.Provider, set)]...)
		}
		return ts
	}
	var out []string
	for _, down := range r.Config.Subscriptions {
		if slices.Contains(down.ForwardOrigins, "all") {
			continue
		}
		for _, up := range r.Config.Subscriptions {
			// Back where they came from (both ways), or there directly (a mesh): not lost.
			direct := slices.ContainsFunc(r.Config.Subscriptions, func(sb config.Subscription) bool {
				return sb.Subscriber == down.Subscriber && sb.Provider == up.Provider
			})
			if up.Subscriber != down.Provider || up.Provider == down.Subscriber || direct {
				continue
			}
			var both []string
			received := of(up)
			for _, t := range of(down) {
				if slices.Contains(received, t) && !slices.Contains(both, t) {
					both = append(both, t)
				}
			}
			if len(both) > 0 {
				out = append(out, fmt.Sprintf("subscription %s: its provider %s receives %s from %s (subscription %s), and %s forwards no changes of other origins (forward_origins: []): those changes never reach %s; set forward_origins: [all] for %s if they should",
					down.Name, down.Provider, strings.Join(both, ", "), up.Provider, up.Name, down.Name, down.Subscriber, down.Name))
			}
		}
	}
	return out
}

// applyDelayDiffers warns when existing subscription sb delays its apply
// by other than the configuration's apply_delay: pglogical 2.4.2 has no
// call that changes it, so apply leaves it.
func applyDelayDiffers(ctx context.Context, c *pgx.Conn, sb config.Subscription) ([]string, error) {
	var ms int64
	if err := c.QueryRow(ctx, "SELECT (extract(epoch FROM sub_apply_delay) * 1000)::bigint FROM pglogical.subscription WHERE sub_name = $1", sb.Name).Scan(&ms); err != nil {
		return nil, fmt.Errorf("read the apply_delay of subscription %s on %s: %w", sb.Name, sb.Subscriber, err)
	}
	have := time.Duration(ms) * time.Millisecond
	if have == sb.ApplyDelay.D().Truncate(time.Millisecond) {
		return nil, nil
	}
	return []string{fmt.Sprintf("subscription %s on %s delays its apply by %s; the configuration says apply_delay: %s: pglogical cannot change it in place, so apply leaves it (to change it, drop the subscription and create it again with synchronize_data: false, while no writes reach its tables)",
		sb.Name, sb.Subscriber, have, sb.ApplyDelay.D())}, nil
}
