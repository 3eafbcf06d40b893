package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// A subscription whose provider connection's role may not read a table
// added to its set: pglogical 2.4.2's sync worker fails at each try, for
// ever, while the subscription says replicating and the table stays empty.
// status reads the failures in the subscriber's log and says so at once
// (table_sync_error, critical, exit 2) with the GRANT to run; repair prints
// the plan; the GRANT, run as printed, gets the table copied, and status
// says nothing any more.
func TestATableItsRoleMayNotRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Own: true, Rows: 3})
	if err := p.DenyTableCopy(ctx, p.Sub(), "repl", "Denied"); err != nil {
		t.Fatal(err)
	}
	cfg := configReplacing(t, writeConfig(t, p, ""), "probe:", fmt.Sprintf("    server_log: %q\nprobe:", p.Subscriber.Cluster.LogPath()))
	var msg, last string
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		code, st := status(t, cfg, "--no-wait")
		last = ""
		for _, s := range st.Subscriptions {
			for _, f := range s.Findings {
				last += f.Code + " "
				if f.Code == "table_sync_error" && code == 2 && f.Severity == "critical" && f.Remedy == "" && len(s.Findings) == 1 {
					msg = f.Message
				}
			}
		}
		return msg != ""
	}); err != nil {
		_, o, e := pglmon(t, "status", "--config", cfg, "--no-wait")
		t.Fatalf("no table_sync_error (findings: %s)\n%s\n%s", last, o, e)
	}
	for _, want := range []string{`table public."Denied" of ` + p.Sub() + ` is not copied`, "(the provider: permission denied for table Denied)",
		`run on provider GRANT SELECT ON public."Denied" TO repl;`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	var rows int
	if err := p.Subscriber.QueryRow(ctx, `SELECT count(*) FROM "Denied"`, []any{&rows}); err != nil || rows != 0 {
		t.Errorf("the subscriber's table holds %d rows (%v) before the grant", rows, err)
	}
	_, out, errOut := pglmon(t, "repair", "--config", cfg, "--subscription", p.Sub())
	if !strings.Contains(out, "Remove the cause the error names") || !strings.Contains(out, `--table 'public."Denied"'`) {
		t.Errorf("repair's plan:\n%s\n%s", out, errOut)
	}

	grant := regexp.MustCompile(`GRANT SELECT ON \S+ TO repl;`).FindString(msg)
	if err := p.Provider.Exec(ctx, grant); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 60*time.Second, func() bool {
		code, _ := status(t, cfg, "--no-wait")
		return code == 0 && p.Subscriber.QueryRow(ctx, `SELECT count(*) FROM "Denied"`, []any{&rows}) == nil && rows == 5
	}); err != nil {
		code, st := status(t, cfg, "--no-wait")
		t.Fatalf("after %s: status exit %d (%+v), %d rows on the subscriber", grant, code, st, rows)
	}
}
