package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestExploreAWSGuide(t *testing.T) {
	ctx := context.Background()
	prov, sub := pgtest.Shared(t)
	name := fmt.Sprintf("aws_%d", os.Getpid())
	p := &pgtest.Pair{Provider: pgtest.DB{Cluster: prov, Name: name}, Subscriber: pgtest.DB{Cluster: sub, Name: name}}
	for _, d := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := d.Cluster.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
		if err := d.Exec(ctx, "CREATE EXTENSION pglogical; CREATE TABLE public.t1 (id int PRIMARY KEY, v text); CREATE TABLE public.t2 (id serial PRIMARY KEY, v text)"); err != nil {
			t.Fatal(err)
		}
	}
	must := func(d pgtest.DB, sql string) {
		t.Helper()
		if err := d.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	must(p.Provider, "INSERT INTO t1 SELECT g, 'x' FROM generate_series(1,100) g; INSERT INTO t2 (v) SELECT 'y' FROM generate_series(1,50)")
	must(p.Provider, fmt.Sprintf("SELECT pglogical.create_node(node_name := 'provider1', dsn := %s)", "'"+p.Provider.DSN()+"'"))
	must(p.Provider, "SELECT pglogical.replication_set_add_all_tables('default', ARRAY['public'])")
	must(p.Provider, "SELECT pglogical.replication_set_add_all_sequences('default', ARRAY['public'])")
	must(p.Subscriber, fmt.Sprintf("SELECT pglogical.create_node(node_name := 'subscriber1', dsn := %s)", "'"+p.Subscriber.DSN()+"'"))
	must(p.Subscriber, fmt.Sprintf("SELECT pglogical.create_subscription(subscription_name := 'subscription1', provider_dsn := %s, synchronize_data := true)", "'"+p.Provider.DSN()+"'"))
	t.Cleanup(func() { p.Subscriber.Exec(context.Background(), "SELECT pglogical.drop_subscription('subscription1')") })
	pgtest.Poll(ctx, 30*time.Second, func() bool { st, _ := p.Status(ctx, "subscription1"); return st == "replicating" })
	cfg := writeConfig(t, p, "")
	code, out, errOut := pglmon(t, "status", "--config", cfg)
	t.Logf("status %d\n%s%s", code, out, errOut)
	code, out, errOut = pglmon(t, "verify", "--config", cfg)
	t.Logf("verify %d\n%s%s", code, out, errOut)
	code, out, errOut = pglmon(t, "heartbeat", "install", "--config", cfg)
	t.Logf("heartbeat %d\n%s%s", code, out, errOut)
	time.Sleep(3 * time.Second) // exploration only
	code, out, errOut = pglmon(t, "status", "--config", cfg)
	t.Logf("status %d\n%s%s", code, out, errOut)
	code, out, errOut = pglmon(t, "verify", "--config", cfg)
	t.Logf("verify %d\n%s%s", code, out, errOut)
	code, out, errOut = pglmon(t, "check-config", "--connect", "--config", cfg)
	t.Logf("check-config %d\n%s%s", code, out, errOut)
	code, out, errOut = pglmon(t, "upgrade", "check", "--config", cfg, "--node", "provider")
	t.Logf("upgrade check %d\n%s%s", code, out, errOut)
}
