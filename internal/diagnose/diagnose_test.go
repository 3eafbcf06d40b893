package diagnose

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

var thresholds = config.Thresholds{
	DownGrace:            config.Duration(30 * time.Second),
	LagBytes:             256 << 20,
	RetainedWALBytes:     10 << 30,
	TableSyncGrace:       config.Duration(30 * time.Minute),
	SlotXminAge:          200_000_000,
	SlotXminAgeCritical:  1_000_000_000,
	ApplyBlocked:         config.Duration(time.Minute),
	ApplyBlockedCritical: config.Duration(15 * time.Minute),
	SignalBarrierWait:    config.Duration(30 * time.Second),
}

func age(n int64) *int64 { return &n }

const slotName = "pgl_db_prov_sub"

// world is a healthy provider/subscriber pair that each case bends.
type world struct {
	prov, sub probe.Snapshot
	hist      *History
	now       time.Time
	schema    map[string][]SchemaMismatch
	left      map[string][]string
	seqs      map[string][]SequenceBehind
	wal       map[string]probe.LSN
	denied    map[string]CopyDenied
}

func healthy() *world {
	w := &world{now: t0, hist: NewHistory()}
	w.prov = probe.Snapshot{Node: "p", LocalNode: "prov", Slots: []probe.Slot{{
		Name: slotName, Plugin: "pglogical_output", Type: "logical", Active: true, WALStatus: "reserved",
		RetainedBytes: 1 << 20, LagBytes: 1024,
	}}}
	w.sub = probe.Snapshot{Node: "s", LocalNode: "subn", Subscriptions: []probe.Subscription{{
		Name: "sub", Enabled: true, Status: probe.StatusReplicating, ProviderNode: "prov", SlotName: slotName,
		OriginExists: true, SyncStatus: "r", WorkerRunning: true,
	}}}
	return w
}

func (w *world) s() *probe.Subscription { return &w.sub.Subscriptions[0] }
func (w *world) slot() *probe.Slot      { return &w.prov.Slots[0] }

// downFor marks the subscription down since d before now.
func (w *world) downFor(d time.Duration) {
	w.s().Status = probe.StatusDown
	w.hist.Observe([]probe.Snapshot{w.prov, w.sub}, w.now.Add(-d))
}

func (w *world) run() Report {
	snaps := []probe.Snapshot{w.prov, w.sub}
	w.hist.Observe(snaps, w.now)
	return Diagnose(Input{Now: w.now, Thresholds: thresholds, Snapshots: snaps, History: w.hist, Schema: w.schema, LeftSets: w.left, Sequences: w.seqs, ProviderWAL: w.wal, Unreadable: w.denied})
}

func TestDiagnose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bend    func(w *world)
		health  Health
		code    string // "" means no findings at all
		sev     Severity
		remedy  string
		human   bool
		nodeErr string // expected node finding code on any node
	}{
		{name: "healthy", bend: func(w *world) {}, health: OK},
		{name: "origin missing", bend: func(w *world) {
			w.s().Status, w.s().OriginExists = probe.StatusDown, false
			w.slot().Active = false
		}, health: Critical, code: CodeOriginMissing, sev: Critical, remedy: RemedyRecreateOrigin},
		{name: "origin missing, sampled in the crash loop's replicating second", bend: func(w *world) {
			w.s().OriginExists = false
			w.slot().Active = true
		}, health: Critical, code: CodeOriginMissing, sev: Critical, remedy: RemedyRecreateOrigin},
		{name: "down just now", bend: func(w *world) { w.s().Status = probe.StatusDown },
			health: Warning, code: CodeSubscriptionDown, sev: Warning},
		{name: "down just under grace", bend: func(w *world) { w.downFor(30*time.Second - time.Millisecond) },
			health: Warning, code: CodeSubscriptionDown, sev: Warning},
		{name: "down exactly grace", bend: func(w *world) { w.downFor(30 * time.Second) },
			health: Critical, code: CodeStuckDown, sev: Critical, remedy: RemedyRestart},
		{name: "down long", bend: func(w *world) { w.downFor(10 * time.Minute) },
			health: Critical, code: CodeStuckDown, sev: Critical, remedy: RemedyRestart},
		{name: "slot missing", bend: func(w *world) { w.s().Status = probe.StatusDown; w.prov.Slots = nil },
			health: Critical, code: CodeSlotMissing, sev: Critical, human: true},
		{name: "disabled", bend: func(w *world) { w.s().Status, w.s().Enabled = probe.StatusDisabled, false },
			health: Warning, code: CodeSubscriptionDisabled, sev: Warning, remedy: RemedyEnable},
		{name: "init failed", bend: func(w *world) { w.s().Status, w.s().SyncStatus = probe.StatusDown, "d" },
			health: Critical, code: CodeInitFailed, sev: Critical, human: true},
		{name: "init state i is fine", bend: func(w *world) { w.s().Status, w.s().SyncStatus = probe.StatusDown, "i" },
			health: Warning, code: CodeSubscriptionDown, sev: Warning},
		{name: "table sync under grace", bend: func(w *world) {
			w.s().Status = probe.StatusInitializing
			w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "t", Status: "d"}}
			w.hist.Observe([]probe.Snapshot{w.prov, w.sub}, w.now.Add(-29*time.Minute))
		}, health: OK},
		{name: "table sync stalled", bend: func(w *world) {
			w.s().Status = probe.StatusInitializing
			w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "t", Status: "d"}}
			w.hist.Observe([]probe.Snapshot{w.prov, w.sub}, w.now.Add(-30*time.Minute))
		}, health: Warning, code: CodeTableSyncStalled, sev: Warning, human: true},
		{name: "partitioned table: no grace", bend: func(w *world) {
			w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "parted", Status: "d", Partitioned: true}}
		}, health: Critical, code: CodePartitionedTable, sev: Critical, human: true},
		{name: "table copy refused (generated column): no grace", bend: func(w *world) {
			w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "t", Status: "d"}}
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", CopyRefused: []string{"g"}}}}
		}, health: Critical, code: CodeTableCopyRefused, sev: Critical, human: true},
		{name: "a generated column pglogical cannot copy, table ready: nothing", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", CopyRefused: []string{"g"}}}}
		}, health: OK},
		{name: "schema mismatch while replicating", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Columns: []string{"c"}}}}
		}, health: Warning, code: CodeSchemaMismatch, sev: Warning, human: true},
		{name: "schema mismatch that crashes the subscriber's server: critical while replicating", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Columns: []string{"c"}}, {Table: "public.g", Generated: []string{"g"}}}}
		}, health: Critical, code: CodeSchemaMismatch, sev: Critical, human: true},
		{name: "a column of another type, same major version: critical while replicating", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Types: []TypeDiff{{Table: "public.t", Column: "c", Provider: "bigint", Subscriber: "integer", Effect: TypeBreaks, Binary: true}}}}}
		}, health: Critical, code: CodeSchemaMismatch, sev: Critical, human: true},
		{name: "a wider type between major versions: a warning (it breaks once they match)", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Types: []TypeDiff{{Table: "public.t", Column: "c", Provider: "integer", Subscriber: "bigint", Effect: TypeBreaksLater}}}}}
		}, health: Warning, code: CodeSchemaMismatch, sev: Warning, human: true},
		{name: "a shorter varchar: a warning while replicating", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Types: []TypeDiff{{Table: "public.t", Column: "c", Provider: "text", Subscriber: "character varying(5)", Effect: TypeLimits, Binary: true}}}}}
		}, health: Warning, code: CodeSchemaMismatch, sev: Warning, human: true},
		{name: "a subscriber key with a column the provider's lacks: skips silently, critical while replicating", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Key: &KeyDiff{Table: "public.t", Effect: KeySkips, Provider: []string{"id"}, Subscriber: []string{"id", "n"}}}}}
		}, health: Critical, code: CodeSchemaMismatch, sev: Critical, human: true},
		{name: "no key on the subscriber: a warning while replicating", bend: func(w *world) {
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Key: &KeyDiff{Table: "public.t", Effect: KeyMissing, Provider: []string{"id"}}}}}
		}, health: Warning, code: CodeSchemaMismatch, sev: Warning, human: true},
		{name: "no key on the subscriber, down long: the cause", bend: func(w *world) {
			w.downFor(10 * time.Minute)
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Key: &KeyDiff{Table: "public.t", Effect: KeyMissing, Provider: []string{"id"}}}}}
		}, health: Critical, code: CodeSchemaMismatch, sev: Critical, human: true},
		{name: "a subscriber key of fewer columns, down long: stuck_down (it does not stop the apply)", bend: func(w *world) {
			w.downFor(10 * time.Minute)
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Key: &KeyDiff{Table: "public.t", Effect: KeyMerges, Provider: []string{"id", "n"}, Subscriber: []string{"id"}}}}}
		}, health: Critical, code: CodeStuckDown, sev: Critical, remedy: RemedyRestart},
		{name: "a rounding type, down long: stuck_down (it does not stop the apply)", bend: func(w *world) {
			w.downFor(10 * time.Minute)
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Types: []TypeDiff{{Table: "public.t", Column: "c", Provider: "numeric(10,4)", Subscriber: "numeric(10,2)", Effect: TypeRounds, Binary: true}}}}}
		}, health: Critical, code: CodeStuckDown, sev: Critical, remedy: RemedyRestart},
		{name: "a column of another type, down long: the cause", bend: func(w *world) {
			w.downFor(10 * time.Minute)
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Types: []TypeDiff{{Table: "public.t", Column: "c", Provider: "integer", Subscriber: "bigint", Effect: TypeBreaks, Binary: true}}}}}
		}, health: Critical, code: CodeSchemaMismatch, sev: Critical, human: true},
		{name: "schema mismatch, down long: the cause, not stuck_down", bend: func(w *world) {
			w.downFor(10 * time.Minute)
			w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Missing: true}}}
		}, health: Critical, code: CodeSchemaMismatch, sev: Critical, human: true},
		{name: "table left the sets", bend: func(w *world) {
			w.left = map[string][]string{"s/sub": {"public.t"}}
		}, health: Warning, code: CodeTableLeftSet, sev: Warning, human: true},
		{name: "a sequence behind while replicating", bend: func(w *world) {
			w.seqs = map[string][]SequenceBehind{"s/sub": {{Sequence: "public.t_id_seq", Provider: ptr(int64(10)), Since: w.now.Add(-6 * time.Minute)}}}
		}, health: Warning, code: CodeSequenceBehind, sev: Warning, human: true},
		{name: "streams, no slot on the provider: elsewhere", bend: func(w *world) {
			w.prov.Slots, w.s().WorkerAgeSeconds = nil, ptr(120.0)
		}, health: Critical, code: CodeProviderElsewhere, sev: Critical, human: true},
		{name: "no slot, worker younger than down_grace (a crash loop's start)", bend: func(w *world) {
			w.prov.Slots, w.s().WorkerAgeSeconds = nil, ptr(2.0)
		}, health: OK},
		{name: "no slot, worker's age unknown", bend: func(w *world) { w.prov.Slots = nil }, health: OK},
		{name: "lag at threshold", bend: func(w *world) { w.slot().LagBytes = 256 << 20 }, health: OK},
		{name: "lag over threshold", bend: func(w *world) { w.slot().LagBytes = 256<<20 + 1 },
			health: Warning, code: CodeLagHigh, sev: Warning},
		{name: "retained at threshold", bend: func(w *world) { w.slot().RetainedBytes = 10 << 30 }, health: OK},
		{name: "retained over threshold", bend: func(w *world) { w.slot().RetainedBytes = 10<<30 + 1 },
			health: Warning, code: CodeWALRetainedHigh, sev: Warning},
		{name: "wal extended", bend: func(w *world) { w.slot().WALStatus = "extended" },
			health: Warning, code: CodeWALRetainedHigh, sev: Warning},
		{name: "wal unreserved", bend: func(w *world) { w.slot().WALStatus = "unreserved" },
			health: Critical, code: CodeWALRetainedHigh, sev: Critical},
		{name: "wal lost", bend: func(w *world) {
			w.slot().WALStatus = "lost"
			w.s().Status = probe.StatusDown
		}, health: Critical, code: CodeSlotWALLost, sev: Critical, human: true},
		{name: "provider unreachable, sub down: unknown not failure", bend: func(w *world) {
			w.hist.Observe([]probe.Snapshot{w.prov, w.sub}, w.now.Add(-time.Minute))
			w.prov = probe.Snapshot{Node: "p", Err: errors.New("connection refused")}
			w.s().Status = probe.StatusDown
		}, health: Unknown, code: CodeNodeUnreachable, sev: Unknown, nodeErr: CodeNodeUnreachable},
		{name: "provider never seen and unreachable", bend: func(w *world) {
			w.prov = probe.Snapshot{Node: "p", Err: errors.New("connection refused")}
			w.s().Status = probe.StatusDown
			w.s().OriginExists = false
		}, health: Unknown, code: CodeNodeUnreachable, sev: Unknown, nodeErr: CodeNodeUnreachable},
		{name: "subscriber unreachable: known subscriptions unknown", bend: func(w *world) {
			w.hist.Observe([]probe.Snapshot{w.prov, w.sub}, w.now.Add(-time.Minute))
			w.sub = probe.Snapshot{Node: "s", Err: errors.New("timeout")}
		}, health: Unknown, code: CodeNodeUnreachable, sev: Unknown, nodeErr: CodeNodeUnreachable},
		{name: "subscriber reached on a standby: unknown, nothing to repair", bend: func(w *world) {
			w.sub.InRecovery = true
			w.s().Status, w.s().WorkerRunning = probe.StatusDown, false
			w.downFor(10 * time.Minute)
		}, health: Unknown, code: CodeNodeInRecovery, sev: Unknown, nodeErr: CodeNodeInRecovery},
		{name: "provider reached on a standby, sub down: unknown, no slot_missing", bend: func(w *world) {
			w.prov.InRecovery, w.prov.Slots = true, nil
			w.downFor(10 * time.Minute)
		}, health: Unknown, code: CodeNodeInRecovery, sev: Unknown, nodeErr: CodeNodeInRecovery},
		{name: "provider reached on a standby, replicating: not provider_elsewhere", bend: func(w *world) {
			w.prov.InRecovery, w.prov.Slots, w.s().WorkerAgeSeconds = true, nil, ptr(600.0)
		}, health: Unknown, code: CodeNodeInRecovery, sev: Unknown, nodeErr: CodeNodeInRecovery},
		{name: "provider not configured", bend: func(w *world) { w.s().ProviderNode = "elsewhere" },
			health: Warning, code: CodeProviderNotConfigured, sev: Warning},
		{name: "orphan slot", bend: func(w *world) {
			w.prov.Slots = append(w.prov.Slots, probe.Slot{Name: "pgl_db_prov_gone", Plugin: "pglogical_output", WALStatus: "reserved"})
		}, health: OK, nodeErr: CodeOrphanSlot},
		{name: "leftover table-sync slot", bend: func(w *world) {
			w.prov.Slots = append(w.prov.Slots, probe.Slot{Name: slotName + "_0a1b2c3d", Plugin: "pglogical_output"})
		}, health: OK, nodeErr: CodeOrphanSlot},
		{name: "active sync slot is no orphan", bend: func(w *world) {
			w.prov.Slots = append(w.prov.Slots, probe.Slot{Name: slotName + "_0a1b2c3d", Plugin: "pglogical_output", Active: true})
		}, health: OK},
		{name: "inactive sync slot of a copy under way is no orphan", bend: func(w *world) {
			w.prov.Slots = append(w.prov.Slots, probe.Slot{Name: slotName + "_0a1b2c3d", Plugin: "pglogical_output"})
			w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "t", Status: "w"}}
		}, health: OK},
		{name: "catalog_xmin age under threshold", bend: func(w *world) { w.slot().CatalogXminAge = age(199_999_999) }, health: OK},
		{name: "catalog_xmin age at threshold", bend: func(w *world) { w.slot().CatalogXminAge = age(200_000_000) },
			health: Warning, code: CodeSlotXminAgeHigh, sev: Warning},
		{name: "xmin age critical", bend: func(w *world) { w.slot().XminAge, w.slot().CatalogXminAge = age(1_000_000_000), age(5) },
			health: Critical, code: CodeSlotXminAgeHigh, sev: Critical},
		{name: "another tool's old slot", bend: func(w *world) {
			w.prov.Slots = append(w.prov.Slots, probe.Slot{Name: "debezium", Plugin: "pgoutput", Type: "logical", CatalogXminAge: age(300_000_000)})
		}, health: OK, nodeErr: CodeSlotXminAgeHigh},
		{name: "subscriber unreachable: its slot's age on the provider node", bend: func(w *world) {
			w.hist.Observe([]probe.Snapshot{w.prov, w.sub}, w.now.Add(-time.Minute))
			w.sub = probe.Snapshot{Node: "s", Err: errors.New("timeout")}
			w.slot().Active, w.slot().CatalogXminAge = false, age(1_500_000_000)
		}, health: Unknown, code: CodeNodeUnreachable, sev: Unknown, nodeErr: CodeSlotXminAgeHigh},
		{name: "inactive slot of a down subscription is no orphan", bend: func(w *world) {
			w.s().Status = probe.StatusDown
			w.slot().Active = false
		}, health: Warning, code: CodeSubscriptionDown, sev: Warning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy()
			tc.bend(w)
			r := w.run()
			if len(r.Subscriptions) != 1 {
				t.Fatalf("subscriptions: got %d, want 1", len(r.Subscriptions))
			}
			s := r.Subscriptions[0]
			if s.Health != tc.health {
				t.Errorf("health: got %s, want %s (findings %+v)", s.Health, tc.health, s.Findings)
			}
			if tc.code == "" {
				if len(s.Findings) != 0 {
					t.Errorf("findings: got %+v, want none", s.Findings)
				}
			} else {
				f, ok := s.Finding(tc.code)
				if !ok {
					t.Fatalf("finding %s missing; got %+v", tc.code, s.Findings)
				}
				if f.Severity != tc.sev || f.Remedy != tc.remedy || f.Human != tc.human {
					t.Errorf("finding: got severity %s remedy %q human %t, want %s %q %t", f.Severity, f.Remedy, f.Human, tc.sev, tc.remedy, tc.human)
				}
				if f.Message == "" {
					t.Error("finding has no message")
				}
				if (tc.code == CodeSchemaMismatch || tc.code == CodeNodeInRecovery) && len(s.Findings) != 1 {
					t.Errorf("findings beside %s: %+v", tc.code, s.Findings)
				}
			}
			var nodeCodes []string
			for _, n := range r.Nodes {
				for _, f := range n.Findings {
					nodeCodes = append(nodeCodes, f.Code)
				}
			}
			if tc.nodeErr == "" && len(nodeCodes) > 0 {
				t.Errorf("node findings: got %v, want none", nodeCodes)
			}
			if tc.nodeErr != "" && (len(nodeCodes) == 0 || nodeCodes[0] != tc.nodeErr) {
				t.Errorf("node findings: got %v, want %s", nodeCodes, tc.nodeErr)
			}
		})
	}
}

func TestSlotXminAgeSaysWhatHoldsIt(t *testing.T) {
	w := healthy()
	w.slot().Active, w.slot().CatalogXminAge = false, age(1_234_567_890)
	w.prov.Slots = append(w.prov.Slots, probe.Slot{Name: "standby1", Type: "physical", XminAge: age(250_000_000)})
	r := w.run()
	f, ok := r.Subscriptions[0].Finding(CodeSlotXminAgeHigh)
	want := "slot pgl_db_prov_sub on p holds back the transaction horizon by 1,234,567,890 transactions (threshold 1,000,000,000): VACUUM cannot remove dead catalog rows (catalog_xmin) or freeze past it"
	if !ok || f.Severity != Critical || f.Slot != slotName || !strings.HasPrefix(f.Message, want) || !strings.Contains(f.Message, "the slot is inactive") {
		t.Errorf("subscription's finding: %+v", f)
	}
	var node []Finding
	for _, n := range r.Nodes {
		node = append(node, n.Findings...)
	}
	if len(node) != 1 || node[0].Severity != Warning || node[0].Slot != "standby1" ||
		!strings.Contains(node[0].Message, "dead rows of every table (xmin)") ||
		!strings.Contains(node[0].Message, "inactive physical slot that no configured subscription uses; if nothing needs it, drop it: SELECT pg_drop_replication_slot('standby1')") {
		t.Errorf("node findings: %+v", node)
	}
	for _, n := range []struct {
		in   int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {123456, "123,456"}, {1234567, "1,234,567"}} {
		if got := groupDigits(n.in); got != n.want {
			t.Errorf("groupDigits(%d) = %q, want %q", n.in, got, n.want)
		}
	}
}

func secs(f float64) *float64 { return &f }

func TestApplyBlockedNamesTheSessionAtTheHead(t *testing.T) {
	w := healthy()
	// The worker waits behind an ALTER TABLE (pid 20, itself waiting) that
	// queues behind an idle transaction (pid 10).
	w.s().LockWait = &probe.LockWait{PID: 7, WaitEvent: "relation", Seconds: secs(125), Tables: []string{"public.items"},
		Blockers: []probe.Blocker{
			{Session: probe.Session{PID: 20, User: "deploy", Application: "migrate", State: "active", XactSeconds: secs(130)}, Depth: 1, BackendType: "client backend", Waiting: true},
			{Session: probe.Session{PID: 10, User: "alice", Application: "psql", ClientAddr: "10.0.0.5", State: "idle in transaction", XactSeconds: secs(600), StateSeconds: secs(590)}, Depth: 2, BackendType: "client backend"},
		}}
	r := w.run()
	f, ok := r.Subscriptions[0].Finding(CodeApplyBlocked)
	want := "the apply worker of sub (pid 7) has waited for 2m5s (threshold 1m0s) for a table lock (on public.items) on s, held by pid 10 (user alice, application psql, from 10.0.0.5, idle in transaction for 9m50s, transaction open 10m0s) (through the waiting session(s) 20, queued behind it): nothing of sub is applied until it lets go"
	if !ok || f.Severity != Warning || !f.Human || f.Remedy != "" || !strings.HasPrefix(f.Message, want) ||
		!strings.HasSuffix(f.Message, "a person runs on s: SELECT pg_terminate_backend(10) (rolls back its open transaction)") {
		t.Fatalf("finding: %+v", f)
	}
	if r.Subscriptions[0].Health != Warning || r.Subscriptions[0].LockWait == nil {
		t.Errorf("health %s, lock_wait %v", r.Subscriptions[0].Health, r.Subscriptions[0].LockWait)
	}

	w.s().LockWait.Seconds = secs(16 * 60)
	if f, _ := w.run().Subscriptions[0].Finding(CodeApplyBlocked); f.Severity != Critical {
		t.Errorf("16 minutes: %+v", f)
	}
	// A short wait is how locks work: nothing to say.
	w.s().LockWait.Seconds = secs(59)
	if f, ok := w.run().Subscriptions[0].Finding(CodeApplyBlocked); ok {
		t.Errorf("59 s: %+v", f)
	}
	// PostgreSQL 13 has no waitstart: the youngest transaction blocking the
	// worker directly bounds the wait.
	w.s().LockWait = &probe.LockWait{PID: 7, WaitEvent: "transactionid",
		Blockers: []probe.Blocker{{Session: probe.Session{PID: 10, State: "idle in transaction", XactSeconds: secs(90)}, Depth: 1}}}
	f, ok = w.run().Subscriptions[0].Finding(CodeApplyBlocked)
	if !ok || f.Severity != Warning || !strings.Contains(f.Message, "has waited for up to 1m30s (the age of the transaction in its way) (threshold 1m0s) for a row another transaction changed on s, held by pid 10 (idle in transaction, transaction open 1m30s)") {
		t.Errorf("without waitstart: %+v", f)
	}
	// A disabled subscription applies nothing anyway: its own finding says so.
	w.s().Enabled, w.s().Status = false, probe.StatusDisabled
	if f, ok := w.run().Subscriptions[0].Finding(CodeApplyBlocked); ok {
		t.Errorf("disabled: %+v", f)
	}
}

func TestRetainedWALNamesTheOpenTransactionHoldingIt(t *testing.T) {
	w := healthy()
	w.slot().RetainedBytes, w.slot().LagBytes = 20<<30, 4096
	w.prov.OldestXact = &probe.Xact{Session: probe.Session{PID: 42, User: "batch", Application: "nightly", ClientAddr: "10.0.0.9",
		State: "idle in transaction", XactSeconds: secs(7200), StateSeconds: secs(7000)}, Database: "app", XidAge: 900}
	f, ok := w.run().Subscriptions[0].Finding(CodeWALRetainedHigh)
	want := "slot pgl_db_prov_sub on p retains 20.0 GiB of WAL (threshold 10.0 GiB, wal_status reserved); the subscriber keeps up (lag 4.0 KiB), but the oldest open transaction on p holds the WAL written since it began: pid 42 (database app, user batch, application nightly, from 10.0.0.9, idle in transaction for 1h56m40s, transaction open 2h0m0s); it releases when it ends; a person may end it: SELECT pg_terminate_backend(42) (rolls back its open transaction)"
	if !ok || f.Message != want {
		t.Errorf("got  %q\nwant %q", f.Message, want)
	}
	// A forgotten prepared transaction outlives every session.
	w.prov.OldestXact = &probe.Xact{Session: probe.Session{User: "batch", State: "prepared", XactSeconds: secs(86400)}, GID: "tx'1", Database: "app", XidAge: 900}
	f, _ = w.run().Subscriptions[0].Finding(CodeWALRetainedHigh)
	if !strings.Contains(f.Message, `prepared transaction "tx'1" (database app, owner batch) prepared 24h0m0s ago; a person commits or rolls it back (COMMIT PREPARED / ROLLBACK PREPARED 'tx''1', in database app)`) {
		t.Errorf("prepared: %s", f.Message)
	}
	// The subscriber far behind: lag explains the retention, not the transaction.
	w.slot().LagBytes = 19 << 30
	if f, _ := w.run().Subscriptions[0].Finding(CodeWALRetainedHigh); strings.Contains(f.Message, "oldest open transaction") {
		t.Errorf("lagging: %s", f.Message)
	}
	// A young transaction is how databases work.
	w.slot().LagBytes = 4096
	w.prov.OldestXact = &probe.Xact{Session: probe.Session{PID: 42, State: "active", XactSeconds: secs(5)}, XidAge: 3}
	if f, _ := w.run().Subscriptions[0].Finding(CodeWALRetainedHigh); strings.Contains(f.Message, "oldest open transaction") {
		t.Errorf("5 s old: %s", f.Message)
	}
	// The catalog horizon: the same transaction, when it is older than the slot's catalog_xmin.
	w.slot().CatalogXminAge = age(250_000_000)
	w.prov.OldestXact = &probe.Xact{Session: probe.Session{PID: 42, User: "batch", State: "idle in transaction", XactSeconds: secs(90000)}, Database: "app", XidAge: 250_000_001}
	f, _ = w.run().Subscriptions[0].Finding(CodeSlotXminAgeHigh)
	if !strings.Contains(f.Message, "it is held by the oldest open transaction on p: pid 42 (database app, user batch, idle in transaction, transaction open 25h0m0s); it releases when it ends") {
		t.Errorf("xmin: %s", f.Message)
	}
}

func TestOrphanNotClaimedWhileASubscriberWasNeverSeen(t *testing.T) {
	w := healthy()
	w.prov.Slots = append(w.prov.Slots, probe.Slot{Name: "pgl_db_prov_other", Plugin: "pglogical_output"})
	other := probe.Snapshot{Node: "s2", Err: errors.New("refused")}
	snaps := []probe.Snapshot{w.prov, w.sub, other}
	r := Diagnose(Input{Now: t0, Thresholds: thresholds, Snapshots: snaps, History: NewHistory()})
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if f.Code == CodeOrphanSlot {
				t.Fatalf("orphan_slot reported while subscriber s2 was never seen: %+v", f)
			}
		}
	}
}

func TestExplainUnreachableReachesTheSubscriptionsItStops(t *testing.T) {
	w := healthy()
	w.prov.Err = errors.New("connection refused")
	w.s().Status = probe.StatusDown
	r := w.run()
	r.ExplainUnreachable("p", "storage-full", "RDS reports instance db as storage-full")
	var node Node
	for _, n := range r.Nodes {
		if n.Name == "p" {
			node = n
		}
	}
	if node.RDSStatus != "storage-full" || len(node.Findings) != 1 || !strings.HasSuffix(node.Findings[0].Message, "; RDS reports instance db as storage-full") {
		t.Errorf("node: %+v", node)
	}
	f, ok := r.Subscriptions[0].Finding(CodeNodeUnreachable)
	if !ok || !strings.HasSuffix(f.Message, "cannot be reached by pglmon; its slot cannot be checked; RDS reports instance db as storage-full") {
		t.Errorf("subscription: %+v", r.Subscriptions[0].Findings)
	}
	// A node that answers is left alone.
	r.ExplainUnreachable("s", "available", "x")
	for _, n := range r.Nodes {
		if n.Name == "s" && n.RDSStatus != "" {
			t.Errorf("reachable node annotated: %+v", n)
		}
	}
}

func TestReportHealthAndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		a, b, want Health
	}{
		{OK, OK, OK}, {OK, Unknown, Unknown}, {Unknown, Warning, Warning}, {Warning, Critical, Critical}, {Critical, Unknown, Critical},
	} {
		if got := Worst(tc.a, tc.b); got != tc.want {
			t.Errorf("Worst(%s, %s): got %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
	for h, want := range map[Health]int{OK: 0, Warning: 1, Critical: 2, Unknown: 3} {
		if got := h.ExitCode(); got != want {
			t.Errorf("%s: got %d, want %d", h, got, want)
		}
	}
}

// A crash loop is one outage: pglogical starts a failed apply worker again
// every ~5 s and it says replicating for a second or so before it fails
// again. Only FlapWindow out of down ends the outage.
func TestHistoryClearsRecovery(t *testing.T) {
	w := healthy()
	w.downFor(time.Minute)
	if _, ok := w.hist.DownSince["s/sub"]; !ok {
		t.Fatal("down not recorded")
	}
	finding := func() string {
		r := w.run()
		s, _ := r.Subscription("sub", "")
		if len(s.Findings) == 0 {
			return ""
		}
		return s.Findings[0].Code
	}
	// The worker starts again (replicating), then fails again 5 s later:
	// still the outage of a minute ago, past down_grace at once.
	w.s().Status = probe.StatusReplicating
	if got := finding(); got != "" {
		t.Errorf("replicating: %s", got)
	}
	// It says when it came back, the outage open (serverlog reads the
	// log for such a worker: a lock timeout's next wait).
	if r := w.run(); r.Subscriptions[0].UpSince == nil || r.Subscriptions[0].DownSince != nil {
		t.Errorf("replicating within the outage: %+v", r.Subscriptions[0])
	}
	w.now = w.now.Add(5 * time.Second)
	w.s().Status = probe.StatusDown
	if got := finding(); got != CodeStuckDown {
		t.Errorf("down again 5 s after a start: %s, want %s (the same outage)", got, CodeStuckDown)
	}
	// Replicating for the whole window: the outage is over, and a new one
	// starts under the grace.
	w.s().Status = probe.StatusReplicating
	w.run()
	w.now = w.now.Add(FlapWindow)
	w.run()
	if _, ok := w.hist.DownSince["s/sub"]; ok {
		t.Fatal("down still recorded after recovery")
	}
	if r := w.run(); r.Subscriptions[0].UpSince != nil {
		t.Errorf("the outage over: up since %v", r.Subscriptions[0].UpSince)
	}
	w.now = w.now.Add(time.Second)
	w.s().Status = probe.StatusDown
	if got := finding(); got != CodeSubscriptionDown {
		t.Errorf("down after a recovery: %s, want %s", got, CodeSubscriptionDown)
	}
	// Back within the window from an outage under down_grace: no crash
	// loop to speak of yet.
	w.run()
	w.now = w.now.Add(2 * time.Second)
	w.s().Status = probe.StatusReplicating
	if r := w.run(); r.Subscriptions[0].UpSince != nil {
		t.Errorf("back from 2 s down: up since %v", r.Subscriptions[0].UpSince)
	}
	w.hist.Forget(map[string]bool{"p": true})
	if _, ok := w.hist.LocalNodes["s"]; ok {
		t.Fatal("forgotten node still remembered")
	}
}

func TestSlotInUseSaysWhoHoldsIt(t *testing.T) {
	held := func(snd *probe.Sender) *world {
		w := healthy()
		w.downFor(10 * time.Minute)
		w.slot().Active, w.slot().ActivePID, w.slot().Sender = true, 4242, snd
		w.s().OriginRemoteLSN, w.slot().ConfirmedFlushLSN = 0x1000000, 0x1000000
		return w
	}
	finding := func(t *testing.T, w *world) Finding {
		t.Helper()
		r := w.run()
		f, ok := r.Subscriptions[0].Finding(CodeSlotInUse)
		if !ok {
			t.Fatalf("no slot_in_use: %+v", r.Subscriptions[0].Findings)
		}
		if f.Severity != Critical || !f.Human || f.Remedy != "" {
			t.Errorf("slot_in_use: %+v", f)
		}
		if _, stuck := r.Subscriptions[0].Finding(CodeStuckDown); stuck {
			t.Errorf("stuck_down (restart) offered too: %+v", r.Subscriptions[0].Findings)
		}
		return f
	}
	clone := &probe.Sender{PID: 4242, ApplicationName: "sub", ClientAddr: "10.0.0.7", ClientPort: 51598,
		ConnectedSeconds: secs(900), ReplySeconds: secs(4)}

	t.Run("a copy of the subscriber", func(t *testing.T) {
		w := held(clone)
		w.slot().ConfirmedFlushLSN = 0x1000000 + 3<<20
		f := finding(t, w)
		for _, want := range []string{
			`subscription sub is down because another process holds its slot pgl_db_prov_sub on p`,
			`"replication slot ... is active for PID 4242"`,
			`walsender pid 4242 (application_name "sub", from 10.0.0.7 port 51598, connected for 15m0s, last reply 4s ago)`,
			`most likely a copy of s (a restored snapshot, a promoted replica, a cloned volume)`,
			`On the copy (it connects from 10.0.0.7) run SELECT pglogical.alter_subscription_disable('sub', true) (never pglogical.drop_subscription there: it drops this slot on p)`,
			`The slot is confirmed up to 0/1300000, 3.0 MiB past what sub has applied (its origin is at 0/1000000)`,
			`pglmon verify --subscription sub`,
		} {
			if !strings.Contains(f.Message, want) {
				t.Errorf("missing %q in\n%s", want, f.Message)
			}
		}
	})
	t.Run("a walsender whose consumer is gone", func(t *testing.T) {
		stale := *clone
		stale.ReplySeconds = secs(45)
		f := finding(t, held(&stale))
		if !strings.Contains(f.Message, "Its consumer last replied 45s ago: probably a connection left behind by the worker of sub itself") ||
			!strings.Contains(f.Message, "on p: SELECT pg_terminate_backend(4242)") || strings.Contains(f.Message, "confirmed up to") {
			t.Errorf("stale: %s", f.Message)
		}
	})
	t.Run("another tool", func(t *testing.T) {
		other := *clone
		other.ApplicationName = "debezium"
		if f := finding(t, held(&other)); !strings.Contains(f.Message, "is not a pglogical subscription of this name: another tool streams from this slot") {
			t.Errorf("other tool: %s", f.Message)
		}
	})
	t.Run("not a walsender", func(t *testing.T) {
		if f := finding(t, held(nil)); !strings.Contains(f.Message, "pid 4242, which is not a walsender pglmon can see") {
			t.Errorf("no sender: %s", f.Message)
		}
	})
	t.Run("its own worker, reconnecting", func(t *testing.T) {
		young := *clone
		young.ConnectedSeconds = secs(2)
		r := held(&young).run()
		if _, ok := r.Subscriptions[0].Finding(CodeStuckDown); !ok {
			t.Errorf("a walsender connected 2 s ago: got %+v, want stuck_down", r.Subscriptions[0].Findings)
		}
	})
}

// A big table's initial copy takes longer than table_sync_grace: it is not
// stalled while its copied rows grow, and is once they stop.
func TestTableSyncStalledOnlyWhenTheCopyStopsMoving(t *testing.T) {
	w := healthy()
	w.s().Status = probe.StatusInitializing
	rows := func(n int64) {
		w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "big", Status: "d", CopiedRows: &n}}
	}
	start := w.now
	for i := range int64(8) { // 8 x 10 min = 80 min of copying, past the 30 min grace
		rows(1 + i*1_000_000)
		w.now = start.Add(time.Duration(i) * 10 * time.Minute)
		if f, ok := w.run().Subscriptions[0].Finding(CodeTableSyncStalled); ok {
			t.Fatalf("at %s, while the copy moves: %s", w.now.Sub(start), f.Message)
		}
	}
	// The rows stop growing: stalled once the grace has passed since the last change.
	last := w.now
	w.now = last.Add(29 * time.Minute)
	if _, ok := w.run().Subscriptions[0].Finding(CodeTableSyncStalled); ok {
		t.Fatal("stalled before the grace")
	}
	w.now = last.Add(31 * time.Minute)
	f, ok := w.run().Subscriptions[0].Finding(CodeTableSyncStalled)
	if !ok || !strings.Contains(f.Message, "has not been ready for 1h41m0s") || !strings.Contains(f.Message, "its copy has not moved for 31m0s (7,000,001 rows copied)") {
		t.Fatalf("stalled copy: %+v", f)
	}
	// The copy ended and the table waits in another state: measured from the copy's last move.
	w.sub.TableSync[0].CopiedRows, w.sub.TableSync[0].Status = nil, "y"
	w.now = last.Add(10 * time.Minute)
	if f, ok := w.run().Subscriptions[0].Finding(CodeTableSyncStalled); ok {
		t.Fatalf("10 min after the copy: %s", f.Message)
	}
	w.now = last.Add(40 * time.Minute)
	if f, ok := w.run().Subscriptions[0].Finding(CodeTableSyncStalled); !ok || !strings.Contains(f.Message, `(sync status "y", table_sync_grace 30m0s); its copy (7,000,001 rows) last moved 40m0s ago`) {
		t.Fatalf("after the copy: %+v", f)
	}
	// In catchup: what it waits for, and the write that gives it.
	w.sub.TableSync[0].Status = "u"
	if f, ok := w.run().Subscriptions[0].Finding(CodeTableSyncStalled); !ok || !strings.Contains(f.Message, `(sync status "u", table_sync_grace 30m0s); its copy (7,000,001 rows) last moved 40m0s ago; in catchup, pglogical's sync worker waits for a commit of the database on p: `) ||
		!strings.Contains(f.Message, "SELECT pg_logical_emit_message(true, 'pglmon', 'table copy catch-up') on p") {
		t.Fatalf("in catchup: %+v", f)
	}
	// Without copy progress (PostgreSQL 13, or a role that cannot see it): the time since not ready, as before.
	w2 := healthy()
	w2.s().Status = probe.StatusInitializing
	w2.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "t", Status: "d"}}
	w2.hist.Observe([]probe.Snapshot{w2.prov, w2.sub}, w2.now.Add(-31*time.Minute))
	if f, ok := w2.run().Subscriptions[0].Finding(CodeTableSyncStalled); !ok || strings.Contains(f.Message, "copy") {
		t.Fatalf("no progress known: %+v", f)
	}
}

func TestTablesNotReadyInTheReport(t *testing.T) {
	w := healthy()
	w.s().Status = probe.StatusInitializing
	n := int64(5)
	w.sub.TableSync = []probe.TableSync{{Subscription: "sub", Schema: "public", Table: "big", Status: "d", CopiedRows: &n},
		{Subscription: "other", Schema: "public", Table: "x", Status: "i"}}
	got := w.run().Subscriptions[0].TablesNotReady
	if len(got) != 1 || got[0].Table != "big" || got[0].CopiedRows == nil || *got[0].CopiedRows != 5 {
		t.Errorf("tables not ready: %+v", got)
	}
}

func TestWorkerSlotsExhausted(t *testing.T) {
	w := healthy()
	w.sub.PglogicalVersion = "2.4.2"
	w.sub.Workers = &probe.Workers{InUse: 5, Pglogical: 4, Parallel: 0, Max: 5, ManagerRunning: true, SupervisorRunning: true}
	r := w.run()
	var node Node
	for _, n := range r.Nodes {
		if n.Name == "s" {
			node = n
		}
	}
	if len(node.Findings) != 1 || node.Findings[0].Code != CodeWorkerSlotsExhausted || node.Findings[0].Severity != Warning ||
		!strings.Contains(node.Findings[0].Message, "s has no background worker slot left, parallel queries aside (5 of max_worker_processes 5 in use: 4 pglogical, 0 parallel query, 1 other)") {
		t.Errorf("node: %+v", node.Findings)
	}
	// Parallel queries come and go: not counted against the node.
	w.sub.Workers = &probe.Workers{InUse: 5, Pglogical: 3, Parallel: 2, Max: 5, ManagerRunning: true, SupervisorRunning: true}
	for _, n := range w.run().Nodes {
		if len(n.Findings) != 0 {
			t.Errorf("with parallel workers: %+v", n.Findings)
		}
	}
	// A subscription down while no slot is left: the cause, not stuck_down.
	// Its manager exits each time it cannot start the worker, freeing its
	// slot for a moment: the workers pglogical lacks count too.
	w.s().WorkerRunning = false
	w.sub.Workers = &probe.Workers{InUse: 4, Pglogical: 3, Max: 5, SupervisorRunning: true}
	w.downFor(10 * time.Minute)
	sub := w.run().Subscriptions[0]
	f, ok := sub.Finding(CodeWorkerSlotsExhausted)
	if !ok || f.Severity != Critical || !f.Human || f.Remedy != "" || !strings.Contains(f.Message, "raise max_worker_processes above 5") {
		t.Errorf("down: %+v", sub.Findings)
	}
	if _, stuck := sub.Finding(CodeStuckDown); stuck {
		t.Errorf("stuck_down too: %+v", sub.Findings)
	}
	// A free slot: stuck_down as before; and with exactly the one slot its
	// apply worker needs still free.
	for _, inUse := range []int{3, 4} {
		w.sub.Workers = &probe.Workers{InUse: inUse, Pglogical: inUse - 1, Max: 5, ManagerRunning: true, SupervisorRunning: true}
		sub := w.run().Subscriptions[0]
		if _, stuck := sub.Finding(CodeStuckDown); !stuck {
			t.Errorf("%d of 5 slots in use: %+v", inUse, sub.Findings)
		}
	}
}

// A subscription created but never started has neither slot nor origin yet:
// nothing is lost, so not slot_missing or origin_missing.
func TestNeverStartedSubscriptionIsNotSlotMissing(t *testing.T) {
	created := func() *world {
		w := healthy()
		w.prov.Slots = nil
		w.s().SyncStatus, w.s().OriginExists, w.s().WorkerRunning = "i", false, false
		w.s().Status = probe.StatusDown
		return w
	}
	if f := created().run().Subscriptions[0].Findings; len(f) != 1 || f[0].Code != CodeSubscriptionDown {
		t.Errorf("just created: %+v", f)
	}
	w := created()
	w.downFor(5 * time.Minute)
	f := w.run().Subscriptions[0].Findings
	if len(f) != 1 || f[0].Code != CodeStuckDown || f[0].Remedy != "" || !strings.Contains(f[0].Message, "has never started: its initial synchronisation has not begun (sync status i)") {
		t.Errorf("never started: %+v", f)
	}
	// Once it ran (sync status r), a missing slot is lost changes.
	w.s().SyncStatus = "r"
	if f := w.run().Subscriptions[0].Findings; len(f) != 1 || f[0].Code != CodeSlotMissing {
		t.Errorf("started, slot gone: %+v", f)
	}
}

func TestReplicationCapacityLow(t *testing.T) {
	w := healthy()
	finding := func() (Finding, bool) {
		for _, n := range w.run().Nodes {
			for _, f := range n.Findings {
				if n.Name == "p" && f.Code == CodeReplicationCapacityLow {
					return f, true
				}
			}
		}
		return Finding{}, false
	}
	w.prov.Capacity = &probe.Capacity{Slots: 8, MaxSlots: 10, Senders: 3, MaxSenders: 10}
	if f, ok := finding(); ok {
		t.Errorf("2 slots left: %+v", f)
	}
	w.prov.Capacity = &probe.Capacity{Slots: 9, MaxSlots: 10, Senders: 10, MaxSenders: 10}
	f, ok := finding()
	if !ok || f.Severity != Warning || !strings.Contains(f.Message, "provider p has 1 of max_replication_slots 10 left (9 in use, every database's) and 0 of max_wal_senders 10 left (10 in use, standbys' too)") {
		t.Errorf("low: %+v", f)
	}
	// A node without pglogical slots is no provider.
	w.prov.Slots[0].Plugin = "test_decoding"
	if f, ok := finding(); ok {
		t.Errorf("no pglogical slot: %+v", f)
	}
}

func TestApplyDelayNotShorterThanWalSenderTimeout(t *testing.T) {
	finding := func(delay float64, timeoutMS int) (Finding, bool) {
		w := healthy()
		w.s().ApplyDelaySeconds = delay
		w.prov.Capacity = &probe.Capacity{Slots: 1, MaxSlots: 10, Senders: 1, MaxSenders: 10, SenderTimeoutMS: timeoutMS}
		r := w.run()
		s, _ := r.Subscription("sub", "")
		return s.Finding(CodeApplyDelayTimeout)
	}
	for _, c := range []struct {
		delay   float64
		timeout int
	}{{0, 60000}, {30, 60000}, {3600, 0}} {
		if f, ok := finding(c.delay, c.timeout); ok {
			t.Errorf("apply_delay %gs, wal_sender_timeout %dms: %s", c.delay, c.timeout, f.Message)
		}
	}
	f, ok := finding(90, 60000)
	if !ok || f.Severity != Warning || !f.Human || f.Remedy != "" ||
		!strings.Contains(f.Message, "sub has apply_delay 1m30s, not shorter than wal_sender_timeout 1m0s on its provider p") {
		t.Errorf("90s over 1min: %+v", f)
	}
}

func TestLagHighNamesTheApplyDelay(t *testing.T) {
	w := healthy()
	w.slot().LagBytes = 1 << 30
	w.s().ApplyDelaySeconds = 3600
	r := w.run()
	s, _ := r.Subscription("sub", "")
	f, ok := s.Finding(CodeLagHigh)
	if !ok || !strings.Contains(f.Message, "its apply_delay of 1h0m0s holds every change back on purpose") {
		t.Errorf("lag_high: %+v", f)
	}
}

// The delay comes from the provider's clock alone: the provider's clock is
// an hour off pglmon's and the subscriber's here, and the delay is still
// what the provider's heartbeats say.
func TestReplicationDelayFromHeartbeats(t *testing.T) {
	provClock := t0.Add(time.Hour) // the provider's clock, an hour ahead
	delay := func(bend func(w *world)) (*Subscription, Report) {
		w := healthy()
		w.s().ReplicationSets = []string{"default", probe.HeartbeatSet}
		// The subscriber read 0.4 s after the provider (pglmon's clock).
		w.prov.Time, w.sub.Time = t0.Add(-time.Second), t0.Add(400*time.Millisecond)
		w.prov.Heartbeat = &probe.Heartbeat{Clock: provClock, ReadAt: t0, Provides: true, Nodes: map[string]probe.HeartbeatSpan{
			"prov": {Oldest: provClock.Add(-time.Hour), Newest: provClock.Add(-10 * time.Second)},
		}}
		w.sub.Heartbeat = &probe.Heartbeat{Clock: t0, ReadAt: t0.Add(400 * time.Millisecond), Nodes: map[string]probe.HeartbeatSpan{
			"prov": {Oldest: provClock.Add(-time.Hour), Newest: provClock.Add(-10 * time.Second)},
		}}
		bend(w)
		th := thresholds
		th.ReplicationDelay, th.ReplicationDelayCritical = config.Duration(5*time.Minute), config.Duration(30*time.Minute)
		r := Diagnose(Input{Now: w.now, Thresholds: th, Snapshots: []probe.Snapshot{w.prov, w.sub}, History: w.hist})
		s, _ := r.Subscription("sub", "")
		return s, r
	}
	applied := func(w *world, ago time.Duration) {
		w.sub.Heartbeat.Nodes["prov"] = probe.HeartbeatSpan{Oldest: provClock.Add(-time.Hour), Newest: provClock.Add(-ago)}
	}
	for _, c := range []struct {
		name     string
		bend     func(w *world)
		delay    float64 // -1: not measured
		sev      Severity
		contains string
	}{
		{"every heartbeat applied", func(*world) {}, 0, "", ""},
		{"behind 10 minutes", func(w *world) { applied(w, 10*time.Minute) }, 600.4, Warning,
			"the data of sub on s is 10m0s behind provider p (threshold 5m0s): the newest heartbeat it has applied was written on p 10m0s ago; it says replicating"},
		{"behind 40 minutes, disabled", func(w *world) { applied(w, 40*time.Minute); w.s().Status = probe.StatusDisabled }, 2400.4, Critical,
			"(threshold 30m0s)"},
		{"none arrived: from the oldest kept", func(w *world) { w.sub.Heartbeat = nil }, 3600.4, Critical,
			"none of the heartbeats written on p (the oldest 1h0m0s ago) has arrived"},
		{"with an apply_delay", func(w *world) { applied(w, 6*time.Minute); w.s().ApplyDelaySeconds = 300 }, 360.4, Warning,
			"its apply_delay (5m0s) is part of this"},
		{"not in the set", func(w *world) { w.s().ReplicationSets = []string{"default"} }, -1, "", ""},
		{"provider does not write them", func(w *world) { w.prov.Heartbeat.Provides = false }, -1, "", ""},
		{"no heartbeat written yet", func(w *world) { w.prov.Heartbeat.Nodes = map[string]probe.HeartbeatSpan{} }, -1, "", ""},
		{"provider not configured", func(w *world) { w.s().ProviderNode = "elsewhere" }, -1, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := delay(c.bend)
			if c.delay < 0 {
				if s.ReplicationDelaySeconds != nil {
					t.Errorf("delay %v, want none", *s.ReplicationDelaySeconds)
				}
				return
			}
			if s.ReplicationDelaySeconds == nil || math.Abs(*s.ReplicationDelaySeconds-c.delay) > 1e-6 {
				t.Fatalf("delay %v, want %v", s.ReplicationDelaySeconds, c.delay)
			}
			f, ok := s.Finding(CodeReplicationDelayHigh)
			if c.sev == "" {
				if ok {
					t.Errorf("finding %+v", f)
				}
				return
			}
			if !ok || f.Severity != c.sev || !strings.Contains(f.Message, c.contains) {
				t.Errorf("finding %+v, want %s with %q", f, c.sev, c.contains)
			}
		})
	}
}

// not_streaming: pglogical says replicating while the apply worker waits
// for a connection that hangs (packets dropped, a server that never
// answers): measured with pglogical 2.4.2, ~30 s replicating with the slot
// inactive, ~5 s down, again. Each case is a run of samples 10 s apart
// (status, slot active, the apply worker's age in seconds or -1 when not
// running or not visible) and the finding code wanted after each one.
func TestNotStreaming(t *testing.T) {
	const (
		R = probe.StatusReplicating
		D = probe.StatusDown
	)
	type sample struct {
		status string
		active bool
		age    float64
		want   string // a finding code, "" for none
	}
	for _, tc := range []struct {
		name    string
		samples []sample
	}{
		{"connection hangs: the worker runs and never streams", []sample{
			{R, true, 100, ""},
			{R, false, 1, ""},                // quiet 0 s
			{R, false, 11, ""},               // the worker has run 11 s without connecting
			{R, false, 21, ""},               // 21 s: hung, but under down_grace
			{R, false, 31, CodeNotStreaming}, // 31 s
			{D, false, -1, CodeNotStreaming}, // between two attempts: the same incident
			{R, false, 4, CodeNotStreaming},  // the next attempt
			{R, true, 14, ""},                // the network is back: it streams
		}},
		{"one sample tells it: a worker 40 s old whose slot is inactive", []sample{
			{R, false, 40, CodeNotStreaming},
		}},
		{"normal start: connected at the next sample", []sample{
			{R, false, 0.2, ""}, {R, true, 10, ""}, {R, true, 20, ""},
		}},
		{"crash loop: replicating a moment at each start, never for long", []sample{
			{D, false, -1, CodeSubscriptionDown},
			{R, false, 0.5, ""},           // the crash loop's replicating second
			{R, false, 0.8, ""},           // another worker's second
			{D, false, -1, CodeStuckDown}, // down since the first sample (FlapWindow): 30 s
			{R, false, 0.3, ""},
			{D, false, -1, CodeStuckDown},
			{R, false, 0.6, ""},
			{D, false, -1, CodeStuckDown},
		}},
		{"walsender killed, then pglogical's 180 s backoff: stuck_down, not not_streaming", []sample{
			{R, false, 2, ""}, {D, false, -1, CodeSubscriptionDown}, {D, false, -1, CodeSubscriptionDown}, {D, false, -1, CodeSubscriptionDown},
			{D, false, -1, CodeStuckDown}, {D, false, -1, CodeStuckDown},
		}},
		{"worker's age not visible (no pg_read_all_stats): not said", []sample{
			{R, false, -1, ""}, {R, false, -1, ""}, {R, false, -1, ""}, {R, false, -1, ""}, {R, false, -1, ""},
		}},
		{"disabled ends the period", []sample{
			{R, false, 1, ""}, {R, false, 11, ""}, {R, false, 21, ""},
			{probe.StatusDisabled, false, -1, CodeSubscriptionDisabled},
			{R, false, 1, ""}, {R, false, 11, ""}, {R, false, 21, ""}, // hung, 21 s: under grace
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy()
			for i, smp := range tc.samples {
				w.now = t0.Add(time.Duration(i) * 10 * time.Second)
				w.s().Status, w.s().Enabled, w.slot().Active = smp.status, smp.status != probe.StatusDisabled, smp.active
				w.s().WorkerAgeSeconds = nil
				if smp.age >= 0 {
					w.s().WorkerAgeSeconds = &smp.age
				}
				r := w.run()
				s := r.Subscriptions[0]
				var codes []string
				for _, f := range s.Findings {
					codes = append(codes, f.Code)
				}
				got := strings.Join(codes, ",")
				if got != smp.want {
					t.Fatalf("sample %d (%s, active %t, age %v): findings %q, want %q", i, smp.status, smp.active, smp.age, got, smp.want)
				}
				if got == CodeNotStreaming {
					f := s.Findings[0]
					if f.Severity != Critical || !f.Human || f.Remedy != "" || !strings.Contains(f.Message, "has not streamed from its slot "+slotName+" on provider p") {
						t.Errorf("finding: %+v", f)
					}
					if s.NotStreamingSince == nil || w.now.Sub(*s.NotStreamingSince) < 30*time.Second {
						t.Errorf("not_streaming_since: got %v at %v", s.NotStreamingSince, w.now)
					}
				}
			}
		})
	}
}

// row_filter_not_permitted: critical, for a person, naming each table and
// function, with one GRANT per function.
func TestRowFilterNotPermittedMessage(t *testing.T) {
	w := healthy()
	w.denied = map[string]CopyDenied{"s/sub": {Role: "Repl", Filters: []FilterDenied{
		{Table: "public.a", Function: "rf_ok(integer)"}, {Table: "Sales.B", Function: "rf_ok(integer)"}}}}
	s := w.run().Subscriptions[0]
	if len(s.Findings) != 1 {
		t.Fatalf("%+v", s.Findings)
	}
	f := s.Findings[0]
	for _, want := range []string{`the role of sub's provider connection, Repl, may not execute function rf_ok(integer), which the row filter of public.a calls; function rf_ok(integer), which the row filter of "Sales"."B" calls on p`,
		"the next change to such a table stops sub at every start, for ever", `run on p now, before any change to it: GRANT EXECUTE ON FUNCTION rf_ok(integer) TO "Repl";`} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("message lacks %q: %s", want, f.Message)
		}
	}
	if f.Code != CodeRowFilterNotPermitted || f.Severity != Critical || !f.Human || f.Remedy != "" || strings.Count(f.Message, "GRANT EXECUTE") != 1 {
		t.Errorf("finding: %+v", f)
	}
}

// table_left_set names the tables as SQL reads them, in a sentence that
// agrees with their number, and lists them raw in the JSON.
func TestTableLeftSetMessage(t *testing.T) {
	w := healthy()
	w.s().ReplicationSets = []string{"app", "pglmon_heartbeat"}
	w.left = map[string][]string{"s/sub": {"Sales.Order Lines", "public.t"}}
	s := w.run().Subscriptions[0]
	want := `tables "Sales"."Order Lines", public.t replicated by sub to s are in none of its replication sets (app, pglmon_heartbeat) on p any more`
	if len(s.Findings) != 1 || !strings.HasPrefix(s.Findings[0].Message, want) || !strings.Contains(s.Findings[0].Message, "pglogical reports nothing wrong") ||
		!slices.Equal(s.TablesLeftSets, []string{"Sales.Order Lines", "public.t"}) {
		t.Errorf("%+v", s)
	}
}

func ptr[T any](v T) *T { return &v }

// A subscription streaming from elsewhere: the tables read on the
// configured provider are not its own, so neither table_left_set nor
// schema_mismatch is said from them; the message names both connection
// strings' sides.
func TestProviderElsewhereHidesWhatItsProviderSays(t *testing.T) {
	w := healthy()
	w.prov.Slots, w.s().WorkerAgeSeconds, w.s().ProviderConninfo = nil, ptr(95.0), "host=old.example dbname=app"
	w.left = map[string][]string{"s/sub": {"public.t"}}
	w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.t", Missing: true}}}
	r := w.run()
	fs := r.Subscriptions[0].Findings
	if len(fs) != 1 || fs[0].Code != CodeProviderElsewhere ||
		!strings.Contains(fs[0].Message, "subscription sub says replicating and its apply worker has run for 1m35s, but provider p has no slot pgl_db_prov_sub in its database") ||
		!strings.Contains(fs[0].Message, "whose pglogical node is also named prov (its provider connection string: host=old.example dbname=app)") {
		t.Fatalf("%+v", fs)
	}
}

// Two nodes subscribed to each other: a subscription that forwards all
// origins brings back to its subscriber what was made there (forward_loop
// on it); with both forwarding, endlessly; with neither, nothing.
func TestForwardLoop(t *testing.T) {
	for _, c := range []struct {
		name          string
		there, back   []string // forward_origins of sub (p -> s) and back (s -> p)
		flagged       []string // subscriptions with forward_loop
		endless, none bool
	}{
		{name: "back forwards", there: []string{}, back: []string{"all"}, flagged: []string{"back"}},
		{name: "both forward", there: []string{"all"}, back: []string{"all"}, flagged: []string{"back", "sub"}, endless: true},
		{name: "neither", there: []string{}, back: []string{}, none: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := healthy()
			w.s().ForwardOrigins = c.there
			w.prov.Subscriptions = []probe.Subscription{{Name: "back", Enabled: true, Status: probe.StatusReplicating, ProviderNode: "subn",
				SlotName: "pgl_db_subn_back", OriginExists: true, SyncStatus: "r", WorkerRunning: true, ForwardOrigins: c.back}}
			w.sub.Slots = []probe.Slot{{Name: "pgl_db_subn_back", Plugin: "pglogical_output", Type: "logical", Active: true, WALStatus: "reserved"}}
			r := w.run()
			var flagged []string
			for _, s := range r.Subscriptions {
				if f, ok := s.Finding(CodeForwardLoop); ok {
					flagged = append(flagged, s.Name)
					if f.Severity != Critical || !f.Human || strings.Contains(f.Message, "endlessly") != c.endless {
						t.Errorf("%s: %+v", s.Name, f)
					}
					if s.Name == "back" && !strings.Contains(f.Message, "changes made on p come back to it (p -> s -> p, through subscriptions sub, back): subscription back has forward_origins {all}") {
						t.Errorf("message: %s", f.Message)
					}
				}
			}
			slices.Sort(flagged)
			if !slices.Equal(flagged, c.flagged) {
				t.Errorf("flagged %v, want %v", flagged, c.flagged)
			}
			if c.none && r.Health != OK {
				t.Errorf("health %s: %+v", r.Health, r.Subscriptions)
			}
		})
	}
}

// A first copy that failed on a table with a generated column pglogical
// lists in its COPY: setting the subscription up again with its copy fails
// the same way, and init_failed says so.
func TestInitFailedNamesATableItsCopyCannotTake(t *testing.T) {
	w := healthy()
	w.s().Status, w.s().SyncStatus = probe.StatusDown, "d"
	w.schema = map[string][]SchemaMismatch{"s/sub": {{Table: "public.gi", CopyRefused: []string{"g"}}}}
	f, ok := w.run().Subscriptions[0].Finding(CodeInitFailed)
	if !ok || !strings.Contains(f.Message, "set up again, without its copy: its sets hold table public.gi (g) with generated columns") ||
		!strings.Contains(f.Message, "create it again with synchronize_data := false") {
		t.Errorf("init_failed: %+v", f)
	}
	w.schema = nil
	if f, _ := w.run().Subscriptions[0].Finding(CodeInitFailed); strings.Contains(f.Message, "without its copy") {
		t.Errorf("init_failed without such a table: %s", f.Message)
	}
}

// provider_rewound needs the provider's end of WAL read after the
// subscriber was probed (the monitor reads it again then): the probes run
// at once, so a subscriber probed last can be past the provider's probe.
func TestProviderRewound(t *testing.T) {
	rewound := func(w *world) (Subscription, bool) {
		t.Helper()
		r := w.run()
		s := r.Subscriptions[0]
		_, ok := s.Finding(CodeProviderRewound)
		return s, ok
	}
	bent := func(read probe.LSN, found bool) *world {
		w := healthy()
		w.s().OriginRemoteLSN, w.prov.CurrentLSN = 0x3000000, 0x1000000
		w.slot().ConfirmedFlushLSN = 0x1000000 - 0x100
		if found {
			w.wal = map[string]probe.LSN{"p": read}
		}
		return w
	}
	if s, ok := rewound(bent(0, false)); ok {
		t.Errorf("provider not read again: %+v", s.Findings)
	}
	if s, ok := rewound(bent(0x3000000, true)); ok || s.Rewound != nil {
		t.Errorf("read again at the origin's position (the subscriber had applied a commit made after the provider's probe): %+v", s.Findings)
	}
	w := bent(0x1000100, true)
	w.prov.Slots = nil
	if s, ok := rewound(w); ok {
		t.Errorf("without the slot (it may stream from elsewhere): %+v", s.Findings)
	}
	s, ok := rewound(bent(0x1000100, true))
	f, _ := s.Finding(CodeProviderRewound)
	if !ok || s.Health != Critical || f.Remedy != RemedyRewindOrigin || !f.Human || s.Rewound == nil ||
		*s.Rewound != (Rewind{OriginLSN: "0/3000000", ProviderLSN: "0/1000100", SlotConfirmedLSN: "0/FFFF00"}) {
		t.Fatalf("rewound: %+v %+v", s.Rewound, s.Findings)
	}
	for _, want := range []string{
		"s has applied changes of p up to 0/3000000 (its replication origin's remote_lsn), but p's WAL now ends at 0/1000100, 32.0 MiB earlier",
		"is skipped, silently, while the subscription says replicating",
		"pglmon repair --subscription sub --remedy rewind-origin",
		"where slot pgl_db_prov_sub confirmed, 0/FFFF00",
	} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("missing %q in\n%s", want, f.Message)
		}
	}
}

// A subscription that does not replicate is not said to leave its
// sequences behind: its being down is the cause, and the finding.
func TestSequenceBehindOnlyWhileReplicating(t *testing.T) {
	for _, st := range []string{probe.StatusDown, probe.StatusDisabled, probe.StatusInitializing} {
		w := healthy()
		w.s().Status = st
		w.seqs = map[string][]SequenceBehind{"s/sub": {{Sequence: "public.t_id_seq", Provider: ptr(int64(10)), Since: w.now.Add(-6 * time.Minute)}}}
		s := w.run().Subscriptions[0]
		if f, ok := s.Finding(CodeSequenceBehind); ok || len(s.SequencesBehind) != 0 {
			t.Errorf("%s: %+v %+v", st, f, s.SequencesBehind)
		}
	}
	w := healthy()
	w.seqs = map[string][]SequenceBehind{"s/sub": {{Sequence: "public.t_id_seq", Provider: ptr(int64(10)), Sent: ptr(int64(1010)), Since: w.now.Add(-6 * time.Minute)}}}
	f, ok := w.run().Subscriptions[0].Finding(CodeSequenceBehind)
	if want := "public.t_id_seq (10 on the provider, none on the subscriber, for 6m0s; pglogical last sent 1010 and sends again only once the provider's value passes 510)"; !ok || !strings.Contains(f.Message, want) {
		t.Errorf("message lacks %q: %+v", want, f)
	}
}
