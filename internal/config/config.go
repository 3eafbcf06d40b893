// Package config loads, defaults and validates pglmon's YAML configuration.
// Every error names the file, line, column and field it is about.
package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/pglmon/pglmon/internal/pgident"
)

// Config is the whole configuration file.
type Config struct {
	Nodes      []Node     `yaml:"nodes"`
	Probe      Probe      `yaml:"probe"`
	Thresholds Thresholds `yaml:"thresholds"`
	HTTP       HTTP       `yaml:"http"`
	Repair     Repair     `yaml:"repair"`
	Log        Log        `yaml:"log"`
	Verify     Verify     `yaml:"verify"`
	// Maintenance is where `pglmon maintenance` records planned work.
	Maintenance Maintenance `yaml:"maintenance"`
	Slack       Slack       `yaml:"slack"`
	// AWS configures the SDK for nodes on Amazon RDS and secrets in AWS.
	AWS AWS `yaml:"aws"`
	// ReplicationSets and Subscriptions describe the topology `pglmon setup` creates.
	ReplicationSets []ReplicationSet `yaml:"replication_sets"`
	Subscriptions   []Subscription   `yaml:"subscriptions"`

	path      string
	positions map[string]position
}

// Node is one PostgreSQL database pglmon talks to.
type Node struct {
	// Name labels the node in output, metrics and messages.
	Name string `yaml:"name"`
	// DSN is a libpq connection string (keyword/value or URL) without a password.
	DSN string `yaml:"dsn"`
	// Password, when set, says where the password comes from.
	Password *PasswordSource `yaml:"password"`
	// PglogicalName is the node's pglogical node name (pglmon setup creates it).
	PglogicalName string `yaml:"pglogical_name"`
	// RDS names the node's Amazon RDS instance, for parameter group checks,
	// reboots and snapshots.
	RDS *RDSInstance `yaml:"rds"`
	// ServerLog says where the daemon and status read the server log of a
	// subscriber whose subscription is down (the apply worker's error):
	// "auto" (the default: the RDS API for nodes with rds:, else SQL on the
	// file the server logs to), "off", or a file path read through SQL.
	ServerLog string `yaml:"server_log"`
}

// Server log sources.
const (
	ServerLogAuto = "auto"
	ServerLogOff  = "off"
)

// LogSource returns the node's server_log: "auto", "off" or a path.
func (n Node) LogSource() string {
	if n.ServerLog == "" {
		return ServerLogAuto
	}
	return n.ServerLog
}

// RDSInstance is an Amazon RDS DB instance.
type RDSInstance struct {
	Identifier string `yaml:"identifier"`
	// Region defaults to aws.region.
	Region string `yaml:"region"`
}

// AWS configures the AWS SDK. Credentials come from the SDK's default chain
// (environment, shared config files, web identity, ECS or EC2 instance role).
type AWS struct {
	// Region is the default region of RDS instances and secrets.
	Region string `yaml:"region"`
	// Profile selects a profile of the shared config files.
	Profile string `yaml:"profile"`
	// MaxAttempts bounds the attempts of each AWS call (throttling and
	// server errors are retried with backoff); default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// Endpoints override service endpoints (VPC endpoints, local test servers).
	Endpoints AWSEndpoints `yaml:"endpoints"`
	// RDSCheckEvery is how often the daemon reads the parameter groups of
	// nodes with rds: (0 turns it off); default 15m.
	RDSCheckEvery Duration `yaml:"rds_check_every"`
	// StorageCheckEvery is how often the daemon reads the free storage of
	// nodes with rds: from CloudWatch (0 turns it off); default 5m.
	StorageCheckEvery Duration `yaml:"storage_check_every"`
}

// AWSEndpoints are service endpoint URLs.
type AWSEndpoints struct {
	RDS            string `yaml:"rds"`
	SecretsManager string `yaml:"secretsmanager"`
	CloudWatch     string `yaml:"cloudwatch"`
}

// SecretsManagerSource is a secret in AWS Secrets Manager.
type SecretsManagerSource struct {
	// SecretID is the secret's name or ARN.
	SecretID string `yaml:"secret_id"`
	// Region defaults to the ARN's region, then the node's rds.region, then aws.region.
	Region string `yaml:"region"`
	// Key is the JSON field holding the password (RDS-managed secrets:
	// {"username": ..., "password": ...}); default "password". A secret that
	// is not JSON is used whole.
	Key string `yaml:"key"`
	// Refresh is how long a fetched secret is reused; default 15m. An
	// authentication failure fetches it again at once (rotation).
	Refresh Duration `yaml:"refresh"`
}

// ReplicationSet is a replication set pglmon setup creates on a provider.
type ReplicationSet struct {
	Name string `yaml:"name"`
	Node string `yaml:"node"`
	// Tables are schema.table names; Schemas adds every table of each schema.
	Tables   []string `yaml:"tables"`
	Schemas  []string `yaml:"schemas"`
	Insert   *bool    `yaml:"replicate_insert"`
	Update   *bool    `yaml:"replicate_update"`
	Delete   *bool    `yaml:"replicate_delete"`
	Truncate *bool    `yaml:"replicate_truncate"`
	// Sequences: also put in the set the sequences its tables' serial and
	// identity columns use (true when unset).
	Sequences *bool `yaml:"sequences"`
	// Columns limits, per table of the set (named as in Tables, or a
	// table of one of Schemas), what the set replicates of it to these
	// columns: pglogical's column list, which must hold the table's key.
	Columns map[string][]string `yaml:"columns"`
	// RowFilters limits, per table of the set, what the set replicates of
	// it to the rows for which this SQL expression on its columns is true:
	// pglogical's row filter.
	RowFilters map[string]string `yaml:"row_filters"`
}

// Flag returns a replicate_* flag, true when unset.
func Flag(b *bool) bool { return b == nil || *b }

// BuiltinSets are the replication sets pglogical's create_node makes on
// every node, with their replicate_insert, _update, _delete and _truncate
// (read from pglogical 2.4.2).
var BuiltinSets = map[string][4]bool{
	"default":             {true, true, true, true},
	"default_insert_only": {true, false, false, true},
	"ddl_sql":             {true, false, false, false},
}

// Flags are the set's replicate_insert, _update, _delete and _truncate as
// the configuration means them: those it leaves unset are pglogical's for
// one of its own sets (BuiltinSets), else true.
func (rs ReplicationSet) Flags() [4]bool {
	f, ok := BuiltinSets[rs.Name]
	if !ok {
		f = [4]bool{true, true, true, true}
	}
	for i, b := range []*bool{rs.Insert, rs.Update, rs.Delete, rs.Truncate} {
		if b != nil {
			f[i] = *b
		}
	}
	return f
}

// Subscription is a subscription pglmon setup creates on a subscriber.
type Subscription struct {
	Name            string   `yaml:"name"`
	Subscriber      string   `yaml:"subscriber"`
	Provider        string   `yaml:"provider"`
	ReplicationSets []string `yaml:"replication_sets"`
	SynchronizeData *bool    `yaml:"synchronize_data"`
	ForwardOrigins  []string `yaml:"forward_origins"`
	ApplyDelay      Duration `yaml:"apply_delay"`
}

// PasswordSource names where a password is read from at connection time.
type PasswordSource struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"`
	// SecretsManager reads the password from AWS Secrets Manager.
	SecretsManager *SecretsManagerSource `yaml:"secrets_manager"`
	// RDSIAM generates an RDS IAM authentication token for each connection.
	RDSIAM bool `yaml:"rds_iam"`

	external ExternalSecrets
}

// ExternalSecrets fetches passwords held outside the host (AWS); package
// credentials implements it and UseExternalSecrets attaches it.
type ExternalSecrets interface {
	// Password returns the node's password for a new connection.
	Password(ctx context.Context, node Node) (Secret, error)
	// Forget drops a cached password after an authentication failure.
	Forget(node Node)
}

// IsExternal reports whether the source needs ExternalSecrets.
func (p *PasswordSource) IsExternal() bool {
	return p != nil && (p.SecretsManager != nil || p.RDSIAM)
}

// UseExternalSecrets attaches x to every node whose password is held in AWS.
func (c *Config) UseExternalSecrets(x ExternalSecrets) {
	for _, n := range c.Nodes {
		if n.Password.IsExternal() {
			n.Password.external = x
		}
	}
}

// ForgetPassword drops a cached AWS-held password after an authentication failure.
func (n Node) ForgetPassword() {
	if n.Password.IsExternal() && n.Password.external != nil {
		n.Password.external.Forget(n)
	}
}

// Probe sets how often and how long nodes are probed.
type Probe struct {
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	// MaxBackoff caps how long a failing node waits between attempts.
	MaxBackoff Duration `yaml:"max_backoff"`
	// LogInterval is how often the daemon reads each subscriber's server
	// log (conflicts pglogical resolved, failed table copies, crashes, a
	// down subscription's error) when nothing else makes it read sooner;
	// at most once a cycle (probe.interval) however short.
	LogInterval Duration `yaml:"log_interval"`
}

// Thresholds decide when a fact becomes a finding.
type Thresholds struct {
	DownGrace        Duration `yaml:"down_grace"`
	LagBytes         ByteSize `yaml:"lag_bytes"`
	RetainedWALBytes ByteSize `yaml:"retained_wal_bytes"`
	TableSyncGrace   Duration `yaml:"table_sync_grace"`
	// SlotXminAge and SlotXminAgeCritical are the ages (in transactions) of
	// a slot's xmin or catalog_xmin past which it is a warning and critical;
	// 0 turns either off.
	SlotXminAge         int64 `yaml:"slot_xmin_age"`
	SlotXminAgeCritical int64 `yaml:"slot_xmin_age_critical"`
	// ApplyBlocked and ApplyBlockedCritical are how long a subscription's
	// apply worker may wait for a lock a session on the subscriber holds
	// before it is a warning and critical; 0 turns either off.
	ApplyBlocked         Duration `yaml:"apply_blocked"`
	ApplyBlockedCritical Duration `yaml:"apply_blocked_critical"`
	// SignalBarrierWait is how long a statement (DROP DATABASE ...) may
	// wait for every server process to accept a ProcSignalBarrier before it
	// is a warning (signal_barrier_stuck); 0 turns it off.
	SignalBarrierWait Duration `yaml:"signal_barrier_wait"`
	// ReplicationDelay and ReplicationDelayCritical are how far behind its
	// provider a subscriber's data may be, as pglmon's heartbeats measure
	// it (pglmon heartbeat install), before it is a warning and critical;
	// 0 turns either off.
	ReplicationDelay         Duration `yaml:"replication_delay"`
	ReplicationDelayCritical Duration `yaml:"replication_delay_critical"`
	// StorageFreePercent is the free storage, in percent of the allocated
	// storage, under which an RDS node is warned of (critical under half of
	// it); 0 turns it off.
	StorageFreePercent float64 `yaml:"storage_free_percent"`
	// StorageFullWithin warns when, at the last hour's rate, an RDS node's
	// storage runs out within it (critical within a quarter of it); 0 turns it off.
	StorageFullWithin Duration `yaml:"storage_full_within"`
}

// HTTP configures the daemon's HTTP server.
type HTTP struct {
	Listen string `yaml:"listen"`
	// TLS serves HTTPS when its cert_file is set.
	TLS HTTPTLS `yaml:"tls"`
	// BearerToken, when set, is what a request for /metrics or
	// /api/v1/status must carry ("Authorization: Bearer <token>").
	BearerToken *PasswordSource `yaml:"bearer_token"`
}

// HTTPTLS names the PEM files of the daemon's certificate, re-read when
// they change, and of the CA whose client certificates it requires.
type HTTPTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the daemon serves HTTPS.
func (t HTTPTLS) Enabled() bool { return t.CertFile != "" }

// ExpandPath expands ${CREDENTIALS_DIRECTORY} (where systemd's
// LoadCredential= puts files) in a configured path; nothing else.
func ExpandPath(path string) string {
	return os.Expand(path, func(v string) string {
		if v == "CREDENTIALS_DIRECTORY" {
			return os.Getenv(v)
		}
		return "${" + v + "}"
	})
}

// Repair configures remedies and their policy.
type Repair struct {
	AuditLog           string            `yaml:"audit_log"`
	Policy             map[string]string `yaml:"policy"`
	MaxAttemptsPerHour int               `yaml:"max_attempts_per_hour"`
	// VerifyTimeout bounds the wait for `replicating` after a remedy.
	VerifyTimeout Duration `yaml:"verify_timeout"`
}

// Slack configures incident messages and their repair buttons.
type Slack struct {
	// APIURL is Slack's Web API base URL (settable for tests and other instances).
	APIURL        string          `yaml:"api_url"`
	Channel       string          `yaml:"channel"`
	BotToken      *PasswordSource `yaml:"bot_token"`
	SigningSecret *PasswordSource `yaml:"signing_secret"`
	AppToken      *PasswordSource `yaml:"app_token"`
	// Mode is http (interactions posted to /slack/interactions) or socket.
	Mode string `yaml:"mode"`
	// Approvers are the Slack user IDs allowed to press repair buttons.
	Approvers []string `yaml:"approvers"`
	// ApproverGroups are Slack user group IDs whose members may press them too.
	ApproverGroups []string `yaml:"approver_groups"`
	// WarningQuiet delays posting a warning; critical findings post at once.
	WarningQuiet Duration `yaml:"warning_quiet"`
}

// Enabled reports whether Slack messages are configured.
func (s Slack) Enabled() bool { return s.Channel != "" }

// Verify configures data comparison (pglmon verify and the daemon's schedule).
type Verify struct {
	Mode             string   `yaml:"mode"`
	ChunkRows        int      `yaml:"chunk_rows"`
	Scan             string   `yaml:"scan"` // how checksum mode reads rows: auto, index or pages
	MaxRowsPerSecond int      `yaml:"max_rows_per_second"`
	StatementTimeout Duration `yaml:"statement_timeout"`
	MaxKeys          int      `yaml:"max_keys"`
	// Parallel is how many tables are compared at once, each over its own
	// connection to the provider and to the subscriber.
	Parallel int `yaml:"parallel"`
	// Every, when set, makes the daemon verify every subscription that often.
	Every Duration `yaml:"every"`
	// Window limits scheduled runs to a daily time range, "01:00-05:00" (local time).
	Window string `yaml:"window"`
	// Exclude leaves tables out of verification: schema.table patterns
	// (path.Match: "audit.*", "public.log_*"), unless named with --table.
	Exclude []string `yaml:"exclude"`
	// StateFile keeps the daemon's verification findings and how far an
	// interrupted cycle got across restarts; "" puts verify-state.json
	// next to repair.audit_log.
	StateFile string `yaml:"state_file"`
}

// MaxVerifyParallel bounds verify.parallel: each table compared at once
// holds a connection to both servers.
const MaxVerifyParallel = 16

// VerifyStateFile is where the daemon keeps its verification state.
func (c *Config) VerifyStateFile() string {
	if c.Verify.StateFile != "" {
		return c.Verify.StateFile
	}
	return filepath.Join(filepath.Dir(c.Repair.AuditLog), "verify-state.json")
}

// LogStateFile is where the daemon keeps what it read from the servers'
// logs (failed table copies, the hour's conflicts, where each read ended),
// next to repair.audit_log.
func (c *Config) LogStateFile() string {
	return filepath.Join(filepath.Dir(c.Repair.AuditLog), "server-log-state.json")
}

// RewindStateFile is where the daemon keeps the provider rewinds it saw
// (provider_rewound) until a verification finds the tables equal, next to
// repair.audit_log.
func (c *Config) RewindStateFile() string {
	return filepath.Join(filepath.Dir(c.Repair.AuditLog), "provider-rewinds.json")
}

// SequenceStateFile is where the daemon keeps since when each replicated
// sequence has been behind (sequence_behind), so that a restart does not
// put the finding off, next to repair.audit_log.
func (c *Config) SequenceStateFile() string {
	return filepath.Join(filepath.Dir(c.Repair.AuditLog), "sequences-behind.json")
}

// SeenFile is where the daemon remembers the subscriptions it has seen
// (package seen), next to repair.audit_log.
func (c *Config) SeenFile() string {
	return filepath.Join(filepath.Dir(c.Repair.AuditLog), "subscriptions-seen.json")
}

// VerifiedFile is where `pglmon verify` records the tables it found equal,
// for the daemon, next to repair.audit_log.
func (c *Config) VerifiedFile() string {
	return filepath.Join(filepath.Dir(c.Repair.AuditLog), "verified.json")
}

// Maintenance configures maintenance windows: nodes under planned work,
// whose subscriptions the daemon neither repairs nor posts to Slack.
type Maintenance struct {
	// File holds the windows; "" puts maintenance.json next to repair.audit_log.
	File string `yaml:"file"`
	// MaxDuration bounds one window, so a forgotten one ends by itself.
	MaxDuration Duration `yaml:"max_duration"`
}

// MaintenanceFile is where maintenance windows are kept.
func (c *Config) MaintenanceFile() string {
	if c.Maintenance.File != "" {
		return c.Maintenance.File
	}
	return filepath.Join(filepath.Dir(c.Repair.AuditLog), "maintenance.json")
}

// Log configures logging.
type Log struct {
	Level string `yaml:"level"`
}

// Policy values.
const (
	PolicyAuto    = "auto"
	PolicyApprove = "approve"
	PolicyOff     = "off"
)

// Remedies that have a policy.
var Remedies = []string{"restart", "recreate-origin", "enable"}

// RemedyDropOrphanSlot may also have a policy, approve or off (the
// default): approve puts a button on Slack's orphan_slot messages that an
// approver presses; it never runs automatically.
const RemedyDropOrphanSlot = "drop-orphan-slot"

// HeartbeatSet is the replication set pglmon heartbeat install creates on
// each provider and gives to one subscription per provider and subscriber.
const HeartbeatSet = "pglmon_heartbeat"

// DefaultListen is the daemon's default HTTP address (postgres_exporter has 9187).
const DefaultListen = "127.0.0.1:9198"

// Default returns a configuration with every default set.
func Default() *Config {
	return &Config{
		Probe: Probe{Interval: Duration(10 * time.Second), Timeout: Duration(5 * time.Second), MaxBackoff: Duration(30 * time.Second), LogInterval: Duration(time.Minute)},
		Thresholds: Thresholds{
			DownGrace:        Duration(30 * time.Second),
			LagBytes:         256 << 20,
			RetainedWALBytes: 10 << 30,
			TableSyncGrace:   Duration(30 * time.Minute),
			// PostgreSQL's default autovacuum_freeze_max_age, and about half
			// the ~2.1 billion at which it stops assigning transaction IDs.
			SlotXminAge:         200_000_000,
			SlotXminAgeCritical: 1_000_000_000,
			// A minute is longer than any lock a healthy application holds
			// on a replicated row; a quarter of an hour of nothing applied
			// is an outage for most readers of the subscriber.
			ApplyBlocked:         Duration(time.Minute),
			ApplyBlockedCritical: Duration(15 * time.Minute),
			// Every process accepts a barrier within milliseconds when it
			// checks for interrupts at all.
			SignalBarrierWait:        Duration(30 * time.Second),
			ReplicationDelay:         Duration(5 * time.Minute),
			ReplicationDelayCritical: Duration(30 * time.Minute),
			StorageFreePercent:       10,
			StorageFullWithin:        Duration(12 * time.Hour),
		},
		HTTP:        HTTP{Listen: DefaultListen},
		Maintenance: Maintenance{MaxDuration: Duration(72 * time.Hour)},
		Repair: Repair{
			AuditLog:           "/var/lib/pglmon/audit.jsonl",
			Policy:             map[string]string{"restart": PolicyAuto, "recreate-origin": PolicyAuto, "enable": PolicyApprove},
			MaxAttemptsPerHour: 3,
			VerifyTimeout:      Duration(60 * time.Second),
		},
		Log:    Log{Level: "info"},
		AWS:    AWS{MaxAttempts: 5, RDSCheckEvery: Duration(15 * time.Minute), StorageCheckEvery: Duration(5 * time.Minute)},
		Slack:  Slack{APIURL: "https://slack.com/api/", Mode: "http"},
		Verify: Verify{Mode: "checksum", Scan: "auto", ChunkRows: 100000, StatementTimeout: Duration(30 * time.Second), MaxKeys: 100, Parallel: 1},
	}
}

// Error is a configuration error at a place in a file.
type Error struct {
	File         string
	Line, Column int
	Field        string
	Msg          string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

type position struct{ line, col int }

// Load reads, decodes, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates configuration text; path is used in errors.
func Parse(path string, b []byte) (*Config, error) {
	cfg := Default()
	cfg.path = path
	cfg.positions = map[string]position{}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, errEOF) || strings.Contains(err.Error(), "EOF") {
			return nil, Errors{{File: path, Msg: "file is empty; at least one node is needed"}}
		}
		return nil, Errors{{File: path, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	var errs Errors
	checkKeys(doc, reflect.TypeOf(*cfg), "", cfg.positions, path, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	if err := doc.Decode(cfg); err != nil {
		return nil, decodeErrors(path, err, cfg.positions)
	}
	if errs := cfg.validate(); len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

var errEOF = errors.New("EOF")

// Node returns the node with that name.
func (c *Config) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// checkKeys walks the YAML tree beside the Go type, recording where each
// field is and reporting keys the type does not have.
func checkKeys(n *yaml.Node, t reflect.Type, path string, pos map[string]position, file string, errs *Errors) {
	if path != "" {
		pos[path] = position{n.Line, n.Column}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag == "!!null" {
				return
			}
			*errs = append(*errs, &Error{file, n.Line, n.Column, path, "must be a mapping of keys to values"})
			return
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag := strings.Split(f.Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			child := join(path, k.Value)
			if !ok {
				*errs = append(*errs, &Error{file, k.Line, k.Column, child, "unknown key (see config.example.yaml for the keys pglmon knows)"})
				continue
			}
			pos[child] = position{k.Line, k.Column}
			checkKeys(v, ft, child, pos, file, errs)
			pos[child] = position{v.Line, v.Column}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				return
			}
			*errs = append(*errs, &Error{file, n.Line, n.Column, path, "must be a list"})
			return
		}
		for i, item := range n.Content {
			child := fmt.Sprintf("%s[%d]", path, i)
			pos[child] = position{item.Line, item.Column}
			checkKeys(item, t.Elem(), child, pos, file, errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, &Error{file, n.Line, n.Column, path, "must be a mapping of keys to values"})
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			pos[join(path, n.Content[i].Value)] = position{n.Content[i+1].Line, n.Content[i+1].Column}
		}
	default:
		// A value yaml cannot read as the field's type: said here, with
		// the field's name and place (yaml's own error has neither).
		if want := scalarWords[t.Kind()]; want != "" && n.Decode(reflect.New(t).Interface()) != nil {
			*errs = append(*errs, &Error{file, n.Line, n.Column, path, "must be " + want + ", not " + describeNode(n)})
		}
	}
}

// scalarWords says what a value of each scalar kind looks like.
var scalarWords = map[reflect.Kind]string{
	reflect.Bool: "true or false", reflect.String: "a string",
	reflect.Int: "an integer", reflect.Int8: "an integer", reflect.Int16: "an integer", reflect.Int32: "an integer", reflect.Int64: "an integer",
	reflect.Uint: "a whole number (0 or more)", reflect.Uint8: "a whole number (0 or more)", reflect.Uint16: "a whole number (0 or more)",
	reflect.Uint32: "a whole number (0 or more)", reflect.Uint64: "a whole number (0 or more)",
	reflect.Float32: "a number", reflect.Float64: "a number",
}

// describeNode names what a YAML value is, for an error.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// decodeErrors turns yaml.v3's errors into Errors with positions, and
// the field at that position (pos: where checkKeys found each field).
func decodeErrors(file string, err error, pos map[string]position) error {
	var ne *nodeError
	if errors.As(err, &ne) {
		e := &Error{File: file, Line: ne.node.Line, Column: ne.node.Column, Msg: ne.msg}
		for field, p := range pos {
			// The deepest field there: a list item and its only value share a place.
			if p == (position{ne.node.Line, ne.node.Column}) && len(field) > len(e.Field) {
				e.Field = field
			}
		}
		return Errors{e}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs Errors
		for _, m := range te.Errors {
			e := &Error{File: file, Msg: m}
			if sm := lineRE.FindStringSubmatch(m); sm != nil {
				fmt.Sscan(sm[1], &e.Line)
				e.Column = 1
				e.Msg = sm[2]
			}
			errs = append(errs, e)
		}
		return errs
	}
	return Errors{{File: file, Msg: err.Error()}}
}

func (c *Config) errorAt(field, format string, args ...any) *Error {
	p := c.positions[field]
	return &Error{File: c.path, Line: p.line, Column: p.col, Field: field, Msg: fmt.Sprintf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// subNameRE is what pglogical accepts as a subscription name.
var subNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (c *Config) validate() Errors {
	var errs Errors
	add := func(e *Error) { errs = append(errs, e) }
	if len(c.Nodes) == 0 {
		add(c.errorAt("nodes", "at least one node is needed"))
	}
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.Name == "":
			add(c.errorAt(f, "name is required"))
		case !nameRE.MatchString(n.Name):
			add(c.errorAt(f+".name", "%q may hold only letters, digits, '_', '.' and '-'", n.Name))
		case seen[n.Name]:
			add(c.errorAt(f+".name", "node %q is defined twice", n.Name))
		}
		seen[n.Name] = true
		if n.DSN == "" {
			add(c.errorAt(f, "dsn is required"))
		} else if DSNHasPassword(n.DSN) {
			add(c.errorAt(f+".dsn", "the dsn holds a password; remove it and use `password: {env: NAME}`, `{file: PATH}`, `{secrets_manager: {secret_id: ARN}}` or `{rds_iam: true}`"))
		} else if why := dsnSyntax(n.DSN); why != "" {
			add(c.errorAt(f+".dsn", "not a connection string pglmon can use: %s", why))
		}
		if p := n.Password; p != nil {
			set := 0
			for _, v := range []bool{p.Env != "", p.File != "", p.SecretsManager != nil, p.RDSIAM} {
				if v {
					set++
				}
			}
			if set != 1 {
				add(c.errorAt(f+".password", "set exactly one of env, file, secrets_manager or rds_iam"))
			}
			if sm := p.SecretsManager; sm != nil {
				if sm.SecretID == "" {
					add(c.errorAt(f+".password.secrets_manager", "secret_id is required"))
				} else if c.SecretRegion(n) == "" {
					add(c.errorAt(f+".password.secrets_manager", "no region: set secrets_manager.region, rds.region or aws.region, or use the secret's ARN"))
				}
			}
			if p.RDSIAM && c.NodeRegion(n) == "" {
				add(c.errorAt(f+".password.rds_iam", "no region for the IAM token: set rds.region or aws.region"))
			}
			if p.RDSIAM && sslDisabledRE.MatchString(n.DSN) {
				add(c.errorAt(f+".dsn", "RDS IAM authentication needs SSL: remove sslmode=disable (use sslmode=verify-full with the RDS CA bundle)"))
			}
		}
		if src := n.LogSource(); src != ServerLogAuto && src != ServerLogOff {
			if n.RDS != nil {
				add(c.errorAt(f+".server_log", "%q: the log of an RDS instance is read through the RDS API; use auto or off", src))
			} else if strings.ContainsAny(src, "\n\x00") {
				add(c.errorAt(f+".server_log", "must be auto, off or a file path"))
			}
		}
		if r := n.RDS; r != nil {
			if r.Identifier == "" {
				add(c.errorAt(f+".rds", "identifier is required (the DB instance identifier)"))
			}
			if c.NodeRegion(n) == "" {
				add(c.errorAt(f+".rds", "no region: set rds.region or aws.region"))
			}
		}
	}
	if c.Probe.Interval.D() < 100*time.Millisecond {
		add(c.errorAt("probe.interval", "must be at least 100ms"))
	}
	if c.Probe.Timeout.D() <= 0 {
		add(c.errorAt("probe.timeout", "must be greater than zero"))
	} else if c.Probe.Timeout.D() > c.Probe.Interval.D() {
		add(c.errorAt("probe.timeout", "must not be longer than probe.interval (%s)", c.Probe.Interval.D()))
	}
	if c.Probe.LogInterval.D() <= 0 {
		add(c.errorAt("probe.log_interval", "must be greater than zero"))
	}
	for remedy, p := range c.Repair.Policy {
		if remedy == RemedyDropOrphanSlot {
			if p != PolicyApprove && p != PolicyOff {
				add(c.errorAt("repair.policy."+remedy, "policy %q: dropping a slot is never automatic; approve (a Slack button for approvers) or off", p))
			}
			continue
		}
		if remedy == "skip-transaction" || remedy == "rewind-origin" {
			add(c.errorAt("repair.policy."+remedy, "%s has no policy: a person runs it (pglmon repair --remedy %s), never the daemon or Slack", remedy, remedy))
			continue
		}
		if !contains(Remedies, remedy) {
			add(c.errorAt("repair.policy."+remedy, "unknown remedy %q (known: %s)", remedy, strings.Join(append(Remedies[:len(Remedies):len(Remedies)], RemedyDropOrphanSlot), ", ")))
		}
		if p != PolicyAuto && p != PolicyApprove && p != PolicyOff {
			add(c.errorAt("repair.policy."+remedy, "policy %q must be auto, approve or off", p))
		}
	}
	const wraparound = 2_000_000_000 // PostgreSQL refuses new transaction IDs a little above this
	for _, th := range []struct {
		field string
		v     int64
	}{{"thresholds.slot_xmin_age", c.Thresholds.SlotXminAge}, {"thresholds.slot_xmin_age_critical", c.Thresholds.SlotXminAgeCritical}} {
		if th.v < 0 || th.v >= wraparound {
			add(c.errorAt(th.field, "%d must be between 0 (off) and %d transactions", th.v, wraparound-1))
		}
	}
	if w, cr := c.Thresholds.SlotXminAge, c.Thresholds.SlotXminAgeCritical; w > 0 && cr > 0 && cr < w {
		add(c.errorAt("thresholds.slot_xmin_age_critical", "%d is below thresholds.slot_xmin_age (%d)", cr, w))
	}
	if w, cr := c.Thresholds.ApplyBlocked.D(), c.Thresholds.ApplyBlockedCritical.D(); w > 0 && cr > 0 && cr < w {
		add(c.errorAt("thresholds.apply_blocked_critical", "%s is below thresholds.apply_blocked (%s)", cr, w))
	}
	if w, cr := c.Thresholds.ReplicationDelay.D(), c.Thresholds.ReplicationDelayCritical.D(); w > 0 && cr > 0 && cr < w {
		add(c.errorAt("thresholds.replication_delay_critical", "%s is below thresholds.replication_delay (%s)", cr, w))
	}
	if v := c.Thresholds.StorageFreePercent; v < 0 || v >= 100 {
		add(c.errorAt("thresholds.storage_free_percent", "%g must be between 0 (off) and 100", v))
	}
	if c.Repair.MaxAttemptsPerHour < 0 {
		add(c.errorAt("repair.max_attempts_per_hour", "must not be negative"))
	}
	if c.Verify.Mode != "count" && c.Verify.Mode != "checksum" {
		add(c.errorAt("verify.mode", "%q must be count or checksum", c.Verify.Mode))
	}
	if c.Verify.Scan != "auto" && c.Verify.Scan != "index" && c.Verify.Scan != "pages" {
		add(c.errorAt("verify.scan", "%q must be auto, index or pages", c.Verify.Scan))
	}
	if c.Verify.ChunkRows < 1 {
		add(c.errorAt("verify.chunk_rows", "must be at least 1"))
	}
	if c.Verify.MaxKeys < 1 {
		add(c.errorAt("verify.max_keys", "must be at least 1"))
	}
	if c.Verify.MaxRowsPerSecond < 0 {
		add(c.errorAt("verify.max_rows_per_second", "must not be negative"))
	}
	if c.Verify.Parallel < 1 || c.Verify.Parallel > MaxVerifyParallel {
		add(c.errorAt("verify.parallel", "%d must be between 1 and %d", c.Verify.Parallel, MaxVerifyParallel))
	}
	if c.Verify.StatementTimeout.D() <= 0 {
		add(c.errorAt("verify.statement_timeout", "must be greater than zero"))
	}
	if c.Verify.Window != "" {
		if _, _, err := ParseWindow(c.Verify.Window); err != nil {
			add(c.errorAt("verify.window", "%v", err))
		}
	}
	for i, pat := range c.Verify.Exclude {
		if strings.Contains(pat, `"`) { // a name as SQL writes it
			if parts, err := pgident.Split(pat); err != nil || len(parts) != 2 {
				add(c.errorAt(fmt.Sprintf("verify.exclude[%d]", i), "%q is not a schema.table name as SQL writes it (e.g. \"Sales\".\"Audit Log\"), nor a pattern (e.g. audit.* or public.log_*)", pat))
			}
			continue
		}
		if _, err := path.Match(pat, ""); err != nil || !strings.Contains(pat, ".") {
			add(c.errorAt(fmt.Sprintf("verify.exclude[%d]", i), "%q is not a schema.table pattern (e.g. audit.* or public.log_*)", pat))
		}
	}
	sets := map[string]bool{} // node/set: pglogical's set names are per node
	for i, rs := range c.ReplicationSets {
		f := fmt.Sprintf("replication_sets[%d]", i)
		n, ok := c.Node(rs.Node)
		switch {
		case rs.Name == "":
			add(c.errorAt(f, "name is required"))
		case !ok:
			add(c.errorAt(f+".node", "node %q is not configured", rs.Node))
		case n.PglogicalName == "":
			add(c.errorAt(f+".node", "node %q needs pglogical_name", rs.Node))
		case sets[rs.Node+"/"+rs.Name]:
			add(c.errorAt(f+".name", "replication set %q is defined twice on %s", rs.Name, rs.Node))
		}
		sets[rs.Node+"/"+rs.Name] = true
		// pglogical's own sets are there on every node and often hold no
		// table (ddl_sql, default_insert_only): named for a subscription's
		// sets, as create_subscription gives them by default.
		if _, own := BuiltinSets[rs.Name]; !own && len(rs.Tables)+len(rs.Schemas) == 0 {
			add(c.errorAt(f, "list tables or schemas (only pglogical's own sets, default, default_insert_only and ddl_sql, may have none)"))
		}
		for j, tbl := range rs.Tables {
			if err := checkTableName(tbl); err != nil {
				add(c.errorAt(fmt.Sprintf("%s.tables[%d]", f, j), "%q %v", tbl, err))
			}
		}
		for _, tbl := range slices.Sorted(maps.Keys(rs.Columns)) {
			cols := rs.Columns[tbl]
			if err := checkTableName(tbl); err != nil {
				add(c.errorAt(f+".columns."+tbl, "%q %v", tbl, err))
			}
			for k, col := range cols {
				switch {
				case col == "":
					add(c.errorAt(f+".columns."+tbl, "%s: an empty column name", tbl))
				case slices.Contains(cols[:k], col):
					add(c.errorAt(f+".columns."+tbl, "%s: column %q is listed twice", tbl, col))
				}
			}
			if len(cols) == 0 {
				add(c.errorAt(f+".columns."+tbl, "%s: list the columns to replicate (leave the table out of columns to replicate all of them)", tbl))
			}
		}
		for _, tbl := range slices.Sorted(maps.Keys(rs.RowFilters)) {
			if err := checkTableName(tbl); err != nil {
				add(c.errorAt(f+".row_filters."+tbl, "%q %v", tbl, err))
			}
			if strings.TrimSpace(rs.RowFilters[tbl]) == "" {
				add(c.errorAt(f+".row_filters."+tbl, "%s: the filter is empty (leave the table out of row_filters to replicate every row)", tbl))
			}
		}
	}
	subs := map[string]bool{}
	for i, sb := range c.Subscriptions {
		f := fmt.Sprintf("subscriptions[%d]", i)
		switch {
		case sb.Name == "":
			add(c.errorAt(f, "name is required"))
		case !subNameRE.MatchString(sb.Name):
			// pglogical 2.4.2's create_subscription refuses any other.
			add(c.errorAt(f+".name", "%q: pglogical takes only lower case letters, digits and _ in a subscription name, at most 63 of them", sb.Name))
		}
		if subs[sb.Subscriber+"/"+sb.Name] {
			add(c.errorAt(f+".name", "subscription %q is defined twice on %s", sb.Name, sb.Subscriber))
		}
		subs[sb.Subscriber+"/"+sb.Name] = true
		for _, k := range []struct{ field, node string }{{"subscriber", sb.Subscriber}, {"provider", sb.Provider}} {
			if n, ok := c.Node(k.node); !ok {
				add(c.errorAt(f+"."+k.field, "node %q is not configured", k.node))
			} else if n.PglogicalName == "" {
				add(c.errorAt(f+"."+k.field, "node %q needs pglogical_name", k.node))
			}
		}
		if len(sb.ReplicationSets) == 0 {
			add(c.errorAt(f+".replication_sets", "at least one replication set is needed"))
		}
		for j, set := range sb.ReplicationSets {
			switch {
			case !sets[sb.Provider+"/"+set] && set == HeartbeatSet:
				add(c.errorAt(f+".replication_sets", "replication set %q is pglmon heartbeat install's: leave it out here (setup apply keeps it on the subscription that has it; heartbeat install gives it to one subscription per provider and subscriber)", set))
			case !sets[sb.Provider+"/"+set]:
				add(c.errorAt(f+".replication_sets", "replication set %q is not defined on provider %s", set, sb.Provider))
			case slices.Contains(sb.ReplicationSets[:j], set):
				add(c.errorAt(f+".replication_sets", "replication set %q is listed twice", set))
			}
		}
		// pglogical takes any names here, and its provider then refuses
		// the subscription's every connection (measured with 2.4.2: `Only
		// "all" is allowed in forward origin name list at the moment`).
		if len(sb.ForwardOrigins) > 1 || (len(sb.ForwardOrigins) == 1 && sb.ForwardOrigins[0] != "all") {
			add(c.errorAt(f+".forward_origins", "%q: pglogical forwards all origins ([all]) or none ([]), nothing else (its provider refuses the connection)", sb.ForwardOrigins))
		}
	}
	if c.Slack.Enabled() {
		if c.Slack.BotToken == nil {
			add(c.errorAt("slack", "bot_token is required when slack.channel is set"))
		}
		switch c.Slack.Mode {
		case "http":
			if c.Slack.SigningSecret == nil {
				add(c.errorAt("slack", "signing_secret is required in http mode (buttons are verified with it)"))
			}
		case "socket":
			if c.Slack.AppToken == nil {
				add(c.errorAt("slack", "app_token (xapp-..., connections:write) is required in socket mode"))
			}
		default:
			add(c.errorAt("slack.mode", "%q must be http or socket", c.Slack.Mode))
		}
		if _, err := url.Parse(c.Slack.APIURL); err != nil || !strings.HasSuffix(c.Slack.APIURL, "/") {
			add(c.errorAt("slack.api_url", "must be a URL ending in /"))
		}
		for _, src := range []struct {
			f string
			p *PasswordSource
		}{{"slack.bot_token", c.Slack.BotToken}, {"slack.signing_secret", c.Slack.SigningSecret}, {"slack.app_token", c.Slack.AppToken}} {
			if src.p != nil && (src.p.Env == "") == (src.p.File == "") {
				add(c.errorAt(src.f, "set exactly one of env or file"))
			}
		}
	}
	if c.Maintenance.MaxDuration <= 0 {
		add(c.errorAt("maintenance.max_duration", "must be more than 0"))
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		add(c.errorAt("http.listen", "%q must be host:port, e.g. 127.0.0.1:9198 or :9198", c.HTTP.Listen))
	}
	if t := c.HTTP.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		add(c.errorAt("http.tls", "set both cert_file and key_file (PEM), or neither"))
	} else if t.ClientCAFile != "" && t.CertFile == "" {
		add(c.errorAt("http.tls.client_ca_file", "needs cert_file and key_file: client certificates are asked for over HTTPS only"))
	}
	if p := c.HTTP.BearerToken; p != nil && ((p.Env == "") == (p.File == "") || p.IsExternal()) {
		add(c.errorAt("http.bearer_token", "set exactly one of env or file"))
	}
	if c.AWS.MaxAttempts < 0 || c.AWS.MaxAttempts > 20 {
		add(c.errorAt("aws.max_attempts", "must be between 1 and 20"))
	}
	for _, e := range [][2]string{{"aws.endpoints.rds", c.AWS.Endpoints.RDS}, {"aws.endpoints.secretsmanager", c.AWS.Endpoints.SecretsManager}, {"aws.endpoints.cloudwatch", c.AWS.Endpoints.CloudWatch}} {
		f, v := e[0], e[1]
		if u, err := url.Parse(v); v != "" && (err != nil || u.Scheme == "" || u.Host == "") {
			add(c.errorAt(f, "%q is not a URL (https://host[:port])", v))
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add(c.errorAt("log.level", "%q must be debug, info, warn or error", c.Log.Level))
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var sslDisabledRE = regexp.MustCompile(`(^|\s|[?&])sslmode\s*=\s*'?disable\b`)

var kvPasswordRE = regexp.MustCompile(`(^|\s)password\s*=`)

// DSNReason is why pgx could not parse a connection string, from its
// error, without the connection string that error quotes.
func DSNReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i >= 0 {
		return msg[i+len("`: "):]
	}
	return "cannot parse the connection string"
}

// dsnSyntax is what is wrong with a connection string pgx cannot parse (a
// port that is not a number, an unterminated quote, an unknown sslmode),
// "" when it parses. Files it names (TLS certificates and keys, a service
// file) may be readable only where and when pglmon runs: failing to read
// them is not a problem of the configuration.
func dsnSyntax(dsn string) string {
	_, err := pgconn.ParseConfig(dsn)
	if err == nil {
		return ""
	}
	why := DSNReason(err)
	if strings.Contains(why, "(unable to ") || strings.HasPrefix(why, "failed to read service") {
		return ""
	}
	return why
}

// DSNHasPassword reports whether a libpq connection string carries a password.
func DSNHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return true // cannot tell: refuse rather than risk printing it
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Has("password")
	}
	return kvPasswordRE.MatchString(dsn)
}

// ResolvePassword reads the node's password from its source; "" when none is set.
func (n Node) ResolvePassword() (Secret, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.ResolvePasswordContext(ctx)
}

// ResolvePasswordContext is ResolvePassword bounded by ctx (AWS calls).
func (n Node) ResolvePasswordContext(ctx context.Context) (Secret, error) {
	if n.Password == nil {
		return "", nil
	}
	switch {
	case n.Password.IsExternal():
		if n.Password.external == nil {
			return "", fmt.Errorf("node %s: the password is held in AWS, but AWS support was not set up", n.Name)
		}
		return n.Password.external.Password(ctx, n)
	default:
		return n.Password.local("node "+n.Name, "password.")
	}
}

// local reads a secret from the environment or a file; who and field
// name it in errors ("node x", "password.").
func (p *PasswordSource) local(who, field string) (Secret, error) {
	switch {
	case p.Env != "":
		v, ok := os.LookupEnv(p.Env)
		if !ok {
			return "", fmt.Errorf("%s: environment variable %s (%senv) is not set", who, p.Env, field)
		}
		return Secret(v), nil
	case p.File != "":
		b, err := os.ReadFile(ExpandPath(p.File))
		if err != nil {
			return "", fmt.Errorf("%s: read %sfile: %w", who, field, err)
		}
		return Secret(strings.TrimRight(string(b), "\r\n")), nil
	}
	return "", nil
}

// ParseWindow parses a daily window "HH:MM-HH:MM" into minutes after
// midnight; one that ends before it starts wraps midnight.
func ParseWindow(s string) (from, to int, err error) {
	var h1, m1, h2, m2 int
	if !windowRE.MatchString(s) {
		return 0, 0, fmt.Errorf("%q must look like 01:00-05:00", s)
	}
	fmt.Sscanf(s, "%d:%d-%d:%d", &h1, &m1, &h2, &m2)
	if h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59 {
		return 0, 0, fmt.Errorf("%q must look like 01:00-05:00 (hours 00-23, minutes 00-59)", s)
	}
	if h1 == h2 && m1 == m2 {
		return 0, 0, fmt.Errorf("%q starts and ends at the same time: an empty window (leave it out for any time)", s)
	}
	return h1*60 + m1, h2*60 + m2, nil
}

var windowRE = regexp.MustCompile(`^\d\d:\d\d-\d\d:\d\d$`)

// InWindow reports whether t falls in the daily window (which may wrap midnight).
func InWindow(window string, t time.Time) bool {
	from, to, err := ParseWindow(window)
	if err != nil || window == "" {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	if from <= to {
		return m >= from && m < to
	}
	return m >= from || m < to
}

// WindowEnd is when the daily window that t falls in (or the next one)
// ends; false when there is no window.
func WindowEnd(window string, t time.Time) (time.Time, bool) {
	_, to, err := ParseWindow(window)
	if err != nil || window == "" {
		return time.Time{}, false
	}
	// Before today's end, the window ends today (one wrapping midnight
	// started yesterday); from then on, the next one ends tomorrow.
	end := time.Date(t.Year(), t.Month(), t.Day(), to/60, to%60, 0, 0, t.Location())
	if t.Hour()*60+t.Minute() >= to {
		end = time.Date(t.Year(), t.Month(), t.Day()+1, to/60, to%60, 0, 0, t.Location())
	}
	return end, true
}

// Resolve reads a secret from its source.
func (p *PasswordSource) Resolve(field string) (Secret, error) {
	if p == nil {
		return "", nil
	}
	return p.local(field, field+".")
}

// NodeRegion is the AWS region of a node: rds.region, else aws.region.
func (c *Config) NodeRegion(n Node) string {
	if n.RDS != nil && n.RDS.Region != "" {
		return n.RDS.Region
	}
	return c.AWS.Region
}

// SecretRegion is the region of a node's Secrets Manager secret.
func (c *Config) SecretRegion(n Node) string {
	sm := n.Password.SecretsManager
	if sm == nil {
		return ""
	}
	if sm.Region != "" {
		return sm.Region
	}
	// arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME
	if parts := strings.SplitN(sm.SecretID, ":", 6); len(parts) == 6 && parts[0] == "arn" && parts[3] != "" {
		return parts[3]
	}
	return c.NodeRegion(n)
}
