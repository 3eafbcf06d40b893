// Package probe gathers the replication facts of one PostgreSQL node in one
// network round trip per cycle: slots and walsenders as a provider;
// subscriptions, origins and sync status as a pglogical subscriber.
package probe

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// LSN is a PostgreSQL WAL position.
type LSN uint64

// String formats the LSN as PostgreSQL does (16/B374D848).
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// Snapshot is everything one probe learned about one node.
type Snapshot struct {
	Node     string        `json:"node"`
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration_ns"`
	// Err is set when the node could not be probed; it never holds a password.
	Err error `json:"-"`
	// Skipped is set when a failing node was not tried again this cycle
	// (backoff): Err is the last failure.
	Skipped bool `json:"skipped,omitempty"`

	ServerVersion    int    `json:"server_version"`
	Database         string `json:"database"`
	InRecovery       bool   `json:"in_recovery"`
	PglogicalVersion string `json:"pglogical_version,omitempty"` // "" when not installed
	LocalNode        string `json:"local_node,omitempty"`        // pglogical node name
	// SetTables fingerprints the tables of the node's replication sets
	// (which, in which set, column lists, row filters): it changes when
	// one is added, removed or altered (package monitor compares the
	// subscriptions' tables again then).
	SetTables string `json:"-"`
	// SyncStates fingerprints pglogical.local_sync_status: it changes
	// when a copy of a table or of a subscription starts or ends (package
	// daemon reads the server log then: a COPY that failed is logged
	// there, while pglogical may mark the copy ready).
	SyncStates string `json:"-"`
	// TableDefs fingerprints the definitions (columns, types, keys) of
	// the tables in the node's replication sets and of those pglogical
	// copied to it: it changes with DDL on one of them (package monitor
	// compares the subscriptions' tables again then).
	TableDefs string `json:"-"`
	// DDLQueue fingerprints the end of pglogical.queue (PostgreSQL 14+;
	// "" before): it changes when DDL (replicate_ddl_command), a TRUNCATE
	// or a table's sync is queued for the subscribers (package monitor
	// waits for them to apply DDL before it compares their tables).
	DDLQueue   string `json:"-"`
	CurrentLSN LSN    `json:"current_lsn"`
	// InsertLSN is where the server inserts WAL (pg_current_wal_insert_lsn,
	// read with the pglogical node query; 0 on a standby): past what it
	// has committed, where CurrentLSN (written) may not be yet after an
	// asynchronous commit.
	InsertLSN LSN `json:"-"`
	// Timeline is the timeline the server writes WAL on (0: a standby, or
	// not told); TimelineHistory is its history file (past the first
	// timeline), or TimelineHistoryErr why it could not be read.
	Timeline           uint32           `json:"timeline,omitempty"`
	TimelineHistory    []TimelineSwitch `json:"timeline_history,omitempty"`
	TimelineHistoryErr string           `json:"timeline_history_error,omitempty"`

	Slots         []Slot         `json:"slots"`
	Subscriptions []Subscription `json:"subscriptions"`
	// TableSync holds the table-level sync rows that are not ready.
	TableSync []TableSync `json:"table_sync"`
	// UnreplicatedPartitions are partitions in no replication set whose
	// siblings are in one (as a provider).
	UnreplicatedPartitions []Partition `json:"unreplicated_partitions,omitempty"`
	// OldestXact is the server's oldest transaction holding a transaction
	// ID, in any database, prepared ones included; nil when none. While it
	// is open no logical slot can release WAL written since it began.
	OldestXact *Xact `json:"oldest_xact,omitempty"`
	// BarrierWaits are the sessions waiting for every server process to
	// accept a ProcSignalBarrier, longest first.
	BarrierWaits []BarrierWait `json:"barrier_waits,omitempty"`
	// InvalidDatabases are the server's databases an interrupted DROP
	// DATABASE left invalid (datconnlimit -2, PostgreSQL 15.4, 14.9 ...).
	InvalidDatabases []string `json:"invalid_databases,omitempty"`
	// Workers counts the server's background workers against
	// max_worker_processes; nil when this role cannot see them all.
	Workers *Workers `json:"workers,omitempty"`
	// Capacity counts the server's replication slots and walsenders
	// against max_replication_slots and max_wal_senders.
	Capacity *Capacity `json:"capacity,omitempty"`
	// Origins are the server's replication origin states, read where
	// pglogical is installed; nil elsewhere.
	Origins *OriginStates `json:"origin_states,omitempty"`
	// Heartbeat is what pglmon.heartbeat holds here (package heartbeat);
	// nil without the table.
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
}

// Heartbeat is the content of a node's pglmon.heartbeat. pglmon writes a
// row stamped with a provider's clock into the provider's table every
// cycle; its subscribers apply it like any change, so the newest row a
// subscriber holds from a provider says up to when it has applied that
// provider's changes.
type Heartbeat struct {
	// Clock is the server's clock (clock_timestamp()) when it was probed,
	// and ReadAt pglmon's just before it asked (after connecting).
	Clock  time.Time `json:"clock"`
	ReadAt time.Time `json:"read_at"`
	// Provides: the table is in this node's pglmon_heartbeat replication
	// set, so pglmon writes heartbeats here.
	Provides bool `json:"provides"`
	// Nodes holds, by pglogical node name, the oldest and newest heartbeat
	// kept: a provider's own, a subscriber's as applied from each provider.
	Nodes map[string]HeartbeatSpan `json:"nodes"`
	// Positions: pglmon.heartbeat_position (pglmon heartbeat install puts
	// it beside the heartbeats; only a provider's has rows) is here and
	// readable. Slots then says how far each logical slot of this
	// database has confirmed the heartbeats written here.
	Positions bool                     `json:"positions"`
	Slots     map[string]SlotHeartbeat `json:"slots,omitempty"`
}

// SlotHeartbeat is how far a slot has confirmed the provider's heartbeats,
// by their WAL positions (HeartbeatMark): a subscription that does not
// carry them has applied every change of its sets committed before the
// newest heartbeat its slot confirmed.
type SlotHeartbeat struct {
	// Newest: the slot confirmed the newest heartbeat's position.
	Newest bool `json:"newest"`
	// Confirmed is the stamp of the newest heartbeat at or before the
	// position the slot confirmed; nil when it is before every one kept.
	Confirmed *time.Time `json:"confirmed,omitempty"`
	// Oldest is the stamp of the oldest heartbeat whose position is kept.
	Oldest time.Time `json:"oldest"`
}

// HeartbeatSpan is the oldest and newest heartbeat of one node in a table.
type HeartbeatSpan struct {
	Oldest time.Time `json:"oldest"`
	Newest time.Time `json:"newest"`
}

// Capacity is what a provider has left for replication. Every subscription
// holds a slot and a walsender, and pglogical makes a temporary slot (and
// a walsender) per table it copies: an initial copy or a resynchronisation
// of several tables needs several at once.
type Capacity struct {
	Slots      int `json:"replication_slots"`
	MaxSlots   int `json:"max_replication_slots"`
	Senders    int `json:"wal_senders"`
	MaxSenders int `json:"max_wal_senders"`
	// SenderTimeoutMS is the server's wal_sender_timeout (0: none): a
	// walsender whose consumer has not answered for that long is ended.
	SenderTimeoutMS int `json:"wal_sender_timeout_ms"`
}

// OriginStates are the server's replication origin states: the shared
// memory in which PostgreSQL tracks how far each replication origin has
// applied, max_replication_slots of them (a second array beside the
// slots', of the same size), every database's together. A pglogical
// subscriber takes one per subscription while it replicates, and one more
// per table it copies (an origin named after the copy's slot,
// <subscription slot>_<8 hex digits>), which the copy's end frees. One is
// kept until its origin is dropped, a disabled subscription's too, and
// across restarts: a server restarted with fewer than it holds does not
// start ("could not find free replication state, increase
// max_replication_slots", PANIC; measured with PostgreSQL 15). With none
// free, an apply or sync worker that needs one fails at its start ("could
// not find free replication state slot for replication origin") and is
// started again for ever.
type OriginStates struct {
	// Held names the origins holding a state, in state order.
	Held []string `json:"held"`
	Max  int      `json:"max_replication_slots"`
}

// Full says whether no state is left.
func (o *OriginStates) Full() bool { return o != nil && o.Max > 0 && len(o.Held) >= o.Max }

// Holds says whether origin name holds a state.
func (o *OriginStates) Holds(name string) bool { return o != nil && slices.Contains(o.Held, name) }

// Copies are the held origins of table copies under way: <origin>_<8 hex
// digits>, whose subscription's origin holds one too, by that origin.
func (o *OriginStates) Copies() map[string][]string {
	if o == nil {
		return nil
	}
	out := map[string][]string{}
	for _, h := range o.Held {
		i := strings.LastIndexByte(h, '_')
		if i < 0 || len(h)-i-1 != 8 || strings.Trim(h[i+1:], "0123456789abcdef") != "" || !o.Holds(h[:i]) {
			continue
		}
		out[h[:i]] = append(out[h[:i]], h)
	}
	return out
}

// Workers are the background workers of a server. pglogical starts one
// per subscription (apply), one per table being copied (sync), one per
// database with pglogical (manager) and a supervisor; parallel queries and
// PostgreSQL's own logical replication take slots from the same
// max_worker_processes. When none is left, a worker that exits cannot
// start again ("worker registration failed").
type Workers struct {
	InUse     int `json:"in_use"`
	Pglogical int `json:"pglogical"`
	Parallel  int `json:"parallel"`
	Max       int `json:"max_worker_processes"`
	// ManagerRunning: pglogical's manager of this database runs; and
	// SupervisorRunning, its supervisor. Each exits when it cannot start a
	// worker (a manager, an apply worker) and is started again moments
	// later, freeing its own slot meanwhile.
	ManagerRunning    bool `json:"manager_running"`
	SupervisorRunning bool `json:"supervisor_running"`
	// Preloaded: pglogical is in shared_preload_libraries, so a supervisor
	// should run. UptimeSeconds is how long the server has run.
	Preloaded     bool    `json:"pglogical_preloaded"`
	UptimeSeconds float64 `json:"server_uptime_seconds"`
}

// WorkersNeeded is how many more workers pglogical needs on this database to run
// what it should: its supervisor, its manager, and an apply worker for each
// enabled subscription that has none.
func (s *Snapshot) WorkersNeeded() int {
	if s.Workers == nil || s.PglogicalVersion == "" {
		return 0
	}
	n := 0
	if !s.Workers.ManagerRunning {
		n++
	}
	if !s.Workers.SupervisorRunning {
		n++
	}
	for _, sub := range s.Subscriptions {
		if sub.Enabled && !sub.WorkerRunning {
			n++
		}
	}
	return n
}

// Xact is an open transaction: a session's, or a prepared one (PID 0,
// State "prepared", with its GID), which outlives any session until
// committed or rolled back. Its XactSeconds counts since it was prepared.
type Xact struct {
	Session
	GID      string `json:"gid,omitempty"`
	Database string `json:"database"`
	// XidAge is its transaction ID's age.
	XidAge int64 `json:"xid_age"`
}

// Session is who a server process is, as pg_stat_activity says; never its
// query, which can hold data.
type Session struct {
	PID         int    `json:"pid,omitempty"`
	User        string `json:"user"`
	Application string `json:"application_name,omitempty"`
	ClientAddr  string `json:"client_addr,omitempty"`
	// State is pg_stat_activity.state: active, idle in transaction, ...
	State string `json:"state"`
	// StateSeconds is how long it has been in State, XactSeconds the age
	// of its open transaction.
	StateSeconds *float64 `json:"state_seconds,omitempty"`
	XactSeconds  *float64 `json:"xact_seconds,omitempty"`
}

// Partition is a partition of a partitioned table.
type Partition struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	// Parent is the partitioned table, schema.table.
	Parent string `json:"parent"`
	// Sets are the replication sets its sibling partitions are in.
	Sets string `json:"sets"`
}

// BarrierWait is a session waiting until every process of the server has
// accepted a ProcSignalBarrier: DROP DATABASE, DROP TABLESPACE and ALTER
// DATABASE SET TABLESPACE wait so on PostgreSQL 15+, normally for
// milliseconds. A background worker whose loop never checks for interrupts
// never accepts it, and the statement waits for ever: pglogical before
// 2.4.6 (its supervisor and apply workers, measured with 2.4.2).
type BarrierWait struct {
	Session
	// Statement is the start of the waiting statement ("DROP DATABASE
	// scratch"): its command and object only, never more of its text;
	// empty when this role cannot see it.
	Statement string `json:"statement,omitempty"`
	// Seconds is how long the statement has run.
	Seconds float64 `json:"seconds"`
	// Pglogical are pglogical's processes that started before the
	// statement: those it may wait for (one started later need not accept).
	Pglogical []Process `json:"pglogical_processes,omitempty"`
}

// Process is a server process: its PID and pg_stat_activity.backend_type.
type Process struct {
	PID  int    `json:"pid"`
	Type string `json:"type"`
}

// Up reports whether the node answered.
func (s *Snapshot) Up() bool { return s.Err == nil }

// HeartbeatMark is a heartbeat the daemon wrote on a provider: its stamp
// (the provider's clock) and the provider's WAL insert position read just
// after the stamp was taken, which pglmon.heartbeat_position keeps. Every
// transaction the provider committed before the stamp ends before that
// position, so a subscription whose slot has confirmed it has applied all
// of them that it replicates.
type HeartbeatMark struct {
	TS  time.Time `json:"ts"`
	LSN LSN       `json:"lsn"`
}

// HeartbeatRoute is what a subscriber receives from one pglogical node:
// its subscriptions from there, in their order, and those of them that
// carry that node's heartbeats (the set pglmon_heartbeat). pglmon
// heartbeat install keeps exactly one carrier per route.
type HeartbeatRoute struct {
	ProviderNode  string
	Subscriptions []string
	Carriers      []string
}

// HeartbeatRoutes groups the node's subscriptions by the pglogical node
// they replicate from, in the order of their first subscription.
func (s *Snapshot) HeartbeatRoutes() []HeartbeatRoute {
	var out []HeartbeatRoute
	at := map[string]int{}
	for _, sub := range s.Subscriptions {
		i, ok := at[sub.ProviderNode]
		if !ok {
			i = len(out)
			at[sub.ProviderNode] = i
			out = append(out, HeartbeatRoute{ProviderNode: sub.ProviderNode})
		}
		out[i].Subscriptions = append(out[i].Subscriptions, sub.Name)
		if slices.Contains(sub.ReplicationSets, HeartbeatSet) {
			out[i].Carriers = append(out[i].Carriers, sub.Name)
		}
	}
	return out
}

// ProviderRole is the role subscription sub's provider connection
// connects as: the user its connection string names, or, when it names
// none (libpq then takes PGUSER or the OS user of the subscriber's
// server, which pglmon cannot see) or pglmon's role may not read it, the
// role of the walsender streaming from sub's slot on provider, its
// provider's snapshot (nil when not read). "" when neither says.
func (sub Subscription) ProviderRole(provider *Snapshot) string {
	if u := ConninfoUser(sub.ProviderConninfo); u != "" {
		return u
	}
	if provider == nil {
		return ""
	}
	if sl, ok := provider.Slot(sub.SlotName); ok && sl.Sender != nil {
		return sl.Sender.User
	}
	return ""
}

// Slot finds a replication slot by name.
func (s *Snapshot) Slot(name string) (Slot, bool) {
	for _, sl := range s.Slots {
		if sl.Name == name {
			return sl, true
		}
	}
	return Slot{}, false
}

// Slot is one replication slot of the node's database (or a physical slot).
type Slot struct {
	Name              string `json:"name"`
	Plugin            string `json:"plugin"`
	Type              string `json:"type"`
	Active            bool   `json:"active"`
	ActivePID         int    `json:"active_pid,omitempty"`
	RestartLSN        LSN    `json:"restart_lsn"`
	ConfirmedFlushLSN LSN    `json:"confirmed_flush_lsn"`
	// WALStatus is reserved, extended, unreserved or lost.
	WALStatus string `json:"wal_status"`
	// SafeWALSize is nil when max_slot_wal_keep_size is unlimited.
	SafeWALSize   *int64 `json:"safe_wal_size,omitempty"`
	RetainedBytes int64  `json:"retained_bytes"`
	// LagBytes is current WAL minus what the consumer confirmed flushed.
	LagBytes int64 `json:"lag_bytes"`
	// Sender is the walsender streaming from the slot, when one is.
	Sender *Sender `json:"sender,omitempty"`
	// XminAge and CatalogXminAge are age(xmin) and age(catalog_xmin), in
	// transactions: how far the slot holds back VACUUM (all tables for xmin,
	// the catalogs for catalog_xmin; both hold back freezing, so transaction
	// ID wraparound). Nil when the slot has none.
	XminAge        *int64 `json:"xmin_age,omitempty"`
	CatalogXminAge *int64 `json:"catalog_xmin_age,omitempty"`
	// Decoding is the slot's pg_stat_replication_slots row (PostgreSQL
	// 14+, logical slots of this database); nil when not read.
	Decoding *Decoding `json:"decoding,omitempty"`
}

// Decoding counts what logical decoding of a slot did since its statistics
// were last reset. A transaction whose changes exceed
// logical_decoding_work_mem is spilled to files under pg_replslot on the
// provider and read back at its commit: spilling is disk I/O and space on
// the provider, and a slower subscription.
type Decoding struct {
	SpillTxns  int64 `json:"spill_txns"`
	SpillCount int64 `json:"spill_count"`
	SpillBytes int64 `json:"spill_bytes"`
	TotalTxns  int64 `json:"total_txns"`
	TotalBytes int64 `json:"total_bytes"`
}

// HorizonAge is the larger of the slot's xmin and catalog_xmin ages, and
// which of the two it is ("" when the slot has neither).
func (s Slot) HorizonAge() (int64, string) {
	var age int64
	which := ""
	if s.XminAge != nil {
		age, which = *s.XminAge, "xmin"
	}
	if s.CatalogXminAge != nil && (which == "" || *s.CatalogXminAge > age) {
		age, which = *s.CatalogXminAge, "catalog_xmin"
	}
	return age, which
}

// Sender is the pg_stat_replication row of a walsender.
type Sender struct {
	PID             int    `json:"pid"`
	ApplicationName string `json:"application_name"`
	// User is the role its consumer connected as: for a pglogical
	// subscription, the role of its provider connection, which its copies
	// run as too (whatever the connection string says or leaves out).
	User string `json:"user,omitempty"`
	// ClientAddr and ClientPort are where its consumer connects from ("" and
	// 0 over a Unix socket, or when the role may not see them).
	ClientAddr string `json:"client_addr,omitempty"`
	ClientPort int    `json:"client_port,omitempty"`
	// ConnectedSeconds is how long the walsender has been connected.
	ConnectedSeconds *float64 `json:"connected_seconds,omitempty"`
	// ReplySeconds is how long ago its consumer last replied (reply_time):
	// a live pglogical subscriber replies at least every ~10 s.
	ReplySeconds *float64 `json:"reply_seconds,omitempty"`
	State        string   `json:"state"`
	SentLSN      LSN      `json:"sent_lsn"`
	WriteLSN     LSN      `json:"write_lsn"`
	FlushLSN     LSN      `json:"flush_lsn"`
	ReplayLSN    LSN      `json:"replay_lsn"`
	WriteLag     *float64 `json:"write_lag_seconds,omitempty"`
	FlushLag     *float64 `json:"flush_lag_seconds,omitempty"`
	ReplayLag    *float64 `json:"replay_lag_seconds,omitempty"`
}

// Subscription is one pglogical subscription on a subscriber node.
type Subscription struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	// Status is replicating, initializing, unknown, disabled or down.
	Status          string   `json:"status"`
	ProviderNode    string   `json:"provider_node"`
	SlotName        string   `json:"slot_name"`
	ReplicationSets []string `json:"replication_sets"`
	OriginExists    bool     `json:"origin_exists"`
	OriginRemoteLSN LSN      `json:"origin_remote_lsn"`
	// SyncStatus is the subscription-level local_sync_status (i, s, d, c, w, u, y, r), "" when absent.
	SyncStatus    string `json:"sync_status"`
	WorkerRunning bool   `json:"worker_running"`
	// ApplyWorker is "<database oid>:<subscription id>", which names its apply
	// worker ("pglogical apply 16385:3871614535") in pg_stat_activity and in
	// the postmaster's log lines.
	ApplyWorker string `json:"apply_worker"`
	// WorkerAgeSeconds is how long its apply worker has run (nil when it
	// does not, or when the role may not see its start: pg_read_all_stats).
	WorkerAgeSeconds *float64 `json:"worker_age_seconds,omitempty"`
	// ProviderInterface is the pglogical interface (of the provider node)
	// the subscription connects through, and ProviderConninfo where its
	// connection string goes: host, port, dbname, user and sslmode only
	// (SafeConninfo), never its password.
	ProviderInterface string `json:"provider_interface,omitempty"`
	ProviderConninfo  string `json:"provider_conninfo,omitempty"`
	// ApplyDelaySeconds is the subscription's apply_delay (0: none).
	ApplyDelaySeconds float64 `json:"apply_delay_seconds,omitempty"`
	// ForwardOrigins is the subscription's forward_origins: {all} (what
	// create_subscription gives unless told) has the provider send what it
	// received from elsewhere too; {} only what was written there.
	ForwardOrigins []string `json:"forward_origins"`
	// LockWait is set while the apply worker waits for a lock that a
	// session on the subscriber holds.
	LockWait *LockWait `json:"lock_wait,omitempty"`
}

// LockWait is an apply worker waiting for a lock: a session on the
// subscriber holds a row or a table the worker must change, and nothing of
// the subscription is applied until that session lets go.
type LockWait struct {
	PID int `json:"pid"`
	// WaitEvent is the kind of lock it waits for (pg_locks.locktype):
	// transactionid or tuple for a row another transaction changed,
	// relation for a table lock (LOCK TABLE, ALTER TABLE, VACUUM FULL).
	WaitEvent string `json:"wait_event"`
	// Seconds is how long it has waited (pg_locks.waitstart, PostgreSQL 14
	// and later); nil when the server does not say.
	Seconds *float64 `json:"seconds,omitempty"`
	// Tables are the tables the worker holds or waits for a lock on: the
	// one it is changing is among them.
	Tables []string `json:"tables,omitempty"`
	// Blockers are the sessions in its way: those blocking it directly
	// (depth 1), and those blocking them in turn.
	Blockers []Blocker `json:"blockers"`
}

// Blocker is a session that holds what an apply worker waits for.
type Blocker struct {
	Session
	// Depth is 1 for a session blocking the worker itself, 2 for one
	// blocking a depth-1 session, and so on.
	Depth       int    `json:"depth"`
	BackendType string `json:"backend_type"`
	// Waiting is set when it waits for a lock itself.
	Waiting bool `json:"waiting"`
}

// Heads are the blockers at the head of the chain: those that do not wait
// for a lock themselves (all of them when every one waits: a deadlock
// PostgreSQL is about to break).
func (w *LockWait) Heads() []Blocker {
	var out []Blocker
	for _, b := range w.Blockers {
		if !b.Waiting {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return w.Blockers
	}
	return out
}

// Waited is how long the worker has waited: Seconds, or on a server that
// does not say, the age of the youngest transaction blocking it directly
// (the wait cannot be older); ok is false when neither is known.
func (w *LockWait) Waited() (secs float64, ok bool) {
	if w.Seconds != nil {
		return *w.Seconds, true
	}
	for _, b := range w.Blockers {
		if b.Depth == 1 && b.XactSeconds != nil && (!ok || *b.XactSeconds < secs) {
			secs, ok = *b.XactSeconds, true
		}
	}
	return secs, ok
}

// TableSync is a table of a subscription whose sync is not ready.
type TableSync struct {
	Subscription string `json:"subscription"`
	Schema       string `json:"schema"`
	Table        string `json:"table"`
	Status       string `json:"status"`
	// Partitioned is set when the table is partitioned on the subscriber.
	Partitioned bool `json:"partitioned,omitempty"`
	// CopiedRows and CopiedBytes are how far the copy into the table has
	// come while one runs (pg_stat_progress_copy, PostgreSQL 14+).
	CopiedRows  *int64 `json:"copied_rows,omitempty"`
	CopiedBytes *int64 `json:"copied_bytes,omitempty"`
}

// Subscription statuses reported by pglogical.show_subscription_status().
const (
	StatusReplicating  = "replicating"
	StatusInitializing = "initializing"
	StatusUnknown      = "unknown"
	StatusDisabled     = "disabled"
	StatusDown         = "down"
)

// Statuses lists every status pglogical reports.
var Statuses = []string{StatusReplicating, StatusInitializing, StatusUnknown, StatusDisabled, StatusDown}
