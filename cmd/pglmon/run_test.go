package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pglmon/pglmon/internal/pgtest"
)

// TestRunProcessSignals runs `pglmon run` as a real process: SIGHUP reloads,
// SIGTERM exits 0 within 5 s.
func TestRunProcessSignals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pgtest.NewPair(t, pgtest.PairOptions{})
	cfg := writeConfig(t, p, "http:\n  listen: \"127.0.0.1:0\"\nrepair:\n  audit_log: "+filepath.Join(t.TempDir(), "a.jsonl")+"\n")
	cmd := exec.Command(os.Args[0], "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "PGLMON_TEST_AS_MAIN=1")
	var logs pgtest.SyncBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	addrRE := regexp.MustCompile(`"addr":"([^"]+)"`)
	var addr string
	if err := pgtest.Poll(ctx, 10*time.Second, func() bool {
		m := addrRE.FindStringSubmatch(logs.String())
		if m != nil {
			addr = m[1]
		}
		return addr != "" && strings.Contains(logs.String(), "first cycle complete")
	}); err != nil {
		t.Fatalf("daemon not ready:\n%s", logs.String())
	}
	resp, err := http.Get("http://" + addr + "/api/v1/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status endpoint: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Poll(ctx, 5*time.Second, func() bool { return strings.Contains(logs.String(), "configuration reloaded") }); err != nil {
		t.Fatalf("SIGHUP did not reload:\n%s", logs.String())
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("exit code %d after SIGTERM:\n%s", ee.ExitCode(), logs.String())
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("exited 0 %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after SIGTERM")
	}
}
