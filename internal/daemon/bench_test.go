package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

func benchDuration(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("PGLMON_BENCH_DURATION")); err == nil {
		return d
	}
	return def
}

// BenchmarkDaemon50Subscriptions runs the pglmon binary over a pair carrying
// 50 subscriptions at a 1 s interval (2 minutes; PGLMON_BENCH_DURATION
// changes it) and reports its CPU use, peak RSS and /metrics scrape latency:
// first without the heartbeats, then with them installed (one subscription
// carries them, the delay of the other 49 is read from their slots), when
// every subscription must have a delay in /metrics by the end.
// Run: go test -run '^$' -bench Daemon50 -benchtime 1x ./internal/daemon/
func BenchmarkDaemon50Subscriptions(b *testing.B) {
	p := pgtest.NewPair(b, pgtest.PairOptions{Subscriptions: 50})
	dir := b.TempDir()
	bin := filepath.Join(dir, "pglmon")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/pglmon").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "pglmon.yaml")
	body := strings.Replace(pairConfig(p, filepath.Join(dir, "audit.jsonl"), ""), "down_grace: 3s", "down_grace: 30s", 1)
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Run("without heartbeats", func(b *testing.B) { daemon50(b, bin, cfgPath, false) })
	installHeartbeat(b, body)
	b.Run("with heartbeats", func(b *testing.B) { daemon50(b, bin, cfgPath, true) })
}

func daemon50(b *testing.B, bin, cfgPath string, heartbeats bool) {
	ctx := context.Background()
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	logs := &pgtest.SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	var addr string
	if err := pgtest.Poll(ctx, 20*time.Second, func() bool {
		if m := regexp.MustCompile(`"addr":"([^"]+)"`).FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		return addr != "" && strings.Contains(logs.String(), "first cycle complete")
	}); err != nil {
		b.Fatalf("not ready:\n%s", logs.String())
	}
	cpu0 := cpuTicks(b, cmd.Process.Pid)
	start := time.Now()
	// Each scrape is followed by a /healthz request, which does no work:
	// a scrape over 5 ms with a slow /healthz beside it was the machine's
	// (both servers and the daemon share 2 cores), not the collection's.
	var scrapes, healths []time.Duration
	var slow []string
	var last string
	dur := benchDuration(2 * time.Minute)
	b.ResetTimer()
	for time.Since(start) < dur {
		t0 := time.Now()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(t0)
		scrapes = append(scrapes, took)
		t1 := time.Now()
		if resp, err = http.Get("http://" + addr + "/healthz"); err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		healths = append(healths, time.Since(t1))
		if took > 5*time.Millisecond {
			slow = append(slow, fmt.Sprintf("%.2f ms at %s (healthz after it %.2f ms)", float64(took.Microseconds())/1000, time.Since(start).Round(time.Second), float64(healths[len(healths)-1].Microseconds())/1000))
		}
		if last = string(body); strings.Count(last, "pglmon_subscription_health{") != 50 {
			b.Fatalf("subscriptions in /metrics: got %d, want 50", strings.Count(last, "pglmon_subscription_health{"))
		}
		time.Sleep(time.Second) // one scrape a second, as a fast Prometheus would
	}
	elapsed := time.Since(start)
	b.StopTimer()
	delays := strings.Count(last, "pglmon_replication_delay_seconds{")
	if want := map[bool]int{false: 0, true: 50}[heartbeats]; delays != want {
		b.Fatalf("subscriptions with a delay in /metrics: %d, want %d", delays, want)
	}
	cpu := float64(cpuTicks(b, cmd.Process.Pid)-cpu0) / 100 / elapsed.Seconds() * 100 // USER_HZ = 100
	rss := peakRSS(b, cmd.Process.Pid)
	slices.Sort(scrapes)
	slices.Sort(healths)
	p50, p99, max := scrapes[len(scrapes)/2], scrapes[len(scrapes)*99/100], scrapes[len(scrapes)-1]
	b.ReportMetric(cpu, "cpu_%")
	b.ReportMetric(float64(rss)/1024, "peak_rss_MB")
	b.ReportMetric(float64(p50.Microseconds())/1000, "scrape_p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "scrape_p99_ms")
	b.ReportMetric(float64(max.Microseconds())/1000, "scrape_max_ms")
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("daemon over 50 subscriptions (heartbeats %v), 1 s interval, %s: CPU %.2f%% of one core, peak RSS %.1f MB, scrape p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d scrapes); /healthz p50 %.2f ms, max %.2f ms\n",
		heartbeats, elapsed.Round(time.Second), cpu, float64(rss)/1024, ms(p50), ms(p99), ms(max), len(scrapes), ms(healths[len(healths)/2]), ms(healths[len(healths)-1]))
	for _, s := range slow {
		fmt.Printf("  scrape over 5 ms: %s\n", s)
	}
}

func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64) // utime is field 14, stime 15
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func peakRSS(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(raw)
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb
}

// BenchmarkTimeToReplicating measures, over 5 runs each, how long after the
// break (origin loss) or the provider's return (10 s outage) the subscription
// replicates again with the daemon repairing automatically at a 1 s interval.
// PGLMON_BENCH_BASELINE=1 also measures the outage without pglmon (~3 min).
// Run: go test -run '^$' -bench TimeToReplicating -benchtime 1x ./internal/daemon/
func BenchmarkTimeToReplicating(b *testing.B) {
	ctx := context.Background()
	prov := pgtest.NewCluster(b, pgtest.Options{})
	subc := pgtest.NewCluster(b, pgtest.Options{})
	var origin, outage []time.Duration
	for i := range 5 {
		p := pgtest.NewPair(b, pgtest.PairOptions{Provider: prov, Subscriber: subc})
		r := start(b, pairConfig(p, filepath.Join(b.TempDir(), "a.jsonl"), ""), nil)
		r.waitMetric(b, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 20*time.Second)
		broke := time.Now()
		if err := p.LoseOriginNow(ctx, p.Sub()); err != nil {
			b.Fatal(err)
		}
		if err := r.waitRepair(b, "recreate-origin", 20*time.Second); err != nil {
			b.Fatal(err)
		}
		if err := p.WaitStatus(ctx, p.Sub(), "replicating", 60*time.Second); err != nil {
			b.Fatal(err)
		}
		origin = append(origin, time.Since(broke))
		// A separate incident: start from a healthy, settled subscription.
		r.waitMetric(b, `^pglmon_subscription_health\{subscriber="subscriber",subscription="sub_0"\} 0$`, false, 60*time.Second)
		if err := pgtest.ProviderOutage(ctx, p, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		back := time.Now()
		if err := p.WaitStatus(ctx, p.Sub(), "replicating", 240*time.Second); err != nil {
			b.Fatal(err)
		}
		outage = append(outage, time.Since(back))
		r.cancel()
		<-r.done
		fmt.Printf("run %d: origin loss healed %s after the break; provider outage healed %s after its return\n", i+1, origin[i].Round(time.Millisecond), outage[i].Round(time.Millisecond))
	}
	report := func(name string, d []time.Duration) {
		slices.Sort(d)
		fmt.Printf("%s: median %s, max %s over %d runs\n", name, d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond), len(d))
		b.ReportMetric(d[len(d)/2].Seconds(), name+"_median_s")
		b.ReportMetric(d[len(d)-1].Seconds(), name+"_max_s")
	}
	report("origin_loss", origin)
	report("provider_outage", outage)
	if os.Getenv("PGLMON_BENCH_BASELINE") == "1" {
		p := pgtest.NewPair(b, pgtest.PairOptions{Provider: prov, Subscriber: subc})
		if err := pgtest.ProviderOutage(ctx, p, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		back := time.Now()
		if err := p.WaitStatus(ctx, p.Sub(), "replicating", 300*time.Second); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("without pglmon: provider outage healed by pglogical alone %s after the provider's return\n", time.Since(back).Round(time.Second))
		b.ReportMetric(time.Since(back).Seconds(), "pglogical_alone_s")
	}
}
