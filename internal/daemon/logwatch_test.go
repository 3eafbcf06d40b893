package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/repair"
)

// A self-managed subscriber whose apply worker dies on a row the subscriber
// refuses: with the default policy (restart: auto) the daemon reads why from
// the server log (SQL), reports apply_error and restarts nothing, since the
// same change would fail again.
func TestDaemonDoesNotRestartARefusedChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sub := pgtest.NewCluster(t, pgtest.Options{ExtraConf: []string{"logging_collector = on", "log_directory = 'log'", "log_line_prefix = '%m [%p] '"}})
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10, Provider: pgtest.NewCluster(t, pgtest.Options{}), Subscriber: sub})
	p.MustConverge(t, 30*time.Second)
	// (Not a unique index: pglogical resolves those as conflicts and stays up.)
	if err := p.Subscriber.Exec(ctx, "ALTER TABLE items_0 ALTER COLUMN n SET NOT NULL"); err != nil {
		t.Fatal(err)
	}
	// A row the provider accepts and the subscriber's own NOT NULL refuses.
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (11, 'no n', NULL)"); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(t.TempDir(), "a.jsonl")
	r := start(t, pairConfig(p, audit, ""), nil) // default policy: restart auto
	var f diagnose.Finding
	err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		if ok && len(s.Findings) > 0 {
			f = s.Findings[0]
		}
		return f.Code == diagnose.CodeApplyError
	})
	if err != nil {
		t.Fatalf("no apply_error: %+v", f)
	}
	if !strings.Contains(f.Message, `null value in column "n" of relation "items_0" violates not-null constraint`) || f.Remedy != "" || !f.Human {
		t.Errorf("finding: %+v", f)
	}
	// Three more cycles, and still nothing was tried.
	seen := r.status(t).Time
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return r.status(t).Time.Sub(seen) >= 3*time.Second }); err != nil {
		t.Fatal("the daemon stopped cycling")
	}
	rep := r.status(t)
	if s, _ := rep.Subscription(p.Sub(), ""); s == nil || len(s.Findings) == 0 || s.Findings[0].Code != diagnose.CodeApplyError {
		t.Errorf("findings later: %+v", s.Findings)
	}
	if entries, _ := repair.Entries(audit); len(entries) != 0 {
		t.Errorf("the daemon tried to repair: %+v", entries)
	}
}
