package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// verify --copy-script writes the psql script that copies just the
// differing rows; run as printed, it makes the tables equal and keeps what
// only the subscriber has (a column of its own, the other rows). Keys of
// several columns holding quotes, a backslash, a comma and a line break;
// a row the provider changes after the verification is copied as it is
// when the script runs; a row filter spanning lines. Run twice, it changes nothing more.
func TestVerifyCopyScriptMakesTheTablesEqual(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 200})
	p.MustConverge(t, 30*time.Second)
	const odd = "o'brien, \"x\" \\y"
	for _, sql := range []string{
		`CREATE TABLE acct (tenant text, id int, balance numeric, seen timestamptz, PRIMARY KEY (tenant, id))`,
		`INSERT INTO acct SELECT t, g, g * 1.5, '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 hour'
			FROM unnest(ARRAY['eu', 'us', 'multi` + "\n" + `line', $$` + odd + `$$]) t, generate_series(1, 50) g`,
	} {
		if err := p.Provider.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
		if err := p.Subscriber.Exec(ctx, strings.Replace(sql, "seen timestamptz,", "seen timestamptz, local_note text DEFAULT 'sub',", 1)); err != nil {
			t.Fatal(err)
		}
	}
	execAll(ctx, t, []sqlStep{
		// A row filter whose text spans lines (a constant holding a line
		// break): the script reads the provider's rows through it.
		{p.Provider, `SELECT pglogical.replication_set_add_table('set_0', 'acct', false, row_filter := 'tenant <> E''skip\nme''')`},
		{p.Provider, "INSERT INTO acct VALUES ('skip\nme', 1, 0, now())"},
		{p.Subscriber, "UPDATE acct SET local_note = 'keep me' WHERE tenant = 'eu' AND id = 7"},
		{p.Subscriber, "UPDATE acct SET balance = -1 WHERE tenant = 'eu' AND id = 7"},
		{p.Subscriber, "DELETE FROM acct WHERE tenant = $$" + odd + "$$ AND id = 3"},
		{p.Subscriber, "DELETE FROM acct WHERE tenant = 'multi\nline' AND id = 4"},
		{p.Subscriber, "INSERT INTO acct VALUES ('us', 1000, 0, now(), 'only here')"},
		{p.Subscriber, "DELETE FROM items_0 WHERE id = 17"},
		// Local writes to acct are counted by an ordinary trigger, which
		// pglogical's apply (and the script with -v as_apply=1) does not fire.
		{p.Subscriber, "CREATE TABLE acct_writes (n int)"},
		{p.Subscriber, "CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct_writes VALUES (1); RETURN NULL; END $$"},
		{p.Subscriber, "CREATE TRIGGER count_writes AFTER INSERT OR UPDATE OR DELETE ON acct FOR EACH ROW EXECUTE FUNCTION count_write()"},
	})
	cfg := writeConfig(t, p, "")
	script := filepath.Join(t.TempDir(), "rows.psql")
	code, out, errOut := pglmon(t, "verify", "--config", cfg, "--copy-script", script, "--output", "json")
	var res struct {
		Results []struct {
			Tables []struct {
				Table         string
				DifferingRows int64 `json:"differing_rows"`
			}
		}
		CopyScript struct {
			Path   string
			Run    string
			Tables []string
			Rows   int
		} `json:"copy_script"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s\n%s", err, out, errOut)
	}
	if code != 2 || res.CopyScript.Path != script || res.CopyScript.Rows != 5 || len(res.CopyScript.Tables) != 2 {
		t.Fatalf("exit %d, copy_script %+v\n%s\n%s", code, res.CopyScript, out, errOut)
	}
	if fi, err := os.Stat(script); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("script: %v %v", fi, err)
	}
	// The provider changes a differing row after the verification: the
	// script copies the row as it is then.
	if err := p.Provider.Exec(ctx, "UPDATE acct SET balance = 999 WHERE tenant = 'multi\nline' AND id = 4"); err != nil {
		t.Fatal(err)
	}
	runScript := func(flags string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", res.CopyScript.Run+flags)
		cmd.Env = append(os.Environ(), "PATH="+pgtest.BinDir+":"+os.Getenv("PATH"))
		got, err := cmd.CombinedOutput()
		if err != nil {
			body, _ := os.ReadFile(script)
			t.Fatalf("%s: %v\n%s\nscript:\n%s", res.CopyScript.Run, err, got, body)
		}
		return string(got)
	}
	psqlOut := runScript("")
	if !strings.Contains(psqlOut, "COMMIT") {
		t.Errorf("psql output:\n%s", psqlOut)
	}
	if matches, _ := filepath.Glob(script + ".*.csv"); len(matches) != 0 {
		t.Errorf("CSV files left: %v", matches)
	}
	equal := func(when string) {
		t.Helper()
		// The provider's last change reaches the subscriber by replication
		// too: verify waits for it.
		if code, out, errOut := pglmon(t, "verify", "--config", cfg); code != 0 {
			t.Fatalf("%s: verify exit %d\n%s\n%s", when, code, out, errOut)
		}
		var note, balance string
		if err := p.Subscriber.QueryRow(ctx, "SELECT local_note, balance::text FROM acct WHERE tenant = 'eu' AND id = 7", []any{&note, &balance}); err != nil {
			t.Fatal(err)
		}
		if note != "keep me" || balance != "10.5" {
			t.Errorf("%s: the different row: local_note %q, balance %s; want the subscriber's note kept and the provider's 10.5", when, note, balance)
		}
		if err := p.Subscriber.QueryRow(ctx, "SELECT balance::text FROM acct WHERE tenant = 'multi\nline' AND id = 4", []any{&balance}); err != nil || balance != "999" {
			t.Errorf("%s: the row changed after the verification: %s %v", when, balance, err)
		}
	}
	equal("after the script")
	writes := func() (n int) {
		t.Helper()
		if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM acct_writes", []any{&n}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The script's writes are local ones: the trigger counted them (one
	// delete, three upserts at least).
	first := writes()
	if first < 4 {
		t.Errorf("the trigger counted %d writes of the script", first)
	}
	// Run again as pglogical's apply writes: no trigger fires.
	runScript(" -v as_apply=1")
	equal("after the script ran again")
	if n := writes(); n != first {
		t.Errorf("with as_apply the trigger fired: %d writes counted, %d before", n, first)
	}
	// Nothing differs: no script is written, and the JSON says so.
	none := filepath.Join(t.TempDir(), "none.psql")
	code, out, errOut = pglmon(t, "verify", "--config", cfg, "--copy-script", none, "--output", "json")
	if code != 0 || !strings.Contains(out, `"tables": []`) || strings.Contains(out, `"run"`) {
		t.Errorf("nothing to copy: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(none); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a script was written with nothing to copy: %v", err)
	}
}

// With more differing rows than verify.max_keys, --copy-script copies them
// all in one script while the output lists max_keys of them: one run of the
// script makes the table equal.
func TestCopyScriptCopiesMoreRowsThanListed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 300})
	p.MustConverge(t, 30*time.Second)
	for _, sql := range []string{
		"DELETE FROM items_0 WHERE id BETWEEN 11 AND 50",
		"UPDATE items_0 SET val = 'changed here' WHERE id BETWEEN 201 AND 205",
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, p, "verify:\n  max_keys: 3\n")
	script := filepath.Join(t.TempDir(), "rows.psql")
	code, out, errOut := pglmon(t, "verify", "--config", cfg, "--copy-script", script, "--output", "json")
	var res struct {
		Results []struct {
			Tables []struct {
				DifferingRows int64 `json:"differing_rows"`
				Keys          []json.RawMessage
			}
		}
		CopyScript struct {
			Run     string
			Rows    int
			Partial []string
		} `json:"copy_script"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s\n%s", err, out, errOut)
	}
	if code != 2 || len(res.Results) != 1 || len(res.Results[0].Tables) != 1 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if tb := res.Results[0].Tables[0]; tb.DifferingRows != 45 || len(tb.Keys) != 3 {
		t.Errorf("differing_rows %d, %d keys listed; want 45 and max_keys 3", tb.DifferingRows, len(tb.Keys))
	}
	if res.CopyScript.Rows != 45 || len(res.CopyScript.Partial) != 0 {
		t.Errorf("copy_script: %d rows, partial %v; want all 45", res.CopyScript.Rows, res.CopyScript.Partial)
	}
	code, out, _ = pglmon(t, "verify", "--config", cfg, "--copy-script", script)
	if code != 2 || !strings.Contains(out, "... and 42 more") || !strings.Contains(out, "it copies 45 rows that differ, of sub_0/public.items_0") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	cmd := exec.Command("sh", "-c", res.CopyScript.Run)
	cmd.Env = append(os.Environ(), "PATH="+pgtest.BinDir+":"+os.Getenv("PATH"))
	if got, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", res.CopyScript.Run, err, got)
	}
	if code, out, errOut := pglmon(t, "verify", "--config", cfg); code != 0 {
		t.Errorf("after one run of the script: verify exit %d\n%s\n%s", code, out, errOut)
	}
}

// BenchmarkCopyScriptVsResync puts right 100 rows differing in a
// 1,000,000-row table two ways: verify --copy-script and the script it
// writes, run with psql; and pglogical's resynchronisation (TRUNCATE, then
// COPY of the whole table), until the table is ready and equal again.
// Run: go test -run '^$' -bench CopyScriptVsResync -benchtime 1x -timeout 20m ./cmd/pglmon/
func BenchmarkCopyScriptVsResync(b *testing.B) {
	ctx := context.Background()
	p := pgtest.NewPair(b, pgtest.PairOptions{Own: true, Rows: 1_000_000})
	if _, err := p.WaitConverged(ctx, p.Tables[0], 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	cfg := filepath.Join(dir, "pglmon.yaml")
	if err := os.WriteFile(cfg, []byte(p.NodesYAML()+"repair:\n  audit_log: "+filepath.Join(dir, "audit.jsonl")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	pglmon := func(args ...string) (int, string) {
		var out, errb strings.Builder
		code := run(ctx, args, strings.NewReader(""), &out, &errb)
		return code, out.String() + errb.String()
	}
	breakRows := func() {
		for _, sql := range []string{
			"DELETE FROM items_0 WHERE id % 25000 = 1",                                         // 40 missing
			"UPDATE items_0 SET val = 'changed' WHERE id % 25000 = 2",                          // 40 different
			"INSERT INTO items_0 SELECT 2000000 + g, 'extra', g FROM generate_series(1, 20) g", // 20 extra
		} {
			if err := p.Subscriber.Exec(ctx, sql); err != nil {
				b.Fatal(err)
			}
		}
	}
	equal := func(what string) {
		if code, out := pglmon("verify", "--config", cfg); code != 0 {
			b.Fatalf("%s: verify exit %d\n%s", what, code, out)
		}
	}
	b.ResetTimer()
	breakRows()
	script := filepath.Join(dir, "rows.psql")
	start := time.Now()
	if code, out := pglmon("verify", "--config", cfg, "--copy-script", script); code != 2 || !strings.Contains(out, "copies 100 rows that differ") {
		b.Fatalf("verify: exit %d\n%s", code, out)
	}
	found := time.Since(start)
	start = time.Now()
	if out, err := psqlScript(p.Provider.DSN(), script, "-q"); err != nil {
		b.Fatalf("psql: %v\n%s", err, out)
	}
	copied := time.Since(start)
	equal("after the script")

	// 100,000 differing rows: as many as one script copies.
	for _, sql := range []string{
		"DELETE FROM items_0 WHERE id % 20 = 3",                // 50,000 missing
		"UPDATE items_0 SET val = 'changed' WHERE id % 20 = 4", // 50,000 different
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	start = time.Now()
	if code, out := pglmon("verify", "--config", cfg, "--copy-script", script); code != 2 || !strings.Contains(out, "copies 100000 rows that differ") || strings.Contains(out, "only part") {
		b.Fatalf("verify: exit %d\n%s", code, out)
	}
	foundMany := time.Since(start)
	start = time.Now()
	if out, err := psqlScript(p.Provider.DSN(), script, "-q"); err != nil {
		b.Fatalf("psql: %v\n%s", err, out)
	}
	copiedMany := time.Since(start)
	equal("after the script of 100,000 rows")

	breakRows()
	start = time.Now()
	if err := p.Subscriber.Exec(ctx, "SELECT pglogical.alter_subscription_resynchronize_table($1, 'items_0')", p.Sub()); err != nil {
		b.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 10*time.Minute, func() bool {
		var ready bool
		return p.Subscriber.QueryRow(ctx, "SELECT coalesce(bool_and(sync_status = 'r'), false) FROM pglogical.local_sync_status WHERE sync_relname = 'items_0'", []any{&ready}) == nil && ready
	}); err != nil {
		b.Fatal("the resynchronisation never finished")
	}
	resynced := time.Since(start)
	b.StopTimer()
	equal("after the resynchronisation")
	fmt.Printf("100 differing rows of 1,000,000: verify --copy-script %s, the script (psql) %s; resynchronisation until ready %s (%.0fx the script)\n",
		found.Round(time.Millisecond), copied.Round(time.Millisecond), resynced.Round(time.Millisecond), resynced.Seconds()/copied.Seconds())
	b.ReportMetric(found.Seconds(), "verify_s")
	b.ReportMetric(copied.Seconds(), "script_s")
	fmt.Printf("100,000 differing rows of 1,000,000: verify --copy-script %s, the script (psql) %s\n", foundMany.Round(time.Millisecond), copiedMany.Round(time.Millisecond))
	b.ReportMetric(resynced.Seconds(), "resync_s")
	b.ReportMetric(foundMany.Seconds(), "verify100k_s")
	b.ReportMetric(copiedMany.Seconds(), "script100k_s")
}

// A row the provider changes while the script copies it can reach the
// subscriber (by replication) before the script writes there, and the
// script then puts its older values back. The script reads the provider's
// rows again at its end and says so, exiting with an error; run again, it
// copies the rows as they are. The script is held between its read and its
// write by the subscriber's connection, which a proxy holds open until the
// provider's change has been applied.
func TestCopyScriptSaysWhenTheProviderChangedARowWhileItCopied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 50})
	p.MustConverge(t, 30*time.Second)
	for _, sql := range []string{"DELETE FROM items_0 WHERE id = 17", "UPDATE items_0 SET val = 'subscriber' WHERE id = 18"} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, p, "")
	script := filepath.Join(t.TempDir(), "rows.psql")
	if code, out, errOut := pglmon(t, "verify", "--config", cfg, "--copy-script", script); code != 2 || !strings.Contains(out, "copies 2 rows that differ") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	px := pgtest.NewAuthProxy(t, p.Subscriber.Cluster, func(string, string) error {
		once.Do(func() { close(reached) })
		<-release
		return nil
	})
	psql := func(extra ...string) (string, error) { return psqlScript(p.Provider.DSN(), script, extra...) }
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The proxy asks for a password: any will do.
		out, err := psql("-v", "node_subscriber="+px.DSN(p.Subscriber.Name)+" password=any")
		done <- result{out, err}
	}()
	select {
	case <-reached:
	case r := <-done:
		t.Fatalf("the script ended before it connected to the subscriber: %v\n%s", r.err, r.out)
	case <-time.After(60 * time.Second):
		t.Fatal("the script never connected to the subscriber")
	}
	// The script has read the provider's rows; the provider changes one
	// and pglogical applies the change before the script writes.
	if err := p.Provider.Exec(ctx, "UPDATE items_0 SET val = 'changed meanwhile' WHERE id = 18"); err != nil {
		t.Fatal(err)
	}
	val := func() (v string) {
		if err := p.Subscriber.QueryRow(ctx, "SELECT val FROM items_0 WHERE id = 18", []any{&v}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool { return val() == "changed meanwhile" }); err != nil {
		t.Fatal("the provider's change never reached the subscriber")
	}
	close(release)
	r := <-done
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != 3 ||
		!strings.Contains(r.out, "public.items_0 (subscription "+p.Sub()+"): the provider changed rows of it while the script copied them") ||
		!strings.Contains(r.out, "run the script again") {
		t.Fatalf("psql: %v\n%s", r.err, r.out)
	}
	if v := val(); v == "changed meanwhile" {
		t.Fatalf("the script did not write the row it read before the change (%q): this test no longer sees the race", v)
	}
	if matches, _ := filepath.Glob(script + ".*.csv"); len(matches) != 0 {
		t.Errorf("CSV files left: %v", matches)
	}
	// Run again, as it says: the rows as they are now, and a clean exit.
	if out, err := psql(); err != nil || !strings.Contains(out, "Done: now run pglmon verify again") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if code, out, errOut := pglmon(t, "verify", "--config", cfg); code != 0 || val() != "changed meanwhile" {
		t.Fatalf("after the second run: verify exit %d, val %q\n%s\n%s", code, val(), out, errOut)
	}
}

// A table without primary key (in an insert-only set, as pglogical allows)
// has its rows named by their contents; the script makes the subscriber
// hold as many copies of each missing row as the provider does (reading
// back a row whose text holds a comma, a quote, a NULL and a line break),
// and keeps the rows only the subscriber has (expected there: the set
// replicates no DELETE). Run twice, it inserts nothing more.
func TestCopyScriptPutsBackTheRowsOfATableWithoutKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	for _, db := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := db.Exec(ctx, `CREATE TABLE events (at int, kind text, note text);
			INSERT INTO events SELECT g, 'k' || g % 7, 'n' || g FROM generate_series(1, 2000) g;
			INSERT INTO events SELECT 5, 'dup', NULL FROM generate_series(1, 3);
			INSERT INTO events VALUES (7, 'odd', E'a, "quoted" \\ line\nbreak')`); err != nil {
			t.Fatal(err)
		}
	}
	execAll(ctx, t, []sqlStep{
		{p.Provider, "SELECT pglogical.create_replication_set('inserts', replicate_update := false, replicate_delete := false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('inserts', 'events', false)"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'inserts')"},
	})
	p.MustStream(t, 3*time.Minute)
	for _, sql := range []string{
		"DELETE FROM events WHERE at = 17",
		"DELETE FROM events WHERE kind = 'odd'",
		"DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE kind = 'dup' LIMIT 2)",
		"INSERT INTO events VALUES (99999, 'sub', 'only here')",
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, p, "")
	script := filepath.Join(t.TempDir(), "rows.psql")
	code, out, errOut := pglmon(t, "verify", "--config", cfg, "--table", "public.events", "--copy-script", script)
	if code != 2 || !strings.Contains(out, "it copies 4 rows that differ, of "+p.Sub()+"/public.events") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
	count := func(where string) (n int) {
		t.Helper()
		if err := p.Subscriber.QueryRow(ctx, "SELECT count(*) FROM events WHERE "+where, []any{&n}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for run := 1; run <= 2; run++ {
		if out, err := psqlScript(p.Provider.DSN(), script); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
		if code, out, errOut := pglmon(t, "verify", "--config", cfg, "--table", "public.events"); code != 0 {
			t.Fatalf("run %d: verify exit %d\n%s\n%s", run, code, out, errOut)
		}
		got := []int{count("at = 17"), count("kind = 'dup'"), count("kind = 'odd' AND note = E'a, \"quoted\" \\\\ line\\nbreak'"), count("at = 99999"), count("true")}
		if want := []int{1, 3, 1, 1, 2005}; !slices.Equal(got, want) {
			t.Errorf("run %d: copies of row 17, dup, odd, the subscriber's own, all: %v, want %v", run, got, want)
		}
	}
}

// A replicated column the subscriber generates ALWAYS AS IDENTITY can only
// be updated to DEFAULT, and inserted into with OVERRIDING SYSTEM VALUE:
// the script makes such a column BY DEFAULT for its upsert and ALWAYS
// again before it commits; a table without key gets its missing row with
// the provider's value. The subscriber's tables keep GENERATED ALWAYS.
func TestCopyScriptWritesAColumnTheSubscriberGeneratesAlways(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	for _, db := range []pgtest.DB{p.Provider, p.Subscriber} {
		if err := db.Exec(ctx, `CREATE TABLE tickets (id int PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY, val text);
			INSERT INTO tickets OVERRIDING SYSTEM VALUE SELECT g, 100 + g, 'v' || g FROM generate_series(1, 20) g;
			CREATE TABLE ticket_log (n bigint GENERATED ALWAYS AS IDENTITY, msg text);
			INSERT INTO ticket_log OVERRIDING SYSTEM VALUE SELECT 100 + g, 'm' || g FROM generate_series(1, 20) g`); err != nil {
			t.Fatal(err)
		}
	}
	execAll(ctx, t, []sqlStep{
		{p.Provider, "SELECT pglogical.replication_set_add_table('set_0', 'tickets', false)"},
		{p.Provider, "SELECT pglogical.create_replication_set('inserts', replicate_update := false, replicate_delete := false)"},
		{p.Provider, "SELECT pglogical.replication_set_add_table('inserts', 'ticket_log', false)"},
		{p.Subscriber, "SELECT pglogical.alter_subscription_add_replication_set('" + p.Sub() + "', 'inserts')"},
	})
	p.MustStream(t, 3*time.Minute)
	for _, sql := range []string{
		"UPDATE tickets SET n = DEFAULT, val = 'local' WHERE id = 5", // different, in n too
		"DELETE FROM tickets WHERE id = 6",                           // missing
		"DELETE FROM ticket_log WHERE msg = 'm7'",                    // missing, no key
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg := writeConfig(t, p, "")
	script := filepath.Join(t.TempDir(), "rows.psql")
	code, out, errOut := pglmon(t, "verify", "--config", cfg, "--copy-script", script)
	if code != 2 || !strings.Contains(out, "it copies 3 rows that differ") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
	for run := 1; run <= 2; run++ {
		if out, err := psqlScript(p.Provider.DSN(), script); err != nil {
			body, _ := os.ReadFile(script)
			t.Fatalf("run %d: %v\n%s\nscript:\n%s", run, err, out, body)
		}
		if code, out, errOut := pglmon(t, "verify", "--config", cfg); code != 0 {
			t.Fatalf("run %d: verify exit %d\n%s\n%s", run, code, out, errOut)
		}
		var identity string
		if err := p.Subscriber.QueryRow(ctx, `SELECT string_agg(attrelid::regclass || '.' || attname || ' ' || attidentity::text, ', ' ORDER BY attrelid::regclass::text)
			FROM pg_attribute WHERE attrelid IN ('tickets'::regclass, 'ticket_log'::regclass) AND attname = 'n'`, []any{&identity}); err != nil {
			t.Fatal(err)
		}
		if identity != "ticket_log.n a, tickets.n a" {
			t.Errorf("run %d: identity columns after the script: %s, want both GENERATED ALWAYS (a)", run, identity)
		}
	}
}

// psqlScript runs a copy script with the test clusters' psql, connecting
// first to dsn, and returns what psql printed.
func psqlScript(dsn, script string, extra ...string) (string, error) {
	out, err := exec.Command(pgtest.BinDir+"/psql", append([]string{"-X", "-d", dsn, "-f", script}, extra...)...).CombinedOutput()
	return string(out), err
}
