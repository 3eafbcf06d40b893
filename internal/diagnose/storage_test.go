package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsstorage"
)

const gib = 1 << 30

func storageReport() *Report {
	return &Report{Health: OK,
		Nodes: []Node{{Name: "provider", Up: true, Slots: []probe.Slot{
			{Name: "pgl_db_provider_sub", Plugin: "pglogical_output", RetainedBytes: 60 * gib},
			{Name: "pgl_db_provider_other", Plugin: "pglogical_output", Active: true, RetainedBytes: 10 << 20},
			{Name: "pgl_db_provider_sub_1a2b3c4d", Plugin: "pglogical_output", RetainedBytes: 5 << 20},
		}, Findings: []Finding{{Code: CodeOrphanSlot, Severity: Warning, Slot: "pgl_db_provider_sub_1a2b3c4d"}}}, {Name: "subscriber", Up: true}},
		Subscriptions: []Subscription{{Name: "sub", Subscriber: "subscriber", Provider: "provider", SlotName: "pgl_db_provider_sub", Status: "down", Enabled: true}},
	}
}

func TestStorageLow(t *testing.T) {
	th := config.Default().Thresholds // 10%, 12h
	at := time.Date(2026, 11, 25, 3, 4, 0, 0, time.UTC)
	for _, c := range []struct {
		name         string
		st           rdsstorage.Reading
		sev          Severity // "" for no finding
		says, absent []string
	}{
		{"plenty and steady", rdsstorage.Reading{FreeBytes: 50 * gib, AllocatedBytes: 100 * gib}, "", nil, nil},
		{"plenty, falling slowly", rdsstorage.Reading{FreeBytes: 50 * gib, AllocatedBytes: 100 * gib, FallingBytesPerHour: 2 * gib}, "", nil, nil},
		{"under 10%", rdsstorage.Reading{FreeBytes: 8 * gib, AllocatedBytes: 100 * gib}, Warning,
			[]string{"8.0 GiB free of 100.0 GiB (8.0%", "under thresholds.storage_free_percent 10%", "pgl_db_provider_sub (inactive, 60.0 GiB; subscription sub on subscriber, down)", "Replication slots hold back 60.0 GiB of WAL (65% of the 92.0 GiB in use)", "pgl_db_provider_other (active, 10.0 MiB)",
				"pgl_db_provider_sub_1a2b3c4d (inactive, 5.0 MiB; an orphan: pglmon repair --remedy drop-orphan-slot --node provider --slot pgl_db_provider_sub_1a2b3c4d)", "storage-full"}, []string{"runs out"}},
		{"under 5%", rdsstorage.Reading{FreeBytes: 4 * gib, AllocatedBytes: 100 * gib}, Critical, []string{"4.0%"}, nil},
		{"runs out within 12h", rdsstorage.Reading{FreeBytes: 50 * gib, AllocatedBytes: 100 * gib, FallingBytesPerHour: 5 * gib}, Warning,
			[]string{"at the last hour's rate (5.0 GiB/h) it runs out in about 10h0m0s", "drop_subscription"}, []string{"storage_free_percent"}},
		{"runs out within 3h", rdsstorage.Reading{FreeBytes: 20 * gib, AllocatedBytes: 100 * gib, FallingBytesPerHour: 20 * gib}, Critical,
			[]string{"runs out in about 1h0m0s"}, nil},
		{"autoscaling has room: no percent rule; the forecast counts the room", rdsstorage.Reading{FreeBytes: 8 * gib, AllocatedBytes: 100 * gib, MaxAllocatedBytes: 200 * gib, FallingBytesPerHour: 1 * gib}, "", nil, nil},
		{"autoscaling has room but not enough", rdsstorage.Reading{FreeBytes: 8 * gib, AllocatedBytes: 100 * gib, MaxAllocatedBytes: 120 * gib, FallingBytesPerHour: 10 * gib}, Critical,
			[]string{"storage autoscaling may add up to 20.0 GiB more", "runs out in about 2h48m0s, counting what autoscaling may add"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := storageReport()
			c.st.Instance, c.st.At = "prov-db", at
			r.AddStorage("provider", c.st, th)
			n := r.Nodes[0]
			if n.Storage == nil || n.Storage.Instance != "prov-db" {
				t.Fatalf("reading not recorded: %+v", n.Storage)
			}
			var f *Finding
			for i := range n.Findings {
				if n.Findings[i].Code == CodeStorageLow {
					f = &n.Findings[i]
				}
			}
			if c.sev == "" {
				if f != nil {
					t.Fatalf("unexpected finding: %s", f.Message)
				}
				if r.Health != OK {
					t.Errorf("health %s", r.Health)
				}
				return
			}
			if f == nil {
				t.Fatal("no storage_low finding")
			}
			if f.Severity != c.sev || r.Health != c.sev || !f.Human {
				t.Errorf("severity %s, health %s, human %v; want %s", f.Severity, r.Health, f.Human, c.sev)
			}
			for _, s := range append(c.says, "RDS instance prov-db", "03:04 UTC", "modify-db-instance --db-instance-identifier prov-db") {
				if !strings.Contains(f.Message, s) {
					t.Errorf("message lacks %q:\n%s", s, f.Message)
				}
			}
			for _, s := range c.absent {
				if strings.Contains(f.Message, s) {
					t.Errorf("message has %q:\n%s", s, f.Message)
				}
			}
			if len(r.Nodes[1].Findings) != 0 {
				t.Errorf("the subscriber got findings: %v", r.Nodes[1].Findings)
			}
		})
	}
	// Both rules off.
	r := storageReport()
	r.AddStorage("provider", rdsstorage.Reading{Instance: "prov-db", FreeBytes: 1, AllocatedBytes: 100 * gib, FallingBytesPerHour: gib}, config.Thresholds{})
	if len(r.Nodes[0].Findings) != 1 { // the orphan_slot it had
		t.Errorf("thresholds off: %v", r.Nodes[0].Findings)
	}
}
