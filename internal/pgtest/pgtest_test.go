package pgtest

import (
	"context"
	"os"
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
