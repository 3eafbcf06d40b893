package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// TestAProviderRestoredFromASnapshot puts a provider's files back from a
// copy taken earlier (a restore from a backup or snapshot, a failover to a
// standby short of the last WAL) after its subscriber applied more: pglogical
// skips, silently, what the provider commits before its WAL reaches where the
// subscriber had applied; status says provider_rewound, rewind-origin stops
// the skipping, and verify names the rows either side lacks.
func TestAProviderRestoredFromASnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	cfg := writeConfig(t, p, "")
	if code, st := status(t, cfg); code != 0 {
		t.Fatalf("status before the restore: exit %d, %+v", code, st)
	}
	// Rows 101-200: applied by the subscriber, lost by the provider's restore.
	if err := p.RewindProvider(ctx, 101, 200); err != nil {
		t.Fatal(err)
	}
	arrived := func(where string, want int) func() bool {
		return func() bool {
			var n int
			return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE "+where, []any{&n}) == nil && n == want
		}
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (1001, 'after the restore', 1), (1002, 'after the restore', 2)"); err != nil {
		t.Fatal(err)
	}
	// Streamed and confirmed past the two rows: pglogical passed over them.
	var wal string
	if err := p.Provider.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text", []any{&wal}); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var ok bool
		return p.Provider.QueryRow(ctx, "SELECT active AND confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name LIKE 'pgl_%'", []any{&ok}, wal) == nil && ok
	}); err != nil {
		t.Fatal("the subscription did not stream from the restored provider: ", err)
	}
	if arrived("id > 1000", 0)() == false {
		t.Fatal("the rows written after the restore arrived: pglogical no longer skips them, and provider_rewound's premise is wrong")
	}
	code, st := status(t, cfg)
	if code != 2 || len(st.Subscriptions) != 1 {
		t.Fatalf("status after the restore: exit %d, %+v", code, st)
	}
	s := st.Subscriptions[0]
	if s.Status != "replicating" || len(s.Findings) != 1 || s.Findings[0].Code != "provider_rewound" || s.Findings[0].Severity != "critical" ||
		s.Findings[0].Remedy != "rewind-origin" || !strings.Contains(s.Findings[0].Message, "is skipped, silently") ||
		s.Rewound == nil || s.Rewound.OriginLSN == "" || s.Rewound.ProviderLSN == "" || s.Rewound.SlotConfirmedLSN == "" {
		t.Fatalf("status after the restore: %+v", s)
	}

	// The plan is a person's: shown, then run.
	code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--dry-run")
	if code != 0 || !strings.Contains(out, "Plan rewind-origin for "+p.Sub()) || !strings.Contains(out, "move the replication origin back to "+s.Rewound.SlotConfirmedLSN) {
		t.Fatalf("repair --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--yes"); code != 0 {
		t.Fatalf("repair: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (2001, 'after the repair', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, time.Minute, arrived("id = 2001", 1)); err != nil {
		t.Fatal("a row written after the repair did not arrive: ", err)
	}
	if code, st := status(t, cfg); code != 0 || st.Subscriptions[0].Rewound != nil {
		t.Fatalf("status after the repair: exit %d, %+v", code, st)
	}
	if code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub(), "--remedy", "rewind-origin", "--yes"); code != 1 || !strings.Contains(errOut, "nothing to rewind") {
		t.Fatalf("a second rewind-origin: exit %d\n%s\n%s", code, out, errOut)
	}
	// What the restore lost on either side: the 100 rows only the
	// subscriber holds, the two rows skipped.
	code, out, errOut = pglmon(t, "verify", "--config", cfg, "--subscription", p.Sub(), "--output", "json")
	var res struct {
		Results []struct {
			Tables []struct {
				Table         string
				DifferingRows int `json:"differing_rows"`
				Keys          []struct{ Key, Kind string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 2 || len(res.Results) != 1 || len(res.Results[0].Tables) != 1 {
		t.Fatalf("verify: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	kinds := map[string]int{}
	for _, k := range res.Results[0].Tables[0].Keys {
		kinds[k.Kind]++
		if k.Kind == "missing" && k.Key != "1001" && k.Key != "1002" {
			t.Errorf("verify names %s %s", k.Kind, k.Key)
		}
	}
	if tb := res.Results[0].Tables[0]; tb.DifferingRows != 102 || kinds["missing"] != 2 {
		t.Fatalf("verify: %d differing rows, %v\n%s", tb.DifferingRows, kinds, out)
	}
}

// A provider restored (or failed over to a standby) without the
// subscription's slot: slot_missing. Its plan (a) as printed, the slot
// created again and the subscriber's origin moved to where the slot starts,
// has rows written afterwards arrive; without that move pglogical skipped
// them (measured on the demo), which provider_rewound says.
func TestASlotLostWithTheProviderRestored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	cfg := writeConfig(t, p, "")
	if err := p.RewindProvider(ctx, 101, 150); err != nil {
		t.Fatal(err)
	}
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		t.Fatal(err)
	}
	disable := func() {
		t.Helper()
		if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true)", p.Sub()); err != nil {
			t.Fatal(err)
		}
		if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
			var gone bool
			return p.Subscriber.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type LIKE 'pglogical apply%')", []any{&gone}) == nil && gone
		}); err != nil {
			t.Fatal("the apply worker did not exit: ", err)
		}
	}
	enable := func() {
		t.Helper()
		if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", p.Sub()); err != nil {
			t.Fatal(err)
		}
	}
	disable()
	if err := p.Provider.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot); err != nil {
		t.Fatal(err)
	}
	enable()
	code, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if code != 1 || !strings.Contains(out, "The provider slot "+slot+" is gone") ||
		!strings.Contains(out, "SELECT pg_replication_origin_advance('"+slot+"', '<the LSN it printed>');") {
		t.Fatalf("repair: exit %d\n%s\n%s", code, out, errOut)
	}
	// Plan (a), as printed.
	var lsn string
	if err := p.Provider.QueryRow(ctx, "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pglogical_output')", []any{&lsn}, slot); err != nil {
		t.Fatal(err)
	}
	disable()
	if err := p.Subscriber.Exec(ctx, "SELECT pg_replication_origin_advance($1, $2)", slot, lsn); err != nil {
		t.Fatal(err)
	}
	enable()
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_resynchronize_table($1, 'public.items_0')", p.Sub()); err != nil {
		t.Fatal(err)
	}
	// Once the table's copy is over (a row written during it arrives through
	// the copy's own catch-up), the subscription's own stream.
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var st string
		return p.Subscriber.QueryRow(ctx, "SELECT sync_status FROM pglogical.local_sync_status WHERE sync_relname = 'items_0'", []any{&st}) == nil && st == "r"
	}); err != nil {
		t.Fatal("the resynchronisation did not finish: ", err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (2001, 'after the plan', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, time.Minute, func() bool {
		var n int
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = 2001", []any{&n}) == nil && n == 1
	}); err != nil {
		t.Fatal("a row written after plan (a) did not arrive: ", err)
	}
	if code, out, errOut := pglmon(t, "verify", "--config", cfg, "--subscription", p.Sub()); code != 0 {
		t.Fatalf("verify after the resynchronisation: exit %d\n%s\n%s", code, out, errOut)
	}
}
