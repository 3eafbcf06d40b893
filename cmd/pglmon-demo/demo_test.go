package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// `make demo`, README's first command, as a user runs it: it installs what
// it needs, builds, starts the two clusters replicating and the daemon in
// the foreground, which then repairs a lost origin (break origin), reads
// what break data did through pglmon verify and names the table break
// leftset took out of replication, with repair's plan for it; Ctrl-C stops the daemon and
// `pglmon-demo down` removes everything. On ports and in a directory of
// its own (PGLMON_DEMO_*), so a demo running here is left alone.
func TestMakeDemo(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed: run scripts/install-deps.sh (as root)")
	}
	ctx := context.Background()
	demoDir := filepath.Join(demoBase(t), "demo")
	bin := t.TempDir()
	pglmon, demo := filepath.Join(bin, "pglmon"), filepath.Join(bin, "pglmon-demo")
	listen := freeAddr(t)
	env := append(os.Environ(), "PGLMON_DEMO_DIR="+demoDir, fmt.Sprintf("PGLMON_DEMO_PORT=%d", freePorts(t, 8)), "PGLMON_DEMO_LISTEN="+listen)
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		return cmd
	}

	var out pgtest.SyncBuffer
	mk := command("make", "-C", "../..", "demo", "BIN="+pglmon, "DEMO="+demo)
	mk.Stdout, mk.Stderr = &out, &out
	mk.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, as a terminal's job
	if err := mk.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- mk.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-mk.Process.Pid, syscall.SIGKILL)
		if got, err := command(demo, "down").CombinedOutput(); err != nil {
			t.Errorf("pglmon-demo down: %v\n%s", err, got)
		}
	})
	cfg := filepath.Join(demoDir, "pglmon.yaml")

	// The daemon answers once the demo is up, and says the subscription
	// replicates (the status make demo printed before it said so too).
	status := func() (s struct {
		Health        string
		Subscriptions []struct {
			Name, Status, Health string
			Findings             []struct{ Code, Message string }
		}
	}) {
		resp, err := http.Get("http://" + listen + "/api/v1/status")
		if err != nil {
			return s
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(&s)
		return s
	}
	healthy := func() bool {
		s := status()
		return s.Health == "ok" && len(s.Subscriptions) == 1 && s.Subscriptions[0].Status == "replicating"
	}
	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		if err := pgtest.Poll(ctx, timeout, func() bool {
			select {
			case err := <-exited:
				t.Fatalf("make demo ended (%v) while waiting for %s:\n%s", err, what, out.String())
			default:
			}
			return cond()
		}); err != nil {
			t.Fatalf("%s: not within %s; make demo printed:\n%s", what, timeout, out.String())
		}
	}
	// Installing, building (both binaries, not in the race-built cache) and
	// starting two clusters.
	waitFor("the daemon reporting sub_0 replicating", 8*time.Minute, healthy)
	if printed := out.String(); !strings.Contains(printed, "subscription sub_0 replicating table items_0") || !strings.Contains(printed, "sub_0") {
		t.Errorf("make demo printed:\n%s", printed)
	}

	// break origin: the daemon recreates it.
	if got, err := command(demo, "break", "origin").CombinedOutput(); err != nil {
		t.Fatalf("break origin: %v\n%s", err, got)
	}
	repaired := func() bool {
		f, err := os.Open(filepath.Join(demoDir, "audit.jsonl"))
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e struct{ Phase, Remedy, Outcome string }
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Phase == "finished" && e.Remedy == "recreate-origin" && e.Outcome == "success" {
				return true
			}
		}
		return false
	}
	waitFor("a successful recreate-origin in the audit log", 2*time.Minute, repaired)
	waitFor("sub_0 replicating again", time.Minute, healthy)
	if printed := out.String(); !strings.Contains(printed, "origin_missing") {
		t.Errorf("the daemon's log does not name origin_missing:\n%s", printed)
	}

	// break data: still replicating, and verify names the three rows.
	if got, err := command(demo, "break", "data").CombinedOutput(); err != nil {
		t.Fatalf("break data: %v\n%s", err, got)
	}
	got, err := command(pglmon, "verify", "--config", cfg).CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(got), "(missing)") || !strings.Contains(string(got), "(different)") || !strings.Contains(string(got), "(extra)") {
		t.Errorf("verify after break data: exit %d (want 2, the three differing rows named)\n%s", code, got)
	}

	// break rewind: the provider put back to a copy of its files taken
	// before rows the subscriber applied; the daemon says provider_rewound.
	if got, err := command(demo, "break", "rewind").CombinedOutput(); err != nil {
		t.Fatalf("break rewind: %v\n%s", err, got)
	}
	waitFor("provider_rewound on sub_0", time.Minute, func() bool {
		for _, x := range status().Subscriptions {
			for _, f := range x.Findings {
				if f.Code == "provider_rewound" {
					return true
				}
			}
		}
		return false
	})
	// The provider's heartbeats take its WAL past what the subscriber had
	// applied: nothing more is skipped, and the daemon holds the finding.
	waitFor("provider_rewound held on sub_0", 2*time.Minute, func() bool {
		for _, x := range status().Subscriptions {
			for _, f := range x.Findings {
				if f.Code == "provider_rewound" && strings.Contains(f.Message, "Nothing more is skipped now") {
					return true
				}
			}
		}
		return false
	})

	// break leftset: pglogical still says replicating; the daemon names
	// the table (at its next cycle: the provider's sets changed), and repair prints
	// how to put it back and copy what it missed.
	if got, err := command(demo, "break", "leftset").CombinedOutput(); err != nil {
		t.Fatalf("break leftset: %v\n%s", err, got)
	}
	waitFor("table_left_set on sub_0", 3*time.Minute, func() bool {
		s := status()
		for _, x := range s.Subscriptions {
			for _, f := range x.Findings {
				if f.Code == "table_left_set" {
					return x.Status == "replicating"
				}
			}
		}
		return false
	})
	got, err = command(pglmon, "repair", "--config", cfg, "--subscription", "sub_0").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(got), "SELECT pglogical.replication_set_add_table('set_0', 'public.items_0', synchronize_data := false);") ||
		!strings.Contains(string(got), "SELECT pglogical.alter_subscription_resynchronize_table('sub_0', 'public.items_0');") {
		t.Errorf("repair after break leftset: exit %d (want 1 and the plan)\n%s", code, got)
	}

	// breakThenFix runs break what, waits for the daemon's finding code on
	// sub_0 whose message holds says, runs fix what, waits for the finding
	// to go, and for verify to find table equal.
	breakThenFix := func(what, code, says, table string) {
		t.Helper()
		if got, err := command(demo, "break", what).CombinedOutput(); err != nil {
			t.Fatalf("break %s: %v\n%s", what, err, got)
		}
		found := func() bool {
			for _, x := range status().Subscriptions {
				for _, f := range x.Findings {
					if f.Code == code {
						return strings.Contains(f.Message, says)
					}
				}
			}
			return false
		}
		waitFor(code+" on sub_0", time.Minute, found)
		if got, err := command(demo, "fix", what).CombinedOutput(); err != nil {
			t.Fatalf("fix %s: %v\n%s", what, err, got)
		}
		waitFor(code+" gone", time.Minute, func() bool { return !found() && len(status().Subscriptions) == 1 })
		if err := pgtest.Poll(ctx, time.Minute, func() bool {
			return command(pglmon, "verify", "--config", cfg, "--table", table).Run() == nil
		}); err != nil {
			got, _ := command(pglmon, "verify", "--config", cfg, "--table", table).CombinedOutput()
			t.Errorf("%s after fix %s:\n%s", table, what, got)
		}
	}
	// break origins: the copy of a table added to the set finds no
	// replication origin state on the subscriber, restarted with as many as
	// its subscription holds; the daemon names it, and once fix origins
	// raised the setting pglogical copies the table by itself.
	breakThenFix("origins", "origin_slots_exhausted", "table public.demo_origins of sub_0 cannot be copied: ", "public.demo_origins")
	// break grant: sub_0 connects as a role that may not read a table
	// added to its set; the daemon names the failing copy and the GRANT,
	// and once fix grant ran it pglogical copies the table.
	breakThenFix("grant", "table_sync_error", "GRANT SELECT ON public.demo_grant TO demo_copier;", "public.demo_grant")
	// break usage: the role's USAGE on schema pglogical revoked, a row
	// written, USAGE given back: the provider's walsender fails on that
	// row for ever; the daemon reads the provider's log and says so, and
	// once fix usage moved sub_0 to a connection as postgres the row
	// arrives.
	breakThenFix("usage", "provider_connection_failed", "for the role of its provider connection, demo_copier, which may not use schema pglogical", "public.demo_usage_rows")
	// break ddl: DDL queued through pglogical for a table only the
	// provider has stops sub_0 for ever; the daemon names the statement,
	// and once fix ddl made the table the row written after it arrives.
	breakThenFix("ddl", "apply_error", "pglogical.replicate_ddl_command (ALTER TABLE public.demo_ddl ADD COLUMN IF NOT EXISTS note text)", "public.demo_ddl_rows")

	// Ctrl-C stops the daemon (make with it); down removes the demo.
	if err := syscall.Kill(-mk.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("make demo still running a minute after Ctrl-C:\n%s", out.String())
	}
	if got, err := command(demo, "down").CombinedOutput(); err != nil {
		t.Fatalf("pglmon-demo down: %v\n%s", err, got)
	}
	if _, err := os.Stat(demoDir); !os.IsNotExist(err) {
		t.Errorf("after down, %s: %v", demoDir, err)
	}
}

// make demo run again from a second terminal while the first one's daemon
// runs: down (which up runs first) stops that daemon, as Ctrl-C would,
// instead of leaving it holding the listen address the new daemon needs.
// A daemon with another configuration (another demo's) is left alone.
func TestDownStopsTheDemosDaemon(t *testing.T) {
	ctx := context.Background()
	pglmon, demo := build(t)
	daemon := func(dir string) (*exec.Cmd, chan error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Nodes nothing listens on: the daemon runs and finds them down.
		addr := freeAddr(t)
		cfg := fmt.Sprintf("nodes:\n  - name: provider\n    dsn: \"host=127.0.0.1 port=%d dbname=labdb user=postgres connect_timeout=1\"\nhttp:\n  listen: %q\nrepair:\n  audit_log: %s\n",
			freePorts(t, 1), addr, filepath.Join(dir, "audit.jsonl"))
		if err := os.WriteFile(filepath.Join(dir, "pglmon.yaml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(pglmon, "run", "--config", "pglmon.yaml") // relative, as a user may
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		// Up once it answers (its signal handling is set up by then).
		if err := pgtest.Poll(ctx, 30*time.Second, func() bool {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		}); err != nil {
			t.Fatalf("the daemon in %s never answered on %s", dir, addr)
		}
		return cmd, exited
	}
	mine, other := filepath.Join(t.TempDir(), "demo"), filepath.Join(t.TempDir(), "other")
	_, mineExited := daemon(mine)
	_, otherExited := daemon(other)
	down := exec.Command(demo, "down")
	down.Env = append(os.Environ(), "PGLMON_DEMO_DIR="+mine, fmt.Sprintf("PGLMON_DEMO_PORT=%d", freePorts(t, 8)))
	got, err := down.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "stopped the demo's daemon (pglmon run, pid ") {
		t.Fatalf("pglmon-demo down: %v\n%s", err, got)
	}
	select {
	case err := <-mineExited:
		if err != nil {
			t.Errorf("the demo's daemon ended with %v; want a clean stop, as after Ctrl-C", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo's daemon still runs after down")
	}
	select {
	case err := <-otherExited:
		t.Errorf("the other demo's daemon was stopped too: %v", err)
	default:
	}
}

// demoBase makes a directory for a demo under the harness's directory,
// which the postgres user may enter (a test's own temporary directory is
// its owner's only); it is removed when the test ends.
func demoBase(t *testing.T) string {
	t.Helper()
	if err := os.MkdirAll(pgtest.BaseDir, 0o1777); err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp(pgtest.BaseDir, "demo-")
	if err == nil {
		err = os.Chmod(base, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return base
}

// build builds pglmon and pglmon-demo for one test.
func build(t *testing.T) (pglmon, demo string) {
	t.Helper()
	bin := t.TempDir()
	pglmon, demo = filepath.Join(bin, "pglmon"), filepath.Join(bin, "pglmon-demo")
	for _, b := range [][2]string{{pglmon, "../pglmon"}, {demo, "."}} {
		if got, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, got)
		}
	}
	return pglmon, demo
}

// freePorts returns the first of n consecutive loopback ports nothing
// listens on, between the test harness's ports (20000-32000) and the
// kernel's ephemeral ones.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 32000 + rand.IntN(700)
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				free = false
				continue
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free loopback ports")
	return 0
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// break restore and break advance, which only the daemon sees (it compares
// a probe with those before), as a user runs them beside the demo's
// daemon: each says what it did, the daemon reports it, and pglmon verify
// names the 50 rows lost; the copy script it writes puts them back, after
// which a verification clears the held finding, so the next break is seen.
func TestDemoBreaksOnlyTheDaemonSees(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pglmon, demo := build(t)
	demoDir, port, listen := filepath.Join(demoBase(t), "demo"), freePorts(t, 8), freeAddr(t)
	env := append(os.Environ(), "PGLMON_DEMO_DIR="+demoDir, fmt.Sprintf("PGLMON_DEMO_PORT=%d", port), "PGLMON_DEMO_LISTEN="+listen)
	run := func(name string, args ...string) (int, string) {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return exitCode(err), string(out)
	}
	if code, out := run(demo, "up"); code != 0 {
		t.Fatalf("pglmon-demo up: exit %d\n%s", code, out)
	}
	t.Cleanup(func() {
		if code, out := run(demo, "down"); code != 0 {
			t.Errorf("pglmon-demo down: exit %d\n%s", code, out)
		}
	})
	cfg := filepath.Join(demoDir, "pglmon.yaml")
	if code, out := run(demo, "break", "restore"); code == 0 || !strings.Contains(out, "does not answer on "+listen) {
		t.Errorf("break restore without the daemon: exit %d\n%s", code, out)
	}
	var daemonOut pgtest.SyncBuffer
	daemon := exec.Command(pglmon, "run", "--config", cfg)
	daemon.Stdout, daemon.Stderr = &daemonOut, &daemonOut
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })

	findings := func() []string {
		var codes []string
		resp, err := http.Get("http://" + listen + "/api/v1/status")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var s struct {
			Subscriptions []struct {
				Status   string
				Findings []struct{ Code string }
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&s)
		for _, x := range s.Subscriptions {
			codes = append(codes, x.Status)
			for _, f := range x.Findings {
				codes = append(codes, f.Code)
			}
		}
		return codes
	}
	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		if err := pgtest.Poll(ctx, timeout, cond); err != nil {
			t.Fatalf("%s: not within %s; findings %v; the daemon printed:\n%s", what, timeout, findings(), daemonOut.String())
		}
	}
	has := func(code string) func() bool {
		return func() bool { return slices.Contains(findings(), code) }
	}
	// lost checks that verify names the 50 rows missing, copies them and
	// then finds the tables equal, and that the daemon lets go of code.
	lost := func(finding string) {
		t.Helper()
		script := filepath.Join(t.TempDir(), "rows.psql")
		if code, out := run(pglmon, "verify", "--config", cfg, "--copy-script", script); code != 2 || !strings.Contains(out, "copies 50 rows that differ") {
			t.Fatalf("verify: exit %d (want 2 and the 50 rows lost)\n%s", code, out)
		}
		if code, out := run(pgtest.BinDir+"/psql", "-X", "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-d", "labdb", "-f", script); code != 0 {
			t.Fatalf("psql -f %s: exit %d\n%s", script, code, out)
		}
		if code, out := run(pglmon, "verify", "--config", cfg); code != 0 {
			t.Fatalf("verify after the copy script: exit %d\n%s", code, out)
		}
		waitFor(finding+" let go after the verification", 30*time.Second, func() bool { return !has(finding)() })
	}

	waitFor("the daemon reporting sub_0 replicating", 2*time.Minute, func() bool { return slices.Equal(findings(), []string{"replicating"}) })
	code, out := run(demo, "break", "restore")
	if code != 0 || !strings.Contains(out, "subscriber_rewound") {
		t.Fatalf("break restore: exit %d\n%s", code, out)
	}
	waitFor("subscriber_rewound", time.Minute, has("subscriber_rewound"))
	// Held: the next break of this kind is refused until it is verified.
	if code, out := run(demo, "break", "advance"); code == 0 || !strings.Contains(out, "holds subscriber_rewound") {
		t.Errorf("break advance while subscriber_rewound is held: exit %d\n%s", code, out)
	}
	lost("subscriber_rewound")

	code, out = run(demo, "break", "advance")
	if code != 0 || !strings.Contains(out, "slot_advanced") {
		t.Fatalf("break advance: exit %d\n%s", code, out)
	}
	waitFor("slot_advanced", time.Minute, has("slot_advanced"))
	if code, out := run(pglmon, "repair", "--config", cfg, "--subscription", "sub_0", "--remedy", "enable", "--yes"); code != 0 {
		t.Fatalf("repair --remedy enable: exit %d\n%s", code, out)
	}
	counts := func() (provider, subscriber int) {
		_, out := run(demo, "count")
		var p1, p2 int
		if n, _ := fmt.Sscanf(out, "port %d: %d rows\nport %d: %d rows", &p1, &provider, &p2, &subscriber); n != 4 {
			t.Fatalf("pglmon-demo count: %q", out)
		}
		return provider, subscriber
	}
	_, before := counts()
	if code, out := run(demo, "insert", "3"); code != 0 {
		t.Fatalf("insert: exit %d\n%s", code, out)
	}
	// The 3 rows arrive (so nothing is pending), the 50 do not.
	waitFor("the 3 rows inserted after the advance", time.Minute, func() bool {
		provider, subscriber := counts()
		return subscriber == before+3 && provider == subscriber+50
	})
	lost("slot_advanced")
}
