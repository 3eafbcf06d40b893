package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestPairReplicatesAndFailures(t *testing.T) {
	ctx := context.Background()
	p := NewPair(t, PairOptions{Rows: 100})
	var n int
	if err := Poll(ctx, 30*time.Second, func() bool {
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0", []any{&n}) == nil && n == 100
	}); err != nil {
		t.Fatalf("rows on subscriber: got %d, want 100", n)
	}
	if err := p.LoseOrigin(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "down", 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// A crash in a server's log, from where a release began, is found; what
// came before is not.
func TestCrashLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.log")
	before := "2026-12-06 10:00:00.000 UTC [1] LOG:  server process (PID 7) was terminated by signal 11: Segmentation fault\n"
	after := "2026-12-06 10:00:01.000 UTC [1] LOG:  server process (PID 9) was terminated by signal 11: Segmentation fault\n" +
		"2026-12-06 10:00:01.000 UTC [1] LOG:  terminating any other active server processes\n" +
		"2026-12-06 10:00:02.000 UTC [1] LOG:  database system is ready to accept connections\n"
	if err := os.WriteFile(path, []byte(before+after), 0o600); err != nil {
		t.Fatal(err)
	}
	got := crashLines(path, int64(len(before)))
	if strings.Count(got, "\n") != 1 || !strings.Contains(got, "(PID 9) was terminated by signal 11") || strings.Contains(got, "PID 7") {
		t.Errorf("%q", got)
	}
	if got := crashLines(path, int64(len(before+after))); got != "" {
		t.Errorf("nothing after: %q", got)
	}
}

// MustStream wakes pglogical's manager for a subscription left with no
// apply worker (StrandApply: none for up to 180 s otherwise; 35 s here
// without the wake), so a change it missed does not hold a test up for
// minutes; rows written meanwhile arrive, within 20 s.
func TestMustStreamWakesAStrandedSubscription(t *testing.T) {
	ctx := context.Background()
	p := NewPair(t, PairOptions{Rows: 1})
	if err := p.StrandApply(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 (id, val) VALUES (2, 'after')"); err != nil {
		t.Fatal(err)
	}
	p.MustStream(t, 20*time.Second)
	var n int
	if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = 2", []any{&n}); err != nil || n != 1 {
		t.Fatalf("the row written while stranded: %d, %v", n, err)
	}
}

// MustStream waits for its own pair's slots only: another pair on the same
// servers with its subscription disabled (its slot confirms nothing more)
// does not hold it up. pglogical.wait_slot_confirm_lsn given no slot waits
// for every slot of the server.
func TestMustStreamWaitsForItsOwnSlots(t *testing.T) {
	ctx := context.Background()
	stopped := NewPair(t, PairOptions{Rows: 1})
	if err := stopped.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable('"+stopped.Sub()+"', true)"); err != nil {
		t.Fatal(err)
	}
	p := NewPair(t, PairOptions{Rows: 1})
	if p.Provider.Cluster != stopped.Provider.Cluster {
		t.Fatal("the two pairs are not on the same provider server: this test shows nothing")
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 (id, val) VALUES (2, 'after')"); err != nil {
		t.Fatal(err)
	}
	p.MustStream(t, 20*time.Second)
	var n int
	if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id = 2", []any{&n}); err != nil || n != 1 {
		t.Fatalf("the row written before MustStream: %d, %v", n, err)
	}
}
