package metrics

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/probe"
)

func report() (diagnose.Report, []probe.Snapshot) {
	lag := int64(2048)
	safe := int64(1 << 30)
	secs, waited, xact := 0.5, 42.5, 7200.0
	r := diagnose.Report{Subscriptions: []diagnose.Subscription{{
		Name: "sub_0", Subscriber: "subscriber", Provider: "provider", Status: "down", Health: diagnose.Critical,
		LagBytes: &lag, LagSeconds: &secs, OriginExists: false, LockWait: &probe.LockWait{PID: 7, Seconds: &waited},
		Findings: []diagnose.Finding{{Code: "origin_missing", Severity: diagnose.Critical, Remedy: "recreate-origin"}},
	}}, Nodes: []diagnose.Node{
		{Name: "provider", Up: true, Findings: []diagnose.Finding{
			{Code: "orphan_slot", Severity: diagnose.Warning, Slot: "a"},
			{Code: "orphan_slot", Severity: diagnose.Warning, Slot: "b"},
		}},
		{Name: "subscriber", Up: true},
	}}
	t := time.Unix(1700000000, 0)
	catalogAge, xminAge := int64(1234), int64(99)
	copiedRows, copiedBytes := int64(250000), int64(20<<20)
	snaps := []probe.Snapshot{
		{Node: "provider", Time: t, Timeline: 2, Capacity: &probe.Capacity{Slots: 3, MaxSlots: 10, Senders: 2, MaxSenders: 10}, Slots: []probe.Slot{
			{Name: "pgl_s", Active: false, RetainedBytes: 4096, WALStatus: "reserved", SafeWALSize: &safe, CatalogXminAge: &catalogAge,
				Decoding: &probe.Decoding{SpillTxns: 2, SpillCount: 7, SpillBytes: 300 << 20, TotalTxns: 1000, TotalBytes: 900 << 20}},
			{Name: "standby", Type: "physical", Active: true, WALStatus: "reserved", XminAge: &xminAge},
		}},
		{Node: "subscriber", Time: t, OldestXact: &probe.Xact{Session: probe.Session{PID: 42, XactSeconds: &xact}},
			TableSync: []probe.TableSync{{Subscription: "sub_0", Schema: "public", Table: "big", Status: "d", CopiedRows: &copiedRows, CopiedBytes: &copiedBytes}},
			Workers:   &probe.Workers{InUse: 7, Pglogical: 5, Max: 8}, Origins: &probe.OriginStates{Held: []string{"pgl_s", "pgl_s_0badcafe"}, Max: 10}},
	}
	return r, snaps
}

const want = `
# HELP pglmon_apply_lock_wait_seconds How long the subscription's apply worker has waited for a lock a session on the subscriber holds (0 when it does not wait; on PostgreSQL 13 and older, the age of the transaction in its way).
# TYPE pglmon_apply_lock_wait_seconds gauge
pglmon_apply_lock_wait_seconds{subscriber="subscriber",subscription="sub_0"} 42.5
# HELP pglmon_finding 1 while a finding holds. Node findings (orphan_slot, node_unreachable) have subscription="" and the node as subscriber.
# TYPE pglmon_finding gauge
pglmon_finding{code="orphan_slot",severity="warning",subscriber="provider",subscription=""} 1
pglmon_finding{code="origin_missing",severity="critical",subscriber="subscriber",subscription="sub_0"} 1
# HELP pglmon_oldest_xact_age_seconds Age of the node's oldest transaction holding a transaction ID (a session's or a prepared one), any database: while it is open no logical slot releases WAL written since it began (absent when none, or when pglmon's role lacks pg_read_all_stats).
# TYPE pglmon_oldest_xact_age_seconds gauge
pglmon_oldest_xact_age_seconds{node="subscriber"} 7200
# HELP pglmon_origin_present 1 when the subscription's replication origin exists on the subscriber.
# TYPE pglmon_origin_present gauge
pglmon_origin_present{subscriber="subscriber",subscription="sub_0"} 0
# HELP pglmon_replication_lag_bytes Provider WAL not yet confirmed flushed by the subscription.
# TYPE pglmon_replication_lag_bytes gauge
pglmon_replication_lag_bytes{provider="provider",subscription="sub_0"} 2048
# HELP pglmon_replication_lag_seconds Replay lag reported by the provider's walsender (pg_stat_replication.replay_lag).
# TYPE pglmon_replication_lag_seconds gauge
pglmon_replication_lag_seconds{provider="provider",subscription="sub_0"} 0.5
# HELP pglmon_slot_active 1 when a walsender streams from the slot.
# TYPE pglmon_slot_active gauge
pglmon_slot_active{node="provider",slot="pgl_s"} 0
pglmon_slot_active{node="provider",slot="standby"} 1
# HELP pglmon_slot_catalog_xmin_age age(catalog_xmin) of the slot, in transactions: how far it holds back VACUUM of the catalogs and freezing (absent when the slot has none).
# TYPE pglmon_slot_catalog_xmin_age gauge
pglmon_slot_catalog_xmin_age{node="provider",slot="pgl_s"} 1234
# HELP pglmon_slot_xmin_age age(xmin) of the slot, in transactions: how far it holds back VACUUM of every table (absent when the slot has no xmin).
# TYPE pglmon_slot_xmin_age gauge
pglmon_slot_xmin_age{node="provider",slot="standby"} 99
# HELP pglmon_slot_retained_wal_bytes WAL the slot holds back (current WAL position minus restart_lsn).
# TYPE pglmon_slot_retained_wal_bytes gauge
pglmon_slot_retained_wal_bytes{node="provider",slot="pgl_s"} 4096
pglmon_slot_retained_wal_bytes{node="provider",slot="standby"} 0
# HELP pglmon_slot_safe_wal_size_bytes WAL that can still be written before the slot loses WAL (absent when max_slot_wal_keep_size is unlimited).
# TYPE pglmon_slot_safe_wal_size_bytes gauge
pglmon_slot_safe_wal_size_bytes{node="provider",slot="pgl_s"} 1.073741824e+09
# HELP pglmon_slot_wal_status 1 for the slot's current wal_status, 0 for the others.
# TYPE pglmon_slot_wal_status gauge
pglmon_slot_wal_status{node="provider",slot="pgl_s",wal_status="extended"} 0
pglmon_slot_wal_status{node="provider",slot="pgl_s",wal_status="lost"} 0
pglmon_slot_wal_status{node="provider",slot="pgl_s",wal_status="reserved"} 1
pglmon_slot_wal_status{node="provider",slot="pgl_s",wal_status="unreserved"} 0
pglmon_slot_wal_status{node="provider",slot="standby",wal_status="extended"} 0
pglmon_slot_wal_status{node="provider",slot="standby",wal_status="lost"} 0
pglmon_slot_wal_status{node="provider",slot="standby",wal_status="reserved"} 1
pglmon_slot_wal_status{node="provider",slot="standby",wal_status="unreserved"} 0
# HELP pglmon_subscription_health Diagnosed health of a subscription: 0 ok, 1 warning, 2 critical, 3 unknown.
# TYPE pglmon_subscription_health gauge
pglmon_subscription_health{subscriber="subscriber",subscription="sub_0"} 2
# HELP pglmon_subscription_status pglogical status of a subscription: 1 for the current status, 0 for the others.
# TYPE pglmon_subscription_status gauge
pglmon_subscription_status{provider="provider",status="disabled",subscriber="subscriber",subscription="sub_0"} 0
pglmon_subscription_status{provider="provider",status="down",subscriber="subscriber",subscription="sub_0"} 1
pglmon_subscription_status{provider="provider",status="initializing",subscriber="subscriber",subscription="sub_0"} 0
pglmon_subscription_status{provider="provider",status="replicating",subscriber="subscriber",subscription="sub_0"} 0
pglmon_subscription_status{provider="provider",status="unknown",subscriber="subscriber",subscription="sub_0"} 0
# HELP pglmon_slot_spill_bytes_total Bytes logical decoding of the slot spilled to disk on the provider (pg_stat_replication_slots.spill_bytes, PostgreSQL 14+): transactions larger than logical_decoding_work_mem. Reset with pg_stat_reset_replication_slot.
# TYPE pglmon_slot_spill_bytes_total counter
pglmon_slot_spill_bytes_total{node="provider",slot="pgl_s"} 3.145728e+08
# HELP pglmon_slot_spill_txns_total Transactions logical decoding of the slot spilled to disk (spill_txns, PostgreSQL 14+).
# TYPE pglmon_slot_spill_txns_total counter
pglmon_slot_spill_txns_total{node="provider",slot="pgl_s"} 2
# HELP pglmon_slot_decoded_bytes_total Bytes of changes logical decoding of the slot sent to its output plugin (total_bytes, PostgreSQL 14+).
# TYPE pglmon_slot_decoded_bytes_total counter
pglmon_slot_decoded_bytes_total{node="provider",slot="pgl_s"} 9.437184e+08
# HELP pglmon_slot_decoded_txns_total Transactions logical decoding of the slot sent to its output plugin (total_txns, PostgreSQL 14+).
# TYPE pglmon_slot_decoded_txns_total counter
pglmon_slot_decoded_txns_total{node="provider",slot="pgl_s"} 1000
# HELP pglmon_table_sync_copied_rows Rows the running initial copy (or resynchronisation) of a table has copied so far (pg_stat_progress_copy on the subscriber, PostgreSQL 14+; absent when no copy runs).
# TYPE pglmon_table_sync_copied_rows gauge
pglmon_table_sync_copied_rows{subscriber="subscriber",subscription="sub_0",table="public.big"} 250000
# HELP pglmon_table_sync_copied_bytes Bytes the running initial copy of a table has copied so far (absent when no copy runs).
# TYPE pglmon_table_sync_copied_bytes gauge
pglmon_table_sync_copied_bytes{subscriber="subscriber",subscription="sub_0",table="public.big"} 2.097152e+07
# HELP pglmon_background_workers Background workers running on the node (pglogical's, parallel query's, others'), which max_worker_processes bounds (absent when pglmon's role cannot see every process's type).
# TYPE pglmon_background_workers gauge
pglmon_background_workers{node="subscriber"} 7
# HELP pglmon_max_worker_processes The node's max_worker_processes (absent with pglmon_background_workers).
# TYPE pglmon_max_worker_processes gauge
pglmon_max_worker_processes{node="subscriber"} 8
# HELP pglmon_replication_slots Replication slots on the node, every database's (max_replication_slots bounds them).
# TYPE pglmon_replication_slots gauge
pglmon_replication_slots{node="provider"} 3
# HELP pglmon_max_replication_slots The node's max_replication_slots.
# TYPE pglmon_max_replication_slots gauge
pglmon_max_replication_slots{node="provider"} 10
pglmon_max_replication_slots{node="subscriber"} 10
# HELP pglmon_replication_origin_states Replication origin states held on the node, every database's (max_replication_slots bounds them too): one per subscription and one per table being copied; read where pglogical is installed.
# TYPE pglmon_replication_origin_states gauge
pglmon_replication_origin_states{node="subscriber"} 2
# HELP pglmon_wal_senders Walsenders running on the node, standbys' too (max_wal_senders bounds them).
# TYPE pglmon_wal_senders gauge
pglmon_wal_senders{node="provider"} 2
# HELP pglmon_max_wal_senders The node's max_wal_senders.
# TYPE pglmon_max_wal_senders gauge
pglmon_max_wal_senders{node="provider"} 10
# HELP pglmon_node_timeline The timeline the node's server writes WAL on: it goes up at a promotion (a failover or switchover) or a point-in-time restore (absent on a standby, or when the server does not tell).
# TYPE pglmon_node_timeline gauge
pglmon_node_timeline{node="provider"} 2
# HELP pglmon_node_up 1 when the last probe of the node succeeded.
# TYPE pglmon_node_up gauge
pglmon_node_up{node="provider"} 1
pglmon_node_up{node="subscriber"} 1
# HELP pglmon_probe_errors_total Probes of a node that failed.
# TYPE pglmon_probe_errors_total counter
pglmon_probe_errors_total{node="provider"} 0
pglmon_probe_errors_total{node="subscriber"} 0
# HELP pglmon_up 1 while pglmon's loop completes cycles on time.
# TYPE pglmon_up gauge
pglmon_up 1
`

var names = []string{"pglmon_apply_lock_wait_seconds", "pglmon_oldest_xact_age_seconds", "pglmon_finding", "pglmon_origin_present", "pglmon_replication_lag_bytes", "pglmon_replication_lag_seconds",
	"pglmon_slot_active", "pglmon_slot_retained_wal_bytes", "pglmon_slot_safe_wal_size_bytes", "pglmon_slot_wal_status",
	"pglmon_slot_xmin_age", "pglmon_slot_catalog_xmin_age",
	"pglmon_table_sync_copied_rows", "pglmon_table_sync_copied_bytes", "pglmon_background_workers", "pglmon_max_worker_processes",
	"pglmon_replication_slots", "pglmon_max_replication_slots", "pglmon_replication_origin_states", "pglmon_wal_senders", "pglmon_max_wal_senders",
	"pglmon_slot_spill_bytes_total", "pglmon_slot_spill_txns_total", "pglmon_slot_decoded_bytes_total", "pglmon_slot_decoded_txns_total",
	"pglmon_subscription_health", "pglmon_subscription_status", "pglmon_node_timeline", "pglmon_node_up", "pglmon_probe_errors_total", "pglmon_up"}

func TestExposition(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := New(reg, "v1.2.3", func() bool { return true })
	r, snaps := report()
	s.Observe(r, snaps)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "pglmon_build_info"); err != nil || n != 1 {
		t.Fatalf("build info: %d %v", n, err)
	}
	if n, _ := testutil.GatherAndCount(reg, "go_goroutines", "process_resident_memory_bytes"); n < 1 {
		t.Error("Go/process collectors missing")
	}
}

func TestSeriesDisappearWithTheirSubject(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := New(reg, "v", nil)
	r, snaps := report()
	s.Observe(r, snaps)
	// The subscription recovers and the orphan slots are dropped.
	r.Subscriptions[0].Findings = nil
	r.Subscriptions[0].Health = diagnose.OK
	r.Nodes[0].Findings = nil
	snaps[0].Slots = nil
	s.Observe(r, snaps)
	for _, name := range []string{"pglmon_finding", "pglmon_slot_active", "pglmon_slot_wal_status"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 0 {
			t.Errorf("%s: %d series left (%v)", name, n, err)
		}
	}
	// A node removed from the config loses its counters.
	s.ForgetNode("provider")
	snaps = snaps[1:]
	s.Observe(r, snaps)
	if n, _ := testutil.GatherAndCount(reg, "pglmon_probe_errors_total"); n != 1 {
		t.Errorf("probe_errors_total series: got %d, want 1", n)
	}
}

func TestNoSecretsOrErrorsInLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := New(reg, "v", nil)
	r, snaps := report()
	snaps[1].Err = errors.New("connect to host=db password=hunter2: refused")
	r.Nodes[1] = diagnose.Node{Name: "subscriber", Error: snaps[1].Err.Error(),
		Findings: []diagnose.Finding{{Code: "node_unreachable", Severity: diagnose.Critical, Message: snaps[1].Err.Error()}}}
	s.Observe(r, snaps)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "hunter2") || strings.Contains(l.GetValue(), "refused") || strings.Contains(l.GetValue(), "/") {
					t.Errorf("%s label %s=%q carries an error, LSN or secret", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestCacheServesRenderedCopyAndGoesLiveWhenStale(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	healthy := true
	s := New(reg, "v", func() bool { return healthy })
	r, snaps := report()
	s.Observe(r, snaps)
	maxAge := time.Hour
	c := NewCache(reg, func() time.Duration { return maxAge })
	if err := c.Render(); err != nil {
		t.Fatal(err)
	}
	get := func(enc string) string {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", enc)
		w := httptest.NewRecorder()
		c.ServeHTTP(w, req)
		body := w.Body.Bytes()
		if w.Header().Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(zr)
		}
		return string(body)
	}
	for _, enc := range []string{"gzip", "identity"} {
		if body := get(enc); !strings.Contains(body, "pglmon_up 1") || !strings.Contains(body, `code="origin_missing"`) {
			t.Errorf("%s: cached exposition lacks series:\n%s", enc, body)
		}
	}
	// The loop stalls: the cached copy still says up, so it must not be served.
	healthy = false
	if body := get("identity"); !strings.Contains(body, "pglmon_up 1") {
		t.Error("fresh cache should still be served")
	}
	maxAge = 0
	if body := get("identity"); !strings.Contains(body, "pglmon_up 0") {
		t.Errorf("stale cache served; want a live gather with pglmon_up 0:\n%s", body)
	}
}

// The first failed heartbeat is visible to increase() (the alert on failing
// heartbeat writes): its series exists at 0 from the first attempt on.
func TestHeartbeatSeriesBornAtZero(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := New(reg, "v", nil)
	s.Heartbeat("provider", true)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "pglmon_heartbeat_writes_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" {
						got[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if v, ok := got["error"]; !ok || v != 0 || got["ok"] != 1 {
		t.Errorf("heartbeat series after one written: %v, want error 0 and ok 1", got)
	}
}
