// Package deploy_test checks the shipped Prometheus rules, systemd unit and
// Grafana dashboard with the tools that consume them.
package deploy_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pglmon/pglmon/internal/diagnose"
	"github.com/pglmon/pglmon/internal/metrics"
	"github.com/pglmon/pglmon/internal/probe"
	"github.com/pglmon/pglmon/internal/rdsstorage"
)

func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install -y %s (or run scripts/install-deps.sh)", name, pkg)
	}
	return p
}

func TestPrometheusRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "pglmon.rules.yml"},
		{"test", "rules", "pglmon.rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestEveryAlertHasAnnotationsAndATest(t *testing.T) {
	rules, _ := os.ReadFile("prometheus/pglmon.rules.yml")
	tests, _ := os.ReadFile("prometheus/pglmon.rules.test.yml")
	alerts := regexp.MustCompile(`(?m)^\s+- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) < 12 {
		t.Fatalf("got %d alerts, want at least 12", len(alerts))
	}
	for _, a := range alerts {
		name := a[1]
		fires := regexp.MustCompile(`alertname: ` + name + `\n\s+exp_alerts:\n\s+- `).Match(tests)
		quiet := strings.Contains(string(tests), "alertname: "+name+", exp_alerts: []")
		if !fires || !quiet {
			t.Errorf("%s: tested firing %t, not firing %t; want both", name, fires, quiet)
		}
	}
	for _, key := range []string{"summary:", "description:", "runbook:"} {
		if got := strings.Count(string(rules), key); got != len(alerts) {
			t.Errorf("%s on %d of %d alerts", key, got, len(alerts))
		}
	}
	if got := strings.Count(string(rules), "runbook: \"pglmon ") + strings.Count(string(rules), "runbook: \"grep ") +
		strings.Count(string(rules), "runbook: \"journalctl ") + strings.Count(string(rules), "runbook: \"systemctl "); got != len(alerts) {
		t.Errorf("runbooks naming a command: %d of %d", got, len(alerts))
	}
}

// Every finding code has an alert: on pglmon_finding{code=...}, or on the
// metric named here that says the same (a new code without either fails).
func TestEveryFindingCodeAlerts(t *testing.T) {
	rules, err := os.ReadFile("prometheus/pglmon.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	byMetric := map[string]string{
		diagnose.CodeSubscriptionDown: "PglogicalSubscriptionStuckDown", // down past down_grace is stuck_down
		diagnose.CodeNodeUnreachable:  "pglmon_node_up == 0",
		diagnose.CodeSlotWALLost:      `pglmon_slot_wal_status{wal_status="lost"}`,
		diagnose.CodeDataDivergence:   "pglmon_table_divergent_rows > 0",
	}
	f, err := parser.ParseFile(token.NewFileSet(), "../internal/diagnose/report.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			v := spec.(*ast.ValueSpec)
			for i, name := range v.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(v.Values) {
					continue
				}
				lit, ok := v.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				code, _ := strconv.Unquote(lit.Value)
				codes++
				if other, ok := byMetric[code]; ok {
					if !strings.Contains(string(rules), other) {
						t.Errorf("%s: its alert (%s) is not in the rules", code, other)
					}
					continue
				}
				on := regexp.MustCompile(`pglmon_finding\{code(="|=~"[^"]*\b)` + code + `\b`)
				if !on.Match(rules) {
					t.Errorf("finding %s (%s) has no alert", code, name.Name)
				}
			}
		}
	}
	if codes < 40 {
		t.Fatalf("read %d finding codes from report.go, want at least 40", codes)
	}
}

func TestSystemdUnit(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	bin := filepath.Join(dir, "pglmon")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pglmon").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	unit, err := os.ReadFile("systemd/pglmon.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart exists: point it at the binary just built.
	path := filepath.Join(dir, "pglmon.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/pglmon", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify printed (err %v):\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for pglmon.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security exposure: %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f, want <= 2.0", score)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "ExecReload=", "Restart=on-failure", "LoadCredential=", "DynamicUser=yes", "UMask=0077"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %s", want)
		}
	}
}

// exportedNames lists every metric name pglmon can export.
func exportedNames(t *testing.T) map[string]bool {
	reg := prometheus.NewRegistry()
	s := metrics.New(reg, "v", func() bool { return true })
	lag, safe, secs := int64(1), int64(1), 1.0
	s.Observe(diagnose.Report{
		Subscriptions: []diagnose.Subscription{{Name: "a", Subscriber: "s", Provider: "p", Status: "down", LagBytes: &lag, LagSeconds: &secs, ReplicationDelaySeconds: &secs, LockWait: &probe.LockWait{Seconds: &secs},
			Findings: []diagnose.Finding{{Code: "x", Severity: diagnose.Critical}}}},
		Nodes: []diagnose.Node{{Name: "p", Storage: &rdsstorage.Reading{FreeBytes: 1, AllocatedBytes: 2}}},
	}, []probe.Snapshot{{Node: "p", Time: time.Now(), Slots: []probe.Slot{{Name: "sl", SafeWALSize: &safe, XminAge: &lag, CatalogXminAge: &lag, Decoding: &probe.Decoding{}}},
		OldestXact: &probe.Xact{Session: probe.Session{XactSeconds: &secs}}, Capacity: &probe.Capacity{MaxSlots: 1, MaxSenders: 1},
		Origins: &probe.OriginStates{Max: 1}, Workers: &probe.Workers{Max: 1},
		TableSync: []probe.TableSync{{Subscription: "a", Schema: "public", Table: "t", CopiedRows: &lag, CopiedBytes: &lag}}}})
	s.Repair("restart", "success", time.Second)
	s.Notifications.WithLabelValues("sent").Inc()
	s.Conflicts("s", "public.t", "UPDATE", "skip", 1)
	s.Heartbeat("p", false)
	s.Verified(1, map[[2]string]int64{{"a", "public.t"}: 1}, time.Now())
	metrics.TLSCertificateExpiry(reg, time.Now)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			names[n+suffix] = true
		}
	}
	return names
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/pglmon.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	names := exportedNames(t)
	metricRE := regexp.MustCompile(`pglmon_[a-z_]+`)
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricRE.FindAllString(tg.Expr, -1) {
				queried[m] = true
				if !names[m] {
					t.Errorf("panel %q queries %s, which pglmon does not export", p.Title, m)
				}
			}
		}
	}
	for _, want := range []string{"pglmon_subscription_status", "pglmon_subscription_health", "pglmon_replication_lag_bytes",
		"pglmon_slot_retained_wal_bytes", "pglmon_finding", "pglmon_repairs_total", "pglmon_probe_duration_seconds_bucket", "pglmon_node_up"} {
		if !queried[want] {
			t.Errorf("dashboard does not show %s", want)
		}
	}
	rules, _ := os.ReadFile("prometheus/pglmon.rules.yml")
	for _, m := range metricRE.FindAllString(string(rules), -1) {
		if !names[m] && !strings.HasPrefix(m, "pglmon_yaml") {
			t.Errorf("alert rules use %s, which pglmon does not export", m)
		}
	}
}
