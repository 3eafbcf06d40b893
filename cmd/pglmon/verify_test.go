package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 3000, Subscriptions: 2})
	for _, tbl := range p.Tables {
		if _, err := p.WaitConverged(ctx, tbl, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, p, "")
	code, out, errOut := pglmon(t, "verify", "--config", cfg)
	if code != 0 || !strings.Contains(out, "public.items_0") || !strings.Contains(out, "equal") {
		t.Fatalf("equal: exit %d\n%s\n%s", code, out, errOut)
	}
	if err := p.Subscriber.Exec(ctx, "DELETE FROM items_1 WHERE id = 2024"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = pglmon(t, "verify", "--config", cfg, "--subscription", "sub_1", "--output", "json")
	var res struct {
		Results []struct {
			Subscription string
			Equal        bool
			Tables       []struct {
				Table         string
				DifferingRows int64 `json:"differing_rows"`
				Keys          []struct{ Key, Kind string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if code != 2 || len(res.Results) != 1 || res.Results[0].Equal || res.Results[0].Tables[0].Keys[0].Key != "2024" || res.Results[0].Tables[0].Keys[0].Kind != "missing" {
		t.Fatalf("one missing row: exit %d, %+v", code, res)
	}
	code, out, _ = pglmon(t, "verify", "--config", cfg, "--subscription", "sub_1", "--mode", "count")
	if code != 2 || !strings.Contains(out, "3000 / 2999") || !strings.Contains(out, "alter_subscription_resynchronize_table") {
		t.Fatalf("count: exit %d\n%s", code, out)
	}
	if code, _, _ := pglmon(t, "verify", "--config", cfg, "--mode", "sha"); code != 64 {
		t.Errorf("bad mode: exit %d, want 64", code)
	}
	if code, _, _ := pglmon(t, "verify", "--config", cfg, "--subscription", "nope"); code != 3 {
		t.Errorf("unknown subscription: exit %d, want 3", code)
	}
}
