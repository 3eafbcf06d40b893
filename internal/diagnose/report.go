// Package diagnose turns probe snapshots into findings: a health per
// subscription, each finding with its evidence and the remedy that fixes it.
// It does no I/O.
package diagnose

import (
	"encoding/json"
	"time"

	"github.com/pglmon/pglmon/internal/maintenance"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsstorage"
)

// Health of a subscription or of the whole report.
type Health string

// Healths, with their Nagios exit codes.
const (
	OK       Health = "ok"
	Warning  Health = "warning"
	Critical Health = "critical"
	Unknown  Health = "unknown"
)

// ExitCode is the Nagios plugin code: 0 ok, 1 warning, 2 critical, 3 unknown.
func (h Health) ExitCode() int {
	switch h {
	case Warning:
		return 1
	case Critical:
		return 2
	case Unknown:
		return 3
	}
	return 0
}

// Value is the metric value: 0 ok, 1 warning, 2 critical, 3 unknown.
func (h Health) Value() float64 { return float64(h.ExitCode()) }

// rank orders healths for aggregation: critical > warning > unknown > ok.
func (h Health) rank() int {
	switch h {
	case Critical:
		return 3
	case Warning:
		return 2
	case Unknown:
		return 1
	}
	return 0
}

// Worst returns the more serious of two healths.
func Worst(a, b Health) Health {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Severity of a finding; it sets the health of what it is about.
type Severity = Health

// Finding codes. They are stable: alert rules, dashboards and scripts use them.
const (
	CodeOriginMissing = "origin_missing"
	CodeStuckDown     = "stuck_down"
	CodeNotStreaming  = "not_streaming"
	CodeSlotInUse     = "slot_in_use"
	// CodeProviderRewound: the subscriber applied the provider's changes
	// past where the provider's WAL now ends (a restore, a failover to a
	// standby short of that WAL): pglogical skips what the provider
	// commits until its WAL passes that point.
	CodeProviderRewound = "provider_rewound"
	// CodeProviderTimelineChanged: the provider went on to a new timeline
	// (a promotion, a point-in-time restore) and pglmon cannot tell
	// whether it lost WAL the subscriber had applied (daemon).
	CodeProviderTimelineChanged = "provider_timeline_changed"
	// CodeSubscriberRewound: the subscriber's origin went back (a restore,
	// a failover to a standby short of its WAL) past what the provider's
	// slot confirmed: what it lost is never sent again (daemon).
	CodeSubscriberRewound = "subscriber_rewound"
	// CodeSlotAdvanced: the provider's slot moved on while its
	// subscription could not consume it (pg_replication_slot_advance,
	// pg_logical_slot_get_changes): the changes in between are lost to the
	// subscriber (daemon).
	CodeSlotAdvanced = "slot_advanced"
	// CodeHeartbeatsLost: the subscriber lacks heartbeats its provider
	// wrote while holding later ones, or holds some the provider no longer
	// has: transactions skipped or lost on one side (daemon).
	CodeHeartbeatsLost         = "heartbeats_lost"
	CodeProviderConnectFailed  = "provider_connection_failed"
	CodeWorkerSlotsExhausted   = "worker_slots_exhausted"
	CodeReplicationCapacityLow = "replication_capacity_low"
	CodeOriginSlotsExhausted   = "origin_slots_exhausted"
	CodeApplyError             = "apply_error"
	CodeApplyBlocked           = "apply_blocked"
	CodeApplyDelayTimeout      = "apply_delay_timeout"
	CodeSubscriptionDown       = "subscription_down"
	CodeSlotMissing            = "slot_missing"
	CodeSubscriptionDisabled   = "subscription_disabled"
	CodeNodeUnreachable        = "node_unreachable"
	// CodeNodeInRecovery: a node pglmon reaches is a standby, where
	// pglogical runs no worker and keeps no logical slot.
	CodeNodeInRecovery   = "node_in_recovery"
	CodeInitFailed       = "init_failed"
	CodeTableSyncStalled = "table_sync_stalled"
	CodePartitionedTable = "partitioned_table"
	CodeTableCopyRefused = "table_copy_refused"
	CodeTableSyncError   = "table_sync_error"
	CodeCopyNotPermitted = "copy_not_permitted"
	// CodeRowFilterNotPermitted: the role of a subscription's provider
	// connection may not execute a function a row filter of its sets calls.
	CodeRowFilterNotPermitted  = "row_filter_not_permitted"
	CodeSchemaMismatch         = "schema_mismatch"
	CodePartitionNotReplicated = "partition_not_replicated"
	// CodeTableCopyFailed: pglogical's table sync COPY failed, yet the
	// table was marked ready (daemon, from the subscriber's log).
	CodeTableCopyFailed = "table_copy_failed"
	// CodeInitialCopyFailed: the first copy of a subscription failed, was
	// rolled back whole, and pglogical marked it ready (daemon, from the
	// subscriber's log).
	CodeInitialCopyFailed = "initial_copy_failed"
	// CodeSubscriptionSetsDiffer: a subscription the configuration
	// describes replicates other replication sets than it says.
	CodeSubscriptionSetsDiffer = "subscription_sets_differ"
	// CodeSubscriptionMissing: a subscription the configuration describes
	// does not exist on its subscriber.
	CodeSubscriptionMissing = "subscription_missing"
	// CodeTableNotReplicated: a table a configured replication set stands
	// for is not in the set on its node (node).
	CodeTableNotReplicated = "table_not_replicated"
	// CodeTableLeftSet: a table pglogical copied for a subscription is in
	// none of its sets on the provider any more; pglogical still says it
	// replicates, but its changes no longer arrive.
	CodeTableLeftSet = "table_left_set"
	// CodeProviderElsewhere: a subscription streams, but its configured
	// provider has no slot of its name: it streams from another server
	// (or database) whose pglogical node has the provider's name.
	CodeProviderElsewhere = "provider_elsewhere"
	// CodeForwardLoop: changes made on a subscription's subscriber come
	// back to it through subscriptions that forward all origins.
	CodeForwardLoop           = "forward_loop"
	CodeLagHigh               = "lag_high"
	CodeReplicationDelayHigh  = "replication_delay_high"
	CodeWALRetainedHigh       = "wal_retained_high"
	CodeSlotWALLost           = "slot_wal_lost"
	CodeSlotXminAgeHigh       = "slot_xmin_age_high"
	CodeApplyConflicts        = "apply_conflicts"
	CodeServerCrashed         = "server_crashed"
	CodeOrphanSlot            = "orphan_slot"
	CodeProviderNotConfigured = "provider_not_configured"
	CodeRepairFailed          = "repair_failed"
	CodeDataDivergence        = "data_divergence"
	// CodeSequenceBehind: a sequence of a subscription's sets has stayed
	// behind on the subscriber, longer than pglogical's own copy takes
	// (daemon).
	CodeSequenceBehind = "sequence_behind"
	// CodeSignalBarrierStuck: a DROP DATABASE (...) waits for ever for
	// pglogical's workers to accept its ProcSignalBarrier (node).
	CodeSignalBarrierStuck = "signal_barrier_stuck"
	// CodeSupervisorNotRunning: pglogical is preloaded but its supervisor
	// does not run (node).
	CodeSupervisorNotRunning = "supervisor_not_running"
	// CodeHeartbeatCarriers: a subscriber receives a provider's
	// heartbeats through no subscription while the provider writes them,
	// or through several (node).
	CodeHeartbeatCarriers = "heartbeat_carriers"
	// CodeInvalidDatabase: a DROP DATABASE was interrupted and left its
	// database invalid (node).
	CodeInvalidDatabase = "invalid_database"
	// RDS parameter group findings (daemon, nodes with rds:).
	CodeRDSParametersMissing = "rds_parameters_missing"
	CodeRDSPendingReboot     = "rds_pending_reboot"
	// CodeStorageLow: an RDS node's free storage is low or runs out soon
	// (daemon, CloudWatch FreeStorageSpace).
	CodeStorageLow = "storage_low"
)

// StatusMissing is the status of a subscription the configuration
// describes that its subscriber does not have (pglogical has none for it).
const StatusMissing = "missing"

// Remedy names. Only RemedyRestart, RemedyRecreateOrigin and RemedyEnable may
// run without a person; RemedyDropOrphanSlot needs explicit confirmation.
const (
	RemedyRestart        = "restart"
	RemedyRecreateOrigin = "recreate-origin"
	RemedyEnable         = "enable"
	RemedyDropOrphanSlot = "drop-orphan-slot"
	// RemedySkipTransaction skips the one transaction an apply_error's
	// worker fails on: its changes never reach the subscriber. Only a person
	// runs it (pglmon repair --remedy skip-transaction --lsn), never a policy.
	RemedySkipTransaction = "skip-transaction"
	// RemedyRewindOrigin moves a provider_rewound subscription's origin
	// back to where its provider's slot confirmed, so the provider's next
	// transactions are applied instead of skipped. Run by a person (pglmon
	// repair), never by a policy: the subscriber may hold the only copy of
	// what the provider lost.
	RemedyRewindOrigin = "rewind-origin"
)

// Rewind is what provider_rewound saw: the subscriber's origin past the
// end of its provider's WAL.
type Rewind struct {
	// OriginLSN is how far the subscriber applied (its origin's
	// remote_lsn), ProviderLSN where the provider's WAL ends, read after
	// the subscriber was probed, SlotConfirmedLSN how far the provider's
	// slot confirmed: the point rewind-origin moves the origin back to.
	OriginLSN        string `json:"origin_lsn"`
	ProviderLSN      string `json:"provider_lsn"`
	SlotConfirmedLSN string `json:"slot_confirmed_lsn,omitempty"`
}

// Finding is one diagnosed problem.
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	// Remedy is the pglmon remedy that fixes it, "" when none.
	Remedy string `json:"remedy"`
	// Human is set when only a person may decide the fix (changes may be lost).
	Human bool `json:"human,omitempty"`
	// Slot names the slot a node finding is about.
	Slot string `json:"slot,omitempty"`
	// Table names the table (schema.table, unquoted) a finding is about,
	// where its plan needs it (table_copy_refused).
	Table string `json:"table,omitempty"`
	// Subscriptions names other subscriptions a finding concerns, where
	// its plan needs them (heartbeats_lost: those from the same provider
	// on the same subscriber, which do not carry the heartbeats).
	Subscriptions []string `json:"subscriptions,omitempty"`
}

// Report is the diagnosis of every configured node and discovered subscription.
type Report struct {
	Time          time.Time      `json:"time"`
	Health        Health         `json:"health"`
	Subscriptions []Subscription `json:"subscriptions"`
	Nodes         []Node         `json:"nodes"`
}

// MarshalJSON writes a report without subscriptions (or nodes) with an
// empty list, not null, so that scripts can iterate over it as it is
// (jq '.subscriptions[]').
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	p := plain(r)
	if p.Subscriptions == nil {
		p.Subscriptions = []Subscription{}
	}
	if p.Nodes == nil {
		p.Nodes = []Node{}
	}
	return json.Marshal(p)
}

// Subscription is the diagnosis of one subscription.
type Subscription struct {
	Name       string `json:"name"`
	Subscriber string `json:"subscriber"`
	// Provider is the configured node providing it, "" when none matches.
	Provider     string `json:"provider"`
	ProviderNode string `json:"provider_node"`
	Status       string `json:"status"`
	Enabled      bool   `json:"enabled"`
	Health       Health `json:"health"`
	SlotName     string `json:"slot_name"`
	OriginExists bool   `json:"origin_exists"`
	// ApplyWorker is "<database oid>:<subscription id>" (probe.Subscription).
	ApplyWorker string `json:"apply_worker,omitempty"`
	// ProviderInterface and ProviderConninfo are how its apply worker
	// connects to the provider (probe.Subscription; no password).
	ProviderInterface string `json:"provider_interface,omitempty"`
	ProviderConninfo  string `json:"provider_conninfo,omitempty"`
	// ProviderRole is the role that connection connects as, which
	// pglogical's copies run as too (probe.Subscription.ProviderRole: the
	// connection string's user, or the walsender's role on the provider);
	// "" when neither could be read.
	ProviderRole string `json:"provider_role,omitempty"`
	// ReplicationSets are the provider's sets it subscribes to.
	ReplicationSets []string `json:"replication_sets,omitempty"`
	// ForwardOrigins is the subscription's forward_origins ([all], or []
	// for only what was written on its provider): see forward_loop.
	ForwardOrigins []string `json:"forward_origins,omitempty"`
	// TablesLeftSets are the tables pglogical copied to the subscriber for
	// it, or pglmon saw in its sets, that none of its sets holds on the
	// provider any more
	// (table_left_set): schema.table unquoted, as pglmon verify --table
	// takes it.
	TablesLeftSets []string `json:"tables_left_sets,omitempty"`
	// ColumnTypes are the replicated columns whose type differs on the
	// subscriber (schema_mismatch), with what pglogical's apply does with
	// them.
	ColumnTypes []TypeDiff `json:"column_types,omitempty"`
	// Keys are the replicated tables whose subscriber finds rows by another
	// key than the provider's (schema_mismatch).
	Keys []KeyDiff `json:"keys,omitempty"`
	// SequencesBehind are the sequences of its sets the subscriber has
	// lacked the provider's value of for a while (sequence_behind).
	SequencesBehind []SequenceBehind `json:"sequences_behind,omitempty"`
	// ApplyDelaySeconds is its apply_delay (0: none).
	ApplyDelaySeconds float64 `json:"apply_delay_seconds,omitempty"`
	// Maintenance is the maintenance window of its subscriber or provider
	// node, while one holds: no automatic repair, no Slack message.
	Maintenance *maintenance.Window `json:"maintenance,omitempty"`
	// OriginRemoteLSN is how far the subscriber has applied the provider's
	// WAL (its replication origin's remote_lsn; "" when it has none).
	OriginRemoteLSN string `json:"origin_remote_lsn,omitempty"`
	// Rewound is set when the subscriber has applied its provider's
	// changes past where the provider's WAL now ends (provider_rewound).
	Rewound *Rewind `json:"provider_rewound,omitempty"`
	// ProviderUp, SlotFound, SlotActive and SlotWALStatus describe the
	// provider's slot as last probed.
	ProviderUp    bool   `json:"provider_up"`
	SlotFound     bool   `json:"slot_found"`
	SlotActive    bool   `json:"slot_active"`
	SlotWALStatus string `json:"slot_wal_status,omitempty"`
	// LagBytes is null when the provider's slot could not be read.
	LagBytes   *int64   `json:"lag_bytes"`
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	// ReplicationDelaySeconds is how far behind its provider the
	// subscriber's data is, by pglmon's heartbeats (nil without them):
	// 0 while every heartbeat written has arrived.
	ReplicationDelaySeconds *float64 `json:"replication_delay_seconds,omitempty"`
	// HeartbeatApplied is the provider's time stamp on the newest heartbeat
	// the subscriber has applied.
	HeartbeatApplied *time.Time `json:"heartbeat_applied,omitempty"`
	RetainedWALBytes *int64     `json:"retained_wal_bytes,omitempty"`
	DownSince        *time.Time `json:"down_since,omitempty"`
	// UpSince is when a subscription said replicating again within an
	// outage that is not over (FlapWindow) and has lasted down_grace or
	// longer: a worker pglogical started again that may fail the same way
	// (a crash loop; when down it would be stuck_down).
	UpSince *time.Time `json:"up_since,omitempty"`
	// NotStreamingSince is when pglmon last saw its provider slot active,
	// while the subscription is enabled and the slot inactive (see
	// History.Quiet), whatever the status says.
	NotStreamingSince *time.Time `json:"not_streaming_since,omitempty"`
	// WorkerAgeSeconds is how long its apply worker has run (absent when
	// none runs, or without pg_read_all_stats).
	WorkerAgeSeconds *float64 `json:"worker_age_seconds,omitempty"`
	// LockWait is set while its apply worker waits for a lock on the
	// subscriber, with the sessions in its way.
	LockWait *probe.LockWait `json:"lock_wait,omitempty"`
	// TablesNotReady are its tables whose initial copy (or
	// resynchronisation) has not finished, with the running copy's progress.
	TablesNotReady []probe.TableSync `json:"tables_not_ready,omitempty"`
	Findings       []Finding         `json:"findings"`
}

// AfterFix is the remedy a person runs once they have removed the cause a
// finding for a person names ("" when none), the last step of its plan: an
// apply worker that failed on a refused change or a missing column, could
// not log in, or waited for a connection that never completed, is tried
// again at once instead of after pglogical's own backoff (up to 180 s).
// Harmless when the cause remains (the new worker fails or waits the same
// way), but only a person knows when it is gone: never automatic.
func (f Finding) AfterFix() string {
	switch f.Code {
	case CodeApplyError, CodeSchemaMismatch, CodeProviderConnectFailed, CodeNotStreaming:
		return RemedyRestart
	}
	return ""
}

// Accepts reports whether remedy answers the finding: its own remedy, or
// the one a person runs after fixing its cause (AfterFix).
func (f Finding) Accepts(remedy string) bool {
	return remedy != "" && (f.Remedy == remedy || f.AfterFix() == remedy)
}

// AddFinding adds f to subscription s of r, whose health and r's it
// raises to f's severity.
func (r *Report) AddFinding(s *Subscription, f Finding) {
	s.Findings = append(s.Findings, f)
	s.Health = Worst(s.Health, f.Severity)
	r.Health = Worst(r.Health, f.Severity)
}

// Finding returns the subscription's finding with that code.
func (s *Subscription) Finding(code string) (Finding, bool) {
	for _, f := range s.Findings {
		if f.Code == code {
			return f, true
		}
	}
	return Finding{}, false
}

// Node is the diagnosis of one configured node.
type Node struct {
	Name             string `json:"name"`
	Up               bool   `json:"up"`
	Error            string `json:"error"`
	PglogicalNode    string `json:"pglogical_node,omitempty"`
	ServerVersion    int    `json:"server_version,omitempty"`
	PglogicalVersion string `json:"pglogical_version,omitempty"`
	// Timeline is the timeline the server writes WAL on (0: a standby, or
	// not told), TimelineHistory its history file past the first timeline
	// (or TimelineHistoryError why it could not be read): a provider's
	// new timeline is a promotion or a point-in-time restore, which can
	// lose WAL a subscriber had applied (provider_rewound).
	Timeline             uint32                 `json:"timeline,omitempty"`
	TimelineHistory      []probe.TimelineSwitch `json:"timeline_history,omitempty"`
	TimelineHistoryError string                 `json:"timeline_history_error,omitempty"`
	// RDSStatus is the RDS instance status of an unreachable node with rds:
	// (storage-full, rebooting, stopped, ...), when read.
	RDSStatus string `json:"rds_status,omitempty"`
	// Slots are the node's replication slots as last probed (with the
	// walsender streaming from each and its decoding counters).
	Slots []probe.Slot `json:"slots,omitempty"`
	// Workers are its background workers against max_worker_processes.
	Workers *probe.Workers `json:"workers,omitempty"`
	// Capacity is its replication slots and walsenders against their limits.
	Capacity *probe.Capacity `json:"capacity,omitempty"`
	// OriginStates are its replication origin states (where pglogical is
	// installed): which origins hold them, against max_replication_slots.
	OriginStates *probe.OriginStates `json:"origin_states,omitempty"`
	// BarrierWaits are the sessions waiting for every process to accept a
	// ProcSignalBarrier (signal_barrier_stuck).
	BarrierWaits []probe.BarrierWait `json:"barrier_waits,omitempty"`
	// Storage is the RDS instance's free storage as last read (daemon,
	// nodes with rds:).
	Storage *rdsstorage.Reading `json:"storage,omitempty"`
	// Maintenance is the node's maintenance window, while one holds.
	Maintenance *maintenance.Window `json:"maintenance,omitempty"`
	Findings    []Finding           `json:"findings"`
}

// MarkMaintenance records the windows that hold (by node) on the nodes and
// on the subscriptions whose subscriber or configured provider they cover.
func (r *Report) MarkMaintenance(active map[string]maintenance.Window) {
	get := func(node string) *maintenance.Window {
		if w, ok := active[node]; ok && node != "" {
			return &w
		}
		return nil
	}
	for i := range r.Nodes {
		r.Nodes[i].Maintenance = get(r.Nodes[i].Name)
	}
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		s.Maintenance = get(s.Subscriber)
		if s.Maintenance == nil {
			s.Maintenance = get(s.Provider)
		}
	}
}

// Subscription finds a subscription by name (and subscriber, when not "").
func (r *Report) Subscription(name, subscriber string) (*Subscription, bool) {
	for i := range r.Subscriptions {
		s := &r.Subscriptions[i]
		if s.Name == name && (subscriber == "" || s.Subscriber == subscriber) {
			return s, true
		}
	}
	return nil, false
}

// ExplainUnreachable adds why to the node_unreachable findings about node
// (the node's own, and those of the subscriptions it is the subscriber or
// the unreachable provider of), and records its RDS status.
func (r *Report) ExplainUnreachable(node, rdsStatus, why string) {
	add := func(fs []Finding) {
		for i := range fs {
			if fs[i].Code == CodeNodeUnreachable {
				fs[i].Message += "; " + why
			}
		}
	}
	for i := range r.Nodes {
		if r.Nodes[i].Name == node && !r.Nodes[i].Up {
			r.Nodes[i].RDSStatus = rdsStatus
			add(r.Nodes[i].Findings)
		}
	}
	for i := range r.Subscriptions {
		if s := r.Subscriptions[i]; s.Subscriber == node || (s.Provider == node && !s.ProviderUp) {
			add(r.Subscriptions[i].Findings)
		}
	}
}
