// Package metrics exposes pglmon's view to Prometheus: a collector over the
// last probe cycle (series of things that disappear, disappear with them) and
// counters about pglmon itself. Nothing here queries a database.
package metrics

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/maintenance"
	"github.com/pglmon/pglmon/internal/probe"
)

// WALStatuses are the values of pg_replication_slots.wal_status.
var WALStatuses = []string{"reserved", "extended", "unreserved", "lost"}

var (
	descStatus = prometheus.NewDesc("pglmon_subscription_status",
		"pglogical status of a subscription: 1 for the current status, 0 for the others.",
		[]string{"subscriber", "subscription", "provider", "status"}, nil)
	descHealth = prometheus.NewDesc("pglmon_subscription_health",
		"Diagnosed health of a subscription: 0 ok, 1 warning, 2 critical, 3 unknown.",
		[]string{"subscriber", "subscription"}, nil)
	descFinding = prometheus.NewDesc("pglmon_finding",
		"1 while a finding holds. Node findings (orphan_slot, node_unreachable) have subscription=\"\" and the node as subscriber.",
		[]string{"subscriber", "subscription", "code", "severity"}, nil)
	descOrigin = prometheus.NewDesc("pglmon_origin_present",
		"1 when the subscription's replication origin exists on the subscriber.",
		[]string{"subscriber", "subscription"}, nil)
	descLagBytes = prometheus.NewDesc("pglmon_replication_lag_bytes",
		"Provider WAL not yet confirmed flushed by the subscription.",
		[]string{"provider", "subscription"}, nil)
	descDelay = prometheus.NewDesc("pglmon_replication_delay_seconds",
		"How far behind its provider the subscriber's data is, by pglmon's heartbeats (pglmon heartbeat install): 0 while every heartbeat written has arrived.",
		[]string{"provider", "subscription"}, nil)
	descLagSeconds = prometheus.NewDesc("pglmon_replication_lag_seconds",
		"Replay lag reported by the provider's walsender (pg_stat_replication.replay_lag).",
		[]string{"provider", "subscription"}, nil)
	descSlotActive = prometheus.NewDesc("pglmon_slot_active",
		"1 when a walsender streams from the slot.", []string{"node", "slot"}, nil)
	descSlotRetained = prometheus.NewDesc("pglmon_slot_retained_wal_bytes",
		"WAL the slot holds back (current WAL position minus restart_lsn).", []string{"node", "slot"}, nil)
	descSlotSafe = prometheus.NewDesc("pglmon_slot_safe_wal_size_bytes",
		"WAL that can still be written before the slot loses WAL (absent when max_slot_wal_keep_size is unlimited).", []string{"node", "slot"}, nil)
	descSlotWALStatus = prometheus.NewDesc("pglmon_slot_wal_status",
		"1 for the slot's current wal_status, 0 for the others.", []string{"node", "slot", "wal_status"}, nil)
	descSlotXminAge = prometheus.NewDesc("pglmon_slot_xmin_age",
		"age(xmin) of the slot, in transactions: how far it holds back VACUUM of every table (absent when the slot has no xmin).", []string{"node", "slot"}, nil)
	descSlotCatalogXminAge = prometheus.NewDesc("pglmon_slot_catalog_xmin_age",
		"age(catalog_xmin) of the slot, in transactions: how far it holds back VACUUM of the catalogs and freezing (absent when the slot has none).", []string{"node", "slot"}, nil)
	descSpillBytes = prometheus.NewDesc("pglmon_slot_spill_bytes_total",
		"Bytes logical decoding of the slot spilled to disk on the provider (pg_stat_replication_slots.spill_bytes, PostgreSQL 14+): transactions larger than logical_decoding_work_mem. Reset with pg_stat_reset_replication_slot.",
		[]string{"node", "slot"}, nil)
	descSpillTxns = prometheus.NewDesc("pglmon_slot_spill_txns_total",
		"Transactions logical decoding of the slot spilled to disk (spill_txns, PostgreSQL 14+).", []string{"node", "slot"}, nil)
	descDecodedBytes = prometheus.NewDesc("pglmon_slot_decoded_bytes_total",
		"Bytes of changes logical decoding of the slot sent to its output plugin (total_bytes, PostgreSQL 14+).", []string{"node", "slot"}, nil)
	descDecodedTxns = prometheus.NewDesc("pglmon_slot_decoded_txns_total",
		"Transactions logical decoding of the slot sent to its output plugin (total_txns, PostgreSQL 14+).", []string{"node", "slot"}, nil)
	descWorkers = prometheus.NewDesc("pglmon_background_workers",
		"Background workers running on the node (pglogical's, parallel query's, others'), which max_worker_processes bounds (absent when pglmon's role cannot see every process's type).",
		[]string{"node"}, nil)
	descMaxWorkers = prometheus.NewDesc("pglmon_max_worker_processes",
		"The node's max_worker_processes (absent with pglmon_background_workers).", []string{"node"}, nil)
	descFreeStorage = prometheus.NewDesc("pglmon_rds_free_storage_bytes",
		"Free storage of the node's RDS instance (CloudWatch FreeStorageSpace, the last minute's minimum; daemon, nodes with rds:).", []string{"node"}, nil)
	descAllocatedStorage = prometheus.NewDesc("pglmon_rds_allocated_storage_bytes",
		"Storage allocated to the node's RDS instance.", []string{"node"}, nil)
	descReplSlots = prometheus.NewDesc("pglmon_replication_slots",
		"Replication slots on the node, every database's (max_replication_slots bounds them).", []string{"node"}, nil)
	descMaxReplSlots = prometheus.NewDesc("pglmon_max_replication_slots",
		"The node's max_replication_slots.", []string{"node"}, nil)
	descOriginStates = prometheus.NewDesc("pglmon_replication_origin_states",
		"Replication origin states held on the node, every database's (max_replication_slots bounds them too): one per subscription and one per table being copied; read where pglogical is installed.", []string{"node"}, nil)
	descWALSenders = prometheus.NewDesc("pglmon_wal_senders",
		"Walsenders running on the node, standbys' too (max_wal_senders bounds them).", []string{"node"}, nil)
	descMaxWALSenders = prometheus.NewDesc("pglmon_max_wal_senders",
		"The node's max_wal_senders.", []string{"node"}, nil)
	descCopiedRows = prometheus.NewDesc("pglmon_table_sync_copied_rows",
		"Rows the running initial copy (or resynchronisation) of a table has copied so far (pg_stat_progress_copy on the subscriber, PostgreSQL 14+; absent when no copy runs).",
		[]string{"subscriber", "subscription", "table"}, nil)
	descCopiedBytes = prometheus.NewDesc("pglmon_table_sync_copied_bytes",
		"Bytes the running initial copy of a table has copied so far (absent when no copy runs).",
		[]string{"subscriber", "subscription", "table"}, nil)
	descLockWait = prometheus.NewDesc("pglmon_apply_lock_wait_seconds",
		"How long the subscription's apply worker has waited for a lock a session on the subscriber holds (0 when it does not wait; on PostgreSQL 13 and older, the age of the transaction in its way).",
		[]string{"subscriber", "subscription"}, nil)
	descOldestXact = prometheus.NewDesc("pglmon_oldest_xact_age_seconds",
		"Age of the node's oldest transaction holding a transaction ID (a session's or a prepared one), any database: while it is open no logical slot releases WAL written since it began (absent when none, or when pglmon's role lacks pg_read_all_stats).",
		[]string{"node"}, nil)
	descNodeUp = prometheus.NewDesc("pglmon_node_up",
		"1 when the last probe of the node succeeded.", []string{"node"}, nil)
	descTimeline = prometheus.NewDesc("pglmon_node_timeline",
		"The timeline the node's server writes WAL on: it goes up at a promotion (a failover or switchover) or a point-in-time restore (absent on a standby, or when the server does not tell).",
		[]string{"node"}, nil)
	descLastProbe = prometheus.NewDesc("pglmon_last_probe_timestamp_seconds",
		"Unix time of the last probe of the node, successful or not.", []string{"node"}, nil)
	descDivergent = prometheus.NewDesc("pglmon_table_divergent_rows",
		"Rows that differ between provider and subscriber at the last scheduled verification.",
		[]string{"subscription", "table"}, nil)
	descUp = prometheus.NewDesc("pglmon_up",
		"1 while pglmon's loop completes cycles on time.", nil, nil)
)

// Set holds pglmon's metrics, registered on a registry passed in.
type Set struct {
	mu      sync.Mutex
	report  *diagnose.Report
	snaps   []probe.Snapshot
	healthy func() bool

	probeDuration  *prometheus.HistogramVec
	probeErrors    *prometheus.CounterVec
	repairs        *prometheus.CounterVec
	repairDuration *prometheus.HistogramVec
	Notifications  *prometheus.CounterVec
	verifyRows     prometheus.Counter
	lastVerify     prometheus.Gauge
	verifyEvery    prometheus.Gauge
	conflicts      *prometheus.CounterVec
	divergent      map[[2]string]int64
	maintenance    *prometheus.GaugeVec
	heartbeats     *prometheus.CounterVec
}

// New creates the metrics and registers them, with the Go and process
// collectors and pglmon_build_info, on reg.
func New(reg prometheus.Registerer, version string, healthy func() bool) *Set {
	s := &Set{
		healthy: healthy,
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pglmon_probe_duration_seconds", Help: "Time one probe of a node took.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"node"}),
		probeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pglmon_probe_errors_total", Help: "Probes of a node that failed.",
		}, []string{"node"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pglmon_repairs_total", Help: "Repair attempts by remedy and result (success, failed, refused).",
		}, []string{"remedy", "result"}),
		repairDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pglmon_repair_duration_seconds", Help: "Time a repair attempt took, verification included.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"remedy"}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pglmon_notifications_total", Help: "Notifications by result (sent, retried, dropped).",
		}, []string{"result"}),
	}
	s.verifyRows = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pglmon_verify_rows_checked_total", Help: "Rows compared by scheduled verifications.",
	})
	s.lastVerify = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pglmon_last_verify_timestamp_seconds", Help: "Unix time the last scheduled verification cycle that verified every subscription finished.",
	})
	s.verifyEvery = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pglmon_verify_every_seconds", Help: "verify.every: how often the daemon verifies every subscription (0: never).",
	})
	s.conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pglmon_apply_conflicts_total",
		Help: "Conflicts pglogical resolved by itself while applying, as the subscriber's log records them (every line read once; see the daemon's warnings for parts skipped).",
	}, []string{"subscriber", "table", "op", "resolution"})
	s.maintenance = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pglmon_maintenance_until_timestamp_seconds",
		Help: "Unix time a node's maintenance window ends, while one holds (pglmon maintenance): no automatic repair or Slack message for its subscriptions.",
	}, []string{"node"})
	s.heartbeats = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pglmon_heartbeat_writes_total",
		Help: "Heartbeats the daemon wrote on a provider, by result (ok, error).",
	}, []string{"node", "result"})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pglmon_build_info", Help: "pglmon's version and the Go version it was built with.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(s, s.probeDuration, s.probeErrors, s.repairs, s.repairDuration, s.Notifications, s.verifyRows, s.lastVerify, s.verifyEvery, s.conflicts, s.maintenance, s.heartbeats, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s
}

// Maintenance sets the nodes under maintenance, and when each window ends.
func (s *Set) Maintenance(active map[string]maintenance.Window) {
	s.maintenance.Reset()
	for node, w := range active {
		s.maintenance.WithLabelValues(node).Set(float64(w.Until.Unix()))
	}
}

// TLSCertificateExpiry registers pglmon_http_tls_certificate_expiry_timestamp_seconds:
// when the certificate the daemon's HTTPS server presents expires.
func TLSCertificateExpiry(reg prometheus.Registerer, notAfter func() time.Time) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pglmon_http_tls_certificate_expiry_timestamp_seconds",
		Help: "Unix time the certificate of pglmon's HTTPS server (http.tls.cert_file, re-read when it changes) expires.",
	}, func() float64 { return float64(notAfter().Unix()) }))
}

// Observe records a finished cycle.
func (s *Set) Observe(r diagnose.Report, snaps []probe.Snapshot) {
	for _, sn := range snaps {
		s.probeDuration.WithLabelValues(sn.Node).Observe(sn.Duration.Seconds())
		c := s.probeErrors.WithLabelValues(sn.Node)
		if !sn.Up() {
			c.Inc()
		}
	}
	s.mu.Lock()
	s.report, s.snaps = &r, snaps
	s.mu.Unlock()
}

// ForgetNode deletes the series of a node no longer configured.
func (s *Set) ForgetNode(node string) {
	s.probeDuration.DeleteLabelValues(node)
	s.probeErrors.DeleteLabelValues(node)
	s.heartbeats.DeletePartialMatch(prometheus.Labels{"node": node})
}

// Heartbeat records a heartbeat written on node, or an attempt that failed.
func (s *Set) Heartbeat(node string, ok bool) {
	// Both series exist from the first attempt on, the other at 0: a
	// series born with its count hides that count from increase(), which
	// PglmonHeartbeatWritesFailing reads.
	okc, errc := s.heartbeats.WithLabelValues(node, "ok"), s.heartbeats.WithLabelValues(node, "error")
	if ok {
		okc.Inc()
	} else {
		errc.Inc()
	}
}

// Repair records a repair attempt.
func (s *Set) Repair(remedy, result string, d time.Duration) {
	s.repairs.WithLabelValues(remedy, result).Inc()
	s.repairDuration.WithLabelValues(remedy).Observe(d.Seconds())
}

// Verified records a scheduled verification: rows compared and, per
// subscription and table, the rows that differ (tables not listed are equal).
func (s *Set) Verified(rows int64, divergent map[[2]string]int64, at time.Time) {
	s.verifyRows.Add(float64(rows))
	if !at.IsZero() { // zero: a verification stopped partway
		s.lastVerify.Set(float64(at.UnixNano()) / 1e9)
	}
	s.mu.Lock()
	s.divergent = divergent
	s.mu.Unlock()
}

// Conflicts records n conflicts pglogical resolved on a subscriber's table.
func (s *Set) Conflicts(subscriber, table, op, resolution string, n int) {
	s.conflicts.WithLabelValues(subscriber, table, op, resolution).Add(float64(n))
}

// VerifyEvery records verify.every.
func (s *Set) VerifyEvery(every time.Duration) { s.verifyEvery.Set(every.Seconds()) }

// Describe sends nothing: the collector is unchecked, its series follow the snapshot.
func (s *Set) Describe(chan<- *prometheus.Desc) {}

// Collect turns the last cycle into series.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	r, snaps, divergent := s.report, s.snaps, s.divergent
	s.mu.Unlock()
	for k, n := range divergent {
		ch <- prometheus.MustNewConstMetric(descDivergent, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	up := 0.0
	if s.healthy == nil || s.healthy() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	if r == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// The server's own counters, passed on as counters (they fall to 0 when
	// reset there, which rate() takes for a counter reset).
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	findings := map[[4]string]bool{}
	for _, sub := range r.Subscriptions {
		for _, st := range probe.Statuses {
			v := 0.0
			if sub.Status == st {
				v = 1
			}
			gauge(descStatus, v, sub.Subscriber, sub.Name, sub.Provider, st)
		}
		gauge(descHealth, sub.Health.Value(), sub.Subscriber, sub.Name)
		// Known only while the subscriber answers, and has the subscription.
		if sub.Status != "" && sub.Status != diagnose.StatusMissing {
			gauge(descOrigin, b2f(sub.OriginExists), sub.Subscriber, sub.Name)
			waited := 0.0
			if sub.LockWait != nil {
				waited, _ = sub.LockWait.Waited()
			}
			gauge(descLockWait, waited, sub.Subscriber, sub.Name)
		}
		for _, f := range sub.Findings {
			findings[[4]string{sub.Subscriber, sub.Name, f.Code, string(f.Severity)}] = true
		}
		if sub.LagBytes != nil && sub.Provider != "" {
			gauge(descLagBytes, float64(*sub.LagBytes), sub.Provider, sub.Name)
		}
		if sub.LagSeconds != nil && sub.Provider != "" {
			gauge(descLagSeconds, *sub.LagSeconds, sub.Provider, sub.Name)
		}
		if sub.ReplicationDelaySeconds != nil && sub.Provider != "" {
			gauge(descDelay, *sub.ReplicationDelaySeconds, sub.Provider, sub.Name)
		}
	}
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			findings[[4]string{n.Name, "", f.Code, string(f.Severity)}] = true
		}
		if st := n.Storage; st != nil {
			gauge(descFreeStorage, st.FreeBytes, n.Name)
			gauge(descAllocatedStorage, float64(st.AllocatedBytes), n.Name)
		}
	}
	for k := range findings {
		gauge(descFinding, 1, k[:]...)
	}
	for _, sn := range snaps {
		gauge(descNodeUp, b2f(sn.Up()), sn.Node)
		if sn.Timeline > 0 {
			gauge(descTimeline, float64(sn.Timeline), sn.Node)
		}
		gauge(descLastProbe, float64(sn.Time.UnixNano())/1e9, sn.Node)
		if x := sn.OldestXact; x != nil && x.XactSeconds != nil {
			gauge(descOldestXact, *x.XactSeconds, sn.Node)
		}
		if c := sn.Capacity; c != nil {
			gauge(descReplSlots, float64(c.Slots), sn.Node)
			gauge(descMaxReplSlots, float64(c.MaxSlots), sn.Node)
			gauge(descWALSenders, float64(c.Senders), sn.Node)
			gauge(descMaxWALSenders, float64(c.MaxSenders), sn.Node)
		}
		if o := sn.Origins; o != nil {
			gauge(descOriginStates, float64(len(o.Held)), sn.Node)
			if sn.Capacity == nil {
				gauge(descMaxReplSlots, float64(o.Max), sn.Node)
			}
		}
		if w := sn.Workers; w != nil {
			gauge(descWorkers, float64(w.InUse), sn.Node)
			gauge(descMaxWorkers, float64(w.Max), sn.Node)
		}
		for _, ts := range sn.TableSync {
			table := ts.Schema + "." + ts.Table
			if ts.CopiedRows != nil {
				gauge(descCopiedRows, float64(*ts.CopiedRows), sn.Node, ts.Subscription, table)
			}
			if ts.CopiedBytes != nil {
				gauge(descCopiedBytes, float64(*ts.CopiedBytes), sn.Node, ts.Subscription, table)
			}
		}
		for _, sl := range sn.Slots {
			gauge(descSlotActive, b2f(sl.Active), sn.Node, sl.Name)
			gauge(descSlotRetained, float64(sl.RetainedBytes), sn.Node, sl.Name)
			if sl.SafeWALSize != nil {
				gauge(descSlotSafe, float64(*sl.SafeWALSize), sn.Node, sl.Name)
			}
			for _, ws := range WALStatuses {
				gauge(descSlotWALStatus, b2f(sl.WALStatus == ws), sn.Node, sl.Name, ws)
			}
			if sl.XminAge != nil {
				gauge(descSlotXminAge, float64(*sl.XminAge), sn.Node, sl.Name)
			}
			if sl.CatalogXminAge != nil {
				gauge(descSlotCatalogXminAge, float64(*sl.CatalogXminAge), sn.Node, sl.Name)
			}
			if d := sl.Decoding; d != nil {
				counter(descSpillBytes, d.SpillBytes, sn.Node, sl.Name)
				counter(descSpillTxns, d.SpillTxns, sn.Node, sl.Name)
				counter(descDecodedBytes, d.TotalBytes, sn.Node, sl.Name)
				counter(descDecodedTxns, d.TotalTxns, sn.Node, sl.Name)
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
