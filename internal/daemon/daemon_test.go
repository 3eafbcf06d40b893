package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/config"
	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/pgtest"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/repair"
	"github.com/pglmon/pglmon/internal/sdnotify"
	"github.com/pglmon/pglmon/internal/verify"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

type running struct {
	d      *Daemon
	logs   *pgtest.SyncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	reload chan struct{}
	path   string
	audit  string
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Error("daemon did not stop within 5 s")
	}
}

func pairConfig(p *pgtest.Pair, audit, extra string) string {
	return p.NodesYAML() + fmt.Sprintf(`probe:
  interval: 1s
  timeout: 1s
  max_backoff: 1s
thresholds:
  down_grace: 3s
http:
  listen: "127.0.0.1:0"
repair:
  audit_log: %s
  verify_timeout: 30s
%s`, audit, extra)
}

func start(t testing.TB, body string, notifier *sdnotify.Notifier) *running {
	t.Helper()
	return startEvery(t, body, notifier, 0)
}

// startEvery starts a daemon that reads server logs every logEvery (0: the default).
func startEvery(t testing.TB, body string, notifier *sdnotify.Notifier, logEvery time.Duration) *running {
	t.Helper()
	return startWith(t, body, func(o *Options) { o.Notifier, o.LogEvery = notifier, logEvery })
}

// startWith starts a daemon with the options set sets.
func startWith(t testing.TB, body string, set func(*Options)) *running {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pglmon.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{logs: &pgtest.SyncBuffer{}, done: make(chan struct{}), reload: make(chan struct{}, 1), path: path, audit: cfg.Repair.AuditLog}
	logger := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := Options{ConfigPath: path, Config: cfg, Logger: logger, Version: "test", Reload: r.reload, WatchdogInterval: 200 * time.Millisecond}
	set(&opts)
	r.d, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.err = r.d.Run(ctx); close(r.done) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", r.logs.String())
		}
	})
	return r
}

func (r *running) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.d.Addr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) status(t testing.TB) diagnose.Report {
	t.Helper()
	code, body := r.get(t, "/api/v1/status")
	var rep diagnose.Report
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
	}
	return rep
}

// waitMetric polls /metrics until the line matches (or, with absent, until
// no line matches).
// waitNodeFinding polls the daemon's status until node has a finding of
// code, and returns the node and the finding; the test fails at timeout.
func (r *running) waitNodeFinding(t testing.TB, node, code string, timeout time.Duration) (diagnose.Node, diagnose.Finding) {
	t.Helper()
	var n diagnose.Node
	var f diagnose.Finding
	if err := pgtest.Poll(context.Background(), timeout, func() bool {
		for _, n = range r.status(t).Nodes {
			for _, f = range n.Findings {
				if n.Name == node && f.Code == code {
					return true
				}
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no %s finding on %s:\n%s", code, node, r.logs.String())
	}
	return n, f
}

func (r *running) waitMetric(t testing.TB, re string, absent bool, timeout time.Duration) time.Duration {
	t.Helper()
	rx := regexp.MustCompile("(?m)" + re)
	start := time.Now()
	var body string
	if err := pgtest.Poll(context.Background(), timeout, func() bool {
		_, body = r.get(t, "/metrics")
		return rx.MatchString(body) != absent
	}); err != nil {
		t.Fatalf("metric %q (absent=%t) not seen within %s:\n%s", re, absent, timeout, grepLines(body, "pglmon_"))
	}
	return time.Since(start)
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func policyOff() string {
	return "  policy:\n    restart: off\n    recreate-origin: off\n    enable: off\n"
}

func TestDaemonSeesOriginLossAndClears(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), nil)
	if code, _ := r.get(t, "/healthz"); code != 200 {
		t.Errorf("healthz: %d", code)
	}
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool { c, _ := r.get(t, "/readyz"); return c == 200 }); err != nil {
		t.Fatal("never ready")
	}
	r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 10*time.Second)
	if err := p.LoseOrigin(ctx, p.Sub()); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitStatus(ctx, p.Sub(), "down", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	seen := time.Now()
	r.waitMetric(t, `^pglmon_finding\{code="origin_missing",severity="critical",subscriber="subscriber",subscription="sub_0"\} 1$`, false, 2*time.Second)
	if err := pgtest.Poll(ctx, 2*time.Second, func() bool {
		rep := r.status(t)
		s, ok := rep.Subscription(p.Sub(), "")
		return ok && s.Health == diagnose.Critical
	}); err != nil {
		t.Fatal("/api/v1/status not critical within interval + 1 s")
	}
	t.Logf("origin_missing in /metrics and /api/v1/status %s after pglogical reported down", time.Since(seen).Round(time.Millisecond))
	r.waitMetric(t, `^pglmon_origin_present\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 2*time.Second)
	r.waitMetric(t, `^pglmon_subscription_status\{provider="provider",status="down",subscriber="subscriber",subscription="sub_0"\} 1$`, false, 2*time.Second)
	r.waitMetric(t, `^pglmon_slot_active\{node="provider",slot="pgl_[^"]+"\} 0$`, false, 2*time.Second)

	// Fixed by a person: the finding's series disappears.
	out := r.d.Execute(ctx, repair.Request{Remedy: "recreate-origin", Subscription: p.Sub(), Actor: "test"})
	if out.Result != repair.ResultSuccess {
		t.Fatalf("repair: %s %s", out.Result, out.Reason)
	}
	r.waitMetric(t, `^pglmon_finding\{code="origin_missing"`, true, 5*time.Second)
	r.waitMetric(t, `^pglmon_repairs_total\{remedy="recreate-origin",result="success"\} 1$`, false, 2*time.Second)
	if !strings.Contains(r.logs.String(), `"from":"ok","to":"critical","findings":["origin_missing"]`) {
		t.Errorf("the failure was not logged:\n%s", r.logs.String())
	}
	// The recovery is logged once ok has held for diagnose.FlapWindow (from
	// critical, or from warning when a cycle saw the repair's enable step:
	// down with the origin back, subscription_down).
	recovered := regexp.MustCompile(`"msg":"subscription health changed".*"from":"(critical|warning)","to":"ok".*"unhealthy_for":"[0-9]`)
	if err := pgtest.Poll(ctx, diagnose.FlapWindow+10*time.Second, func() bool { return recovered.MatchString(r.logs.String()) }); err != nil {
		t.Errorf("no recovery logged within %s:\n%s", diagnose.FlapWindow+10*time.Second, r.logs.String())
	}
}

func TestDaemonStuckDownAfterGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prov := pgtest.NewCluster(t, pgtest.Options{})
	subc := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: subc})
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), nil)
	r.waitMetric(t, `^pglmon_node_up\{node="provider"\} 1$`, false, 10*time.Second)
	stuck := regexp.MustCompile(`(?m)^pglmon_finding\{code="stuck_down",severity="critical",subscriber="subscriber",subscription="sub_0"\} 1$`)
	replicating := regexp.MustCompile(`(?m)^pglmon_subscription_status\{provider="provider",status="replicating",subscriber="subscriber",subscription="sub_0"\} 1$`)
	// Usually pglogical's manager backs off after an outage longer than its
	// 5 s restart delay, and the subscription stays down; sometimes its
	// worker reconnects at once, leaving nothing to report: then again.
	for attempt := 1; attempt <= 3; attempt++ {
		if err := prov.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		// While the provider is away: node down, subscription unknown.
		r.waitMetric(t, `^pglmon_node_up\{node="provider"\} 0$`, false, 5*time.Second)
		r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 3$`, false, 10*time.Second)
		r.waitMetric(t, `^pglmon_finding\{code="node_unreachable",severity="critical",subscriber="provider",subscription=""\} 1$`, false, 2*time.Second)
		time.Sleep(8 * time.Second) // the outage's length, not synchronisation
		if err := prov.Start(ctx); err != nil {
			t.Fatal(err)
		}
		r.waitMetric(t, `^pglmon_node_up\{node="provider"\} 1$`, false, 5*time.Second)
		var body string
		if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
			_, body = r.get(t, "/metrics")
			return stuck.MatchString(body) || replicating.MatchString(body)
		}); err != nil {
			t.Fatalf("neither stuck_down nor replicating after the provider's return:\n%s", grepLines(body, "pglmon_"))
		}
		if stuck.MatchString(body) {
			if !strings.Contains(r.logs.String(), `"msg":"node reachable again"`) {
				t.Error("recovery not logged")
			}
			return
		}
		t.Logf("attempt %d: pglogical reconnected by itself; again", attempt)
	}
	t.Fatal("pglogical reconnected by itself after every outage: stuck_down was never exercised")
}

func TestDaemonReload(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	audit := filepath.Join(t.TempDir(), "a.jsonl")
	r := start(t, pairConfig(p, audit, policyOff()), nil)
	r.waitMetric(t, `^pglmon_node_up\{node="subscriber"\} 1$`, false, 10*time.Second)

	// A broken config is refused and the running one kept.
	if err := os.WriteFile(r.path, []byte("nodes:\n  - name: x\n    dsn: host=x\n    bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	if err := pgtest.Poll(context.Background(), 5*time.Second, func() bool {
		return strings.Contains(r.logs.String(), "reload refused")
	}); err != nil {
		t.Fatal("broken config not refused")
	}
	if !strings.Contains(r.logs.String(), "nodes[0].bogus: unknown key") {
		t.Errorf("refusal does not name the field:\n%s", r.logs.String())
	}
	r.waitMetric(t, `^pglmon_node_up\{node="subscriber"\} 1$`, false, 5*time.Second)

	// A good config that adds a node (another database on the provider's server).
	body := pairConfig(p, audit, policyOff())
	body = strings.Replace(body, "probe:", fmt.Sprintf("  - name: extra\n    dsn: %q\nprobe:", p.Provider.Cluster.DSN("postgres")), 1)
	if err := os.WriteFile(r.path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	r.waitMetric(t, `^pglmon_node_up\{node="extra"\} 1$`, false, 5*time.Second)
	// And removing it again removes its series.
	if err := os.WriteFile(r.path, []byte(pairConfig(p, audit, policyOff())), 0o600); err != nil {
		t.Fatal(err)
	}
	r.reload <- struct{}{}
	r.waitMetric(t, `node="extra"`, true, 5*time.Second)
	r.stop(t)
}

func TestDaemonNotifiesSystemd(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var got []string
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(buf[:n]))
			mu.Unlock()
		}
	}()
	seen := func(state string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if g == state {
				return true
			}
		}
		return false
	}
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()), sdnotify.New(sock))
	for _, state := range []string{sdnotify.Ready, sdnotify.Watchdog} {
		if err := pgtest.Poll(context.Background(), 10*time.Second, func() bool { return seen(state) }); err != nil {
			t.Fatalf("%s not sent", state)
		}
	}
	r.reload <- struct{}{}
	if err := pgtest.Poll(context.Background(), 5*time.Second, func() bool { return seen(sdnotify.Reloading) }); err != nil {
		t.Fatal("RELOADING=1 not sent")
	}
	r.stop(t)
	if err := pgtest.Poll(context.Background(), 2*time.Second, func() bool { return seen(sdnotify.Stopping) }); err != nil {
		t.Fatal("STOPPING=1 not sent")
	}
}

func TestDaemonSurvivesNodeRestartsAndBadAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prov := pgtest.NewCluster(t, pgtest.Options{})
	subc := pgtest.NewCluster(t, pgtest.Options{})
	p := pgtest.NewPair(t, pgtest.PairOptions{Provider: prov, Subscriber: subc})
	body := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff())
	body = strings.Replace(body, "probe:", "  - name: nowhere\n    dsn: \"host=127.0.0.1 port=1 dbname=x user=x sslmode=disable\"\nprobe:", 1)
	r := start(t, body, nil)
	r.waitMetric(t, `^pglmon_node_up\{node="nowhere"\} 0$`, false, 10*time.Second)
	for _, c := range []struct {
		name string
		cl   *pgtest.Cluster
	}{{"subscriber", subc}, {"provider", prov}} {
		if err := c.cl.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		r.waitMetric(t, fmt.Sprintf(`^pglmon_node_up\{node=%q\} 0$`, c.name), false, 5*time.Second)
		if c.name == "subscriber" {
			// Its subscription is remembered, and unknown.
			r.waitMetric(t, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 3$`, false, 5*time.Second)
		}
		if err := c.cl.Start(ctx); err != nil {
			t.Fatal(err)
		}
		r.waitMetric(t, fmt.Sprintf(`^pglmon_node_up\{node=%q\} 1$`, c.name), false, 5*time.Second)
	}
	if code, _ := r.get(t, "/healthz"); code != 200 {
		t.Errorf("healthz after restarts: %d", code)
	}
	r.waitMetric(t, `^pglmon_probe_errors_total\{node="nowhere"\} [1-9]`, false, 2*time.Second)
	if strings.Count(r.logs.String(), `"node":"nowhere"`) > 3 {
		t.Errorf("repeated errors of one node are not rate-limited:\n%s", r.logs.String())
	}
	r.stop(t)
}

// driftedRow is a pair (items_0: 2,000 rows) whose subscriber's row 77
// differs, and what puts it right.
func driftedRow(t *testing.T) (p *pgtest.Pair, fix func()) {
	t.Helper()
	ctx := context.Background()
	p = pgtest.NewPair(t, pgtest.PairOptions{Rows: 2000})
	p.MustConverge(t, 30*time.Second)
	if err := p.Subscriber.Exec(ctx, "UPDATE items_0 SET val = 'drifted' WHERE id = 77"); err != nil {
		t.Fatal(err)
	}
	return p, func() {
		if err := p.Subscriber.Exec(ctx, "UPDATE items_0 SET val = md5('77') WHERE id = 77"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDaemonScheduledVerification(t *testing.T) {
	t.Parallel()
	p, fix := driftedRow(t)
	r := start(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()+"verify:\n  every: 1s\n"), nil)
	r.waitMetric(t, `^pglmon_table_divergent_rows\{subscription="sub_0",table="public.items_0"\} 1$`, false, 20*time.Second)
	r.waitMetric(t, `^pglmon_finding\{code="data_divergence",severity="critical",subscriber="subscriber",subscription="sub_0"\} 1$`, false, 5*time.Second)
	r.waitMetric(t, `^pglmon_verify_rows_checked_total [1-9]`, false, 5*time.Second)
	r.waitMetric(t, `^pglmon_verify_every_seconds 1$`, false, time.Second)
	r.waitMetric(t, `^pglmon_last_verify_timestamp_seconds [1-9]`, false, time.Second)
	rep := r.status(t)
	s, _ := rep.Subscription(p.Sub(), "")
	if f, ok := s.Finding(diagnose.CodeDataDivergence); !ok || !strings.Contains(f.Message, "77 different") {
		t.Errorf("finding: %+v", s.Findings)
	}
	// Fixed on the subscriber: the next verification clears it.
	fix()
	r.waitMetric(t, `pglmon_table_divergent_rows\{`, true, 20*time.Second)
	r.waitMetric(t, `code="data_divergence"`, true, 5*time.Second)
}

// waitRepair polls the audit log until a repair with remedy finished successfully.
func (r *running) waitRepair(t testing.TB, remedy string, timeout time.Duration) error {
	t.Helper()
	return pgtest.Poll(context.Background(), timeout, func() bool {
		entries, _ := repair.Entries(r.audit)
		for _, e := range entries {
			if e.Phase == "finished" && e.Remedy == remedy && e.Outcome == repair.ResultSuccess {
				return true
			}
		}
		return false
	})
}

// A verification still running when its window ends stops there: tables and
// subscriptions it did not reach keep what the last verification found.
func TestVerificationStopsAtTheEndOfItsWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Subscriptions: 2, Rows: 10000})
	p.MustConverge(t, 60*time.Second)
	// 10,000 rows at 2,000 rows/s, in ranges of about 500: 5 s per
	// subscription; the window ends after 1 s. (Under half of the default
	// chunk_rows, the table would be one statement, compared whole before
	// the window ends: its finding would rightly go.)
	d, cfg, snaps, logs := notRunning(t, pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()+
		"verify:\n  every: 1h\n  window: \"00:00-23:59\"\n  max_rows_per_second: 2000\n  chunk_rows: 500\n"))
	earlier := subResult{Subscriber: "subscriber", Subscription: "sub_0", Tables: []verify.TableResult{{Table: "public.items_0", DifferingRows: 3}}}
	other := subResult{Subscriber: "subscriber", Subscription: "sub_1", Tables: []verify.TableResult{{Table: "public.items_1", DifferingRows: 5}}}
	v := &verifier{
		results:   map[string]subResult{"subscriber/sub_0": earlier, "subscriber/sub_1": other},
		windowEnd: func(string, time.Time) (time.Time, bool) { return time.Now().Add(time.Second), true },
	}
	v.run(ctx, d, cfg, snaps, time.Now())
	if !strings.Contains(logs.String(), "stopped at the end of its window") {
		t.Errorf("no word of the window's end:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), `"msg":"verified"`) {
		t.Errorf("a subscription was verified to the end:\n%s", logs.String())
	}
	for key, want := range map[string]subResult{"subscriber/sub_0": earlier, "subscriber/sub_1": other} {
		got := v.results[key]
		if got.Subscription != want.Subscription || len(got.Tables) != 1 || got.Tables[0].DifferingRows != want.Tables[0].DifferingRows {
			t.Errorf("%s: %+v, want the last verification's %+v", key, got, want)
		}
	}
}

// A scheduled verification that cannot reach a subscription's provider
// compares nothing: the subscription keeps its finding.
func TestVerificationKeepsFindingsWhenItCannotCompare(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	body := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()+"verify:\n  every: 1h\n")
	// The provider unreachable: nothing listens on port 1.
	body = strings.Replace(body, fmt.Sprintf("port=%d", p.Provider.Cluster.Port), "port=1", 1)
	d, cfg, snaps, logs := notRunning(t, body)
	earlier := subResult{Subscriber: "subscriber", Subscription: p.Sub(), Tables: []verify.TableResult{{Table: "public.items_0", DifferingRows: 3}}}
	v := &verifier{results: map[string]subResult{"subscriber/" + p.Sub(): earlier}}
	v.run(ctx, d, cfg, snaps, time.Now())
	if got := v.results["subscriber/"+p.Sub()]; len(got.Tables) != 1 || got.Tables[0].DifferingRows != 3 {
		t.Errorf("finding after a verification that compared nothing: %+v\n%s", got, logs.String())
	}
	// The cycle ended (the next one comes verify.every later), but it did
	// not verify every subscription: pglmon_last_verify_timestamp_seconds stays.
	if v.last.IsZero() || !v.complete.IsZero() || v.cycle != nil {
		t.Errorf("after a failed cycle: last %v, complete %v, cycle %+v", v.last, v.complete, v.cycle)
	}
}

// notRunning builds a daemon from a configuration without running it, and
// probes once: for tests that drive one of its parts directly.
func notRunning(t *testing.T, body string) (*Daemon, *config.Config, []probe.Snapshot, *pgtest.SyncBuffer) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	logs := &pgtest.SyncBuffer{}
	d, err := New(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.mon.Close(context.Background()) })
	_, snaps := d.mon.Cycle(context.Background())
	return d, cfg, snaps, logs
}

// A cycle longer than its window goes on in the next window from where it
// stopped, even after a restart: no table is compared twice, none skipped,
// and a difference found partway is a finding at once.
func TestVerificationGoesOnInTheNextWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Subscriptions: 2, Rows: 10000})
	p.MustConverge(t, 60*time.Second)
	for _, sql := range []string{
		"UPDATE items_0 SET val = 'early' WHERE id = 200",
		"UPDATE items_0 SET val = 'late' WHERE id = 9000",
		"DELETE FROM items_1 WHERE id = 5000",
	} {
		if err := p.Subscriber.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(t.TempDir(), "verify-state.json")
	// 10,000 rows at 4,000 rows/s: 2.5 s per subscription; each window lasts 2 s.
	body := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()+
		"verify:\n  every: 1h\n  window: \"00:00-23:59\"\n  max_rows_per_second: 4000\n  chunk_rows: 500\n  state_file: "+state+"\n")
	d, cfg, snaps, logs := notRunning(t, body)
	window := func(string, time.Time) (time.Time, bool) { return time.Now().Add(2 * time.Second), true }
	v := &verifier{windowEnd: window, state: &stateFile{state}}
	// Windows until one stops partway through sub_0 (a loaded machine may
	// spend a whole window connecting).
	var ps *pass
	for i := 0; i < 10 && ps == nil; i++ {
		v.run(ctx, d, cfg, snaps, time.Now())
		if v.cycle == nil {
			t.Fatalf("the cycle finished in one window: nothing to go on with\n%s", logs.String())
		}
		ps = v.cycle.Passes["subscriber/sub_0"]
	}
	if ps == nil || ps.Table != "public.items_0" || len(ps.From) != 1 {
		t.Fatalf("no window stopped partway through sub_0: cycle %+v\n%s", v.cycle, logs.String())
	}
	// The difference at id 200 is found in the first window and reported.
	if got := v.results["subscriber/sub_0"]; len(got.Tables) != 1 || got.Tables[0].DifferingRows != 1 || got.Tables[0].Keys[0].Key != "200" {
		t.Errorf("finding after the first window: %+v", got)
	}
	rep := diagnose.Report{Subscriptions: []diagnose.Subscription{{Name: "sub_0", Subscriber: "subscriber"}}}
	v.annotate(&rep)
	if f, ok := rep.Subscriptions[0].Finding(diagnose.CodeDataDivergence); !ok || !strings.Contains(f.Message, "at least 1 row differs (compared up to key") {
		t.Errorf("finding partway: %+v", rep.Subscriptions[0].Findings)
	}
	// Restarted between windows: a new daemon takes over the kept state.
	for range 30 {
		d2, cfg2, snaps2, _ := notRunning(t, body)
		d2.verifier.windowEnd = window
		if d2.verifier.cycle == nil {
			t.Fatal("the interrupted cycle was not kept")
		}
		d2.verifier.run(ctx, d2, cfg2, snaps2, time.Now())
		v = &d2.verifier
		if v.cycle == nil {
			break
		}
	}
	if v.cycle != nil {
		t.Fatalf("the cycle did not finish in 30 more windows: %+v", v.cycle)
	}
	want := map[string][]verify.KeyDiff{"subscriber/sub_0": {{Key: "200", Kind: verify.Different}, {Key: "9000", Kind: verify.Different}},
		"subscriber/sub_1": {{Key: "5000", Kind: verify.Missing}}}
	for key, keys := range want {
		got := v.results[key]
		if len(got.Tables) != 1 || !slices.Equal(got.Tables[0].Keys, keys) || got.Tables[0].DifferingRows != int64(len(keys)) || got.Tables[0].RowsCompared != 10000 {
			t.Errorf("%s: %+v, want keys %v over 10000 rows", key, got, keys)
		}
	}
	if v.last.IsZero() || !v.complete.Equal(v.last) {
		t.Errorf("the finished cycle: last %v, complete %v", v.last, v.complete)
	}
	// The findings outlive a restart too.
	d3, _, _, _ := notRunning(t, body)
	if n := d3.verifier.divergent()[[2]string{"sub_1", "public.items_1"}]; n != 1 || !d3.verifier.last.Equal(v.last) || !d3.verifier.complete.Equal(v.complete) || d3.verifier.cycle != nil {
		t.Errorf("after a restart: divergent %v, last %v (want %v), cycle %+v", d3.verifier.divergent(), d3.verifier.last, v.last, d3.verifier.cycle)
	}
}

// A window that ends while a table with a text key is read in page order
// (by a hash of its key: no key below which every row was compared) leaves
// the table to the next window, which reads it in key order from the start
// and finds its difference.
func TestVerificationGoesOnInKeyOrderAfterAPageOrderStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{Rows: 10})
	for _, db := range []pgtest.DB{p.Provider, p.Subscriber} {
		for _, sql := range []string{
			"CREATE TABLE t_text (k text PRIMARY KEY, v int)",
			"INSERT INTO t_text SELECT md5(g::text), g FROM generate_series(1, 10000) g",
			"ANALYZE t_text",
		} {
			if err := db.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.Provider.Exec(ctx, "SELECT pglogical.replication_set_add_table('set_0', 't_text', false)"); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscriber.Exec(ctx, "UPDATE t_text SET v = -1 WHERE k = md5('77')"); err != nil {
		t.Fatal(err)
	}
	var key string
	if err := p.Provider.QueryRow(ctx, "SELECT md5('77')", []any{&key}); err != nil {
		t.Fatal(err)
	}
	// 10,000 rows at 2,000 rows/s: 5 s; the first window ends after 1 s.
	body := pairConfig(p, filepath.Join(t.TempDir(), "a.jsonl"), policyOff()+
		"verify:\n  every: 1h\n  window: \"00:00-23:59\"\n  max_rows_per_second: 2000\n  chunk_rows: 1000\n  scan: pages\n")
	d, cfg, snaps, logs := notRunning(t, body)
	end := time.Second
	v := &verifier{windowEnd: func(string, time.Time) (time.Time, bool) { return time.Now().Add(end), true }}
	v.run(ctx, d, cfg, snaps, time.Now())
	if v.cycle == nil {
		t.Fatalf("the cycle finished in one window\n%s", logs.String())
	}
	ps := v.cycle.Passes["subscriber/"+p.Sub()]
	if ps == nil || ps.Table != "public.t_text" || !ps.KeyOrder || ps.From != nil || ps.Partial != nil {
		t.Fatalf("after a window ended in page order: cycle %+v, pass %+v\n%s", v.cycle, ps, logs.String())
	}
	end = time.Minute
	v.run(ctx, d, cfg, snaps, time.Now())
	got := v.results["subscriber/"+p.Sub()]
	if v.cycle != nil || len(got.Tables) != 1 || got.Tables[0].Scan != verify.ScanIndex || got.Tables[0].RowsCompared != 10000 ||
		!slices.Equal(got.Tables[0].Keys, []verify.KeyDiff{{Key: key, Kind: verify.Different}}) {
		t.Errorf("the next window: cycle %+v, results %+v\n%s", v.cycle, got, logs.String())
	}
}

// The verification state is written where verify.state_file says, next to
// the audit log by default; a directory that is not there fails the start,
// an unreadable file is moved aside.
func TestVerifyStateFile(t *testing.T) {
	t.Parallel()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	dir := t.TempDir()
	body := pairConfig(p, filepath.Join(dir, "a.jsonl"), policyOff()+"verify:\n  every: 1h\n")
	cfg, err := config.Parse("t.yaml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.VerifyStateFile(); got != filepath.Join(dir, "verify-state.json") {
		t.Errorf("default state file: %s", got)
	}
	cfg.Verify.StateFile = filepath.Join(dir, "missing", "state.json")
	if _, err := New(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}); err == nil || !strings.Contains(err.Error(), "verify.state_file") {
		t.Errorf("state file in a missing directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "verify-state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, logs := notRunning(t, body)
	if !strings.Contains(logs.String(), "cannot read the verification state") {
		t.Errorf("no word of the unreadable state:\n%s", logs.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "verify-state.json.unreadable")); err != nil || string(b) != "{not json" {
		t.Errorf("unreadable state not kept aside: %q %v", b, err)
	}
}
