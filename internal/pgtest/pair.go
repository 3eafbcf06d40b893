package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglmon/pglmon/internal/applyworker"
)

// Main runs a test package's tests and then destroys the clusters shared by
// them. Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for _, c := range shared.clusters {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := c.Destroy(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		cancel()
	}
	return code
}

var shared struct {
	mu       sync.Mutex
	clusters []*Cluster
	err      error
}

var dbCounter atomic.Int64

// Shared returns two clusters shared by the whole test package (started on
// first use, destroyed by Main). Tests isolate themselves by database.
func Shared(t testing.TB) (provider, subscriber *Cluster) {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	if shared.clusters == nil {
		for range 2 {
			c, err := StartCluster(context.Background(), Options{})
			if err != nil {
				shared.err = err
				t.Fatal(err)
			}
			shared.clusters = append(shared.clusters, c)
		}
	}
	return shared.clusters[0], shared.clusters[1]
}

// NewCluster starts a cluster owned by one test and destroyed when it ends.
func NewCluster(t testing.TB, opt Options) *Cluster {
	t.Helper()
	c, err := StartCluster(context.Background(), opt)
	return ownedBy(t, c, err)
}

// ownedBy makes a cluster the test's: destroyed when it ends.
func ownedBy(t testing.TB, c *Cluster, err error) *Cluster {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Destroy(ctx); err != nil {
			t.Error(err)
		}
	})
	return c
}

// DB is one database on one cluster.
type DB struct {
	Cluster *Cluster
	Name    string
}

// DSN is the password-free connection string of the database.
func (d DB) DSN() string { return d.Cluster.DSN(d.Name) }

// Exec runs SQL in the database.
func (d DB) Exec(ctx context.Context, sql string, args ...any) error {
	if err := d.Cluster.Exec(ctx, d.Name, sql, args...); err != nil {
		return fmt.Errorf("on %s: %s: %w", d.Name, firstLine(sql), err)
	}
	return nil
}

// QueryRow runs a query returning one row and scans it.
func (d DB) QueryRow(ctx context.Context, sql string, dest []any, args ...any) error {
	conn, err := d.Cluster.Connect(ctx, d.Name)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// Pair is a provider database and a subscriber database replicating with
// pglogical, set up as the AWS guide does.
type Pair struct {
	Provider, Subscriber         DB
	ProviderNode, SubscriberNode string
	Subscriptions                []string // subscription names, one per table
	Tables                       []string
}

// PairOptions shape a pair.
type PairOptions struct {
	// Subscriptions is how many subscriptions (each with its own replication
	// set and table) to create; 1 when zero.
	Subscriptions int
	// Rows inserted into each table before subscribing.
	Rows int
	// Clusters to use; the package's shared clusters when nil.
	Provider, Subscriber *Cluster
	// Own starts two clusters for this pair alone (the subscriber with
	// SubscriberConf): for tests that read a server's log or count its
	// transaction IDs, which other tests' databases would share.
	Own            bool
	SubscriberConf []string
	// SubscriberEnv is added to the environment of the subscriber Own
	// starts (Options.Env).
	SubscriberEnv []string
	// ProviderConf is extra configuration of the provider Own starts.
	ProviderConf []string
	// ApplyDelay is each subscription's apply_delay (0: none).
	ApplyDelay time.Duration
}

// NewPair creates fresh databases on the shared clusters (or the given ones),
// replicating, and waits until every subscription is replicating.
func NewPair(t testing.TB, opt PairOptions) *Pair {
	t.Helper()
	shared := false
	switch {
	case opt.Own:
		opt.Provider, opt.Subscriber = NewCluster(t, Options{ExtraConf: opt.ProviderConf}), NewCluster(t, Options{ExtraConf: opt.SubscriberConf, Env: opt.SubscriberEnv})
	case opt.Provider == nil:
		opt.Provider, opt.Subscriber = Shared(t)
		shared = true
	}
	reportCrashes(t, opt.Own, opt.Provider, opt.Subscriber)
	p, err := SetupPair(context.Background(), opt, fmt.Sprintf("t%d_%d", os.Getpid(), dbCounter.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	if shared {
		t.Cleanup(func() {
			if err := p.release(); err != nil {
				t.Logf("pair %s not released (its workers stay until the package ends): %v", p.Provider.Name, err)
			}
		})
	}
	return p
}

// ReleaseOnCleanup has the pair's subscriptions dropped when t ends (see
// release): for tests that build the pair's databases themselves.
func (p *Pair) ReleaseOnCleanup(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if err := p.release(); err != nil {
			t.Logf("pair %s not released (its workers stay until the package ends): %v", p.Provider.Name, err)
		}
	})
}

// release drops the pair's subscriptions (on either database, either way),
// and with them their slots, when its test ends: on the shared clusters
// every finished test's apply workers and walsenders would otherwise run
// until the package ends, each walsender decoding all the provider's WAL,
// later tests' too. The databases stay: on PostgreSQL 15 a DROP DATABASE
// waits until every process accepts its ProcSignalBarrier, which
// pglogical 2.4.2's supervisor and apply workers may never do (the finding
// signal_barrier_stuck).
func (p *Pair) release() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	logFrom := map[*Cluster]int64{}
	for _, c := range []*Cluster{p.Provider.Cluster, p.Subscriber.Cluster} {
		if fi, err := os.Stat(c.LogPath()); err == nil {
			logFrom[c] = fi.Size()
		}
	}
	var errs []error
	for _, d := range []DB{p.Subscriber, p.Provider} {
		errs = append(errs, dropSubscriptions(ctx, d))
	}
	// Slots a test made itself, or whose drop could not reach the provider.
	for _, d := range []DB{p.Provider, p.Subscriber} {
		if err := d.Cluster.Exec(ctx, "postgres", `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE database = $1 AND NOT active`, d.Name); err != nil {
			errs = append(errs, fmt.Errorf("drop the slots of %s on port %d: %w", d.Name, d.Cluster.Port, err))
		}
	}
	// A server process that crashed meanwhile (pglogical 2.4.2's
	// drop_subscription was seen ending its connection, "unexpected EOF",
	// twice in CI, not reproduced since) restarts the whole server: the
	// next test on a shared cluster must not find it recovering, and the
	// crash is said (on stdout: shown when the package fails).
	for c, from := range logFrom {
		if crashed := crashLines(c.LogPath(), from); crashed != "" {
			fmt.Printf("pgtest: the server on port %d crashed while pair %s was released:\n%s\n", c.Port, p.Provider.Name, crashed)
			errs = append(errs, fmt.Errorf("the server on port %d crashed", c.Port))
		}
		if err := Poll(ctx, 60*time.Second, func() bool { return c.Exec(ctx, "postgres", "SELECT 1") == nil }); err != nil {
			errs = append(errs, fmt.Errorf("the server on port %d does not accept connections after the release: %w", c.Port, err))
		}
	}
	return errors.Join(errs...)
}

// reportCrashes has a failed test say which server processes of the
// given clusters ended abnormally while it ran (pglogical 2.4.2's workers
// were seen to crash a server, whose restart ends every connection: an
// error such as "connection reset by peer" then has that cause); with own
// (clusters no other test uses), the end of their logs too.
func reportCrashes(t testing.TB, own bool, clusters ...*Cluster) {
	from := map[*Cluster]int64{}
	for _, c := range clusters {
		if fi, err := os.Stat(c.LogPath()); err == nil {
			from[c] = fi.Size()
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range clusters {
			if crashed := crashLines(c.LogPath(), from[c]); crashed != "" {
				t.Logf("the server on port %d restarted after a crash while this test ran:\n%s", c.Port, crashed)
			}
			if own {
				if b, err := os.ReadFile(c.LogPath()); err == nil {
					t.Logf("the end of the log of the server on port %d:\n%s", c.Port, tail(string(b[min(from[c], int64(len(b))):]), 4000))
				}
			}
		}
	})
}

// crashLines are the lines of a server log, from offset on, that tell a
// server process ended abnormally (and the server restarted).
func crashLines(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "terminated by signal") || strings.Contains(l, "PANIC:") || strings.Contains(l, "terminating any other active server processes") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// dropSubscriptions drops every pglogical subscription of database d (none
// when pglogical is not there).
func dropSubscriptions(ctx context.Context, d DB) error {
	conn, err := d.Cluster.Connect(ctx, d.Name)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var there bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('pglogical.subscription') IS NOT NULL").Scan(&there); err != nil || !there {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT sub_name::text FROM pglogical.subscription")
	if err != nil {
		return err
	}
	subs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var errs []error
	for _, sub := range subs {
		errs = append(errs, dropSubscription(ctx, conn, sub))
	}
	return errors.Join(errs...)
}

// DropSubscription drops the subscriber's subscription sub the careful way
// (see dropSubscription), with its slot on the provider.
func (p *Pair) DropSubscription(ctx context.Context, sub string) error {
	conn, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return dropSubscription(ctx, conn, sub)
}

// FailTableCopy creates table on both servers with the same 20 rows, and
// a 21st ('only on the provider') on the provider, then adds it to set_0
// with its copy: pglogical 2.4.2's COPY fails on the rows already there
// (duplicate key), and it marks the table ready all the same.
func (p *Pair) FailTableCopy(ctx context.Context, table string) error {
	ident := pgx.Identifier{table}.Sanitize()
	create := "CREATE TABLE IF NOT EXISTS " + ident + " (id int PRIMARY KEY, v text); INSERT INTO " + ident +
		" SELECT g, 'on both' FROM generate_series(1, 20) g ON CONFLICT DO NOTHING;"
	if err := p.Subscriber.Exec(ctx, create); err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, create+"INSERT INTO "+ident+" VALUES (21, 'only on the provider') ON CONFLICT DO NOTHING"); err != nil {
		return err
	}
	return p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', $1::regclass, true)", "public."+ident)
}

// DenyTableCopy has subscription sub connect to the provider as role
// (created on the provider with LOGIN REPLICATION, allowed to read
// pglogical's catalogs and the tables there now, given to sub as a new
// interface of the provider's node), waits until sub replicates again,
// then creates table on both servers with 5 rows on the provider, which
// role may not read, and adds it to set_0 with its copy: pglogical 2.4.2's
// sync worker fails at each try (permission denied for table), at once
// again, until role gets SELECT on it.
func (p *Pair) DenyTableCopy(ctx context.Context, sub, role, table string) error {
	if err := p.ConnectAs(ctx, sub, role, "user="+role); err != nil {
		return err
	}
	ident := pgx.Identifier{table}.Sanitize()
	create := "CREATE TABLE " + ident + " (id int PRIMARY KEY, v text)"
	if err := p.Subscriber.Exec(ctx, create); err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, create+"; INSERT INTO "+ident+" SELECT g, 'row ' || g FROM generate_series(1, 5) g"); err != nil {
		return err
	}
	return p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', $1::regclass, true)", "public."+ident)
}

// ConnectAs creates role on the provider (LOGIN REPLICATION, allowed to
// read pglogical's catalogs and the tables of schema public), gives
// subscription sub an interface of the provider's node whose connection
// string says user (the provider's DSN with "user=postgres" replaced by
// it: "" leaves libpq to take PGUSER of the subscriber's server, see
// PairOptions.SubscriberEnv), and waits until sub streams from its slot
// as role.
func (p *Pair) ConnectAs(ctx context.Context, sub, role, user string) error {
	r := pgx.Identifier{role}.Sanitize()
	for _, sql := range []string{
		"CREATE ROLE " + r + " LOGIN REPLICATION",
		"GRANT USAGE ON SCHEMA pglogical TO " + r,
		"GRANT SELECT ON ALL TABLES IN SCHEMA pglogical, public TO " + r,
	} {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			return err
		}
	}
	dsn := strings.Replace(p.Provider.DSN(), "user=postgres", user, 1)
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_node_add_interface($1, $2, $3)", p.ProviderNode, role+"_if", dsn); err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_interface($1, $2)", sub, role+"_if"); err != nil {
		return err
	}
	slot, err := p.SlotName(ctx, sub)
	if err != nil {
		return err
	}
	var got string
	if err := Poll(ctx, 60*time.Second, func() bool {
		got = ""
		_ = p.Provider.QueryRow(ctx, `SELECT r.usename::text FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
WHERE s.slot_name = $1`, []any{&got}, slot)
		return got == role
	}); err != nil {
		return fmt.Errorf("subscription %s does not stream as %s after 60s (the walsender's role: %q)", sub, role, got)
	}
	return p.WaitStatus(ctx, sub, "replicating", 60*time.Second)
}

// FailFirstCopy sets subscription sub up again by hand with its copy
// (synchronize_data), which pglogical 2.4.2 rolls back whole: table
// (created on both sides if missing, 21 rows on the provider; on the
// subscriber one of them, with other contents) is added to sub's first
// replication set, so it is copied after the set's other tables, which are
// emptied on the subscriber. Its COPY fails (duplicate key) and the copy's
// transaction rolls back; sub then replicates with every table ready and
// none of the provider's earlier rows. Each table of after (created and
// added the same way, empty on the subscriber) is copied after it: its COPY
// fails in the aborted transaction, and sub goes down (init_failed).
// It returns the tables emptied.
func (p *Pair) FailFirstCopy(ctx context.Context, sub, table string, after ...string) ([]string, error) {
	var sets []string
	if err := p.Subscriber.QueryRow(ctx, "SELECT sub_replication_sets FROM pglogical.subscription WHERE sub_name = $1", []any{&sets}, sub); err != nil {
		return nil, fmt.Errorf("subscription %s: %w", sub, err)
	}
	for _, t := range append([]string{table}, after...) {
		ident := pgx.Identifier{t}.Sanitize()
		create := "CREATE TABLE IF NOT EXISTS " + ident + " (id int PRIMARY KEY, v text);"
		if err := p.Provider.Exec(ctx, create+"INSERT INTO "+ident+" SELECT g, 'from the provider' FROM generate_series(1, 21) g ON CONFLICT DO NOTHING"); err != nil {
			return nil, err
		}
		if err := p.Provider.Exec(ctx, `SELECT pglogical.replication_set_add_table($1, $2::regclass, false)
			WHERE NOT EXISTS (SELECT 1 FROM pglogical.tables WHERE set_name = $1 AND nspname = 'public' AND relname = $3)`, sets[0], "public."+ident, t); err != nil {
			return nil, err
		}
		if err := p.Subscriber.Exec(ctx, create); err != nil {
			return nil, err
		}
	}
	if err := p.DropSubscription(ctx, sub); err != nil {
		return nil, err
	}
	var tables []string
	if err := p.Provider.QueryRow(ctx, `SELECT coalesce(array_agg(format('%I.%I', nspname, relname)), '{}') FROM pglogical.tables
		WHERE set_name = ANY($1) AND (nspname, relname) <> ('public', $2)`, []any{&tables}, sets, table); err != nil {
		return nil, err
	}
	ident := pgx.Identifier{table}.Sanitize()
	for _, t := range append(tables, ident) {
		if err := p.Subscriber.Exec(ctx, "TRUNCATE "+t); err != nil {
			return nil, err
		}
	}
	if err := p.Subscriber.Exec(ctx, "INSERT INTO "+ident+" VALUES (5, 'only on the subscriber')"); err != nil {
		return nil, err
	}
	return tables, p.Subscriber.Exec(ctx, `SELECT pglogical.create_subscription(subscription_name := $1, provider_dsn := $2,
		replication_sets := $3, synchronize_data := true, forward_origins := '{}')`, sub, p.Provider.DSN(), sets)
}

// dropSubscription disables sub first and waits until its apply worker is
// gone: pglogical 2.4.2 can freeze every pglogical call on the server when
// drop_subscription meets an apply worker moving a table's copy to
// catch-up (the worker holds pglogical's shared lock while updating a sync
// status row the drop has locked). Seen once here: a whole package's tests
// hung.
func dropSubscription(ctx context.Context, conn *pgx.Conn, sub string) error {
	if _, err := conn.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true)", sub); err != nil {
		return fmt.Errorf("disable subscription %s: %w", sub, err)
	}
	if err := Poll(ctx, 20*time.Second, func() bool {
		var pid int
		return errors.Is(conn.QueryRow(ctx, applyWorkerSQL, sub).Scan(&pid), pgx.ErrNoRows)
	}); err != nil {
		return fmt.Errorf("subscription %s: its apply worker still runs after it was disabled; not dropped", sub)
	}
	if _, err := conn.Exec(ctx, "SELECT pglogical.drop_subscription($1, true)", sub); err != nil {
		return fmt.Errorf("drop subscription %s: %w", sub, err)
	}
	return nil
}

// SetupPair creates database db on both clusters and replicates one table per
// subscription from the provider to the subscriber.
func SetupPair(ctx context.Context, opt PairOptions, db string) (*Pair, error) {
	n := max(opt.Subscriptions, 1)
	p := &Pair{
		Provider:       DB{opt.Provider, db},
		Subscriber:     DB{opt.Subscriber, db},
		ProviderNode:   "provider_" + db,
		SubscriberNode: "subscriber_" + db,
	}
	for _, d := range []DB{p.Provider, p.Subscriber} {
		if err := d.Cluster.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return nil, fmt.Errorf("create database %s on port %d: %w", db, d.Cluster.Port, err)
		}
		if err := d.Exec(ctx, "CREATE EXTENSION pglogical"); err != nil {
			return nil, err
		}
	}
	if err := p.Provider.Exec(ctx, "SELECT pglogical.create_node(node_name := $1, dsn := $2)", p.ProviderNode, p.Provider.DSN()); err != nil {
		return nil, err
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.create_node(node_name := $1, dsn := $2)", p.SubscriberNode, p.Subscriber.DSN()); err != nil {
		return nil, err
	}
	for i := range n {
		table := fmt.Sprintf("items_%d", i)
		set := fmt.Sprintf("set_%d", i)
		sub := fmt.Sprintf("sub_%d", i)
		ddl := fmt.Sprintf("CREATE TABLE %s (id bigint PRIMARY KEY, val text, n int)", table)
		for _, d := range []DB{p.Provider, p.Subscriber} {
			if err := d.Exec(ctx, ddl); err != nil {
				return nil, err
			}
		}
		if opt.Rows > 0 {
			if err := p.Provider.Exec(ctx, fmt.Sprintf("INSERT INTO %s SELECT g, md5(g::text), g %% 100 FROM generate_series(1, $1) g", table), opt.Rows); err != nil {
				return nil, err
			}
		}
		if err := p.Provider.Exec(ctx, "SELECT pglogical.create_replication_set($1)", set); err != nil {
			return nil, err
		}
		if err := p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table($1, $2::regclass, true, NULL, NULL)", set, table); err != nil {
			return nil, err
		}
		if err := p.Subscriber.Exec(ctx, `SELECT pglogical.create_subscription(subscription_name := $1, provider_dsn := $2,
			replication_sets := ARRAY[$3], synchronize_data := true, forward_origins := '{}', apply_delay := $4::interval)`,
			sub, p.Provider.DSN(), set, fmt.Sprintf("%d ms", opt.ApplyDelay.Milliseconds())); err != nil {
			return nil, err
		}
		p.Subscriptions = append(p.Subscriptions, sub)
		p.Tables = append(p.Tables, table)
	}
	for _, sub := range p.Subscriptions {
		err := p.WaitStatus(ctx, sub, "replicating", 30*time.Second)
		if st, _ := p.Status(ctx, sub); err != nil && st == "down" {
			// A crash in another test restarts a shared server (pglogical
			// 2.4.2's manager was seen to crash while a pair's
			// subscriptions were dropped), and pglogical then waits up to
			// 180 s before it starts the apply worker again: once, start
			// it now (said on stdout, shown when the package fails).
			fmt.Printf("pgtest: subscription %s of %s still down after 30 s; restarting it\n", sub, db)
			if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true), pglogical.alter_subscription_enable($1, true)", sub); err != nil {
				return nil, err
			}
		}
		if err != nil {
			err = p.WaitStatus(ctx, sub, "replicating", 60*time.Second)
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Sub is the first subscription's name.
func (p *Pair) Sub() string { return p.Subscriptions[0] }

// Status returns a subscription's status from show_subscription_status().
func (p *Pair) Status(ctx context.Context, sub string) (string, error) {
	var status string
	err := p.Subscriber.QueryRow(ctx, "SELECT status FROM pglogical.show_subscription_status($1)", []any{&status}, sub)
	return status, err
}

// WaitStatus polls until the subscription's status is want, or fails at the deadline.
func (p *Pair) WaitStatus(ctx context.Context, sub, want string, timeout time.Duration) error {
	var last string
	var lastErr error
	err := Poll(ctx, timeout, func() bool {
		last, lastErr = p.Status(ctx, sub)
		return lastErr == nil && last == want
	})
	if err != nil {
		return fmt.Errorf("subscription %s on %s: status %q (error %v), want %q after %s", sub, p.Subscriber.Name, last, lastErr, want, timeout)
	}
	return nil
}

// MustStream waits until every logical slot of the provider's database has
// confirmed the provider's current WAL position (pglogical.wait_slot_confirm_lsn
// per slot: given no slot, it waits for every slot of the server, and
// another test's stopped subscription on a shared cluster held it past 3
// minutes in a clean-clone CI run):
// after a change that restarts an apply worker (alter_subscription_add_replication_set),
// the subscription streams again. Under load that restart has taken over 90 s,
// and pglogical's manager can miss the old worker's end and start none until
// its next round, up to 180 s (seen in CI: two tests timed out at 3 minutes):
// it waits 5 s at a time, and between two waits wakes the manager for an
// enabled subscription of the subscriber with no apply worker, as setup
// apply does (applyworker.WakeStranded; that package's tests are outside it,
// so it imports nothing of pgtest's).
func (p *Pair) MustStream(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		try, stop := context.WithTimeout(ctx, 5*time.Second)
		err := p.Provider.Exec(try, "SELECT pglogical.wait_slot_confirm_lsn(slot_name, NULL) FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical'")
		stop()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the subscriptions did not stream within %s: %v", timeout, err)
		}
		if err := p.wakeStranded(ctx); err != nil && ctx.Err() == nil {
			t.Fatalf("wake pglogical's manager on %s: %v", p.Subscriber.Name, err)
		}
	}
}

// wakeStranded has pglogical's manager start the apply worker of each
// enabled subscription of the subscriber's database that has none.
func (p *Pair) wakeStranded(ctx context.Context) error {
	conn, err := p.Subscriber.Cluster.Connect(ctx, p.Subscriber.Name)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = applyworker.WakeStranded(ctx, conn)
	return err
}

// SlotName is the provider slot of a subscription, read from the catalog.
func (p *Pair) SlotName(ctx context.Context, sub string) (string, error) {
	var slot string
	err := p.Subscriber.QueryRow(ctx, "SELECT sub_slot_name FROM pglogical.subscription WHERE sub_name = $1", []any{&slot}, sub)
	return slot, err
}

// LoseOrigin drops the subscription's replication origin the way a major
// version upgrade loses it, and returns once the loss has held for 2 s.
// Under load pglogical has been seen getting the origin back within seconds
// (see the issue notes); the break is then made again, up to 5 times.
func (p *Pair) LoseOrigin(ctx context.Context, sub string) error {
	return p.breakUntilHeld(ctx, sub, p.loseOrigin, "SELECT NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)", true)
}

// breakUntilHeld runs brk until the subscription is down and cond (run with
// the slot name, on the subscriber or the provider) holds for 2 s.
func (p *Pair) breakUntilHeld(ctx context.Context, sub string, brk func(context.Context, string) error, cond string, onSubscriber bool) error {
	slot, err := p.SlotName(ctx, sub)
	if err != nil {
		return err
	}
	db := p.Provider
	if onSubscriber {
		db = p.Subscriber
	}
	for range 5 {
		if err := brk(ctx, sub); err != nil {
			return err
		}
		var since time.Time
		held := Poll(ctx, 10*time.Second, func() bool {
			var gone bool
			st, err := p.Status(ctx, sub)
			if err != nil || db.QueryRow(ctx, cond, []any{&gone}, slot) != nil || !gone {
				since = time.Time{}
				return !gone && err == nil && st == "replicating" // healed: break again
			}
			if st != "down" {
				return false
			}
			if since.IsZero() {
				since = time.Now()
			}
			return time.Since(since) >= 2*time.Second
		})
		var gone bool
		if held == nil && db.QueryRow(ctx, cond, []any{&gone}, slot) == nil && gone {
			return nil
		}
	}
	return fmt.Errorf("subscription %s: the break did not hold (pglogical undid it 5 times)", sub)
}

// LoseOriginNow drops the origin once and returns at once, for tests in
// which pglmon repairs it automatically (the break cannot hold there).
func (p *Pair) LoseOriginNow(ctx context.Context, sub string) error { return p.loseOrigin(ctx, sub) }

func (p *Pair) loseOrigin(ctx context.Context, sub string) error {
	slot, err := p.SlotName(ctx, sub)
	if err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true)", sub); err != nil {
		return err
	}
	// The apply worker may still hold the origin for a moment after disable.
	var dropErr error
	if err := Poll(ctx, 30*time.Second, func() bool {
		dropErr = p.Subscriber.Exec(ctx, "SELECT pg_replication_origin_drop($1)", slot)
		var pgErr *pgconn.PgError
		if errors.As(dropErr, &pgErr) && pgErr.Code == "42704" { // already gone
			dropErr = nil
		}
		return dropErr == nil
	}); err != nil {
		return fmt.Errorf("drop origin %s: %w", slot, dropErr)
	}
	return p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", sub)
}

// DropSlot drops the subscription's slot on the provider (changes are lost)
// and returns once the loss has held for 2 s (see LoseOrigin).
func (p *Pair) DropSlot(ctx context.Context, sub string) error {
	return p.breakUntilHeld(ctx, sub, p.dropSlot, "SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", false)
}

func (p *Pair) dropSlot(ctx context.Context, sub string) error {
	slot, err := p.SlotName(ctx, sub)
	if err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true)", sub); err != nil {
		return err
	}
	// The walsender may take a moment to release the slot.
	var dropErr error
	if err := Poll(ctx, 30*time.Second, func() bool {
		dropErr = p.Provider.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
		return dropErr == nil
	}); err != nil {
		return fmt.Errorf("drop slot %s: %w", slot, dropErr)
	}
	return p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_enable($1, true)", sub)
}

// KillWalsender terminates the walsender serving the subscription's slot.
func (p *Pair) KillWalsender(ctx context.Context, sub string) error {
	slot, err := p.SlotName(ctx, sub)
	if err != nil {
		return err
	}
	var killed bool
	if err := p.Provider.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(active_pid)), false)
		FROM pg_replication_slots WHERE slot_name = $1 AND active`, []any{&killed}, slot); err != nil {
		return err
	}
	if !killed {
		return fmt.Errorf("no active walsender for slot %s", slot)
	}
	return nil
}

// Disable disables the subscription.
func (p *Pair) Disable(ctx context.Context, sub string) error {
	return p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true)", sub)
}

// Poll calls cond until it returns true or timeout passes.
func Poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// ProviderOutage stops the provider cluster for d and starts it again. An
// outage over pglogical's 5 s restart delay makes its manager back off for
// 180 s after the provider returns.
func ProviderOutage(ctx context.Context, p *Pair, d time.Duration) error {
	if err := p.Provider.Cluster.Stop(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d): // the outage's length, not synchronisation
	}
	return p.Provider.Cluster.Start(ctx)
}

// NodesYAML is the nodes: section of a pglmon configuration naming the
// pair's databases "provider" and "subscriber".
func (p *Pair) NodesYAML() string {
	return fmt.Sprintf("nodes:\n  - name: provider\n    dsn: %q\n  - name: subscriber\n    dsn: %q\n", p.Provider.DSN(), p.Subscriber.DSN())
}

// NewStandby starts a physical standby of a running cluster (Standby) for
// one test; it is destroyed when the test ends.
func NewStandby(t testing.TB, primary *Cluster) *Cluster {
	t.Helper()
	c, err := Standby(context.Background(), primary, Options{})
	return ownedBy(t, c, err)
}

// NewClone clones a stopped cluster (Clone) for one test; the copy is
// destroyed when the test ends.
func NewClone(t testing.TB, src *Cluster) *Cluster {
	t.Helper()
	c, err := Clone(context.Background(), src, Options{})
	return ownedBy(t, c, err)
}

// workerSQL finds a pglogical worker of the subscriber's database by its
// backend type: fill in the kind ("manager " or "apply ") and what follows
// the database's oid (for an apply worker, ":" and the subscription's id).
const workerSQL = `SELECT a.pid FROM pg_stat_activity a WHERE a.datname = current_database() AND a.backend_type = 'pglogical %s' || (SELECT oid FROM pg_database WHERE datname = current_database())%s`

// applyWorkerSQL finds the apply worker of the subscription named $1.
var applyWorkerSQL = fmt.Sprintf(workerSQL, "apply ", " || ':' || (SELECT sub_id FROM pglogical.subscription WHERE sub_name = $1)")

// endManager ends the manager of the subscriber's database and returns its
// pid once it is gone.
func (p *Pair) endManager(ctx context.Context) (int, error) {
	s := p.Subscriber
	var old int
	if err := s.QueryRow(ctx, fmt.Sprintf(workerSQL, "manager ", ""), []any{&old}); err != nil {
		return 0, fmt.Errorf("find the manager of %s: %w", s.Name, err)
	}
	if err := s.Exec(ctx, "SELECT pg_terminate_backend($1)", old); err != nil {
		return 0, err
	}
	if err := Poll(ctx, 10*time.Second, func() bool {
		var gone bool
		return s.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", []any{&gone}, old) == nil && gone
	}); err != nil {
		return 0, fmt.Errorf("the manager of %s still runs after pg_terminate_backend", s.Name)
	}
	return old, nil
}

// OrphanApply leaves subscription sub's running apply worker without the
// manager that started it, under a new manager: the state in which a
// change that ends the worker (alter_subscription_add_replication_set)
// can leave the subscription with no worker, as the new manager is not
// told of the old worker's end. It ends the manager; when pglogical's
// supervisor starts no new one within 3 s, alter_subscription_synchronize
// (which leaves the apply worker running) has it start one. It returns
// the apply worker's pid, or an error when the worker did not outlive its
// manager.
func (p *Pair) OrphanApply(ctx context.Context, sub string) (int, error) {
	s := p.Subscriber
	var worker int
	if err := s.QueryRow(ctx, applyWorkerSQL, []any{&worker}, sub); err != nil {
		return 0, fmt.Errorf("find the apply worker of %s: %w", sub, err)
	}
	old, err := p.endManager(ctx)
	if err != nil {
		return 0, err
	}
	managerSQL := fmt.Sprintf(workerSQL, "manager ", "") + " AND a.pid <> $1"
	started := func() bool {
		var pid int
		return s.QueryRow(ctx, managerSQL, []any{&pid}, old) == nil
	}
	if Poll(ctx, 3*time.Second, started) != nil {
		if err := s.Exec(ctx, "SELECT pglogical.alter_subscription_synchronize($1, false)", sub); err != nil {
			return 0, err
		}
		if err := Poll(ctx, 10*time.Second, started); err != nil {
			return 0, fmt.Errorf("no new manager of %s: %w", s.Name, err)
		}
	}
	var now int
	if err := s.QueryRow(ctx, applyWorkerSQL, []any{&now}, sub); err != nil || now != worker {
		return 0, fmt.Errorf("the apply worker of %s did not outlive its manager: pid %d, then %d (%v)", sub, worker, now, err)
	}
	return worker, nil
}

// StrandApply brings about what pglogical's manager does when it misses
// the end of an apply worker: subscription sub enabled, no apply worker,
// and nothing to start one until the manager's next round (measured: none
// for over 20 s). It ends the database's manager (pglogical's supervisor
// starts a new one at once when it takes that end for a crash, else none
// until a subscription changes), then the apply worker: the postmaster
// tells of its end only the manager that started it, now gone. When a new
// manager started a worker again, it tries again (up to 5 times). It
// returns once no apply worker has run for 2 s, or an error.
func (p *Pair) StrandApply(ctx context.Context, sub string) error {
	s := p.Subscriber
	for try := 1; ; try++ {
		if _, err := p.endManager(ctx); err != nil {
			return err
		}
		var apply int
		if err := s.QueryRow(ctx, applyWorkerSQL, []any{&apply}, sub); err != nil {
			return fmt.Errorf("find the apply worker of %s: %w", sub, err)
		}
		if err := s.Exec(ctx, "SELECT pg_terminate_backend($1)", apply); err != nil {
			return err
		}
		// Stranded: no apply worker for 2 s; or one started again (by a
		// manager the supervisor started).
		var none time.Time
		var again bool
		err := Poll(ctx, 20*time.Second, func() bool {
			var pid int
			err := s.QueryRow(ctx, applyWorkerSQL, []any{&pid}, sub)
			switch {
			case errors.Is(err, pgx.ErrNoRows) && none.IsZero():
				none = time.Now()
			case err == nil && pid != apply:
				again = true
				return true
			case err == nil:
				none = time.Time{}
			}
			return !none.IsZero() && time.Since(none) >= 2*time.Second
		})
		switch {
		case err != nil:
			return fmt.Errorf("the apply worker of %s still runs after pg_terminate_backend: %w", sub, err)
		case !again:
			return nil
		case try == 5:
			return fmt.Errorf("pglogical started an apply worker for %s again after each of %d ends of its manager", sub, try)
		}
		// Wait for the manager that started it (or endManager finds none).
		if err := Poll(ctx, 10*time.Second, func() bool {
			var pid int
			return s.QueryRow(ctx, fmt.Sprintf(workerSQL, "manager ", ""), []any{&pid}) == nil
		}); err != nil {
			return fmt.Errorf("an apply worker of %s runs without a manager", sub)
		}
	}
}

// RewindProvider restores the pair's own provider (PairOptions.Own) to a
// copy of its files taken before it wrote rows ids first..last of items_0,
// which the subscriber applied: a restore from a backup or snapshot, or a
// failover to a standby short of that WAL. Then the subscriber's origin is
// past the provider's end of WAL (diagnose's provider_rewound). The
// subscription is restarted after each of the provider's restarts: pglogical
// can wait up to 180 s before it tries a provider that went away.
func (p *Pair) RewindProvider(ctx context.Context, first, last int) error {
	saved, err := p.Provider.Cluster.SaveFiles(ctx)
	if err != nil {
		return err
	}
	if err := p.RestartSubscription(ctx); err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, 'lost by the restore', g FROM generate_series($1::int, $2::int) g", first, last); err != nil {
		return err
	}
	if err := Poll(ctx, time.Minute, func() bool {
		var n int
		return p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM items_0 WHERE id BETWEEN $1 AND $2", []any{&n}, first, last) == nil && n == last-first+1
	}); err != nil {
		return fmt.Errorf("rows %d-%d did not arrive before the restore: %w", first, last, err)
	}
	if err := p.Provider.Cluster.PutBack(ctx, saved); err != nil {
		return err
	}
	return p.RestartSubscription(ctx)
}

// RestartSubscription disables and enables the pair's subscription.
func (p *Pair) RestartSubscription(ctx context.Context) error {
	return p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_disable($1, true), pglogical.alter_subscription_enable($1, true)", p.Sub())
}
