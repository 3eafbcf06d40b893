// Command pglmon-demo runs two local PostgreSQL 15 clusters with pglogical
// replicating a table, as the AWS guide sets them up, and breaks them on
// request, so pglmon can be seen at work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pglmon/pglmon/internal/pgtest"
)

const db = "labdb"

// Where the demo runs: its directory, its ports and the daemon's listen
// address; PGLMON_DEMO_DIR, PGLMON_DEMO_PORT (the provider's: the others
// follow it) and PGLMON_DEMO_LISTEN move them, to run a second demo beside
// the first or to test it.
var (
	dir            = envOr("PGLMON_DEMO_DIR", filepath.Join(os.TempDir(), "pglmon-demo"))
	providerPort   = basePort()
	subscriberPort = providerPort + 1
	copyPort       = providerPort + 2
	holePort       = providerPort + 7 // break hang: accepts connections and never answers
	listen         = envOr("PGLMON_DEMO_LISTEN", "127.0.0.1:9198")
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// basePort is the provider's port: PGLMON_DEMO_PORT, or 15432.
func basePort() int {
	v := envOr("PGLMON_DEMO_PORT", "15432")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535-7 {
		fmt.Fprintf(os.Stderr, "pglmon-demo: PGLMON_DEMO_PORT=%q is not a port number (1-65528: the demo uses it and the 7 above it)\n", v)
		os.Exit(2)
	}
	return n
}

const usage = `Usage: pglmon-demo COMMAND

  up                start both clusters and replicate (re-creates them: a demo
                    running is taken down first)
  down              stop the demo's daemon (make demo's pglmon run, if it
                    runs), both clusters, and remove their files
  config            print the path of the demo's pglmon config
  break origin      lose the replication origin (as a major-version upgrade does)
  break slot        drop the provider's slot (changes are lost: needs a person)
  break disable     disable the subscription
  break walsender   kill the walsender on the provider
  break provider    stop the provider for 10 s, then start it again
  break data        write on the subscriber directly: one row deleted, one
                    changed, one added (replication stays "replicating";
                    pglmon verify finds them)
  break refuse      a CHECK constraint only the subscriber has, and a row on the
                    provider that breaks it: the subscription stops on it
                    (apply_error; pglmon does not restart it)
  fix refuse        drop that constraint again
  break leftset     take items_0 out of the replication set on the provider (as a
                    runbook does before an ALTER, forgetting to put it back) and
                    insert 5 rows: pglogical still says "replicating" for it
                    (table_left_set at once; bin/pglmon repair prints
                    how to put it back and copy what it missed)
  break conflict    delete a row on the subscriber, then update it on the
                    provider: pglogical skips the update by itself (a conflict
                    in the log; apply_conflicts within 5 s: the demo's
                    probe.log_interval)
  break sync        create a table on both sides with the same 20 rows, one more
                    row on the provider, and add it to the replication set with
                    its copy: pglogical's COPY fails on the rows already there
                    and marks the table ready all the same (table_copy_failed
                    within seconds; the 21st row never arrives)
  break firstcopy   set sub_0 up again by hand with its copy, its tables emptied
                    on the subscriber but for a new demo_first, which holds one
                    of the provider's 21 rows: that COPY fails, pglogical rolls
                    the whole copy back (items_0 is left empty) and marks it all
                    ready (initial_copy_failed within seconds; its plan copies
                    every table again)
  break hang        for 3 minutes, move the subscription to a connection string
                    whose server accepts and never answers (as when a security
                    group drops packets): pglogical says "replicating" while its
                    worker waits, nothing streams (not_streaming); Ctrl-C ends it
  break lock        hold a row open in a transaction on the subscriber for
                    90 s while the provider changes it: the apply worker
                    waits, still "replicating" (apply_blocked after 10 s);
                    Ctrl-C lets go early
  break copy        start a copy of the subscriber's files on port 15434 (as a
                    restored snapshot or a promoted replica would): it runs the
                    same subscription and takes the provider's slot, the
                    subscriber stays down, and the 10 rows then inserted reach
                    the copy only (slot_in_use; pglmon does not restart it)
  fix copy          what slot_in_use says to do: disable the copy's
                    subscription (not drop it), then stop and remove the copy
  break password    the subscription connects as a role with a password, which
                    is then rotated on the provider; at its next connection the
                    apply worker cannot log in (provider_connection_failed)
  fix password      what its plan says: a new pglogical interface with the new
                    password, the subscription moved to it, the old one dropped
  break dropdb      create and drop a scratch database on the subscriber: with
                    pglogical before 2.4.6 the DROP often waits for ever for
                    pglogical's workers (signal_barrier_stuck after 10 s)
  break gencopy     add demo_gencopy, which has a generated column, to the set
                    with its copy: pglogical 2.4.2 lists the column in its COPY,
                    which PostgreSQL refuses, and retries for ever
                    (table_copy_refused at once; repair prints the way out)
  break gencol      add demo_gencol to the set, with a generated column on the
                    subscriber only: the first change to it would crash the
                    subscriber's server in a loop (do not write one);
                    schema_mismatch, critical, at once
  fix gencol        make that column a plain one on the subscriber
  break coltype     widen items_0.n to bigint on the provider only (a migration
                    run on one side): pglogical sends it in binary, which the
                    subscriber's integer cannot read; schema_mismatch, critical,
                    at once; the next insert stops the subscription
  fix coltype       what the plan says: bigint on the subscriber too
  break locktimeout lock_timeout = 2s for the subscriber's database, then as
                    break lock: the apply worker gives up on the row every 2 s
                    and is started again (apply_blocked, no restart)
  fix locktimeout   reset lock_timeout for the subscriber's database
  break key         demo_key with the key (id) on the provider, (id, n) on the
                    subscriber: an update of n and a delete are skipped while
                    sub_0 says replicating (schema_mismatch, critical)
  fix key           give the subscriber's demo_key the provider's key
  break rewind      put the provider back to a copy of its files taken before
                    50 rows the subscriber applied (a restore from a snapshot):
                    what the provider writes next is skipped silently
                    (provider_rewound at once; bin/pglmon repair runs
                    rewind-origin, after asking)
  break restore     put the subscriber back to a copy of its files taken before
                    it applied 50 rows the provider's slot confirmed (a restore
                    from a snapshot): they never arrive, and a probe alone
                    finds nothing wrong (subscriber_rewound, from the daemon;
                    needs make demo's daemon running)
  break advance     disable sub_0, then advance its slot past 50 new rows
                    (pg_replication_slot_advance, as runbooks free an idle
                    slot's WAL): enabled again, it never receives them
                    (slot_advanced, from the daemon; needs make demo's daemon)
  break origins     restart the subscriber with max_replication_slots at the
                    replication origin states its subscriptions hold, then add
                    demo_origins (3 rows) to the set with its copy: pglogical's
                    sync worker finds no state for the copy and retries for
                    ever, the table stays empty (origin_slots_exhausted at once)
  fix origins       max_replication_slots back to the demo's (a restart):
                    pglogical copies the table by itself
  break grant       have sub_0 connect to the provider as a role that may not
                    read demo_grant (5 rows), then add it to the set with its
                    copy: pglogical's sync worker fails at each try, for ever,
                    the table stays empty (table_sync_error, with the GRANT)
  fix grant         run that GRANT: pglogical copies the table; sub_0
                    connects as before
  break usage       have sub_0 connect as that role, take its USAGE on schema
                    pglogical away, write a row, give USAGE back: the
                    provider's walsender fails on that row at every start, for
                    ever (provider_connection_failed, from the provider's log)
  fix usage         have sub_0 connect as postgres again: the row arrives
  break ddl         queue DDL on the provider through
                    pglogical.replicate_ddl_command for a table only the
                    provider has, then write a row: the subscriber refuses the
                    statement at each start, for ever (apply_error, naming it)
  fix ddl           make that table on the subscriber and restart sub_0:
                    its apply worker runs the statement, and the row arrives
  insert N          insert N rows on the provider
  count             row counts on both sides

Environment: PGLMON_DEMO_DIR (default $TMPDIR/pglmon-demo), PGLMON_DEMO_PORT
(the provider's port, default 15432; the subscriber's is the next, and the
demo may use the 7 above it), PGLMON_DEMO_LISTEN (the daemon's, default
127.0.0.1:9198). Set them alike for every command of one demo.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pglmon-demo:", err)
		os.Exit(1)
	}
}

func clusters() (*pgtest.Cluster, *pgtest.Cluster, error) {
	p, err := pgtest.Existing(filepath.Join(dir, "provider"), providerPort)
	if err != nil {
		return nil, nil, err
	}
	s, err := pgtest.Existing(filepath.Join(dir, "subscriber"), subscriberPort)
	return p, s, err
}

func pair() (*pgtest.Pair, error) {
	p, s, err := clusters()
	if err != nil {
		return nil, err
	}
	return &pgtest.Pair{Provider: pgtest.DB{Cluster: p, Name: db}, Subscriber: pgtest.DB{Cluster: s, Name: db},
		Subscriptions: []string{"sub_0"}, Tables: []string{"items_0"}}, nil
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "up":
		return up(ctx)
	case "down":
		return down(ctx)
	case "config":
		fmt.Println(filepath.Join(dir, "pglmon.yaml"))
		return nil
	case "break":
		if len(args) != 2 {
			return errors.New("break what? origin, slot, disable, walsender, provider, data, refuse, conflict, sync, firstcopy, lock, hang, copy, password, dropdb, gencopy, gencol, coltype, locktimeout, key, rewind, restore, advance, origins, grant, usage or ddl")
		}
		return breakIt(ctx, args[1])
	case "fix":
		if len(args) == 2 {
			switch args[1] {
			case "copy":
				return fixCopy(ctx)
			case "password":
				return fixPassword(ctx)
			case "origins":
				return fixOrigins(ctx)
			case "grant":
				return fixGrant(ctx)
			case "usage":
				return fixUsage(ctx)
			case "ddl":
				return fixDDL(ctx)
			}
			if f, ok := subscriberFixes[args[1]]; ok {
				p, err := pair()
				if err != nil {
					return err
				}
				if err := p.Subscriber.Exec(ctx, f.sql(pgx.Identifier{p.Subscriber.Name}.Sanitize())); err != nil {
					return err
				}
				fmt.Println(strings.ReplaceAll(f.done, "CONFIG", filepath.Join(dir, "pglmon.yaml")))
				return nil
			}
		}
		return errors.New("fix what? refuse, copy, password, gencol, coltype, locktimeout, key, origins, grant, usage or ddl")
	case "insert":
		n := 100
		if len(args) > 1 {
			fmt.Sscan(args[1], &n)
		}
		p, err := pair()
		if err != nil {
			return err
		}
		return p.Provider.Exec(ctx, `INSERT INTO items_0
			SELECT m + g, md5(g::text), g % 100 FROM (SELECT coalesce(max(id), 0) AS m FROM items_0) x, generate_series(1, $1) g`, n)
	case "count":
		p, err := pair()
		if err != nil {
			return err
		}
		for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
			var n int64
			if err := d.QueryRow(ctx, "SELECT count(*) FROM items_0", []any{&n}); err != nil {
				return err
			}
			fmt.Printf("port %d: %d rows\n", d.Cluster.Port, n)
		}
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func up(ctx context.Context) error {
	_ = down(ctx)
	if err := pgtest.CheckInstalled(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	prov, err := pgtest.StartCluster(ctx, pgtest.Options{Dir: filepath.Join(dir, "provider"), Port: providerPort})
	if err != nil {
		return err
	}
	sub, err := pgtest.StartCluster(ctx, pgtest.Options{Dir: filepath.Join(dir, "subscriber"), Port: subscriberPort})
	if err != nil {
		return err
	}
	p, err := pgtest.SetupPair(ctx, pgtest.PairOptions{Provider: prov, Subscriber: sub, Rows: 5000}, db)
	if err != nil {
		return err
	}
	// The clusters log to a file outside their data directories (pg_ctl -l),
	// as Debian's do: name them, so pglmon reads why a subscription is down
	// (and what a DROP DATABASE waits for, on either node).
	provDSN := fmt.Sprintf("    dsn: %q\n", p.Provider.DSN())
	nodes := strings.Replace(p.NodesYAML(), provDSN, provDSN+fmt.Sprintf("    server_log: %q\n", prov.LogPath()), 1) +
		fmt.Sprintf("    server_log: %q\n", sub.LogPath())
	cfg := "# pglmon demo: two local clusters, pglogical replicating items_0.\n" + nodes + fmt.Sprintf(`probe:
  interval: 1s
  timeout: 1s
  log_interval: 5s
thresholds:
  down_grace: 10s
  apply_blocked: 10s
  signal_barrier_wait: 10s
  replication_delay: 20s
  replication_delay_critical: 2m
http:
  listen: %q
repair:
  audit_log: %s
`, listen, filepath.Join(dir, "audit.jsonl"))
	if err := os.WriteFile(filepath.Join(dir, "pglmon.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	fmt.Printf("provider   127.0.0.1:%d  psql -h 127.0.0.1 -p %d -U postgres %s\n", providerPort, providerPort, db)
	fmt.Printf("subscriber 127.0.0.1:%d  psql -h 127.0.0.1 -p %d -U postgres %s\n", subscriberPort, subscriberPort, db)
	fmt.Printf("subscription %s replicating table items_0 (5000 rows)\nconfig: %s\n", p.Sub(), filepath.Join(dir, "pglmon.yaml"))
	return nil
}

func down(ctx context.Context) error {
	stopDaemons(filepath.Join(dir, "pglmon.yaml"))
	p, s, err := clusters()
	if err != nil {
		return err
	}
	cp, err := pgtest.Existing(filepath.Join(dir, "copy"), copyPort)
	if err != nil {
		return err
	}
	for _, c := range []*pgtest.Cluster{p, s, cp} {
		_ = c.Stop(ctx)
	}
	return os.RemoveAll(dir)
}

// stopDaemons stops the pglmon daemons running with the configuration at
// cfg (make demo's, in another terminal), as Ctrl-C does (SIGTERM; SIGKILL
// after 10 s): one left running watches clusters that are gone, and holds
// the listen address the next make demo's daemon needs.
func stopDaemons(cfg string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if !daemonOf(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), cwd, cfg) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGTERM) != nil {
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		fmt.Printf("stopped the demo's daemon (pglmon run, pid %d)\n", pid)
	}
}

// daemonOf reports whether args (a process's command line, run in
// directory cwd) are pglmon run with the configuration at cfg.
func daemonOf(args []string, cwd, cfg string) bool {
	if len(args) < 2 || filepath.Base(args[0]) != "pglmon" || args[1] != "run" {
		return false
	}
	for i, a := range args[2:] {
		var path string
		switch {
		case a == "--config" || a == "-config":
			if i+3 < len(args) {
				path = args[i+3]
			}
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			path = a[strings.Index(a, "=")+1:]
		}
		if path == "" {
			continue
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(cwd, path)
		}
		if filepath.Clean(path) == filepath.Clean(cfg) {
			return true
		}
	}
	return false
}

// alive reports whether process pid still runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// subscriberFix puts a break right with one statement on the subscriber
// (sql, given the subscriber's database quoted), then says what follows
// (done; CONFIG stands for the demo's configuration file).
type subscriberFix struct {
	sql  func(db string) string
	done string
}

var subscriberFixes = map[string]subscriberFix{
	"refuse": {func(string) string { return "ALTER TABLE items_0 DROP CONSTRAINT IF EXISTS demo_small_n" },
		"the constraint is dropped. pglogical starts the apply worker again by itself, after up to 180 s\n(its backoff after repeated failures); now, as the repair plan says:\n  bin/pglmon repair --config CONFIG --subscription sub_0 --remedy restart"},
	"gencol": {func(string) string { return "ALTER TABLE demo_gencol ALTER COLUMN g DROP EXPRESSION" },
		"demo_gencol.g is a plain column on the subscriber now (rows arriving get NULL in it); schema_mismatch goes at the daemon's next cycle"},
	"locktimeout": {func(db string) string { return "ALTER DATABASE " + db + " RESET lock_timeout" },
		"lock_timeout reset for the subscriber's database (pglogical's next apply worker waits for a lock again, and apply_blocked names who holds it)"},
	"key": {func(string) string {
		return "ALTER TABLE public.demo_key DROP CONSTRAINT demo_key_pkey, ADD PRIMARY KEY (id)"
	},
		"demo_key has the provider's key on the subscriber; the rows skipped before stay as they were: copy them with\n  bin/pglmon verify --config CONFIG --table public.demo_key --copy-script /tmp/rows.psql"},
	"coltype": {func(string) string { return "ALTER TABLE public.items_0 ALTER COLUMN n TYPE bigint USING n::bigint" },
		"items_0.n is bigint on the subscriber too. A subscription the type stopped waits for pglogical's backoff (up to 180 s); now, as the plan says:\n  bin/pglmon repair --config CONFIG --subscription sub_0 --remedy restart"},
}

func breakIt(ctx context.Context, what string) error {
	p, err := pair()
	if err != nil {
		return err
	}
	sub := p.Sub()
	switch what {
	case "origin":
		return p.LoseOriginNow(ctx, sub) // the demo's daemon may repair it at once
	case "slot":
		return p.DropSlot(ctx, sub)
	case "disable":
		return p.Disable(ctx, sub)
	case "walsender":
		return p.KillWalsender(ctx, sub)
	case "provider":
		if err := p.Provider.Cluster.Stop(ctx); err != nil {
			return err
		}
		fmt.Println("provider stopped; starting it again in 10 s")
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		return p.Provider.Cluster.Start(context.WithoutCancel(ctx))
	case "data":
		// What happens when someone writes on the subscriber: pglogical
		// never sees it, and no status shows it.
		for _, sql := range []string{
			"DELETE FROM items_0 WHERE id = (SELECT min(id) + 17 FROM items_0)",
			"UPDATE items_0 SET val = 'edited on the subscriber' WHERE id = (SELECT min(id) + 42 FROM items_0)",
			"INSERT INTO items_0 SELECT max(id) + 1000000, 'only on the subscriber', 0 FROM items_0",
		} {
			if err := p.Subscriber.Exec(ctx, sql); err != nil {
				return err
			}
		}
		fmt.Println("subscriber rows changed directly; run: bin/pglmon verify --config " + filepath.Join(dir, "pglmon.yaml"))
		return nil
	case "refuse":
		if err := p.Subscriber.Exec(ctx, "ALTER TABLE items_0 ADD CONSTRAINT demo_small_n CHECK (n < 100) NOT VALID"); err != nil {
			return err
		}
		if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT max(id) + 1, 'refused by the subscriber', 500 FROM items_0"); err != nil {
			return err
		}
		fmt.Println("the subscriber refuses the provider's new row; see: bin/pglmon repair --config " + filepath.Join(dir, "pglmon.yaml") + " --subscription sub_0")
		return nil
	case "leftset":
		if err := p.Provider.Exec(ctx, "SELECT pglogical.replication_set_remove_table('set_0', 'public.items_0')"); err != nil {
			return err
		}
		if err := p.Provider.Exec(ctx, "INSERT INTO items_0 SELECT max(id) + g, 'while out of the set', 0 FROM items_0, generate_series(1, 5) g GROUP BY g"); err != nil {
			return err
		}
		fmt.Println("items_0 is in no replication set of sub_0 now, and 5 new rows never reach the subscriber; watch for table_left_set, then run: bin/pglmon repair --config " + filepath.Join(dir, "pglmon.yaml") + " --subscription sub_0")
		return nil
	case "conflict":
		if err := p.Subscriber.Exec(ctx, "DELETE FROM items_0 WHERE id = (SELECT min(id) + 7 FROM items_0)"); err != nil {
			return err
		}
		if err := p.Provider.Exec(ctx, "UPDATE items_0 SET val = 'updated on the provider' WHERE id = (SELECT min(id) + 7 FROM items_0)"); err != nil {
			return err
		}
		fmt.Println("pglogical will skip that update (the row is gone on the subscriber); watch for apply_conflicts, then run: bin/pglmon verify --config " + filepath.Join(dir, "pglmon.yaml"))
		return nil
	case "sync":
		if err := p.FailTableCopy(ctx, "demo_sync"); err != nil {
			return err
		}
		fmt.Println("pglogical copies demo_sync onto the subscriber's rows, fails, and marks it ready; watch for table_copy_failed")
		return nil
	case "firstcopy":
		return failFirstCopy(ctx, p)
	case "lock":
		return holdLock(ctx, p)
	case "locktimeout":
		// lock_timeout for the database reaches pglogical's apply worker:
		// it gives up on the held row, and is started again to give up again.
		for _, sql := range []string{
			"ALTER DATABASE " + p.Subscriber.Name + " SET lock_timeout = '2s'",
			"SELECT pglogical.alter_subscription_disable('sub_0', true)", // a new worker, which reads it
			"SELECT pglogical.alter_subscription_enable('sub_0', true)",
		} {
			if err := p.Subscriber.Exec(ctx, sql); err != nil {
				return err
			}
		}
		fmt.Println("lock_timeout = 2s for the subscriber's database (bin/pglmon-demo fix locktimeout resets it)")
		return holdLock(ctx, p)
	case "hang":
		return hangConnection(ctx, p)
	case "copy":
		return startCopy(ctx, p)
	case "password":
		return rotatePassword(ctx, p)
	case "dropdb":
		return dropDatabase(ctx, p)
	case "gencopy":
		// pglogical 2.4.2 lists a generated column in its COPY, which
		// PostgreSQL refuses: the copy fails for ever.
		const gen = "CREATE TABLE demo_gencopy (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"
		for _, st := range []struct {
			db  pgtest.DB
			sql string
		}{
			{p.Provider, gen},
			{p.Subscriber, gen},
			{p.Provider, "INSERT INTO demo_gencopy (id, v) SELECT g, g FROM generate_series(1, 20) g"},
			{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'demo_gencopy', true)"},
		} {
			if err := st.db.Exec(ctx, st.sql); err != nil {
				return err
			}
		}
		fmt.Println("demo_gencopy (a generated column) added to set_0 with its copy, which pglogical can never make; watch for table_copy_refused, then run: bin/pglmon repair --config " + filepath.Join(dir, "pglmon.yaml") + " --subscription sub_0")
		return nil
	case "gencol":
		// A generated column only the subscriber has: the next change to
		// the table would crash pglogical's apply worker, and the server.
		if err := p.Provider.Exec(ctx, "CREATE TABLE demo_gencol (id int PRIMARY KEY, v int)"); err != nil {
			return err
		}
		if err := p.Subscriber.Exec(ctx, "CREATE TABLE demo_gencol (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED)"); err != nil {
			return err
		}
		if err := p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', 'demo_gencol', false)"); err != nil {
			return err
		}
		fmt.Println("demo_gencol on the subscriber has a generated column the provider does not send: the first row written to it on the provider would crash the subscriber's server, again at every start (do not write one); pglmon reports it now: schema_mismatch, critical; bin/pglmon repair --config " + filepath.Join(dir, "pglmon.yaml") + " --subscription sub_0 prints the fix; bin/pglmon-demo fix gencol applies it")
		return nil
	case "key":
		// The subscriber finds demo_key's rows by (id, n), the provider's
		// key is (id): its deletes and updates of n are skipped, silently.
		for _, st := range []struct {
			db  pgtest.DB
			sql string
		}{
			{p.Provider, "CREATE TABLE demo_key (id int PRIMARY KEY, n int, val text)"},
			{p.Subscriber, "CREATE TABLE demo_key (id int, n int, val text, PRIMARY KEY (id, n))"},
			{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'demo_key', false)"},
			{p.Provider, "INSERT INTO demo_key VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c')"},
			{p.Provider, "UPDATE demo_key SET n = 21 WHERE id = 2"},
			{p.Provider, "DELETE FROM demo_key WHERE id = 3"},
		} {
			if err := st.db.Exec(ctx, st.sql); err != nil {
				return err
			}
		}
		fmt.Println("demo_key: the provider's key is (id), the subscriber's (id, n); an update of n and a delete were skipped, while sub_0 says replicating; pglmon reports it at once (schema_mismatch, critical), bin/pglmon verify --config " + filepath.Join(dir, "pglmon.yaml") + " names the 2 rows, bin/pglmon-demo fix key gives the provider's key")
		return nil
	case "rewind":
		// A restore of the provider from a snapshot taken before its last
		// writes, into the address the subscription connects to.
		var last int
		if err := p.Provider.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM items_0", []any{&last}); err != nil {
			return err
		}
		fmt.Println("copying the provider's files (it stops for a moment), writing 50 rows the subscriber applies, then putting the copy back")
		if err := p.RewindProvider(ctx, last+1, last+50); err != nil {
			return err
		}
		fmt.Printf("the provider is back as it was before rows %d-%d, which the subscriber holds: its replication origin is past the provider's end of WAL; "+
			"pglmon reports provider_rewound (critical) at its next probe, and rows written now are skipped silently (bin/pglmon-demo insert 3, then bin/pglmon-demo count); "+
			"bin/pglmon repair --config %s --subscription sub_0 moves the origin back (rewind-origin), and bin/pglmon verify names the rows either side lacks\n",
			last+1, last+50, filepath.Join(dir, "pglmon.yaml"))
		return nil
	case "restore":
		return restoreSubscriber(ctx, p)
	case "origins":
		return exhaustOrigins(ctx, p)
	case "grant":
		return denyGrant(ctx, p)
	case "usage":
		return revokeUsage(ctx, p)
	case "ddl":
		return refuseDDL(ctx, p)
	case "advance":
		return advanceSlot(ctx, p)
	case "coltype":
		// A migration run on the provider alone (pglogical replicates no DDL).
		if err := p.Provider.Exec(ctx, "ALTER TABLE items_0 ALTER COLUMN n TYPE bigint"); err != nil {
			return err
		}
		fmt.Println("items_0.n is bigint on the provider, integer on the subscriber: pglogical sends it in binary, which an integer cannot read; pglmon reports it at once (schema_mismatch, critical); bin/pglmon-demo insert 1 then stops the subscription, and bin/pglmon repair --config " + filepath.Join(dir, "pglmon.yaml") + " --subscription sub_0 prints the fix (bin/pglmon-demo fix coltype applies it)")
		return nil
	}
	return fmt.Errorf("unknown breakage %q (origin, slot, disable, walsender, provider, data, refuse, conflict, sync, firstcopy, lock, hang, copy, password, dropdb, gencopy, gencol, coltype, locktimeout, key, rewind, restore, advance, origins, grant, usage, ddl)", strings.TrimSpace(what))
}

// failFirstCopy sets the subscription up again as someone might by hand,
// every table of its sets emptied on the subscriber but a new demo_first
// (pgtest.Pair.FailFirstCopy): the whole copy rolls back unnoticed.
func failFirstCopy(ctx context.Context, p *pgtest.Pair) error {
	tables, err := p.FailFirstCopy(ctx, p.Sub(), "demo_first")
	if err == nil {
		err = p.WaitStatus(ctx, p.Sub(), "replicating", time.Minute)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s set up again with its copy onto emptied %s and a demo_first holding one row: the copy failed and rolled back, "+
		"yet pglogical says replicating; watch for initial_copy_failed, then: bin/pglmon repair --config %s --subscription %s\n",
		p.Sub(), strings.Join(tables, ", "), filepath.Join(dir, "pglmon.yaml"), p.Sub())
	return nil
}

// startCopy does what restoring a snapshot of the subscriber on another
// server does: the copy starts with the same pglogical subscription and
// streams from the provider's slot, and whichever connects first keeps it.
// The subscriber is stopped while the copy starts, so the copy wins.
func startCopy(ctx context.Context, p *pgtest.Pair) error {
	copyDir := filepath.Join(dir, "copy")
	if _, err := os.Stat(copyDir); err == nil {
		return errors.New("a copy is running already (bin/pglmon-demo fix copy removes it)")
	}
	slot, err := p.SlotName(ctx, p.Sub())
	if err != nil {
		return err
	}
	if err := p.Subscriber.Cluster.Stop(ctx); err != nil {
		return err
	}
	// Whatever happens next, the subscriber runs again.
	defer p.Subscriber.Cluster.Start(context.WithoutCancel(ctx))
	if _, err := pgtest.Clone(ctx, p.Subscriber.Cluster, pgtest.Options{Dir: copyDir, Port: copyPort}); err != nil {
		return err
	}
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		var active bool
		_ = p.Provider.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", []any{&active}, slot)
		return active
	}); err != nil {
		return errors.New("the copy's subscription did not take the slot within 60 s")
	}
	if err := p.Subscriber.Cluster.Start(ctx); err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, `INSERT INTO items_0
		SELECT m + g, 'reached the copy only', 0 FROM (SELECT coalesce(max(id), 0) AS m FROM items_0) x, generate_series(1, 10) g`); err != nil {
		return err
	}
	fmt.Printf("a copy of the subscriber runs on port %d and holds slot %s; the subscriber is down, and 10 new rows reached the copy only.\nsee: bin/pglmon status --config %s   (slot_in_use once down_grace has passed)\nthen: bin/pglmon-demo fix copy\n",
		copyPort, slot, filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// fixCopy disables the copy's subscription, as slot_in_use says (dropping
// it would drop the provider's slot), then stops and removes the copy.
func fixCopy(ctx context.Context) error {
	copyDir := filepath.Join(dir, "copy")
	cp, err := pgtest.Existing(copyDir, copyPort)
	if err != nil {
		return err
	}
	if _, err := os.Stat(copyDir); err != nil {
		return errors.New("no copy is running (bin/pglmon-demo break copy starts one)")
	}
	if err := cp.Exec(ctx, db, "SELECT pglogical.alter_subscription_disable('sub_0', true)"); err != nil {
		return err
	}
	if err := cp.Stop(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(copyDir); err != nil {
		return err
	}
	fmt.Printf("the copy's subscription is disabled and the copy removed; the subscriber takes its slot back within ~20 s.\nthe rows the copy consumed never reach it: bin/pglmon verify --config %s\n", filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// dropDatabase does what a job that creates and drops a scratch database
// does on a subscriber running pglogical before 2.4.6 on PostgreSQL 15: the
// DROP DATABASE waits until every process accepts its ProcSignalBarrier,
// which pglogical's apply worker and supervisor do only when something
// wakes them, often never (signal_barrier_stuck). The DROP is never
// cancelled from here (a cancelled DROP DATABASE leaves the database
// invalid): Ctrl-C leaves it waiting on the server.
func dropDatabase(ctx context.Context, p *pgtest.Pair) error {
	c := p.Subscriber.Cluster
	name := fmt.Sprintf("demo_scratch_%d", time.Now().Unix())
	if err := c.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- c.Exec(context.WithoutCancel(ctx), "postgres", "DROP DATABASE "+name) }()
	select {
	case err := <-done:
		if err == nil {
			fmt.Printf("DROP DATABASE %s finished at once: pglogical's workers happened to accept its barrier (they do when something wakes them); try again in a minute\n", name)
		}
		return err
	case <-time.After(2 * time.Second):
	}
	fmt.Printf("DROP DATABASE %s waits on the subscriber for pglogical's workers (signal_barrier_stuck after 10 s):\n  bin/pglmon status --config %s\nend what the finding names, in its order, and this returns (Ctrl-C leaves the DROP waiting on the server)\n", name, filepath.Join(dir, "pglmon.yaml"))
	select {
	case err := <-done:
		if err == nil {
			fmt.Printf("DROP DATABASE %s finished\n", name)
		}
		return err
	case <-ctx.Done():
		return nil
	}
}

// holdLock does what a forgotten "BEGIN; UPDATE ..." in someone's psql does
// on a subscriber: the apply worker waits for the row, and nothing of the
// subscription is applied until the transaction ends (here after 90 s, or
// at Ctrl-C).
func holdLock(ctx context.Context, p *pgtest.Pair) error {
	conn, err := pgx.Connect(ctx, p.Subscriber.DSN()+" application_name=pglmon-demo")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return err
	}
	const row = "(SELECT min(id) + 3 FROM items_0)"
	if _, err := conn.Exec(ctx, "BEGIN; UPDATE items_0 SET val = 'held on the subscriber' WHERE id = "+row); err != nil {
		return err
	}
	if err := p.Provider.Exec(ctx, "UPDATE items_0 SET val = 'updated on the provider' WHERE id = "+row); err != nil {
		return err
	}
	fmt.Printf("subscriber session pid %d holds a row the provider changed; the apply worker waits for it (apply_blocked after 10 s).\nreleasing in 90 s (Ctrl-C: now); meanwhile: bin/pglmon status --config %s\n", pid, filepath.Join(dir, "pglmon.yaml"))
	select {
	case <-ctx.Done():
	case <-time.After(90 * time.Second): // the demo's lock lasts this long on purpose
	}
	_, err = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	fmt.Println("released: the subscription applies again")
	return err
}

// hangConnection does what a security group that starts dropping packets
// does to a subscription: its apply worker's connection never completes.
// A local port accepts the connection and never answers; sub_0 moves to an
// interface pointing there for 3 minutes (or until Ctrl-C), then back.
func hangConnection(ctx context.Context, p *pgtest.Pair) error {
	hole, err := pgtest.NewBlackHole(fmt.Sprintf("127.0.0.1:%d", holePort))
	if err != nil {
		return err
	}
	defer hole.Close()
	node, err := providerNode(ctx, p)
	if err != nil {
		return err
	}
	original, err := p.SubscriptionInterface(ctx, "sub_0")
	if err != nil {
		return err
	}
	if original == "demo_hang" {
		return errors.New("sub_0 already uses interface demo_hang: is another break hang running?")
	}
	_ = p.Subscriber.Exec(ctx, "SELECT pglogical.alter_node_drop_interface($1, 'demo_hang')", node) // left by a killed run
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=postgres", holePort, p.Provider.Name)
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_node_add_interface($1, 'demo_hang', $2)", node, dsn); err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_interface('sub_0', 'demo_hang')"); err != nil {
		return err
	}
	fmt.Printf("sub_0 now connects to 127.0.0.1:%d, which accepts and never answers: pglogical says \"replicating\" while its worker waits (~30 s), then \"down\", and again; nothing streams.\n"+
		"see: bin/pglmon status --config %s   (not_streaming after ~15 s)\nplan: bin/pglmon repair --config %[2]s --subscription sub_0\nback to interface %s in 3 minutes (Ctrl-C: now)\n", holePort, filepath.Join(dir, "pglmon.yaml"), original)
	select {
	case <-ctx.Done():
	case <-time.After(3 * time.Minute): // the demo's outage lasts this long on purpose
	}
	bg := context.WithoutCancel(ctx)
	if err := p.Subscriber.Exec(bg, "SELECT pglogical.alter_subscription_interface('sub_0', $1)", original); err != nil {
		return err
	}
	if err := p.Subscriber.Exec(bg, "SELECT pglogical.alter_node_drop_interface($1, 'demo_hang')", node); err != nil {
		return err
	}
	fmt.Printf("sub_0 connects through %s again: it streams within seconds, nothing lost\n", original)
	return nil
}

// The demo's replication role, and the passwords it has before and after
// the rotation (demo secrets, nothing else uses them).
const (
	replRole    = "demo_repl"
	oldPassword = "demo-old-password"
	newPassword = "demo-new-password"
)

// rotatePassword moves the subscription to a connection string with a
// password, then changes that password on the provider, as a rotation job
// does, and makes the subscription reconnect.
func rotatePassword(ctx context.Context, p *pgtest.Pair) error {
	prov := p.Provider.Cluster
	if err := p.Provider.Exec(ctx, fmt.Sprintf(`DO $$BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN CREATE ROLE %[1]s LOGIN SUPERUSER REPLICATION; END IF;
		END$$; ALTER ROLE %[1]s PASSWORD '%[2]s'`, replRole, oldPassword)); err != nil {
		return err
	}
	hba := filepath.Join(prov.Dir, "pg_hba.conf")
	b, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), replRole) {
		b = append([]byte(fmt.Sprintf("host all %[1]s 127.0.0.1/32 scram-sha-256\nhost replication %[1]s 127.0.0.1/32 scram-sha-256\n", replRole)), b...)
		if err := os.WriteFile(hba, b, 0o600); err != nil {
			return err
		}
	}
	if err := p.Provider.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	iface := fmt.Sprintf("demo_pw_%d", time.Now().Unix())
	if err := useInterface(ctx, p, iface, oldPassword); err != nil {
		return err
	}
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		var user string
		_ = p.Provider.QueryRow(ctx, "SELECT coalesce(max(usename), '') FROM pg_stat_replication WHERE application_name = 'sub_0'", []any{&user})
		return user == replRole
	}); err != nil {
		return errors.New("the subscription did not connect as " + replRole + " within 60 s")
	}
	if err := p.Provider.Exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", replRole, newPassword)); err != nil {
		return err
	}
	// The rotation shows at the next connection: here, a restart of the subscription.
	for _, sql := range []string{"SELECT pglogical.alter_subscription_disable('sub_0', true)", "SELECT pglogical.alter_subscription_enable('sub_0', true)"} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			return err
		}
	}
	fmt.Printf("sub_0 now connects as %s through interface %s; its password was changed on the provider and the subscription reconnected: it cannot log in.\nsee: bin/pglmon status --config %s   (provider_connection_failed once down_grace has passed)\nplan: bin/pglmon repair --config %[3]s --subscription sub_0\nthen: bin/pglmon-demo fix password\n",
		replRole, iface, filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// fixPassword does what provider_connection_failed's plan says: a new
// interface with the current password, the subscription moved to it, the
// old interfaces (and the old password with them) dropped.
func fixPassword(ctx context.Context) error {
	p, err := pair()
	if err != nil {
		return err
	}
	iface := fmt.Sprintf("demo_pw_%d", time.Now().Unix())
	if err := useInterface(ctx, p, iface, newPassword); err != nil {
		return err
	}
	node, err := providerNode(ctx, p)
	if err != nil {
		return err
	}
	if err := p.Subscriber.Exec(ctx, `SELECT pglogical.alter_node_drop_interface($1, i.if_name) FROM pglogical.node_interface i
		JOIN pglogical.node n ON n.node_id = i.if_nodeid
		WHERE n.node_name = $1 AND i.if_name LIKE 'demo\_pw\_%' AND i.if_name <> $2`, node, iface); err != nil {
		return err
	}
	fmt.Printf("sub_0 connects through %s with the new password; the old interface is dropped. It replicates within seconds: bin/pglmon status --config %s\n", iface, filepath.Join(dir, "pglmon.yaml"))
	return nil
}

// useInterface adds a pglogical interface for the provider node with the
// demo role's password and moves sub_0 to it.
func useInterface(ctx context.Context, p *pgtest.Pair, iface, password string) error {
	node, err := providerNode(ctx, p)
	if err != nil {
		return err
	}
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s", p.Provider.Cluster.Port, p.Provider.Name, replRole, password)
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_node_add_interface($1, $2, $3)", node, iface, dsn); err != nil {
		return err
	}
	return p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_interface('sub_0', $1)", iface)
}

func providerNode(ctx context.Context, p *pgtest.Pair) (string, error) {
	var node string
	err := p.Subscriber.QueryRow(ctx, `SELECT n.node_name::text FROM pglogical.subscription s
		JOIN pglogical.node n ON n.node_id = s.sub_origin WHERE s.sub_name = 'sub_0'`, []any{&node})
	return node, err
}
