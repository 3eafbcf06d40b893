package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/awstest"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/logtail"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/rdsadmin"
	"github.com/pglmon/pglmon/internal/slacktest"
)

type preflightJSON struct {
	Result string
	Checks []struct{ Node, Check, Level, Detail string }
}

func checkConnect(t *testing.T, cfg string) (int, preflightJSON, string) {
	t.Helper()
	code, out, errOut := pglmon(t, "check-config", "--config", cfg, "--connect", "--output", "json")
	var p preflightJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("exit %d, not JSON: %v\n%s\n%s", code, err, out, errOut)
	}
	return code, p, out
}

// check returns the level and detail of a node's check ("" when absent).
func (p preflightJSON) check(node, check string) (string, string) {
	for _, c := range p.Checks {
		if c.Node == node && c.Check == check {
			return c.Level, c.Detail
		}
	}
	return "", ""
}

// check-config --connect says, per node, what pglmon can do with its
// configuration: a superuser can do everything (exit 0); a watching-only role
// without pg_monitor while repairs are on gets the two warnings (exit 1); a
// node that does not answer is an error (exit 2) and the others are still
// checked. Nothing is changed anywhere.
func TestCheckConfigConnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	p.MustConverge(t, time.Minute)
	noLog := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.ReplaceAll(string(b), "sslmode=disable\"\n", "sslmode=disable\"\n    server_log: off\n")
		if !strings.Contains(body, "server_log: off") {
			t.Fatalf("no dsn line to add server_log to:\n%s", body)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	// pglogical's library before 2.4.6 lets a DROP DATABASE wait for ever
	// on PostgreSQL 15+: a warning on each node (Debian's 2.4.2 here).
	var lib string
	if err := p.Provider.QueryRow(ctx, "SELECT pglogical.pglogical_version()", []any{&lib}); err != nil {
		t.Fatal(err)
	}
	barrierBug := diagnose.IgnoresBarriers(lib)
	libWarnings, wantCode, wantResult := 0, 0, "ok"
	if barrierBug {
		libWarnings, wantCode, wantResult = 2, 1, "warn"
	}

	// A superuser, server logs off: everything ok but pglogical's version.
	code, res, out := checkConnect(t, noLog(writeConfig(t, p, "")))
	if code != wantCode || res.Result != wantResult {
		t.Errorf("superuser: exit %d, result %s\n%s", code, res.Result, out)
	}
	for _, c := range res.Checks {
		if c.Level != "ok" && c.Check != "pglogical version" {
			t.Errorf("superuser: %s %s is %s: %s", c.Node, c.Check, c.Level, c.Detail)
		}
	}
	for _, node := range []string{"provider", "subscriber"} {
		l, d := res.check(node, "pglogical version")
		if want := map[bool]string{true: "warn", false: "ok"}[barrierBug]; l != want || !strings.Contains(d, "pglogical "+lib) || (barrierBug && !strings.Contains(d, "DROP DATABASE")) {
			t.Errorf("%s pglogical version (library %s): %s %q", node, lib, l, d)
		}
	}
	for _, node := range []string{"provider", "subscriber"} {
		if l, d := res.check(node, "connect"); l != "ok" || !strings.Contains(d, "as postgres to database "+p.Provider.Name) || !strings.Contains(d, "PostgreSQL 15") || !strings.Contains(d, "pglogical 2.") {
			t.Errorf("%s connect: %s %q", node, l, d)
		}
		if l, d := res.check(node, "privileges"); l != "ok" || !strings.Contains(d, "is a superuser") {
			t.Errorf("%s privileges: %s %q", node, l, d)
		}
	}
	if l, d := res.check("subscriber", "probe"); l != "ok" || !strings.Contains(d, "1 subscriptions") {
		t.Errorf("subscriber probe: %s %q", l, d)
	}
	if l, d := res.check("subscriber", "verify "+p.Sub()); l != "ok" || !strings.Contains(d, "can read the 1 table of replication sets") {
		t.Errorf("verify: %s %q", l, d)
	}

	// A sequence in the set, whose value the README's watching grants
	// leave unreadable (PostgreSQL shows NULL, as for one never used).
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Exec(context.Background(), "CREATE TABLE seqt (id serial PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Provider.Exec(context.Background(), "SELECT pglogical.replication_set_add_table('set_0', 'seqt'); SELECT pglogical.replication_set_add_sequence('set_0', 'seqt_id_seq')"); err != nil {
		t.Fatal(err)
	}
	if code, res, out := checkConnect(t, noLog(writeConfig(t, p, ""))); code != wantCode || res.Result != wantResult {
		t.Errorf("superuser with a sequence in the set: exit %d, result %s\n%s", code, res.Result, out)
	}

	// A role with the README's grants but without pg_monitor, while the
	// default repair policies are on.
	role := p.Provider.Name + "_pre"
	watchingRole(t, role, "", p.Provider, p.Subscriber)
	as := func(extra string) string {
		path := noLog(writeConfig(t, p, extra))
		b, _ := os.ReadFile(path)
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "user=postgres", "user="+role)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	path := as("")
	code, res, out = checkConnect(t, path)
	if code != 1 || res.Result != "warn" {
		t.Errorf("watching role: exit %d, result %s\n%s", code, res.Result, out)
	}
	if l, d := res.check("subscriber", "probe"); l != "ok" {
		t.Errorf("watching role probe: %s %q", l, d)
	}
	if l, d := res.check("subscriber", "privileges"); l != "warn" || !strings.Contains(d, "repair.policy restart=auto, recreate-origin=auto, enable=approve") {
		t.Errorf("watching role privileges: %s %q", l, d)
	}
	if l, d := res.check("provider", "pg_read_all_stats"); l != "warn" || !strings.Contains(d, "GRANT pg_monitor TO "+role) {
		t.Errorf("watching role pg_read_all_stats: %s %q", l, d)
	}
	// verify needs SELECT on the replicated tables, which the README's grants leave out.
	if l, d := res.check("subscriber", "verify "+p.Sub()); l != "warn" || !strings.Contains(d, `provider "public"."items_0", provider "public"."seqt", subscriber "public"."items_0", subscriber "public"."seqt"`) {
		t.Errorf("watching role verify: %s %q", l, d)
	}
	if l, d := res.check("subscriber", "sequences "+p.Sub()); l != "warn" || !strings.Contains(d, "may not read the value of public.seqt_id_seq on the provider, subscriber") || !strings.Contains(d, "sequence_behind") {
		t.Errorf("watching role sequences: %s %q", l, d)
	}
	// A table verify.exclude leaves out is not asked for.
	_, res, _ = checkConnect(t, as("verify:\n  exclude: [public.items_*, public.seqt]\n"))
	if l, d := res.check("subscriber", "verify "+p.Sub()); l != "ok" || !strings.Contains(d, "the 0 tables") {
		t.Errorf("excluded table: %s %q", l, d)
	}
	// The table form says the same, with the counts.
	code, text, _ := pglmon(t, "check-config", "--config", path, "--connect")
	t.Logf("check-config --connect as %s:\n%s", role, text)
	if code != 1 || !strings.Contains(text, "NODE") || !strings.Contains(text, fmt.Sprintf("%d warnings, 0 errors", 6+libWarnings)) {
		t.Errorf("table: exit %d\n%s", code, text)
	}

	// A node that does not answer: an error, and the other node is checked.
	path = writeConfig(t, p, "")
	b, _ := os.ReadFile(path)
	body := strings.Replace(string(b), fmt.Sprintf("port=%d", p.Provider.Cluster.Port), "port=1", 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, res, out = checkConnect(t, path)
	if l, _ := res.check("provider", "connect"); code != 2 || res.Result != "error" || l != "error" {
		t.Errorf("unreachable provider: exit %d, %s, connect %s\n%s", code, res.Result, l, out)
	}
	if l, _ := res.check("subscriber", "probe"); l != "ok" {
		t.Errorf("the subscriber was not checked:\n%s", out)
	}
}

// watchingRole creates role on each database with the README's grants to
// watch pglogical (no pg_monitor) and extra, and drops it at the end.
func watchingRole(t *testing.T, role, extra string, dbs ...pgtest.DB) {
	t.Helper()
	for _, d := range dbs {
		if err := d.Exec(context.Background(), fmt.Sprintf(`CREATE ROLE %[1]s LOGIN; GRANT USAGE ON SCHEMA pglogical TO %[1]s;
GRANT SELECT ON ALL TABLES IN SCHEMA pglogical TO %[1]s; REVOKE SELECT ON pglogical.node_interface FROM %[1]s;
GRANT SELECT (if_id, if_name, if_nodeid) ON pglogical.node_interface TO %[1]s;
GRANT SELECT ON pg_replication_origin, pg_replication_origin_status TO %[1]s;
GRANT EXECUTE ON FUNCTION pg_show_replication_origin_status() TO %[1]s;`, role)+extra); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Exec(context.Background(), fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role)) })
	}
}

// A subscriber logging through the logging collector: check-config says
// when pglmon's role may read the log but not list the collector's
// directory, which following the log across rotations needs.
func TestCheckConfigConnectLogDirectory(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10, Own: true, SubscriberConf: pgtest.LogCollector})
	role := "logreader"
	grants := strings.Replace(strings.SplitN(logtail.Grants, " (", 2)[0], "<pglmon's role>", role, 1)
	watchingRole(t, role, "; "+grants, p.Provider, p.Subscriber)
	path := writeConfig(t, p, "")
	b, _ := os.ReadFile(path)
	body := strings.Replace(string(b), "user=postgres", "user="+role, -1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, res, out := checkConnect(t, path)
	if l, d := res.check("subscriber", "server log"); l != "warn" || !strings.Contains(d, "readable: log/postgresql-") ||
		!strings.Contains(d, role+" may not list the log directory (pg_ls_logdir: ERROR: permission denied for function pg_ls_logdir") || !strings.Contains(d, "GRANT pg_monitor TO "+role) {
		t.Errorf("without pg_monitor: %s %q\n%s", l, d, out)
	}
	if err := p.Subscriber.Exec(context.Background(), "GRANT pg_monitor TO "+role); err != nil {
		t.Fatal(err)
	}
	_, res, out = checkConnect(t, path)
	if l, d := res.check("subscriber", "server log"); l != "ok" || !strings.HasPrefix(d, "readable: log/postgresql-") {
		t.Errorf("with pg_monitor: %s %q\n%s", l, d, out)
	}
}

// For a node with rds:, check-config --connect makes each AWS call pglmon
// makes and names the permission a refused one needs.
func TestCheckConfigConnectRDS(t *testing.T) {
	srv := awstest.New(t, "eu-west-1")
	a := srv.Env(t) // sets the environment: not parallel
	srv.AddInstance("prov-db", "15.7", "pg15-pglogical", map[string]string{rdsadmin.ParamPreload: "pg_stat_statements", rdsadmin.ParamLogical: "1"})
	srv.SetLog("prov-db", "error/postgresql.log.2026-11-25-03", time.Now().UnixMilli(), "LOG:  database system is ready\n")
	srv.Deny("GetMetricData")
	prov, sub := pgtest.Shared(t)
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: sub})
	path := filepath.Join(t.TempDir(), "pglmon.yaml")
	body := a.YAML() + fmt.Sprintf("nodes:\n  - name: provider\n    dsn: %q\n    rds: {identifier: prov-db}\n  - name: subscriber\n    dsn: %q\n    server_log: off\n", p.Provider.DSN(), p.Subscriber.DSN())
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, res, out := checkConnect(t, path)
	if code != 1 {
		t.Errorf("exit %d\n%s", code, out)
	}
	_, text, _ := pglmon(t, "check-config", "--config", path, "--connect")
	t.Logf("check-config --connect with rds::\n%s", text)
	for _, c := range []struct{ check, level, says string }{
		{"rds", "ok", "instance prov-db: postgres 15.7, available, parameter group pg15-pglogical"},
		{"rds parameters", "warn", `shared_preload_libraries = "pg_stat_statements" lacks pglogical`},
		{"server log", "ok", "readable: error/postgresql.log.2026-11-25-03 (no subscriptions here: read only to name the process a waiting DROP DATABASE waits for)"},
		{"rds storage", "warn", "AccessDenied"},
		{"rds storage", "warn", "cloudwatch:GetMetricData: storage_low is off"},
	} {
		if l, d := res.check("provider", c.check); l != c.level || !strings.Contains(d, c.says) {
			t.Errorf("%s: %s %q, want %s with %q", c.check, l, d, c.level, c.says)
		}
	}
	if errs := srv.AuthErrors(); len(errs) != 0 {
		t.Errorf("signing: %v", errs)
	}
	for _, call := range srv.Calls() {
		if strings.HasPrefix(call, "Modify") || strings.HasPrefix(call, "Reboot") || strings.HasPrefix(call, "Create") {
			t.Errorf("check-config changed RDS: %v", srv.Calls())
		}
	}
}

// check-config --connect tries the Slack tokens (auth.test; Socket Mode's
// apps.connections.open), posts nothing, and never prints a token.
func TestCheckConfigConnectSlack(t *testing.T) {
	fake := slacktest.New()
	defer fake.Close()
	fake.BotToken, fake.AppToken = "xoxb-good-bot-token", "xapp-good-app-token"
	dir := t.TempDir()
	write := func(mode, extra string) string {
		path := filepath.Join(dir, mode+".yaml")
		body := fmt.Sprintf("nodes:\n  - name: db\n    dsn: \"host=127.0.0.1 port=1 dbname=x user=postgres sslmode=disable\"\nslack:\n  api_url: %q\n  channel: \"#db\"\n  mode: %s\n  bot_token: {env: PGLMON_TEST_SLACK_TOKEN}\n%s", fake.APIURL(), mode, extra)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	httpCfg := write("http", "  signing_secret: {env: PGLMON_TEST_SLACK_SECRET}\n")
	socketCfg := write("socket", "  app_token: {env: PGLMON_TEST_SLACK_APP_TOKEN}\n")
	t.Setenv("PGLMON_TEST_SLACK_SECRET", "the-signing-secret")
	for _, c := range []struct {
		name, cfg, bot, app string
		want                map[string]string // check -> level
	}{
		{"http, good token", httpCfg, "xoxb-good-bot-token", "", map[string]string{"bot token": "ok", "signing secret": "ok"}},
		{"http, revoked token", httpCfg, "xoxb-revoked-bot-token", "", map[string]string{"bot token": "error", "signing secret": "ok"}},
		{"socket, good tokens", socketCfg, "xoxb-good-bot-token", "xapp-good-app-token", map[string]string{"bot token": "ok", "app token": "ok"}},
		{"socket, wrong app token", socketCfg, "xoxb-good-bot-token", "xapp-other-app-token", map[string]string{"bot token": "ok", "app token": "error"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PGLMON_TEST_SLACK_TOKEN", c.bot)
			t.Setenv("PGLMON_TEST_SLACK_APP_TOKEN", c.app)
			_, res, out := checkConnect(t, c.cfg)
			for check, level := range c.want {
				if l, d := res.check("(slack)", check); l != level {
					t.Errorf("%s: %s %q, want %s", check, l, d, level)
				}
			}
			if l, d := res.check("(slack)", "bot token"); l == "ok" && !strings.Contains(d, "bot pglmon of workspace pglmon test; messages go to #db") {
				t.Errorf("bot token: %q", d)
			}
			if l, d := res.check("(slack)", "bot token"); l == "error" && !strings.Contains(d, "invalid_auth") {
				t.Errorf("bot token: %q", d)
			}
			for _, secret := range []string{c.bot, c.app, "the-signing-secret"} {
				if secret != "" && strings.Contains(out, secret) {
					t.Errorf("output holds a secret %q:\n%s", secret, out)
				}
			}
		})
	}
	for _, r := range fake.Requests() {
		if strings.HasPrefix(r.Method, "chat.") {
			t.Errorf("check-config posted to Slack: %s", r.Method)
		}
	}
}

// lock_timeout set for the subscriber's database reaches pglogical's apply
// worker (see TestAnApplyWorkerGivingUpAfterLockTimeout): check-config
// warns where it is set, on a node with subscriptions only.
func TestCheckConfigConnectLockTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	cfg := writeConfig(t, p, "")
	_, res, out := checkConnect(t, cfg)
	if l, d := res.check("subscriber", "lock_timeout"); l != "" {
		t.Errorf("no lock_timeout set: %s %q\n%s", l, d, out)
	}
	for _, db := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := db.Exec(ctx, "ALTER DATABASE "+db.Name+" SET lock_timeout = '2s'"); err != nil {
			t.Fatal(err)
		}
	}
	_, res, out = checkConnect(t, cfg)
	if l, d := res.check("subscriber", "lock_timeout"); l != "warn" || !strings.Contains(d, "database "+p.Subscriber.Name+": lock_timeout=2s") {
		t.Errorf("lock_timeout for the subscriber's database: %s %q\n%s", l, d, out)
	}
	if l, d := res.check("provider", "lock_timeout"); l != "" {
		t.Errorf("provider (no subscriptions): %s %q", l, d)
	}
	// Set in the server's configuration (postgresql.conf, an RDS
	// parameter group) it reaches them too.
	own := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10, Own: true, SubscriberConf: []string{"lock_timeout = '3s'"}})
	_, res, out = checkConnect(t, writeConfig(t, own, ""))
	if l, d := res.check("subscriber", "lock_timeout"); l != "warn" || !strings.Contains(d, "the server's configuration (") || !strings.Contains(d, "): lock_timeout=3s") {
		t.Errorf("lock_timeout in postgresql.conf: %s %q\n%s", l, d, out)
	}
}
