package probe

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func nodes(p *pgtest.Pair) (provider, subscriber config.Node) {
	return config.Node{Name: "prov", DSN: p.Provider.DSN()}, config.Node{Name: "sub", DSN: p.Subscriber.DSN()}
}

func TestProbeHealthyPair(t *testing.T) {
	ctx := context.Background()
	pair := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	pn, sn := nodes(pair)
	probers := []*Prober{NewProber(pn, 5*time.Second), NewProber(sn, 5*time.Second)}
	snaps := ProbeAll(ctx, probers)
	prov, sub := snaps[0], snaps[1]
	for _, s := range snaps {
		if s.Err != nil {
			t.Fatalf("%s: %v", s.Node, s.Err)
		}
		if s.ServerVersion < 150000 || s.ServerVersion >= 160000 {
			t.Errorf("%s: server version %d, want 15.x", s.Node, s.ServerVersion)
		}
		if s.PglogicalVersion == "" {
			t.Errorf("%s: pglogical version empty", s.Node)
		}
	}
	if got, want := prov.LocalNode, pair.ProviderNode; got != want {
		t.Errorf("provider local node: got %q, want %q", got, want)
	}
	if got, want := len(sub.Subscriptions), 1; got != want {
		t.Fatalf("subscriptions: got %d, want %d", got, want)
	}
	s := sub.Subscriptions[0]
	slotName, _ := pair.SlotName(ctx, pair.Sub())
	if s.Name != pair.Sub() || s.Status != StatusReplicating || !s.Enabled || !s.OriginExists || !s.WorkerRunning ||
		s.ProviderNode != pair.ProviderNode || s.SlotName != slotName || s.SyncStatus != "r" || !regexp.MustCompile(`^[0-9]+:[0-9]+$`).MatchString(s.ApplyWorker) {
		t.Errorf("subscription: got %+v", s)
	}
	if len(s.ReplicationSets) != 1 || s.ReplicationSets[0] != "set_0" {
		t.Errorf("replication sets: got %v, want [set_0]", s.ReplicationSets)
	}
	if !strings.HasPrefix(s.SlotName, "pgl_") {
		t.Errorf("slot name %q, want pgl_ prefix", s.SlotName)
	}
	slot, ok := prov.Slot(s.SlotName)
	if !ok {
		t.Fatalf("slot %s not found on provider; slots: %+v", s.SlotName, prov.Slots)
	}
	if !slot.Active || slot.ActivePID == 0 || slot.Plugin != "pglogical_output" || slot.Type != "logical" ||
		slot.WALStatus != "reserved" || slot.Sender == nil || slot.Sender.ApplicationName != pair.Sub() {
		t.Errorf("slot: got %+v (sender %+v)", slot, slot.Sender)
	}
	if snd := slot.Sender; snd == nil || snd.PID != slot.ActivePID || snd.ClientAddr != "127.0.0.1" || snd.ClientPort == 0 ||
		snd.ConnectedSeconds == nil || *snd.ConnectedSeconds < 0 {
		t.Errorf("sender: got %+v", slot.Sender)
	}
	if slot.Decoding == nil || slot.Decoding.TotalTxns < 0 {
		t.Errorf("decoding statistics: got %+v", slot.Decoding)
	}
	if slot.ConfirmedFlushLSN == 0 || slot.RetainedBytes < 0 {
		t.Errorf("slot LSNs: got %+v", slot)
	}
	// A logical slot holds back the catalogs only.
	if age, which := slot.HorizonAge(); slot.XminAge != nil || slot.CatalogXminAge == nil || which != "catalog_xmin" || age < 0 {
		t.Errorf("slot horizon: xmin age %v, catalog_xmin age %v, HorizonAge %d %q", slot.XminAge, slot.CatalogXminAge, age, which)
	}
	// The origin advances as changes are applied.
	if err := pair.Provider.Exec(ctx, "INSERT INTO items_0 VALUES (1000, 'x', 1)"); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		snap := probers[1].Probe(ctx)
		return snap.Err == nil && len(snap.Subscriptions) == 1 && snap.Subscriptions[0].OriginRemoteLSN > 0
	}); err != nil {
		t.Fatal("origin remote_lsn never advanced:", err)
	}
}

// A transaction larger than logical_decoding_work_mem is spilled to disk by
// the walsender decoding it: the probe reads the slot's counters.
func TestProbeSpilledTransaction(t *testing.T) {
	ctx := context.Background()
	// Own clusters: the setting applies to every walsender of the provider.
	pair := pgtest.NewPair(t, pgtest.PairOptions{Own: true})
	if err := pair.Provider.Exec(ctx, "ALTER SYSTEM SET logical_decoding_work_mem = '64kB'"); err != nil {
		t.Fatal(err)
	}
	if err := pair.Provider.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	pn, _ := nodes(pair)
	p := NewProber(pn, 5*time.Second)
	slotName, _ := pair.SlotName(ctx, pair.Sub())
	decoding := func() *Decoding {
		snap := p.Probe(ctx)
		if sl, ok := snap.Slot(slotName); ok {
			return sl.Decoding
		}
		return nil
	}
	before := decoding()
	if before == nil || before.SpillBytes != 0 {
		t.Fatalf("before: %+v", before)
	}
	if err := pair.Provider.Exec(ctx, "INSERT INTO items_0 SELECT g, md5(g::text), 1 FROM generate_series(1, 20000) g"); err != nil {
		t.Fatal(err)
	}
	var d *Decoding
	if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
		d = decoding()
		// Spills count while decoding; the totals once the commit is sent.
		return d != nil && d.SpillBytes > 1<<20 && d.TotalTxns > 0
	}); err != nil {
		t.Fatalf("no spilled transaction decoded: %+v", d)
	}
	if d.SpillTxns < 1 || d.TotalBytes < d.SpillBytes/2 {
		t.Errorf("decoding: %+v", d)
	}
}

// pglogical's sync worker copies a table added to a set: the subscriber's
// probe shows how far the copy has come while it runs.
func TestProbeTableCopyProgress(t *testing.T) {
	ctx := context.Background()
	// Own clusters: the million rows are WAL every walsender of a shared provider would decode.
	pair := pgtest.NewPair(t, pgtest.PairOptions{Own: true})
	for _, d := range []pgtest.DB{pair.Provider, pair.Subscriber} {
		if err := d.Exec(ctx, "CREATE TABLE big (id bigint PRIMARY KEY, val text, n int)"); err != nil {
			t.Fatal(err)
		}
	}
	if err := pair.Provider.Exec(ctx, "INSERT INTO big SELECT g, md5(g::text), g % 100 FROM generate_series(1, 1000000) g"); err != nil {
		t.Fatal(err)
	}
	_, sn := nodes(pair)
	p := NewProber(sn, 5*time.Second)
	if err := pair.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', 'big', true)"); err != nil {
		t.Fatal(err)
	}
	var seen []int64
	if err := pgtest.Poll(ctx, 120*time.Second, func() bool {
		snap := p.Probe(ctx)
		if snap.Err != nil {
			t.Fatal(snap.Err)
		}
		copying := false
		for _, ts := range snap.TableSync {
			if ts.Table == "big" {
				copying = true
				if ts.CopiedRows != nil && *ts.CopiedRows > 0 && (ts.CopiedBytes == nil || *ts.CopiedBytes <= 0) {
					t.Errorf("rows %d but bytes %v", *ts.CopiedRows, ts.CopiedBytes)
				}
				if ts.CopiedRows != nil {
					seen = append(seen, *ts.CopiedRows)
				}
			}
		}
		// Ready: no longer listed.
		return !copying && len(snap.TableSync) == 0 && len(seen) > 0
	}); err != nil {
		t.Fatalf("copy progress: seen %v", seen)
	}
	if len(seen) == 0 || seen[len(seen)-1] <= 0 || seen[len(seen)-1] > 1000000 {
		t.Errorf("copied rows seen: %v", seen)
	}
	t.Logf("copied rows seen while the copy ran: %v", seen)
}

func TestProbeOriginLostAndTableSync(t *testing.T) {
	ctx := context.Background()
	pair := pgtest.NewPair(t, pgtest.PairOptions{})
	_, sn := nodes(pair)
	p := NewProber(sn, 5*time.Second)
	if err := pair.LoseOrigin(ctx, pair.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		snap := p.Probe(ctx)
		return snap.Err == nil && !snap.Subscriptions[0].OriginExists && snap.Subscriptions[0].Status == StatusDown
	}); err != nil {
		t.Fatal("origin loss not seen:", err)
	}
}

func TestProbeWithoutPglogical(t *testing.T) {
	ctx := context.Background()
	prov, _ := pgtest.Shared(t)
	snap := NewProber(config.Node{Name: "plain", DSN: prov.DSN("postgres")}, 5*time.Second).Probe(ctx)
	if snap.Err != nil {
		t.Fatal(snap.Err)
	}
	if snap.PglogicalVersion != "" || snap.Subscriptions != nil {
		t.Errorf("got pglogical facts on a database without it: %+v", snap)
	}
}

func TestProbeUnreachableNodeWithinTimeout(t *testing.T) {
	ctx := context.Background()
	timeout := 500 * time.Millisecond
	for _, tc := range []struct{ name, dsn string }{
		{"closed port", "host=127.0.0.1 port=1 dbname=x user=postgres sslmode=disable"},
		// A listener that never answers: the timeout, not the OS, must end it.
		{"silent listener", "host=127.0.0.1 port=" + silentListener(t) + " dbname=x user=postgres sslmode=disable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PGLMON_TEST_SECRET_PW", "plantedSecret123")
			node := config.Node{Name: "gone", DSN: tc.dsn, Password: &config.PasswordSource{Env: "PGLMON_TEST_SECRET_PW"}}
			start := time.Now()
			snap := NewProber(node, timeout).Probe(ctx)
			if snap.Err == nil {
				t.Fatal("got no error")
			}
			if el := time.Since(start); el > timeout+time.Second {
				t.Errorf("took %s, want within timeout %s", el, timeout)
			}
			if strings.Contains(snap.Err.Error(), "plantedSecret123") {
				t.Errorf("error leaks the password: %v", snap.Err)
			}
		})
	}
}

func silentListener(t *testing.T) string {
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()[strings.LastIndexByte(l.Addr().String(), ':')+1:]
}

func TestParseLSN(t *testing.T) {
	for in, want := range map[string]LSN{"0/0": 0, "16/B374D848": 0x16B374D848, "": 0} {
		got, err := ParseLSN(in)
		if err != nil || got != want {
			t.Errorf("%q: got %v, %v, want %v", in, got, err, want)
		}
		if in != "" && got.String() != in {
			t.Errorf("%q: String() = %q", in, got.String())
		}
	}
	if _, err := ParseLSN("zz"); err == nil {
		t.Error("want error for zz")
	}
}

// BenchmarkProbeCycle probes a pair carrying 20 subscriptions: one cycle is
// both nodes probed concurrently.
func BenchmarkProbeCycle(b *testing.B) {
	ctx := context.Background()
	pair := pgtest.NewPair(b, pgtest.PairOptions{Subscriptions: 20})
	pn, sn := nodes(pair)
	probers := []*Prober{NewProber(pn, 5*time.Second), NewProber(sn, 5*time.Second)}
	ProbeAll(ctx, probers) // connect and warm the statement cache
	b.ReportAllocs()
	b.ResetTimer()
	var trips int64
	for b.Loop() {
		for _, s := range ProbeAll(ctx, probers) {
			if s.Err != nil {
				b.Fatal(s.Err)
			}
		}
		trips += probers[0].RoundTrips() + probers[1].RoundTrips()
	}
	b.ReportMetric(float64(trips)/float64(b.N)/2, "roundtrips/node/cycle")
	snap := probers[1].Probe(ctx)
	b.ReportMetric(float64(len(snap.Subscriptions)), "subscriptions")
}

// A connection the server closed between two cycles (idle_session_timeout
// here; a restart, an administrator's pg_terminate_backend or a proxy's idle
// limit alike) does not make the node unreachable: the next probe opens a
// new one. Before, that cycle reported node_unreachable.
func TestProbeReconnectsAfterTheServerClosedItsConnection(t *testing.T) {
	ctx := context.Background()
	prov, _ := pgtest.Shared(t)
	p := NewProber(config.Node{Name: "idle", DSN: prov.DSN("postgres") + " options='-c idle_session_timeout=100'"}, 5*time.Second)
	defer p.Close(ctx)
	if snap := p.Probe(ctx); snap.Err != nil {
		t.Fatal(snap.Err)
	}
	pid := p.conn.PgConn().PID()
	if err := prov.WaitBackendGone(ctx, pid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	snap := p.Probe(ctx)
	if snap.Err != nil {
		t.Fatalf("probe after the server closed the idle connection: %v", snap.Err)
	}
	if p.Failures() != 0 || p.conn == nil || p.conn.PgConn().PID() == pid {
		t.Errorf("failures %d, connection %v: want a new connection and no failure", p.Failures(), p.conn)
	}
}

// Snapshot.TableDefs follows the tables' definitions, not their data: a
// TRUNCATE or a VACUUM FULL (a new relfilenode, which rewrites the table's
// pg_class row) leaves it as it is, so a workload that empties a table
// often does not have the daemon compare the tables every cycle; a table
// renamed, or given another replica identity, changes it.
func TestTableDefsFollowDefinitionsNotData(t *testing.T) {
	ctx := context.Background()
	pair := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	pn, _ := nodes(pair)
	p := NewProber(pn, 5*time.Second)
	t.Cleanup(func() { p.Close(ctx) })
	defs := func() string {
		s := p.Probe(ctx)
		if s.Err != nil {
			t.Fatal(s.Err)
		}
		return s.TableDefs
	}
	first := defs()
	before := first
	for _, st := range []struct {
		sql  string
		want string // same (as before it), changed, or first (as before them all)
	}{
		{"TRUNCATE items_0", "same"},
		{"VACUUM FULL items_0", "same"},
		{"ALTER TABLE items_0 RENAME TO items_x", "changed"},
		{"ALTER TABLE items_x RENAME TO items_0", "first"},
		{"ALTER TABLE items_0 REPLICA IDENTITY FULL", "changed"},
	} {
		if err := pair.Provider.Exec(ctx, st.sql); err != nil {
			t.Fatal(err)
		}
		after := defs()
		if ok := map[string]bool{"same": after == before, "changed": after != before, "first": after == first}[st.want]; !ok {
			t.Errorf("%s: TableDefs %q -> %q, want %s", st.sql, before, after, st.want)
		}
		before = after
	}
}
