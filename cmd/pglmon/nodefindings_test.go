package main

import (
	"context"
	"strings"
	"testing"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// A database an interrupted DROP DATABASE left invalid: status warns with
// the statement that finishes it, and upgrade check says the upgrade would
// be refused. (Marked invalid through the catalog, as PostgreSQL's own
// tests do: cancelling a real DROP DATABASE needs it to wait first, which
// only some pglogical versions make it do.)
func TestInvalidDatabaseReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	cfg := writeConfig(t, p, "")
	sc := p.Subscriber.Cluster
	if err := sc.Exec(ctx, "postgres", "CREATE DATABASE scratch"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Exec(ctx, "postgres", "UPDATE pg_database SET datconnlimit = -2 WHERE datname = 'scratch'"); err != nil {
		t.Fatal(err)
	}
	finding := func() (int, string) {
		code, s := status(t, cfg, "--no-wait")
		for _, n := range s.Nodes {
			for _, f := range n.Findings {
				if n.Name == "subscriber" && f.Code == "invalid_database" {
					return code, f.Severity + ": " + f.Message
				}
			}
		}
		return code, ""
	}
	code, f := finding()
	if code != 1 || !strings.HasPrefix(f, "warning: database scratch on subscriber is invalid") || !strings.Contains(f, `DROP DATABASE "scratch";`) {
		t.Fatalf("status: exit %d, %q", code, f)
	}
	code, out, _ := pglmon(t, "upgrade", "check", "--config", cfg, "--node", "subscriber")
	if code != 2 || !strings.Contains(out, "REFUSED  invalid_database: database scratch is invalid") {
		t.Errorf("upgrade check: exit %d\n%s", code, out)
	}
	if err := sc.Exec(ctx, "postgres", "UPDATE pg_database SET datconnlimit = -1 WHERE datname = 'scratch'"); err != nil {
		t.Fatal(err)
	}
	if code, f := finding(); code != 0 || f != "" {
		t.Errorf("valid again: exit %d, %q", code, f)
	}
}

// A logical slot that is not pglogical's, left inactive on the provider,
// holds WAL like an orphan: status says so on the node, with whose it is.
func TestStatusForeignSlotRetainingWAL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 10})
	cfg := writeConfig(t, p, "  retained_wal_bytes: 4MiB\n")
	if err := p.Provider.Exec(ctx, "SELECT pg_create_logical_replication_slot('etl', 'test_decoding')"); err != nil {
		t.Fatal(err)
	}
	if err := p.Provider.Exec(ctx, "CREATE TABLE filler AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 10000) g"); err != nil {
		t.Fatal(err)
	}
	_, s := status(t, cfg, "--no-wait")
	var got string
	for _, n := range s.Nodes {
		for _, f := range n.Findings {
			if n.Name == "provider" && f.Code == "wal_retained_high" {
				got = f.Severity + ": " + f.Message
			}
		}
	}
	if !strings.HasPrefix(got, "warning: slot etl on provider retains ") || !strings.Contains(got, "inactive logical slot (plugin test_decoding) that no configured subscription uses; if nothing needs it, drop it: SELECT pg_drop_replication_slot('etl')") {
		t.Fatalf("node finding: %q\n%+v", got, s.Nodes)
	}
}
