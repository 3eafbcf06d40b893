package upgrade

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/pgident"
	"github.com/pglmon/pglmon/internal/probe"
)

// Problem is something on a node that the major-version upgrade's pre-check
// (RDS) or pg_upgrade refuses, or that prepare cannot take apart itself.
type Problem struct {
	// Kind: replication_slot, invalid_database, database_disallows_connections,
	// template_database, prepared_transaction, reg_type_column,
	// extension_outdated, database_not_checked, restore_password,
	// column_type, target_version, target_parameter_group, instance_class.
	Kind     string `json:"kind"`
	Object   string `json:"object"`
	Database string `json:"database,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix"`
	// Blocking problems make prepare refuse (before it drops anything);
	// the others are said and left to the person running it.
	Blocking bool `json:"blocking"`
}

// Readiness is what `pglmon upgrade check` found on a node.
type Readiness struct {
	Node string `json:"node"`
	// Ready: no blocking problem.
	Ready    bool      `json:"ready"`
	Problems []Problem `json:"problems"`
	// PrepareDrops is what prepare would drop, in its order.
	PrepareDrops []string `json:"prepare_drops"`
}

// Check reads, without changing anything, what would stop the upgrade of
// node and what prepare would drop.
func (r *Runner) Check(ctx context.Context, node string) (*Readiness, error) {
	local, err := r.hasLocalNode(ctx, node)
	if err != nil {
		return nil, err
	}
	// Without a pglogical node (never set up, or prepare has run) there is
	// nothing for prepare to drop; the rest is checked all the same.
	m := &Manifest{Node: node}
	if local {
		if m, err = r.record(ctx, node); err != nil {
			return nil, err
		}
	}
	problems, leftovers, err := r.problems(ctx, node, m)
	if err != nil {
		return nil, err
	}
	// Empty lists, not null, in the JSON.
	out := &Readiness{Node: node, Ready: true, Problems: append([]Problem{}, problems...), PrepareDrops: []string{}}
	for _, p := range problems {
		if p.Blocking {
			out.Ready = false
		}
	}
	for _, s := range m.Subscriptions {
		out.PrepareDrops = append(out.PrepareDrops, fmt.Sprintf("subscription %s on %s (and its slot %s on %s)", s.Name, s.Subscriber, s.SlotName, s.Provider))
	}
	for _, n := range m.Nodes {
		out.PrepareDrops = append(out.PrepareDrops, fmt.Sprintf("pglogical node %s on %s", n.Name, n.ConfigNode))
	}
	for _, s := range leftovers {
		out.PrepareDrops = append(out.PrepareDrops, fmt.Sprintf("leftover slot %s on %s", s, node))
	}
	return out, nil
}

// hasLocalNode reports whether node has pglogical with a local node.
func (r *Runner) hasLocalNode(ctx context.Context, node string) (bool, error) {
	conn, err := r.connect(ctx, node)
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	ext, err := exists(ctx, conn, hasPglogical)
	if err != nil || !ext {
		return false, err
	}
	return exists(ctx, conn, "SELECT EXISTS (SELECT 1 FROM pglogical.local_node)")
}

const (
	checkSlotsQuery = `SELECT s.slot_name::text, s.slot_type, coalesce(s.plugin::text, ''), coalesce(s.database::text, ''),
		coalesce(s.database = current_database(), false), s.active,
		coalesce((SELECT nullif(concat_ws(' from ', nullif(r.application_name, ''), host(r.client_addr)), '')
			FROM pg_stat_replication r WHERE r.pid = s.active_pid), '')
		FROM pg_replication_slots s ORDER BY 1`
	invalidDatabasesQuery = `SELECT datname::text FROM pg_database WHERE datconnlimit = -2 ORDER BY 1`
	// rdsadmin is RDS's own database, which it upgrades itself.
	closedDatabasesQuery = `SELECT datname::text FROM pg_database
		WHERE NOT datallowconn AND datconnlimit <> -2 AND datname NOT IN ('template0', 'rdsadmin') ORDER BY 1`
	templatesQuery = `SELECT t.name, d.datname IS NOT NULL, coalesce(d.datistemplate, false), coalesce(d.datallowconn, false)
		FROM (VALUES ('template0'), ('template1')) t(name) LEFT JOIN pg_database d ON d.datname = t.name ORDER BY 1`
	preparedQuery = `SELECT gid, database::text, owner::text, extract(epoch FROM now() - prepared)::bigint
		FROM pg_prepared_xacts ORDER BY prepared`
	checkedDatabasesQuery = `SELECT datname::text FROM pg_database
		WHERE datallowconn AND datconnlimit <> -2 AND datname NOT IN ('template0', 'rdsadmin') ORDER BY 1`
	// The reg* types pg_upgrade cannot carry (their values are OIDs it does
	// not preserve); regclass, regrole and regtype it can. Columns of such a
	// type, an array of it or a domain over it, in tables and materialized
	// views (an index follows its table).
	regColumnsQuery = `WITH regs AS (
			SELECT to_regtype(n)::oid AS oid FROM unnest(ARRAY['regproc', 'regprocedure', 'regoper', 'regoperator',
				'regconfig', 'regdictionary', 'regnamespace', 'regcollation']) n WHERE to_regtype(n) IS NOT NULL)
		SELECT format('%I.%I', n.nspname, c.relname), quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		JOIN pg_type t ON t.oid = a.atttypid
		WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			AND (t.oid IN (SELECT oid FROM regs) OR t.typelem IN (SELECT oid FROM regs) OR t.typbasetype IN (SELECT oid FROM regs))
		ORDER BY 1, 2`
	// Extensions whose installed version is not the one this server's
	// files install by default: an ALTER EXTENSION UPDATE not run after a
	// minor-version upgrade brought newer files.
	outdatedExtensionsQuery = `SELECT e.extname::text, e.extversion, a.default_version
		FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
		WHERE a.default_version IS NOT NULL AND e.extversion <> a.default_version
		ORDER BY 1`
)

// postgisFamily are the extensions AWS names as the most common reason its
// major-version pre-check refuses: PostGIS and those that depend on it,
// when not updated to the version the current engine offers.
var postgisFamily = []string{"postgis", "postgis_raster", "postgis_topology", "postgis_tiger_geocoder",
	"postgis_sfcgal", "address_standardizer", "address_standardizer_data_us"}

// extensionProblem is an extension of db installed at a version other
// than the server's default.
func extensionProblem(db, name, installed, def string) Problem {
	p := Problem{Kind: "extension_outdated", Object: name, Database: db,
		Message: fmt.Sprintf("extension %s in database %s is at version %s; this server's files install %s", name, db, installed, def),
		Fix:     fmt.Sprintf("connected to database %s: ALTER EXTENSION %s UPDATE; (the upgrade does not update extensions; check what the new version changes first)", db, ident(name))}
	switch {
	case slices.Contains(postgisFamily, name):
		p.Blocking = true
		p.Message += ": the RDS pre-check refuses PostGIS and the extensions that depend on it at a version older than the engine offers"
		p.Fix = fmt.Sprintf("connected to database %s: SELECT postgis_extensions_upgrade(); (PostGIS 2.5+; before that, ALTER EXTENSION ... UPDATE for each PostGIS extension), then check again", db)
	case name == "pglogical":
		p.Message += ": pglogical's library is the newer one already, its SQL objects are not (on PostgreSQL 15, pglogical before 2.4.6 can make a DROP DATABASE wait for ever: signal_barrier_stuck)"
	default:
		p.Message += ": the upgrade keeps it at that version, and AWS asks for extensions to be current before a major-version upgrade"
	}
	return p
}

// problems lists what stops the upgrade of node, given the manifest m of
// what prepare drops; leftovers are the inactive pglogical slots prepare
// drops besides those of m's subscriptions.
func (r *Runner) problems(ctx context.Context, node string, m *Manifest) (problems []Problem, leftovers []string, err error) {
	conn, err := r.connect(ctx, node)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(ctx)
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, nil, err
	}
	ours := map[string]bool{}
	for _, s := range m.Subscriptions {
		if s.Provider == node {
			ours[s.SlotName] = true
		}
	}
	add := func(p Problem) { problems = append(problems, p) }

	rows, err := conn.Query(ctx, checkSlotsQuery)
	if err != nil {
		return nil, nil, fmt.Errorf("read the replication slots of %s: %w", node, err)
	}
	type slot struct {
		name, typ, plugin, db string
		here, active          bool
		consumer              string
	}
	var slots []slot
	for rows.Next() {
		var s slot
		if err := rows.Scan(&s.name, &s.typ, &s.plugin, &s.db, &s.here, &s.active, &s.consumer); err != nil {
			return nil, nil, err
		}
		slots = append(slots, s)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for _, s := range slots {
		used := "inactive"
		if s.active {
			used = "in use"
			if s.consumer != "" {
				used += " by " + s.consumer
			}
		}
		switch {
		case s.typ != "logical":
			// pg_upgrade does not carry physical slots, and the pre-check
			// does not ask about them; prepare says so at its end.
		case s.plugin == pglogicalPlugin && s.here && ours[s.name]:
		case s.plugin == pglogicalPlugin && s.here && !s.active:
			leftovers = append(leftovers, s.name)
		case s.plugin == pglogicalPlugin && s.here:
			add(Problem{Kind: "replication_slot", Object: s.name, Database: s.db,
				Message: fmt.Sprintf("pglogical slot %s is %s, and no subscription of a configured node uses it (a table's copy in progress holds a slot of its own for a while): prepare drops only inactive leftover slots, so it stays and the upgrade's pre-check refuses", s.name, used),
				Fix:     "drop the subscription on its subscriber (pglogical.drop_subscription), or add the subscriber to the configuration so prepare drops it"})
		case s.plugin == pglogicalPlugin:
			add(Problem{Kind: "replication_slot", Object: s.name, Database: s.db,
				Message: fmt.Sprintf("pglogical slot %s (%s) belongs to database %s, which this node's prepare does not take apart", s.name, used, s.db),
				Fix:     fmt.Sprintf("configure a node for database %s of the same server and run upgrade prepare for it as well, before the upgrade", s.db)})
		case version >= 170000:
			add(Problem{Kind: "replication_slot", Object: s.name, Database: s.db,
				Message: fmt.Sprintf("logical slot %s (plugin %s, database %s, %s) is not pglogical's: pg_upgrade from PostgreSQL 17 carries it across only once its consumer has confirmed all WAL", s.name, s.plugin, s.db, used),
				Fix:     "stop its consumer before the upgrade, after it has caught up"})
		default:
			add(Problem{Kind: "replication_slot", Object: s.name, Database: s.db, Blocking: true,
				Message: fmt.Sprintf("logical slot %s (plugin %s, database %s, %s) is not pglogical's, and the upgrade's pre-check refuses while any logical slot exists", s.name, s.plugin, s.db, used),
				Fix:     fmt.Sprintf("find what reads it; once it no longer needs the slot: SELECT pg_drop_replication_slot(%s); (its consumer must start again from a new slot after the upgrade)", pgident.Literal(s.name))})
		}
	}

	names, err := strings1(ctx, conn, invalidDatabasesQuery)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range names {
		add(Problem{Kind: "invalid_database", Object: d, Blocking: true,
			Message: fmt.Sprintf("database %s is invalid (datconnlimit -2): a DROP DATABASE was interrupted; nobody can connect to it, and the upgrade's pre-check refuses", d),
			Fix:     fmt.Sprintf("DROP DATABASE %s; (on PostgreSQL 15 with pglogical older than 2.4.6 it can wait for pglogical's workers: see signal_barrier_stuck)", ident(d))})
	}
	names, err = strings1(ctx, conn, closedDatabasesQuery)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range names {
		add(Problem{Kind: "database_disallows_connections", Object: d, Blocking: true,
			Message: fmt.Sprintf("database %s does not allow connections (datallowconn false): pg_upgrade refuses, as it could not restore it", d),
			Fix:     fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true; (or drop it)", ident(d))})
	}
	rows, err = conn.Query(ctx, templatesQuery)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var name string
		var found, template, allowConn bool
		if err := rows.Scan(&name, &found, &template, &allowConn); err != nil {
			return nil, nil, err
		}
		switch {
		case !found:
			add(Problem{Kind: "template_database", Object: name, Blocking: true,
				Message: fmt.Sprintf("database %s does not exist: pg_upgrade needs it", name),
				Fix:     fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 IS_TEMPLATE true;", name)})
		case !template:
			add(Problem{Kind: "template_database", Object: name, Blocking: true,
				Message: fmt.Sprintf("database %s is not marked as a template (datistemplate false): the upgrade needs it to be", name),
				Fix:     fmt.Sprintf("ALTER DATABASE %s IS_TEMPLATE true;", name)})
		case name == "template0" && allowConn:
			add(Problem{Kind: "template_database", Object: name, Blocking: true,
				Message: "template0 allows connections: pg_upgrade refuses",
				Fix:     "ALTER DATABASE template0 ALLOW_CONNECTIONS false;"})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = conn.Query(ctx, preparedQuery)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var gid, db, owner string
		var age int64
		if err := rows.Scan(&gid, &db, &owner, &age); err != nil {
			return nil, nil, err
		}
		add(Problem{Kind: "prepared_transaction", Object: gid, Database: db, Blocking: true,
			Message: fmt.Sprintf("prepared transaction %s (database %s, owner %s) has waited %ds for its COMMIT PREPARED: the upgrade's pre-check refuses while any exists, and it holds its locks and the xmin horizon meanwhile", pgident.Literal(gid), db, owner, age),
			Fix:     fmt.Sprintf("connected to database %s, once you know what its application meant: COMMIT PREPARED %s; or ROLLBACK PREPARED %s;", db, pgident.Literal(gid), pgident.Literal(gid))})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	each, err := r.eachDatabase(ctx, node, conn)
	if err != nil {
		return nil, nil, err
	}
	problems = append(problems, each...)
	problems = append(problems, r.typeProblems(ctx, node, m)...)
	// A self-managed node's target version is for typeProblems alone.
	if n, _ := r.Config.Node(node); r.Target.set() && (n.RDS != nil || r.Target.ParameterGroup != "") {
		target, err := r.targetProblems(ctx, n)
		if err != nil {
			return nil, nil, err
		}
		problems = append(problems, target...)
	}
	return append(problems, r.restorePasswords(m)...), leftovers, nil
}

// restorePasswords says, before anything is dropped, which connection
// strings restore will not be able to give pglogical back: the manifest
// keeps none of their passwords, so restore takes them from the
// configuration, and found missing only then, replication stays down.
func (r *Runner) restorePasswords(m *Manifest) []Problem {
	var out []Problem
	seen := map[string]bool{}
	check := func(node, what string) {
		if seen[node+what] {
			return
		}
		seen[node+what] = true
		if node == "" {
			out = append(out, Problem{Kind: "restore_password", Object: what,
				Message: fmt.Sprintf("restore could not re-create %s: its connection string held a password, which the manifest does not keep, and its provider is not a configured node", what),
				Fix:     "add the provider to the configuration's nodes, with its password:, before running prepare"})
			return
		}
		if _, err := r.withPassword("", true, node); err != nil {
			out = append(out, Problem{Kind: "restore_password", Object: node,
				Message: fmt.Sprintf("restore could not re-create %s: %v", what, err),
				Fix:     fmt.Sprintf("configure a password pglogical can keep for node %s (password: env, file or secrets_manager; not rds_iam) before running restore", node)})
		}
	}
	for _, n := range m.Nodes {
		if n.PasswordRemoved {
			check(n.ConfigNode, "pglogical node "+n.Name+"'s interface")
		}
	}
	for _, s := range m.Subscriptions {
		if s.PasswordRemoved {
			check(s.Provider, "subscription "+s.Name+"'s connection to its provider")
		}
	}
	return out
}

// eachDatabase looks for reg* columns and outdated extensions in every
// database of the server pglmon can connect to (pg_upgrade checks them
// all); a database it cannot reach is said, not skipped silently.
func (r *Runner) eachDatabase(ctx context.Context, node string, conn *pgx.Conn) ([]Problem, error) {
	dbs, err := strings1(ctx, conn, checkedDatabasesQuery)
	if err != nil {
		return nil, err
	}
	n, _ := r.Config.Node(node)
	var out []Problem
	for _, db := range dbs {
		c := conn
		if db != conn.Config().Database {
			cfg, err := probe.ConnConfig(n, r.timeout())
			if err != nil {
				return nil, err
			}
			cfg.Database = db
			if c, err = probe.Open(ctx, n, cfg); err != nil {
				out = append(out, Problem{Kind: "database_not_checked", Object: db, Database: db,
					Message: fmt.Sprintf("database %s was not checked for reg* columns: %v", db, err),
					Fix:     fmt.Sprintf("let pglmon's role connect to it (GRANT CONNECT ON DATABASE %s, if that is what is missing), or check it by hand for columns of the types pglmon's README lists under upgrade check", ident(db))})
				continue
			}
		}
		rows, err := c.Query(ctx, regColumnsQuery)
		if err != nil {
			if c != conn {
				c.Close(ctx)
			}
			return nil, fmt.Errorf("look for reg* columns in database %s on %s: %w", db, node, err)
		}
		for rows.Next() {
			var table, column, typ string
			if err := rows.Scan(&table, &column, &typ); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, Problem{Kind: "reg_type_column", Object: table + "." + column, Database: db, Blocking: true,
				Message: fmt.Sprintf("column %s of %s in database %s has type %s, whose values are OIDs pg_upgrade does not preserve: the upgrade refuses", column, table, db, typ),
				Fix:     fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE text USING %s::text; (in database %s; or drop the column)", table, column, column, db)})
		}
		err = rows.Err()
		if err == nil {
			var exts []Problem
			exts, err = outdatedExtensions(ctx, c, db)
			out = append(out, exts...)
		}
		if c != conn {
			c.Close(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("database %s on %s: %w", db, node, err)
		}
	}
	return out, nil
}

// outdatedExtensions lists the extensions of the database conn is connected
// to whose installed version is not the server's default.
func outdatedExtensions(ctx context.Context, conn *pgx.Conn, db string) ([]Problem, error) {
	rows, err := conn.Query(ctx, outdatedExtensionsQuery)
	if err != nil {
		return nil, fmt.Errorf("read its extensions: %w", err)
	}
	var out []Problem
	var name, installed, def string
	_, err = pgx.ForEachRow(rows, []any{&name, &installed, &def}, func() error {
		out = append(out, extensionProblem(db, name, installed, def))
		return nil
	})
	return out, err
}

const pglogicalPlugin = "pglogical_output"

// strings1 runs a query returning one text column.
func strings1(ctx context.Context, conn *pgx.Conn, query string) ([]string, error) {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ident quotes s as an SQL identifier.
func ident(s string) string { return pgx.Identifier{s}.Sanitize() }
