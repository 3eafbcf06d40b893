package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.Nodes), 2; got != want {
		t.Fatalf("nodes: got %d, want %d", got, want)
	}
	if got, want := cfg.Thresholds.LagBytes, ByteSize(256<<20); got != want {
		t.Errorf("lag_bytes: got %d, want %d", got, want)
	}
	if cfg.Thresholds.SlotXminAge != 200_000_000 || cfg.Thresholds.SlotXminAgeCritical != 1_000_000_000 {
		t.Errorf("slot_xmin_age: got %d / %d", cfg.Thresholds.SlotXminAge, cfg.Thresholds.SlotXminAgeCritical)
	}
	if cfg.Thresholds.ApplyBlocked.D() != time.Minute || cfg.Thresholds.ApplyBlockedCritical.D() != 15*time.Minute {
		t.Errorf("apply_blocked: got %s / %s", cfg.Thresholds.ApplyBlocked.D(), cfg.Thresholds.ApplyBlockedCritical.D())
	}
	if got, want := cfg.Thresholds.TableSyncGrace.D(), 30*time.Minute; got != want {
		t.Errorf("table_sync_grace: got %s, want %s", got, want)
	}
	if got, want := cfg.Repair.Policy["enable"], "approve"; got != want {
		t.Errorf("policy enable: got %q, want %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte("nodes:\n  - name: a\n    dsn: host=x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Probe.Interval.D(), 10*time.Second; got != want {
		t.Errorf("interval: got %s, want %s", got, want)
	}
	if got, want := cfg.Probe.LogInterval.D(), time.Minute; got != want {
		t.Errorf("log_interval: got %s, want %s", got, want)
	}
	if got, want := cfg.HTTP.Listen, DefaultListen; got != want {
		t.Errorf("listen: got %s, want %s", got, want)
	}
}

func TestErrorsNamePlace(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "nodes:\n  - name: a\n    dsn: host=x\n    passwrd: x\n", "bad.yaml:4:5: nodes[0].passwrd: unknown key"},
		{"unknown top key", "nodes:\n  - name: a\n    dsn: host=x\nprobes:\n  interval: 1s\n", "bad.yaml:4:1: probes: unknown key"},
		{"bad duration", "nodes:\n  - name: a\n    dsn: host=x\nprobe:\n  interval: 10 seconds\n", "bad.yaml:5:13: probe.interval: invalid duration \"10 seconds\""},
		{"bad size", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  lag_bytes: lots\n", "bad.yaml:5:14: thresholds.lag_bytes: invalid size \"lots\""},
		{"xmin age too big", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  slot_xmin_age: 3000000000\n", "bad.yaml:5:18: thresholds.slot_xmin_age: 3000000000 must be between 0 (off) and 1999999999 transactions"},
		{"apply_blocked critical below warning", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  apply_blocked: 10m\n  apply_blocked_critical: 5m\n", "bad.yaml:6:27: thresholds.apply_blocked_critical: 5m0s is below thresholds.apply_blocked (10m0s)"},
		{"apply_blocked negative", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  apply_blocked: -1m\n", "bad.yaml:5:18: thresholds.apply_blocked: invalid duration"},
		{"verify.scan unknown", "nodes:\n  - name: a\n    dsn: host=x\nverify:\n  scan: seq\n", "bad.yaml:5:9: verify.scan: \"seq\" must be auto, index or pages"},
		{"verify.parallel zero", "nodes:\n  - name: a\n    dsn: host=x\nverify:\n  parallel: 0\n", "bad.yaml:5:13: verify.parallel: 0 must be between 1 and 16"},
		{"verify.max_keys zero", "nodes:\n  - name: a\n    dsn: host=x\nverify:\n  max_keys: 0\n", "bad.yaml:5:13: verify.max_keys: must be at least 1"},
		{"storage percent out of range", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  storage_free_percent: 150\n", "bad.yaml:5:25: thresholds.storage_free_percent: 150 must be between 0 (off) and 100"},
		{"storage forecast negative", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  storage_full_within: -1h\n", "bad.yaml:5:24: thresholds.storage_full_within: invalid duration \"-1h\""},
		{"cloudwatch endpoint not a URL", "nodes:\n  - name: a\n    dsn: host=x\naws:\n  endpoints:\n    cloudwatch: localhost\n", "bad.yaml:6:17: aws.endpoints.cloudwatch: \"localhost\" is not a URL (https://host[:port])"},
		{"drop-orphan-slot never automatic", "nodes:\n  - name: a\n    dsn: host=x\nrepair:\n  policy:\n    drop-orphan-slot: auto\n", "bad.yaml:6:23: repair.policy.drop-orphan-slot: policy \"auto\": dropping a slot is never automatic; approve (a Slack button for approvers) or off"},
		{"rewind-origin by a person", "nodes:\n  - name: a\n    dsn: host=x\nrepair:\n  policy:\n    rewind-origin: auto\n", "bad.yaml:6:20: repair.policy.rewind-origin: rewind-origin has no policy: a person runs it (pglmon repair --remedy rewind-origin), never the daemon or Slack"},
		{"xmin critical below warning", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  slot_xmin_age: 500_000_000\n  slot_xmin_age_critical: 400_000_000\n", "bad.yaml:6:27: thresholds.slot_xmin_age_critical: 400000000 is below thresholds.slot_xmin_age (500000000)"},
		{"server_log path on rds", "aws:\n  region: eu-west-1\nnodes:\n  - name: a\n    dsn: host=x\n    rds: {identifier: db1}\n    server_log: /var/log/pg.log\n", "bad.yaml:7:17: nodes[0].server_log: \"/var/log/pg.log\": the log of an RDS instance is read through the RDS API; use auto or off"},
		{"password in kv dsn", "nodes:\n  - name: a\n    dsn: host=x password=hunter2\n", "bad.yaml:3:10: nodes[0].dsn: the dsn holds a password; remove it and use `password:"},
		{"password in url dsn", "nodes:\n  - name: a\n    dsn: postgres://u:hunter2@x/db\n", "bad.yaml:3:10: nodes[0].dsn: the dsn holds a password"},
		{"dsn port not a number", "nodes:\n  - name: a\n    dsn: host=x port=54e2\n", "bad.yaml:3:10: nodes[0].dsn: not a connection string pglmon can use: invalid port"},
		{"dsn url port out of range", "nodes:\n  - name: a\n    dsn: postgres://u@x:99999/db\n", "bad.yaml:3:10: nodes[0].dsn: not a connection string pglmon can use: invalid port"},
		{"dsn unterminated quote", "nodes:\n  - name: a\n    dsn: host=x dbname='app\n", "bad.yaml:3:10: nodes[0].dsn: not a connection string pglmon can use: failed to parse as keyword/value (unterminated quoted string"},
		{"dsn sslmode unknown", "nodes:\n  - name: a\n    dsn: host=x sslmode=verify_full\n", "bad.yaml:3:10: nodes[0].dsn: not a connection string pglmon can use: failed to configure TLS (sslmode is invalid)"},
		{"integer not a number", "nodes:\n  - name: a\n    dsn: host=x\nverify:\n  chunk_rows: lots\n", "bad.yaml:5:15: verify.chunk_rows: must be an integer, not \"lots\""},
		{"string given a list", "nodes:\n  - name: [a]\n    dsn: host=x\n", "bad.yaml:2:11: nodes[0].name: must be a string, not a list"},
		{"flag not a bool", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nsubscriptions:\n  - name: s\n    subscriber: a\n    provider: a\n    replication_sets: [r]\n    synchronize_data: maybe\n", "bad.yaml:10:23: subscriptions[0].synchronize_data: must be true or false, not \"maybe\""},
		{"duration given a list", "nodes:\n  - name: a\n    dsn: host=x\nprobe:\n  interval: [1]\n", "bad.yaml:5:13: probe.interval: must be a duration (a number with a unit, such as 10s, 5m or 1h), not a list"},
		{"size given a mapping", "nodes:\n  - name: a\n    dsn: host=x\nthresholds:\n  lag_bytes: {n: 1}\n", "bad.yaml:5:14: thresholds.lag_bytes: must be a size (a number with a unit, such as 256MiB or 10GiB), not a mapping"},
		{"column list empty", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: app\n    node: a\n    tables: [public.t]\n    columns:\n      public.t: []\n", "bad.yaml:10:17: replication_sets[0].columns.public.t: public.t: list the columns to replicate (leave the table out of columns to replicate all of them)"},
		{"column listed twice", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: app\n    node: a\n    tables: [public.t]\n    columns:\n      public.t: [id, n, id]\n", "bad.yaml:10:17: replication_sets[0].columns.public.t: public.t: column \"id\" is listed twice"},
		{"column list of no table name", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: app\n    node: a\n    tables: [public.t]\n    columns:\n      public.t.x.y: [id]\n", "bad.yaml:10:21: replication_sets[0].columns.public.t.x.y: \"public.t.x.y\" has more than two parts"},
		{"row filter empty", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: app\n    node: a\n    tables: [public.t]\n    row_filters:\n      public.t: \" \"\n", "bad.yaml:10:17: replication_sets[0].row_filters.public.t: public.t: the filter is empty (leave the table out of row_filters to replicate every row)"},
		{"set without tables", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: app\n    node: a\n", "bad.yaml:6:5: replication_sets[0]: list tables or schemas (only pglogical's own sets, default, default_insert_only and ddl_sql, may have none)"},
		{"no nodes", "probe:\n  interval: 1s\n", "bad.yaml: nodes: at least one node is needed"},
		{"duplicate node", "nodes:\n  - name: a\n    dsn: host=x\n  - name: a\n    dsn: host=y\n", "bad.yaml:4:11: nodes[1].name: node \"a\" is defined twice"},
		{"bad policy", "nodes:\n  - name: a\n    dsn: host=x\nrepair:\n  policy:\n    restart: always\n", "bad.yaml:6:14: repair.policy.restart: policy \"always\" must be auto, approve or off"},
		{"timeout over interval", "nodes:\n  - name: a\n    dsn: host=x\nprobe:\n  interval: 1s\n  timeout: 2s\n", "bad.yaml:6:12: probe.timeout: must not be longer than probe.interval"},
		{"log interval zero", "nodes:\n  - name: a\n    dsn: host=x\nprobe:\n  log_interval: 0s\n", "bad.yaml:5:17: probe.log_interval: must be greater than zero"},
		{"wrong type", "nodes: 3\n", "bad.yaml:1:8: nodes: must be a list"},
		{"both password sources", "nodes:\n  - name: a\n    dsn: host=x\n    password: {env: A, file: /b}\n", "bad.yaml:4:15: nodes[0].password: set exactly one of env, file, secrets_manager or rds_iam"},
		{"syntax", "nodes: [\n", "bad.yaml: "},
		{"rds without identifier", "nodes:\n  - name: a\n    dsn: host=x\n    rds: {region: eu-west-1}\n", "bad.yaml:4:10: nodes[0].rds: identifier is required"},
		{"rds without region", "nodes:\n  - name: a\n    dsn: host=x\n    rds: {identifier: db1}\n", "bad.yaml:4:10: nodes[0].rds: no region: set rds.region or aws.region"},
		{"iam without region", "nodes:\n  - name: a\n    dsn: host=x\n    password: {rds_iam: true}\n", "bad.yaml:4:25: nodes[0].password.rds_iam: no region for the IAM token"},
		{"secret without id", "aws: {region: eu-west-1}\nnodes:\n  - name: a\n    dsn: host=x\n    password:\n      secrets_manager: {region: eu-west-1}\n", "bad.yaml:6:24: nodes[0].password.secrets_manager: secret_id is required"},
		{"secret and env", "aws: {region: eu-west-1}\nnodes:\n  - name: a\n    dsn: host=x\n    password: {env: A, secrets_manager: {secret_id: s}}\n", "nodes[0].password: set exactly one of env, file, secrets_manager or rds_iam"},
		{"bad endpoint", "aws:\n  region: eu-west-1\n  endpoints: {rds: 'localhost'}\nnodes:\n  - name: a\n    dsn: host=x\n", "bad.yaml:3:20: aws.endpoints.rds: \"localhost\" is not a URL"},
		{"iam without ssl", "aws: {region: eu-west-1}\nnodes:\n  - name: a\n    dsn: host=x sslmode=disable\n    password: {rds_iam: true}\n", "bad.yaml:4:10: nodes[0].dsn: RDS IAM authentication needs SSL"},
		{"unknown aws key", "aws:\n  regoin: eu-west-1\nnodes:\n  - name: a\n    dsn: host=x\n", "bad.yaml:2:3: aws.regoin: unknown key"},
		{"subscription to unknown node", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\nsubscriptions:\n  - name: x\n    subscriber: b\n    provider: a\n    replication_sets: [s]\n", "bad.yaml:11:17: subscriptions[0].subscriber: node \"b\" is not configured"},
		{"heartbeat set listed", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\nreplication_sets:\n  - name: s\n    node: b\n    tables: [t]\nsubscriptions:\n  - name: x\n    subscriber: a\n    provider: b\n    replication_sets: [s, pglmon_heartbeat]\n", "subscriptions[0].replication_sets: replication set \"pglmon_heartbeat\" is pglmon heartbeat install's: leave it out here"},
		{"set on another node", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\nsubscriptions:\n  - name: x\n    subscriber: a\n    provider: b\n    replication_sets: [s]\n", "subscriptions[0].replication_sets: replication set \"s\" is not defined on provider b"},
		{"bad exclude name", "nodes:\n  - name: a\n    dsn: host=x\nverify:\n  exclude: ['\"Sales\".\"Audit Log\"', '\"Audit Log\"']\n", "bad.yaml:5:36: verify.exclude[1]: \"\\\"Audit Log\\\"\" is not a schema.table name as SQL writes it"},
		{"bad exclude pattern", "nodes:\n  - name: a\n    dsn: host=x\nverify:\n  exclude: [\"audit.*\", \"public.[log\"]\n", "bad.yaml:5:24: verify.exclude[1]: \"public.[log\" is not a schema.table pattern"},
		{"tls key without cert", "nodes:\n  - name: a\n    dsn: host=x\nhttp:\n  tls:\n    key_file: /etc/pglmon/tls.key\n", "bad.yaml:6:5: http.tls: set both cert_file and key_file (PEM), or neither"},
		{"client ca without tls", "nodes:\n  - name: a\n    dsn: host=x\nhttp:\n  tls:\n    client_ca_file: /etc/pglmon/ca.pem\n", "bad.yaml:6:21: http.tls.client_ca_file: needs cert_file and key_file"},
		{"bearer token from two places", "nodes:\n  - name: a\n    dsn: host=x\nhttp:\n  bearer_token: {env: T, file: /t}\n", "bad.yaml:5:17: http.bearer_token: set exactly one of env or file"},
		{"bearer token from AWS", "nodes:\n  - name: a\n    dsn: host=x\nhttp:\n  bearer_token: {rds_iam: true}\n", "http.bearer_token: set exactly one of env or file"},
		{"listen without port", "nodes:\n  - name: a\n    dsn: host=x\nhttp:\n  listen: 0.0.0.0\n", "bad.yaml:5:11: http.listen: \"0.0.0.0\" must be host:port"},
		{"set defined twice on a node", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\n  - name: s\n    node: a\n    tables: [u]\n", "bad.yaml:12:11: replication_sets[1].name: replication set \"s\" is defined twice on a"},
		{"set listed twice", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\nsubscriptions:\n  - name: x\n    subscriber: b\n    provider: a\n    replication_sets: [s, s]\n", "bad.yaml:16:23: subscriptions[0].replication_sets: replication set \"s\" is listed twice"},
		{"forward_origins other than all", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\nsubscriptions:\n  - name: x\n    subscriber: b\n    provider: a\n    replication_sets: [s]\n    forward_origins: [all, node_c]\n", "bad.yaml:17:22: subscriptions[0].forward_origins: [\"all\" \"node_c\"]: pglogical forwards all origins ([all]) or none ([]), nothing else"},
		{"subscription name pglogical refuses", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\nsubscriptions:\n  - name: Sub-One\n    subscriber: b\n    provider: a\n    replication_sets: [s]\n", "bad.yaml:13:11: subscriptions[0].name: \"Sub-One\": pglogical takes only lower case letters, digits and _ in a subscription name, at most 63 of them"},
		{"table name with a space", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: s\n    node: a\n    tables: [public.orders, 'Sales.Order Lines']\n", "bad.yaml:8:29: replication_sets[0].tables[1]: \"Sales.Order Lines\" is not a table name as SQL writes it: quote a name that has spaces or other characters in double quotes (\"Sales\".\"Order Lines\")"},
		{"table name in three parts", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: s\n    node: a\n    tables: [db.public.orders]\n", "replication_sets[0].tables[0]: \"db.public.orders\" has more than two parts: write schema.table"},
		{"table name quote not closed", "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\nreplication_sets:\n  - name: s\n    node: a\n    tables: ['public.\"Orders']\n", "replication_sets[0].tables[0]: \"public.\\\"Orders\" has a double quote that is not closed"},
		{"topology without pglogical_name", "nodes:\n  - name: a\n    dsn: host=x\nreplication_sets:\n  - name: s\n    node: a\n    tables: [t]\n", "replication_sets[0].node: node \"a\" needs pglogical_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %q", err)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %T, want Errors", err)
			}
		})
	}
}

func TestResolvePassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGLMON_TEST_PW", "from-env")
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	for _, tc := range []struct {
		name string
		src  *PasswordSource
		want string
		err  string
	}{
		{"none", nil, "", ""},
		{"env", &PasswordSource{Env: "PGLMON_TEST_PW"}, "from-env", ""},
		{"file", &PasswordSource{File: file}, "s3cret", ""},
		{"missing env", &PasswordSource{Env: "PGLMON_NOT_SET_X"}, "", "PGLMON_NOT_SET_X (password.env) is not set"},
		{"systemd credential", &PasswordSource{File: "${CREDENTIALS_DIRECTORY}/pw"}, "s3cret", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Node{Name: "n", Password: tc.src}.ResolvePassword()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Reveal() != tc.want {
				t.Fatalf("got %q, want %q", got.Reveal(), tc.want)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v", s, s, s)} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %q", out)
		}
	}
	b, _ := s.MarshalJSON()
	if strings.Contains(string(b), "hunter2") {
		t.Fatal("secret in JSON")
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"256MiB": 256 << 20, "10GiB": 10 << 30, "1GB": 1e9, "1234": 1234, "1.5KiB": 1536} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v, want %d", in, got, err, want)
		}
	}
}

func TestRegions(t *testing.T) {
	cfg, err := Parse("ok.yaml", []byte(`aws: {region: us-east-1}
nodes:
  - name: a
    dsn: host=x
    rds: {identifier: db1, region: eu-west-1}
    password: {secrets_manager: {secret_id: "arn:aws:secretsmanager:ap-south-1:123456789012:secret:db1-AbCdEf"}}
  - name: b
    dsn: host=y
    password: {rds_iam: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Nodes[0], cfg.Nodes[1]
	if got := cfg.NodeRegion(a); got != "eu-west-1" {
		t.Errorf("node region of a: %s", got)
	}
	if got := cfg.SecretRegion(a); got != "ap-south-1" {
		t.Errorf("secret region from the ARN: %s", got)
	}
	if got := cfg.NodeRegion(b); got != "us-east-1" {
		t.Errorf("node region of b falls back to aws.region: %s", got)
	}
	if cfg.AWS.MaxAttempts != 5 || cfg.AWS.RDSCheckEvery.D() != 15*time.Minute {
		t.Errorf("aws defaults: max_attempts %d, rds_check_every %s", cfg.AWS.MaxAttempts, cfg.AWS.RDSCheckEvery.D())
	}
	if _, err := b.ResolvePassword(); err == nil || !strings.Contains(err.Error(), "node b: the password is held in AWS") {
		t.Errorf("without AWS support attached: %v", err)
	}
}

func TestWindowEnd(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 3, 10, h, m, 30, 0, time.UTC) }
	for _, c := range []struct {
		window string
		now    time.Time
		want   time.Time
	}{
		{"01:00-05:00", at(2, 0), at(5, 0).Add(-30 * time.Second)},
		{"01:00-05:00", at(5, 0), at(5, 0).Add(24*time.Hour - 30*time.Second)},  // past today's: tomorrow's
		{"22:00-02:00", at(23, 0), at(2, 0).Add(24*time.Hour - 30*time.Second)}, // across midnight
		{"22:00-02:00", at(1, 0), at(2, 0).Add(-30 * time.Second)},
		{"22:00-02:00", at(3, 0), at(2, 0).Add(24*time.Hour - 30*time.Second)}, // between two: the next one's
		{"01:00-05:00", at(0, 10), at(5, 0).Add(-30 * time.Second)},            // before today's: today's
	} {
		got, ok := WindowEnd(c.window, c.now)
		if !ok || !got.Equal(c.want) {
			t.Errorf("WindowEnd(%q, %s) = %s, %t; want %s", c.window, c.now, got, ok, c.want)
		}
	}
	if _, ok := WindowEnd("", at(1, 0)); ok {
		t.Error("no window: an end")
	}
}

func TestInWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 3, 10, h, m, 30, 0, time.UTC) }
	for _, c := range []struct {
		window string
		now    time.Time
		want   bool
	}{
		{"", at(12, 0), true},
		{"01:00-05:00", at(0, 59), false},
		{"01:00-05:00", at(1, 0), true},
		{"01:00-05:00", at(4, 59), true},
		{"01:00-05:00", at(5, 0), false},
		{"22:00-02:00", at(21, 59), false},
		{"22:00-02:00", at(22, 0), true},
		{"22:00-02:00", at(0, 0), true},
		{"22:00-02:00", at(1, 59), true},
		{"22:00-02:00", at(2, 0), false},
	} {
		if got := InWindow(c.window, c.now); got != c.want {
			t.Errorf("InWindow(%q, %s) = %t", c.window, c.now.Format("15:04"), got)
		}
	}
	for _, bad := range []string{"1:00-5:00", "01:00-05:00 ", "01:00-05:00x", "24:00-05:00", "01:60-05:00", "03:00-03:00", "01:00"} {
		if _, _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q): no error", bad)
		}
	}
}

// A connection string is checked when the configuration is read, except
// for the files it names (TLS certificates and keys, a service file): they
// may be readable only where and when pglmon runs (systemd's
// LoadCredential=, another user).
func TestDSNNamingFilesReadLaterIsAccepted(t *testing.T) {
	for _, dsn := range []string{
		"host=x sslmode=verify-full sslrootcert=/nonexistent/ca.pem",
		"host=x sslmode=require sslcert=/nonexistent/c.pem sslkey=/nonexistent/c.key",
		"service=not_in_any_service_file",
		"postgres://pglmon@x:5432/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
	} {
		if _, err := Parse("ok.yaml", []byte("nodes:\n  - name: a\n    dsn: '"+dsn+"'\n")); err != nil {
			t.Errorf("%s: %v", dsn, err)
		}
	}
}

// pglogical's replication set names are per node: the same name on two
// providers is two sets, each subscription taking its provider's.
func TestSetNamesArePerNode(t *testing.T) {
	body := "nodes:\n  - {name: a, dsn: host=x, pglogical_name: a}\n  - {name: b, dsn: host=y, pglogical_name: b}\n  - {name: c, dsn: host=z, pglogical_name: c}\n" +
		"replication_sets:\n  - {name: app, node: a, tables: [t]}\n  - {name: app, node: b, tables: [u]}\n" +
		"subscriptions:\n  - {name: from_a, subscriber: c, provider: a, replication_sets: [app], forward_origins: [all]}\n  - {name: from_b, subscriber: c, provider: b, replication_sets: [app], forward_origins: []}\n"
	if _, err := Parse("sets.yaml", []byte(body)); err != nil {
		t.Fatal(err)
	}
}

func TestTableNames(t *testing.T) {
	for _, ok := range []string{"orders", "public.orders", `"Sales"."Order Lines"`, `public."Mixed""Quote"`, "public.MixedCase", "ünï.cödé", "s$1._x", ` public . orders `} {
		if err := checkTableName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Sales.Order Lines", "a.b.c", `"open`, "1abc", `x.""`, "public.", ".orders", "$x", "a-b"} {
		if checkTableName(bad) == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	for name, want := range map[string]bool{"public.MixedCase": true, `public."MixedCase"`: false, "public.orders": false, `"Sales".Orders`: true} {
		if FoldsCapitals(name) != want {
			t.Errorf("FoldsCapitals(%q) = %t", name, !want)
		}
	}
}

// A replication set's flags left unset are true, or pglogical's own for
// its sets; those written win.
func TestReplicationSetFlags(t *testing.T) {
	no, yes := false, true
	for _, c := range []struct {
		rs   ReplicationSet
		want [4]bool
	}{
		{ReplicationSet{Name: "app"}, [4]bool{true, true, true, true}},
		{ReplicationSet{Name: "app", Truncate: &no}, [4]bool{true, true, true, false}},
		{ReplicationSet{Name: "default_insert_only"}, [4]bool{true, false, false, true}},
		{ReplicationSet{Name: "default_insert_only", Delete: &yes}, [4]bool{true, false, true, true}},
		{ReplicationSet{Name: "ddl_sql"}, [4]bool{true, false, false, false}},
		{ReplicationSet{Name: "default", Update: &no}, [4]bool{true, false, true, true}},
	} {
		if got := c.rs.Flags(); got != c.want {
			t.Errorf("%+v: %v, want %v", c.rs, got, c.want)
		}
	}
}

// pglogical's own sets may be named without tables, as a subscription's
// default sets are.
func TestPglogicalsOwnSetsWithoutTables(t *testing.T) {
	body := "nodes:\n  - name: a\n    dsn: host=x\n    pglogical_name: a\n  - name: b\n    dsn: host=y\n    pglogical_name: b\n" +
		"replication_sets:\n  - name: default\n    node: a\n    schemas: [public]\n  - name: default_insert_only\n    node: a\n  - name: ddl_sql\n    node: a\n" +
		"subscriptions:\n  - name: s\n    subscriber: b\n    provider: a\n    replication_sets: [default, default_insert_only, ddl_sql]\n"
	if _, err := Parse("ok.yaml", []byte(body)); err != nil {
		t.Fatal(err)
	}
}
