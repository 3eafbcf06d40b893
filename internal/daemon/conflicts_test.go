package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
)

// Conflicts pglogical resolves by itself are counted from the subscriber's
// log (what was logged before the daemon started is not), shown as a node
// finding, and each line counted once however many reads see it.
func TestDaemonCountsApplyConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sub := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 20, Provider: pgtest.NewCluster(t, pgtest.Options{}), Subscriber: sub})
	p.MustConverge(t, 30*time.Second)
	conflict := func(id int) {
		t.Helper()
		if err := p.Subscriber.Exec(ctx, fmt.Sprintf("DELETE FROM items_0 WHERE id = %d", id)); err != nil {
			t.Fatal(err)
		}
		if err := p.Provider.Exec(ctx, fmt.Sprintf("UPDATE items_0 SET val = 'changed' WHERE id = %d", id)); err != nil {
			t.Fatal(err)
		}
	}
	conflict(3) // before the daemon: the baseline
	// Wait until the subscriber logged it, so that it is in the first read.
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return strings.Count(readLog(t, sub), "CONFLICT: remote UPDATE") == 1 }); err != nil {
		t.Fatal("the first conflict was never logged")
	}
	body := strings.Replace(pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), "probe:", fmt.Sprintf("    server_log: %q\nprobe:", sub.LogPath()), 1)
	r := startEvery(t, body, nil, time.Second)
	metric := `pglmon_apply_conflicts_total\{op="UPDATE",resolution="skip",subscriber="subscriber",table="public.items_0"\} `
	// The baseline read (it holds the first conflict), then two more conflicts.
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		return strings.Contains(r.logs.String(), `"msg":"server log read for conflicts","node":"subscriber","in_tail":1,"new":0,"baseline":true`)
	}); err != nil {
		t.Fatalf("no baseline read:\n%s", r.logs.String())
	}
	conflict(4)
	conflict(5)
	r.waitMetric(t, metric+"2$", false, 30*time.Second)
	var f diagnose.Finding
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		rep := r.status(t)
		for _, n := range rep.Nodes {
			for _, x := range n.Findings {
				if n.Name == "subscriber" && x.Code == diagnose.CodeApplyConflicts {
					f = x
					return true
				}
			}
		}
		return false
	}); err != nil {
		t.Fatal("no apply_conflicts finding")
	}
	if f.Severity != diagnose.Warning || !strings.Contains(f.Message, "pglogical resolved 2 conflicts by itself on subscriber in the last hour") ||
		!strings.Contains(f.Message, "2x public.items_0: remote UPDATE (tuple not found), resolution skip") || strings.Contains(f.Message, "changed") {
		t.Errorf("finding: %+v", f)
	}
	// More reads of the same lines count nothing more.
	seen := r.status(t).Time
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return r.status(t).Time.Sub(seen) >= 3*time.Second }); err != nil {
		t.Fatal("the daemon stopped cycling")
	}
	r.waitMetric(t, metric+"2$", false, time.Second)
}

func readLog(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	b, err := os.ReadFile(c.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
