package applyworker_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/applyworker"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// A manager that missed the end of the apply worker starts none for
// longer than the wait here (measured: over 20 s): Wait wakes it, and the
// worker starts. On clusters of its own: another database's change on
// shared ones wakes pglogical too.
func TestWaitWakesAManagerThatMissedTheEnd(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true})
	conn, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := p.StrandApply(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	since, err := applyworker.Now(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if up, enabled, err := applyworker.Started(ctx, conn, p.Sub(), time.Time{}); err != nil || up || !enabled {
		t.Fatalf("stranded: a worker %v, enabled %v (%v)", up, enabled, err)
	}
	woken, err := applyworker.Wait(ctx, conn, p.Sub(), since, 15*time.Second)
	if err != nil || woken == 0 {
		t.Fatalf("Wait: woke the manager %d times, %v", woken, err)
	}
	if up, _, err := applyworker.Started(ctx, conn, p.Sub(), since); err != nil || !up {
		t.Fatalf("after Wait: a worker started since %v (%v)", up, err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "replicating", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// A worker that runs on, started before the time given: ended and
	// started again.
	if since, err = applyworker.Now(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if woken, err := applyworker.Wait(ctx, conn, p.Sub(), since, 30*time.Second); err != nil || woken == 0 {
		t.Fatalf("Wait on a running worker: woke %d times, %v", woken, err)
	}
	if up, _, err := applyworker.Started(ctx, conn, p.Sub(), since); err != nil || !up {
		t.Fatalf("after Wait on a running worker: a worker started since %v (%v)", up, err)
	}

	// WakeStranded: none while the worker runs; stranded again, it wakes
	// the subscription, and a worker starts.
	if n, err := applyworker.WakeStranded(ctx, conn); err != nil || n != 0 {
		t.Fatalf("WakeStranded with the worker running: %d (%v)", n, err)
	}
	if err := p.StrandApply(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	if since, err = applyworker.Now(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if n, err := applyworker.WakeStranded(ctx, conn); err != nil || n != 1 {
		t.Fatalf("WakeStranded with the subscription stranded: %d (%v)", n, err)
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		up, _, err := applyworker.Started(ctx, conn, p.Sub(), since)
		return err == nil && up
	}); err != nil {
		t.Fatal("no apply worker started after WakeStranded")
	}

	// Disabled: not waited for, nor enabled.
	if _, err := conn.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true)", p.Sub()); err != nil {
		t.Fatal(err)
	}
	if since, err = applyworker.Now(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if woken, err := applyworker.Wait(ctx, conn, p.Sub(), since, 30*time.Second); err != nil || woken != 0 {
		t.Fatalf("Wait on a disabled subscription: woke %d times, %v", woken, err)
	}
	var enabled bool
	if err := conn.QueryRow(ctx, "SELECT sub_enabled FROM pglogical.subscription WHERE sub_name = $1", p.Sub()).Scan(&enabled); err != nil || enabled {
		t.Fatalf("a disabled subscription was enabled: %v (%v)", enabled, err)
	}

	// No such subscription: as disabled (Started says not enabled).
	if woken, err := applyworker.Wait(ctx, conn, "nosuch", since, time.Second); err != nil || woken != 0 {
		t.Fatalf("Wait on no subscription: woke %d times, %v", woken, err)
	}
}

// Wait gives up at its deadline with ErrNotStarted: here waiting for a
// worker started at a time still to come.
func TestWaitTimesOut(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	conn, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	since := time.Now().Add(time.Hour)
	_, err = applyworker.Wait(ctx, conn, p.Sub(), since, 3*time.Second)
	if !errors.Is(err, applyworker.ErrNotStarted) {
		t.Fatalf("Wait: %v, want ErrNotStarted", err)
	}
}

// A role without pg_read_all_stats sees pglogical's workers (a
// superuser's processes) with no type: Started and Wait say they cannot
// tell, and nothing is woken (a wake would end the worker that runs
// unseen). Granted pg_read_all_stats, the role sees it.
func TestARoleThatCannotSeeTheWorkers(t *testing.T) {
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	role := "blind_" + p.Subscriber.Name
	if err := p.Subscriber.Exec(ctx, "CREATE ROLE "+role+" LOGIN; GRANT USAGE ON SCHEMA pglogical TO "+role+"; GRANT SELECT ON ALL TABLES IN SCHEMA pglogical TO "+role); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, p.Subscriber.DSN()+" user="+role)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var types int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pglogical apply%'").Scan(&types); err != nil || types != 0 {
		t.Fatalf("the role sees %d apply workers (%v): the test needs one that sees none", types, err)
	}
	if _, _, err := applyworker.Started(ctx, conn, p.Sub(), time.Time{}); !errors.Is(err, applyworker.ErrCannotSee) {
		t.Fatalf("Started: %v, want ErrCannotSee", err)
	}
	before, err := applyworker.Now(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if woken, err := applyworker.Wait(ctx, conn, p.Sub(), before, 10*time.Second); !errors.Is(err, applyworker.ErrCannotSee) || woken != 0 {
		t.Fatalf("Wait: woke %d times, %v; want ErrCannotSee and no wake", woken, err)
	}
	if n, err := applyworker.WakeStranded(ctx, conn); err != nil || n != 0 {
		t.Fatalf("WakeStranded by a role that cannot see the workers: woke %d (%v), want none", n, err)
	}
	if err := p.Subscriber.Exec(ctx, "GRANT pg_read_all_stats TO "+role); err != nil {
		t.Fatal(err)
	}
	up, enabled, err := applyworker.Started(ctx, conn, p.Sub(), time.Time{})
	if err != nil || !up || !enabled {
		t.Fatalf("with pg_read_all_stats: worker %v, enabled %v (%v)", up, enabled, err)
	}
	// Its worker was never ended: started before the blind Wait.
	if up, _, err := applyworker.Started(ctx, conn, p.Sub(), before); err != nil || up {
		t.Fatalf("a worker started since the blind Wait: %v (%v)", up, err)
	}
}
