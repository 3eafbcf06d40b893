// Package preflight checks, before pglmon is deployed, what it will be able
// to do with its configuration: that every node answers with its
// credentials, that the probe works there, which of pglmon's features the
// role's privileges leave out (and what to grant), whether the server log
// can be read, and, for nodes on RDS, which AWS calls the credentials may
// make; and what the daemon's HTTP server needs to start. It changes
// nothing anywhere.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/slack-go/slack"

	"github.com/pglmon/pglmon/internal/awsclient"
	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/httpsec"
	"github.com/pglmon/pglmon/internal/logtail"
	"github.com/pglmon/pglmon/internal/maintenance"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsadmin"
	"github.com/pglmon/pglmon/internal/rdsstorage"
	"github.com/pglmon/pglmon/internal/seqcompare"
	"github.com/pglmon/pglmon/internal/shellword"
	pslack "github.com/pglmon/pglmon/internal/slack"
	"github.com/pglmon/pglmon/internal/verify"
)

// Level is how a check ended.
type Level string

// Levels, from best to worst.
const (
	OK    Level = "ok"
	Warn  Level = "warn"  // pglmon works with less: a feature is off or blind
	Error Level = "error" // pglmon cannot watch the node
)

func (l Level) rank() int {
	switch l {
	case Error:
		return 2
	case Warn:
		return 1
	}
	return 0
}

// Check is one thing checked on a node.
type Check struct {
	Node   string `json:"node"`
	Check  string `json:"check"`
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
}

// adder returns a function that appends a check about node to out.
func adder(out *[]Check, node string) func(check string, l Level, format string, args ...any) {
	return func(check string, l Level, format string, args ...any) {
		*out = append(*out, Check{Node: node, Check: check, Level: l, Detail: fmt.Sprintf(format, args...)})
	}
}

// Worst is the worst level of checks (OK when none).
func Worst(checks []Check) Level {
	w := OK
	for _, c := range checks {
		if c.Level.rank() > w.rank() {
			w = c.Level
		}
	}
	return w
}

// Run checks every configured node, one after the other, each within
// timeout per step.
func Run(ctx context.Context, cfg *config.Config, timeout time.Duration) []Check {
	var out []Check
	var snaps []probe.Snapshot
	f := awsclient.New(cfg.AWS, awsclient.Options{})
	for _, n := range cfg.Nodes {
		checks, snap := node(ctx, cfg, n, timeout)
		out = append(out, checks...)
		snaps = append(snaps, snap)
		if n.RDS != nil {
			out = append(out, rds(ctx, f, cfg, n, timeout)...)
		}
	}
	out = append(out, verifiable(ctx, cfg, snaps, timeout)...)
	out = append(out, heartbeatCarriers(snaps)...)
	out = append(out, httpChecks(cfg)...)
	out = append(out, maintenanceChecks(cfg, time.Now())...)
	return append(out, slackChecks(ctx, cfg, timeout)...)
}

// heartbeatCarriers warns, as the daemon's heartbeat_carriers finding
// does, of a subscriber that receives a provider's heartbeats through no
// subscription (the carrier dropped or set up again since the install:
// no lost changes are measured there) or through several (each hides the
// others' delay and lost changes). pglmon heartbeat install keeps one.
func heartbeatCarriers(snaps []probe.Snapshot) []Check {
	by := diagnose.HeartbeatCarriers(snaps)
	var out []Check
	for _, s := range snaps {
		for _, f := range by[s.Node] {
			out = append(out, Check{Node: s.Node, Check: "heartbeat carriers", Level: Warn, Detail: f.Message})
		}
	}
	return out
}

// maintenanceChecks says which nodes are under a maintenance window (the
// daemon neither repairs nor posts their subscriptions), and whether the
// file can be read.
func maintenanceChecks(cfg *config.Config, now time.Time) []Check {
	var out []Check
	add := adder(&out, "(maintenance)")
	file := cfg.MaintenanceFile()
	ws, err := maintenance.Load(file)
	if err != nil {
		add("maintenance", Warn, "%v: the daemon keeps the windows it last read", err)
		return out
	}
	act := maintenance.ActiveAt(ws, now)
	nodes := make([]string, 0, len(act))
	for n := range act {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		w := act[n]
		add("maintenance", Warn, "%s is under maintenance until %s (by %s: %s): no automatic repair or Slack message for its subscriptions; `pglmon maintenance end --node %s` ends it",
			n, w.Until.Format(time.RFC3339), w.By, w.Reason, shellword.Quote(n))
	}
	return out
}

// CertificateWarning is how long before its expiry a certificate is warned of.
const CertificateWarning = 14 * 24 * time.Hour

// days says how long d is in days, or hours under two days.
func days(d time.Duration) string {
	if d < 48*time.Hour {
		return fmt.Sprintf("%.0f hours", d.Hours())
	}
	return fmt.Sprintf("%.0f days", d.Hours()/24)
}

// httpChecks checks what the daemon's HTTP server needs to start: its
// certificate and key (and when they expire), the client CA, the bearer
// token; and says when what it serves is open beyond this host.
func httpChecks(cfg *config.Config) []Check {
	var out []Check
	add := adder(&out, "(http)")
	hc := cfg.HTTP
	token, err := hc.BearerToken.Resolve("http.bearer_token")
	switch {
	case err != nil:
		add("bearer token", Error, "%v: the daemon will not start", err)
	case token.Reveal() != "":
		add("bearer token", OK, "readable; /metrics and /api/v1/status need it (Prometheus: authorization.credentials_file)")
	case httpsec.BeyondLoopback(hc.Listen):
		add("bearer token", Warn, "http.listen %s is reachable from other hosts and http.bearer_token is not set: anyone who reaches it reads /metrics and /api/v1/status", hc.Listen)
	}
	if !hc.TLS.Enabled() {
		return out
	}
	cert, err := httpsec.LoadCertificate(hc.TLS, slog.New(slog.DiscardHandler))
	if err != nil {
		add("tls certificate", Error, "%v: the daemon will not start", err)
		return out
	}
	if _, err := httpsec.ServerConfig(hc.TLS, cert); err != nil {
		add("tls client ca", Error, "%v: the daemon will not start", err)
	} else if hc.TLS.ClientCAFile != "" {
		add("tls client ca", OK, "clients must present a certificate signed by %s", hc.TLS.ClientCAFile)
	}
	leaf := cert.Leaf()
	names := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	what := fmt.Sprintf("%s, issued by %s, for %s, expires %s", leaf.Subject, leaf.Issuer, strings.Join(names, ", "), leaf.NotAfter.UTC().Format(time.RFC3339))
	switch left := time.Until(leaf.NotAfter); {
	case left <= 0:
		add("tls certificate", Error, "%s: expired; clients refuse it (write the renewed one over the same files: no restart needed)", what)
	case left < CertificateWarning:
		add("tls certificate", Warn, "%s: expires in %s (write the renewed one over the same files: no restart needed)", what, days(left))
	default:
		add("tls certificate", OK, "%s", what)
	}
	return out
}

// slackChecks checks the Slack tokens: the bot token with auth.test, the
// app token (socket mode) by opening a Socket Mode connection URL, and that
// the signing secret (HTTP mode) can be read. Nothing is posted. Whether
// the bot is in slack.channel is not checked: that needs a scope
// (channels:read) pglmon does not ask for.
func slackChecks(ctx context.Context, cfg *config.Config, timeout time.Duration) []Check {
	sc := cfg.Slack
	if !sc.Enabled() {
		return nil
	}
	var out []Check
	add := adder(&out, "(slack)")
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bot, err := sc.BotToken.Resolve("slack.bot_token")
	if err != nil {
		add("bot token", Error, "%v", err)
		return out
	}
	at, err := pslack.NewClient(sc, bot).AuthTestContext(ctx)
	if err != nil {
		add("bot token", Error, "auth.test: %v: no message can be sent", err)
	} else {
		add("bot token", OK, "valid: bot %s of workspace %s; messages go to %s (the bot must be in that channel: /invite @%s)", at.User, at.Team, sc.Channel, at.User)
	}
	switch sc.Mode {
	case "socket":
		app, err := sc.AppToken.Resolve("slack.app_token")
		if err != nil {
			add("app token", Error, "%v", err)
			break
		}
		api := slack.New(bot.Reveal(), slack.OptionAPIURL(sc.APIURL), slack.OptionAppLevelToken(app.Reveal()))
		if _, _, err := api.StartSocketModeContext(ctx); err != nil {
			add("app token", Error, "apps.connections.open: %v: buttons cannot reach pglmon (the app-level token needs connections:write, and the app Socket Mode turned on)", err)
		} else {
			add("app token", OK, "valid: Socket Mode connects")
		}
	default:
		if _, err := sc.SigningSecret.Resolve("slack.signing_secret"); err != nil {
			add("signing secret", Error, "%v", err)
		} else {
			add("signing secret", OK, "readable; Slack must reach pglmon's /slack/interactions (the app's request URL) for the buttons")
		}
	}
	return out
}

// verifiable checks that the role may read, on both sides, every table
// pglmon verify compares for each subscription.
func verifiable(ctx context.Context, cfg *config.Config, snaps []probe.Snapshot, timeout time.Duration) []Check {
	targets, _ := verify.Targets(snaps, "") // subscriptions without a reachable provider: said by status
	var out []Check
	for _, tg := range targets {
		add, check := adder(&out, tg.Subscriber), "verify "+tg.Subscription
		cctx, cancel := context.WithTimeout(ctx, timeout)
		missing, n, seqs, err := unreadable(cctx, cfg, tg)
		cancel()
		switch {
		case err != nil:
			add(check, Warn, "cannot list what pglmon verify compares: %v", err)
		case len(missing) > 0:
			add(check, Warn, "pglmon verify (and verify.every) cannot read %s: GRANT SELECT on them to the role", strings.Join(missing, ", "))
		default:
			tables := fmt.Sprintf("%d tables", n)
			if n == 1 {
				tables = "1 table"
			}
			add(check, OK, "pglmon verify can read the %s of replication sets %s on both sides", tables, strings.Join(tg.Sets, ", "))
		}
		if err == nil && len(seqs) > 0 {
			add("sequences "+tg.Subscription, Warn, "pglmon may not read the value of %s (PostgreSQL shows it as never used then): the daemon cannot say when the subscriber's is behind (sequence_behind), nor pglmon verify; GRANT SELECT ON SEQUENCE on them to the role", strings.Join(seqs, ", "))
		}
	}
	return out
}

// unreadable lists the tables of tg's sets (verify.exclude left out) the
// role may not SELECT from ("provider t", "subscriber t"), how many tables
// it looked at, and the sequences of the sets whose value the role may not
// read ("s on the subscriber").
func unreadable(ctx context.Context, cfg *config.Config, tg verify.Target) ([]string, int, []string, error) {
	pn, _ := cfg.Node(tg.Provider)
	sn, _ := cfg.Node(tg.Subscriber)
	pc, err := probe.Connect(ctx, pn, time.Minute)
	if err != nil {
		return nil, 0, nil, err
	}
	defer pc.Close(context.WithoutCancel(ctx))
	tables, err := verify.SetTables(ctx, pc, tg.Sets)
	if err != nil {
		return nil, 0, nil, err
	}
	var names []string
	for _, t := range tables {
		if !verify.Excluded(cfg.Verify.Exclude, t.QualifiedName()) {
			names = append(names, pgx.Identifier{t.Schema, t.Name}.Sanitize())
		}
	}
	sc, err := probe.Connect(ctx, sn, time.Minute)
	if err != nil {
		return nil, 0, nil, err
	}
	defer sc.Close(context.WithoutCancel(ctx))
	var missing []string
	for _, side := range []struct {
		name string
		conn *pgx.Conn
	}{{"provider", pc}, {"subscriber", sc}} {
		rows, err := side.conn.Query(ctx, `SELECT t FROM unnest($1::text[]) t
WHERE to_regclass(t) IS NOT NULL AND NOT has_table_privilege(to_regclass(t), 'SELECT')`, names)
		if err != nil {
			return nil, 0, nil, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, 0, nil, err
		}
		for _, t := range got {
			missing = append(missing, side.name+" "+t)
		}
	}
	res, err := seqcompare.Sets(ctx, pc, sc, tg.Sets)
	if err != nil {
		return nil, 0, nil, err
	}
	var seqs []string
	for _, r := range res {
		if r.UnreadableOn != "" {
			seqs = append(seqs, r.Sequence+" on the "+r.UnreadableOn)
		}
	}
	return missing, len(names), seqs, nil
}

// facts is what one query tells of the role and the server.
type facts struct {
	user, version     string
	superuser         bool
	rdsSuperuser      *bool // nil: not RDS (no rds_superuser role)
	readAllStats      bool
	pglogical         *string
	inRecovery        bool
	database          string
	originStatusGrant bool
	lcMessages        string
	// heartbeatGrant: the role may read, write and prune pglmon.heartbeat
	// (nil: no such table). Read from the catalog: to_regclass does not
	// see a table in a schema the role may not use.
	heartbeatGrant *bool
	// positionsGrant: the same for pglmon.heartbeat_position (nil: no such
	// table; installed by an earlier pglmon).
	positionsGrant *bool
}

const factsQuery = `SELECT current_user, current_setting('server_version'), current_database(),
  (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
  (SELECT pg_has_role(current_user, oid, 'member') FROM pg_roles WHERE rolname = 'rds_superuser'),
  pg_has_role(current_user, 'pg_read_all_stats', 'member'),
  (SELECT extversion FROM pg_extension WHERE extname = 'pglogical'),
  pg_is_in_recovery(),
  has_function_privilege('pg_show_replication_origin_status()', 'EXECUTE'),
  current_setting('lc_messages'),
  (SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
	AND has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'DELETE')
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pglmon' AND c.relname = 'heartbeat'),
  (SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
	AND has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'DELETE')
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pglmon' AND c.relname = 'heartbeat_position')`

// lockTimeoutQuery says where a lock_timeout that reaches pglogical's
// background workers is set for them: for this database or every
// database, for every role or the bootstrap superuser they run as
// (pg_db_role_setting); "" for neither.
const lockTimeoutQuery = `SELECT coalesce(string_agg(CASE WHEN s.setdatabase = 0 THEN 'every database' ELSE 'database ' || d.datname END
		|| CASE WHEN s.setrole = 0 THEN '' ELSE ', role ' || r.rolname END || ': ' || c, '; '), '')
	FROM pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS c
	LEFT JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
	WHERE c LIKE 'lock\_timeout=%' AND c NOT IN ('lock_timeout=0', 'lock_timeout=0ms')
		AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
		AND s.setrole IN (0, 10)`

// fileLockTimeoutQuery reads lock_timeout from the server's configuration
// files (postgresql.conf and what ALTER SYSTEM writes), where the role may
// read pg_file_settings (a superuser): pglmon's own session sets
// lock_timeout, so pg_settings shows its value, not the server's.
const fileLockTimeoutQuery = `SELECT coalesce((SELECT 'the server''s configuration (' || sourcefile || '): lock_timeout=' || setting
	FROM pg_file_settings WHERE name = 'lock_timeout' AND applied AND setting NOT IN ('0', '0ms') ORDER BY seqno DESC LIMIT 1), '')`

// lockTimeoutSet says where a lock_timeout reaching pglogical's workers
// is set ("" for nowhere pglmon's role can see).
func lockTimeoutSet(ctx context.Context, conn *pgx.Conn) (string, error) {
	var roles string
	if err := conn.QueryRow(ctx, lockTimeoutQuery).Scan(&roles); err != nil {
		return "", err
	}
	var readable bool
	if err := conn.QueryRow(ctx, "SELECT has_function_privilege('pg_show_all_file_settings()', 'EXECUTE')").Scan(&readable); err != nil {
		return "", err
	}
	file := ""
	if readable {
		if err := conn.QueryRow(ctx, fileLockTimeoutQuery).Scan(&file); err != nil {
			return "", err
		}
	}
	var set []string
	for _, w := range []string{roles, file} {
		if w != "" {
			set = append(set, w)
		}
	}
	return strings.Join(set, "; "), nil
}

func node(ctx context.Context, cfg *config.Config, n config.Node, timeout time.Duration) ([]Check, probe.Snapshot) {
	var out []Check
	snap := probe.Snapshot{Node: n.Name, Err: errors.New("not probed")}
	add := adder(&out, n.Name)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := probe.Connect(cctx, n, timeout)
	if err != nil {
		add("connect", Error, "%v", err)
		return out, snap
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var fa facts
	if err := conn.QueryRow(cctx, factsQuery).Scan(&fa.user, &fa.version, &fa.database, &fa.superuser, &fa.rdsSuperuser,
		&fa.readAllStats, &fa.pglogical, &fa.inRecovery, &fa.originStatusGrant, &fa.lcMessages, &fa.heartbeatGrant, &fa.positionsGrant); err != nil {
		add("connect", Error, "connected, but cannot read the server's settings: %v", err)
		return out, snap
	}
	ext := "pglogical not installed"
	if fa.pglogical != nil {
		ext = "pglogical " + *fa.pglogical
	}
	add("connect", OK, "as %s to database %s: PostgreSQL %s, %s", fa.user, fa.database, strings.Fields(fa.version)[0], ext)

	pr := probe.NewProber(n, timeout)
	snap = pr.Probe(ctx)
	pr.Close(context.WithoutCancel(ctx))
	if snap.Err != nil {
		add("probe", Error, "%v", snap.Err)
	} else {
		role := "no pglogical node"
		if snap.LocalNode != "" {
			role = "pglogical node " + snap.LocalNode
		}
		add("probe", OK, "%s, %d subscriptions, %d replication slots", role, len(snap.Subscriptions), len(snap.Slots))
	}
	// The library's version (what the server runs), not the extension's SQL
	// objects' (extversion), which lags it until ALTER EXTENSION UPDATE.
	var lib string
	if fa.pglogical != nil && snap.Err == nil && snap.ServerVersion >= 150000 {
		if err := conn.QueryRow(cctx, "SELECT pglogical.pglogical_version()").Scan(&lib); err != nil {
			add("pglogical version", Warn, "cannot read pglogical's library version (pglogical.pglogical_version()): %v", err)
		}
	}
	switch {
	case lib == "":
	case diagnose.IgnoresBarriers(lib):
		add("pglogical version", Warn, "pglogical %s on PostgreSQL %d: its supervisor and apply workers do not accept a ProcSignalBarrier by themselves (fixed in 2.4.6), so a DROP DATABASE, DROP TABLESPACE or ALTER DATABASE SET TABLESPACE on this server can wait for ever; pglmon reports it (signal_barrier_stuck, with the process to end) but cannot prevent it: upgrade pglogical to 2.4.6+ (RDS: it comes with a newer engine minor version), and never cancel a waiting DROP DATABASE", lib, snap.ServerVersion/10000)
	default:
		add("pglogical version", OK, "pglogical %s accepts ProcSignalBarriers (a DROP DATABASE does not wait for its workers)", lib)
	}
	if fa.pglogical == nil {
		add("pglogical", Warn, "the pglogical extension is not installed in database %s: nothing to watch here until it is (pglmon setup apply creates it)", fa.database)
	}
	if fa.inRecovery {
		add("recovery", Warn, "the server is a standby (in recovery): pglogical runs on primaries; point the node's dsn at the primary (RDS: the instance endpoint, not a read replica)")
	}

	admin := fa.superuser || (fa.rdsSuperuser != nil && *fa.rdsSuperuser)
	var active []string
	for _, r := range append(config.Remedies[:len(config.Remedies):len(config.Remedies)], config.RemedyDropOrphanSlot) {
		if p := cfg.Repair.Policy[r]; p == config.PolicyAuto || p == config.PolicyApprove {
			active = append(active, r+"="+p)
		}
	}
	switch {
	case admin:
		kind := "a superuser"
		if !fa.superuser {
			kind = "a member of rds_superuser"
		}
		add("privileges", OK, "%s is %s: status, repairs, setup and upgrade can run", fa.user, kind)
	case len(active) > 0:
		add("privileges", Warn, "%s is not a superuser (nor rds_superuser): the daemon's repairs (repair.policy %s) will fail; connect as one, or set those policies to off for a watching-only role", fa.user, strings.Join(active, ", "))
	default:
		add("privileges", OK, "%s is a watching-only role and every repair policy is off: status and the daemon can run; repair, setup and upgrade need a superuser", fa.user)
	}
	if !admin && !fa.readAllStats {
		add("pg_read_all_stats", Warn, "%s lacks pg_read_all_stats (GRANT pg_monitor TO %s): pglmon cannot count background workers (worker_slots_exhausted), show copy progress, name the session blocking an apply worker or the open transaction holding a slot's WAL, nor tell a subscription whose connection hangs (not_streaming)", fa.user, fa.user)
	}
	if !admin && !fa.originStatusGrant {
		add("replication origins", Warn, "%s may not execute pg_show_replication_origin_status(): GRANT EXECUTE ON FUNCTION pg_show_replication_origin_status() TO %s", fa.user, fa.user)
	}

	if snap.Err == nil && len(snap.Subscriptions) > 0 {
		if set, err := lockTimeoutSet(cctx, conn); err != nil {
			add("lock_timeout", Warn, "cannot read where lock_timeout is set: %v", err)
		} else if set != "" {
			add("lock_timeout", Warn, "lock_timeout is set for pglogical's workers here too (%s): an apply worker blocked by a session's lock gives up after it and is started again about every 5 s, for as long as the lock is held, instead of waiting (apply_blocked, measured with pglogical 2.4.2); set it for the roles of the applications and migrations instead (ALTER ROLE app SET lock_timeout = ...), not for the database or the server", set)
		}
	}
	if g := fa.heartbeatGrant; g != nil {
		what := "receives heartbeats (prunes them every 10 minutes)"
		if snap.Heartbeat != nil && snap.Heartbeat.Provides {
			what = "provides heartbeats (the daemon writes one each cycle)"
		}
		switch pg := fa.positionsGrant; {
		case !*g || pg != nil && !*pg:
			tables := "pglmon.heartbeat"
			if pg != nil {
				tables += ", pglmon.heartbeat_position"
			}
			add("heartbeat", Warn, "%s may not read, write and prune %s, which %s: replication_delay is not measured; GRANT USAGE ON SCHEMA pglmon TO %s; GRANT SELECT, INSERT, DELETE ON %s TO %s",
				fa.user, tables, what, fa.user, tables, fa.user)
		case pg == nil:
			add("heartbeat", Warn, "pglmon.heartbeat %s, but pglmon.heartbeat_position is missing (installed by an earlier pglmon): the delay of a subscription that does not carry the heartbeats is not read from its slot; run pglmon heartbeat install again, then GRANT SELECT, INSERT, DELETE ON pglmon.heartbeat_position TO %s",
				what, fa.user)
		default:
			add("heartbeat", OK, "pglmon.heartbeat: %s", what)
		}
	}
	if n.LogSource() == config.ServerLogOff {
		add("server log", OK, "not read (server_log: off): a down subscription's finding will not quote its worker's error")
		return out, snap
	}
	lctx, lcancel := context.WithTimeout(ctx, timeout)
	chunk, err := logtail.Read(lctx, cfg, n)
	lcancel()
	file := chunk.File
	switch {
	case snap.Err == nil && len(snap.Subscriptions) == 0 && err != nil:
		// Read only to name the process a waiting DROP DATABASE waits for:
		// not being able to is no warning.
		add("server log", OK, "no subscriptions here, so only signal_barrier_stuck would read it (to name the process a waiting DROP DATABASE waits for; it lists the candidates instead): not readable: %v", err)
		return out, snap
	case snap.Err == nil && len(snap.Subscriptions) == 0:
		add("server log", OK, "readable: %s (no subscriptions here: read only to name the process a waiting DROP DATABASE waits for)", file)
		return out, snap
	case err != nil:
		add("server log", Warn, "%v", err)
	default:
		lctx, lcancel := context.WithTimeout(ctx, timeout)
		err := logtail.ListRotated(lctx, cfg, n)
		lcancel()
		if err != nil {
			add("server log", Warn, "readable: %s, but %s may not list the log directory (pg_ls_logdir: %v): the files the log rotates through between two reads are not read, and the conflicts and failed copies in them not seen; GRANT pg_monitor TO %s",
				file, fa.user, err, fa.user)
		} else {
			add("server log", OK, "readable: %s", file)
		}
	}
	if !englishMessages(fa.lcMessages) {
		add("lc_messages", Warn, "lc_messages is %q: pglmon recognises the log's apply errors and conflicts by their English text; set lc_messages = 'C' on this server (RDS: the parameter group; it takes effect without a restart)", fa.lcMessages)
	}
	return out, snap
}

// englishMessages reports whether lc_messages gives the server's messages in
// English ("" is the server's environment, normally C here).
func englishMessages(lc string) bool {
	l := strings.ToLower(lc)
	return l == "" || l == "c" || l == "posix" || strings.HasPrefix(l, "c.") || strings.HasPrefix(l, "en")
}

// rds checks the AWS calls pglmon makes for a node with rds: (its log is
// read through the RDS API by the "server log" check).
func rds(ctx context.Context, f *awsclient.Factory, cfg *config.Config, n config.Node, timeout time.Duration) []Check {
	var out []Check
	add := adder(&out, n.Name)
	id := n.RDS.Identifier
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc, err := rdsadmin.ForNode(cctx, f, cfg, n)
	if err != nil {
		add("rds", Error, "%v", err)
		return out
	}
	in, err := rc.Describe(cctx, id)
	if err != nil {
		add("rds", Error, "%v (rds:DescribeDBInstances: the RDS status of an unreachable node and the storage are unknown)", err)
		return out
	}
	add("rds", OK, "instance %s: %s %s, %s, parameter group %s", id, in.Engine, in.EngineVersion, in.Status, in.ParameterGroup)
	if cfg.AWS.RDSCheckEvery.D() > 0 {
		if ch, err := rc.CheckParameters(cctx, id); err != nil {
			add("rds parameters", Warn, "%v (rds:DescribeDBParameters: rds_parameters_missing cannot be checked)", err)
		} else if p := ch.Problems(); len(p) > 0 {
			add("rds parameters", Warn, "%s (fix: pglmon setup apply --rds-parameters --reboot, in a maintenance window)", strings.Join(p, "; "))
		} else {
			add("rds parameters", OK, "parameter group %s has pglogical and rds.logical_replication", in.ParameterGroup)
		}
	}
	if cfg.AWS.StorageCheckEvery.D() > 0 {
		st, err := rdsstorage.ReadNode(cctx, f, cfg, n, time.Now())
		switch {
		case errors.Is(err, rdsstorage.ErrAurora):
			add("rds storage", OK, "Aurora: the cluster volume grows by itself; not watched")
		case err != nil:
			add("rds storage", Warn, "%v (cloudwatch:GetMetricData: storage_low is off)", err)
		default:
			add("rds storage", OK, "%s free of %s (%.1f%%)", config.FormatBytes(int64(st.FreeBytes)), config.FormatBytes(st.AllocatedBytes), st.FreePercent())
		}
	}
	return out
}
